"""Shared fixtures: the traffic logs recorded from a real model behind the middleware."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.fixture_scripts import load_fixture_script
from tests.system_tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "fixtures" / "monitor" / "make_traffic.py"
GENERATED = ROOT / "fixtures" / "monitor" / "generated"


def load_script() -> ModuleType:
    return load_fixture_script("monitor/make_traffic.py", "aisp_make_traffic")


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A throwaway Redis server started from the installed binary on a free loopback port."""
    binary = require_tool("redis-server", "the shared-state tests start a throwaway server")
    import redis  # the redis extra (in "all")
    folder = tmp_path_factory.mktemp("redis")
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 15
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        else:
            process.kill()
            process.wait(10)
            continue
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            client.close()
            process.terminate()
            process.wait(10)
        return
    pytest.fail(f"redis-server did not start; see {folder / 'redis.log'}")
