"""Fixtures for the poisoning, backdoor, extraction and membership examples."""

import importlib.util
import sys
from pathlib import Path

import pytest

FIXTURE_SCRIPT = Path(__file__).resolve().parent.parent / "fixtures" / "robust" / "make_poison_fixtures.py"


@pytest.fixture(scope="session")
def poison_kit():
    """The known-answer script (models, data, training functions), with its files generated."""
    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("make_poison_fixtures", FIXTURE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_poison_fixtures"] = module
    spec.loader.exec_module(module)
    return module, module.make_all()
