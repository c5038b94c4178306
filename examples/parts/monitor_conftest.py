# --- monitor: recorded traffic from a real model served behind the monitoring middleware ---------
import importlib.util as _monitor_importlib
import sys as _monitor_sys
from pathlib import Path as _MonitorPath

import pytest as _monitor_pytest

MONITOR_FIXTURES = _MonitorPath(__file__).resolve().parent.parent / "fixtures" / "monitor"


@_monitor_pytest.fixture(scope="session")
def monitor_traffic() -> dict:
    """Traffic logs (benign, flood, extraction, drift, adversarial, errors, prompt attacks) recorded by
    fixtures/monitor/make_traffic.py; made once, reused while the files exist."""
    spec = _monitor_importlib.spec_from_file_location("example_make_traffic", MONITOR_FIXTURES / "make_traffic.py")
    script = _monitor_importlib.module_from_spec(spec)
    _monitor_sys.modules[spec.name] = script  # dataclasses in the script look their module up
    spec.loader.exec_module(script)
    generated = MONITOR_FIXTURES / "generated"
    paths = {name: generated / f"{name}.jsonl" for name in script.SCENARIOS}
    paths["reference"] = generated / "reference.npz"
    if not all(path.is_file() for path in paths.values()):
        paths.update(script.make_all(generated))
    return paths
