"""Shared artifacts for the supply tests: a trained project (made once) and key pairs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fixture_scripts import load_fixture_script

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "supply"


def _load_fixture_module():
    return load_fixture_script("supply/make_artifacts.py", "supply_make_artifacts")


_MAKE_ARTIFACTS = _load_fixture_module()


@pytest.fixture(scope="session")
def make_artifacts():
    """The fixtures/supply/make_artifacts.py module."""
    return _MAKE_ARTIFACTS


@pytest.fixture(scope="session")
def generated_project(make_artifacts) -> Path:
    """The trained project, generated once per session into fixtures/supply/generated/."""
    # One copy per xdist worker: workers must not rebuild the same directory under each other.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return make_artifacts.make_project(
        FIXTURES / "generated" / ("project" + (f"-{worker}" if worker else ""))
    )


@pytest.fixture
def project(generated_project: Path, tmp_path: Path) -> Path:
    """A private copy of the project that a test may tamper with."""
    dest = tmp_path / "project"
    shutil.copytree(generated_project, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Key pairs by name: ed25519, ecdsa (P-256), and other_ed25519 / other_ecdsa for wrong-key cases."""
    from pytest_aisp.supply.signing import generate_keypair

    directory = tmp_path_factory.mktemp("keys")
    pairs = {}
    for name, kind in [
        ("ed25519", "ed25519"),
        ("ecdsa", "ecdsa-p256-sha256"),
        ("other_ed25519", "ed25519"),
        ("other_ecdsa", "ecdsa-p256-sha256"),
    ]:
        pairs[name] = generate_keypair(directory / f"{name}.pem", directory / f"{name}.pub.pem", kind)
    return pairs


@pytest.fixture(autouse=True)
def _session_settings_restored():
    """CLI calls install their project's settings as the current ones; put the session's back after."""
    from pytest_aisp.config import current_settings, set_current_settings

    saved = current_settings()
    yield
    set_current_settings(saved)
