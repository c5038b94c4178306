"""Shared fixtures: the traffic logs recorded from a real model behind the middleware."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "fixtures" / "monitor" / "make_traffic.py"
GENERATED = ROOT / "fixtures" / "monitor" / "generated"


def load_script() -> ModuleType:
    module = sys.modules.get("aisp_make_traffic")
    if module is None:
        spec = importlib.util.spec_from_file_location("aisp_make_traffic", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["aisp_make_traffic"] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def traffic() -> dict[str, Path]:
    """Paths of the model, reference, metadata and every scenario log (recorded once per script version)."""
    script = load_script()
    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    stamp = GENERATED / "stamp.json"
    names = ("model", "reference", "data", "meta", *script.SCENARIOS)
    paths = {name: GENERATED / (f"{name}.jsonl" if name in script.SCENARIOS else
                                f"{name}.json" if name == "meta" else f"{name}.npz") for name in names}
    fresh = stamp.is_file() and json.loads(stamp.read_text()).get("script") == digest
    if not fresh or not all(p.is_file() for p in paths.values()):
        paths = script.make_all(GENERATED)
        stamp.write_text(json.dumps({"script": digest}))
    return paths


@pytest.fixture(scope="session")
def traffic_script() -> ModuleType:
    """fixtures/monitor/make_traffic.py as a module."""
    return load_script()


@pytest.fixture(scope="session")
def model(traffic):
    return load_script().Mlp.load(traffic["model"])


@pytest.fixture(scope="session")
def reference(traffic):
    from pytest_aisp.monitor import Reference

    return Reference.load(traffic["reference"])


@pytest.fixture(scope="session")
def meta(traffic) -> dict:
    return json.loads(traffic["meta"].read_text())
