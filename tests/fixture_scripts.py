"""The scripts in ``fixtures/`` that make the tests' models, data and servers, imported as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load_fixture_script(relative: str, name: str) -> ModuleType:
    """``fixtures/<relative>`` imported once as module ``name``. It is registered in ``sys.modules`` before it
    runs, because the dataclasses and pickles of a script look their module up by name."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, FIXTURES / relative)
    assert spec is not None and spec.loader is not None, relative
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
