# --- supply-chain integrity (pytest_aisp.supply) ------------------------------------------------
# The project under test: data, a training script, the model it trains and CI files, made by
# fixtures/supply/make_artifacts.py. At build time CI would run `aisp manifest create` and
# `aisp manifest sign`; here a session fixture does the same so the example runs anywhere.
import importlib.util
from pathlib import Path

import pytest


def _supply_fixture_script() -> Path:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "fixtures" / "supply" / "make_artifacts.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("fixtures/supply/make_artifacts.py not found above " + str(Path(__file__).parent))


@pytest.fixture(scope="session")
def supply_project(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trained project with a signed manifest and a signed provenance statement."""
    import sys

    from pytest_aisp.supply import (
        create_manifest,
        generate_keypair,
        record_provenance,
        save_manifest,
        sign_manifest,
    )

    spec = importlib.util.spec_from_file_location("supply_make_artifacts", _supply_fixture_script())
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    base = tmp_path_factory.mktemp("supply")
    project = make.make_project(base / "project")
    private, public = generate_keypair(base / "release.pem", base / "release.pub.pem")
    provenance = base / "provenance.intoto.json"
    record_provenance([sys.executable, "train.py"], materials=[project / "data", project / "train.py"],
                      products=[project / "model"], output=provenance, key=private, root=project)
    manifest = base / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=manifest), manifest)
    sign_manifest(manifest, private)
    return {"root": project, "manifest": manifest, "pubkey": public, "provenance": provenance}


@pytest.fixture(scope="session")
def artifact_manifest(supply_project: dict):
    """Verified once per session; a team with a committed aisp-manifest.json needs no override."""
    from pytest_aisp.supply import verify_manifest

    return verify_manifest(supply_project["manifest"], pubkey=supply_project["pubkey"])
