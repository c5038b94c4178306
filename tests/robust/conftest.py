"""Session fixtures for the robust module's tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


# --- poisoning, backdoors, extraction, membership ---------------------------------------------


def _load_script(name: str) -> ModuleType:
    path = ROOT / "fixtures" / "robust" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def poison_script() -> ModuleType:
    """fixtures/robust/make_poison_fixtures.py, imported."""
    import torch

    torch.set_num_threads(1)
    return _load_script("make_poison_fixtures")


@pytest.fixture(scope="session")
def poison_fixtures(poison_script: ModuleType):
    """The generated known-answer fixtures (made once, cached in fixtures/robust/generated/)."""
    return poison_script.make_all()


@pytest.fixture(scope="session")
def backdoor_cnn(poison_script, poison_fixtures):
    return poison_script.load_cnn(poison_fixtures.backdoor_cnn)


@pytest.fixture(scope="session")
def clean_cnn(poison_script, poison_fixtures):
    return poison_script.load_cnn(poison_fixtures.clean_cnn)
