"""Helpers for the plugin tests: a test module that records findings through the public API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def _shared_schema(name: str) -> Path:
    """A schema from the shared schemas folder: ``shared/`` in the checkout or in a folder above it."""
    here = Path(__file__).resolve()
    for folder in here.parents[2:]:
        candidate = folder / "shared" / "schemas" / name
        if candidate.is_file():
            return candidate
    return here.parents[3] / "shared" / "schemas" / name


SARIF_SCHEMA = _shared_schema("sarif-schema-2.1.0.json")

FINDINGS_MODULE = '''
import pytest
from pytest_aisp import Finding, RobustnessFailure, enforce, record_finding

pytestmark = pytest.mark.aisp_robust

def _finding(name, severity="high", location="models/digits.pt"):
    return Finding("AISP-ROBUST-" + name, severity, "robust accuracy 0.41 < 0.70 at eps=0.03",
                   location, {"eps": 0.03}, {"robust_acc": 0.41})

def test_weak():
    enforce([record_finding(_finding("EVASION"))], RobustnessFailure, headline="model is not robust")

def test_info_only():
    enforce([record_finding(_finding("NOTE", "low"))], RobustnessFailure, headline="low only")

def test_clean():
    assert True
'''


@pytest.fixture
def findings_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with a robust-marked test module: one high finding, one low, one clean test."""
    pytester.makepyfile(test_models=FINDINGS_MODULE)
    return pytester


@pytest.fixture(scope="session")
def sarif_schema() -> dict:
    if not SARIF_SCHEMA.is_file():
        pytest.fail(f"SARIF schema missing at {SARIF_SCHEMA}: the repository needs ../shared/schemas")
    return json.loads(SARIF_SCHEMA.read_text())


ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 1200


@dataclass(frozen=True)
class DemoRun:
    """One run of the example repository's security suite with every report, as `tox -e demo` runs it."""

    out: Path
    returncode: int
    output: str

    def json(self, name: str) -> dict:
        return json.loads((self.out / name).read_text(encoding="utf-8"))


SYSTEM_BINARIES = ("ffmpeg", "promtool", "chromium", "redis-server", "pg_ctl", "initdb", "sarif")


def path_without(*tools: str) -> str:
    """PATH with every folder that holds one of ``tools`` left out: a machine without those system packages."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not any((Path(f) / tool).exists() for tool in tools))


def run_demo(out: Path, *extra: str) -> DemoRun:
    """Run ``pytest -m aisp examples/`` from the repository root, writing every report into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pytest", "-m", "aisp", "examples/", "-p", "no:cacheprovider", "-q",
        f"--junitxml={out / 'junit.xml'}", f"--html={out / 'report.html'}", "--self-contained-html",
        f"--aisp-sarif={out / 'aisp.sarif'}", f"--aisp-sonar={out / 'aisp-sonar.json'}", f"--aisp-report-dir={out}",
        f"--aisp-html={out / 'aisp-report.html'}", f"--aisp-history={out / 'history.db'}", *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env.pop("GITHUB_ACTIONS", None)
    # as on a machine with only Python: no system ffmpeg (the wheel's serves), WordNet from the package,
    # and no other system tool reachable
    env.update(PATH=path_without(*SYSTEM_BINARIES), AISP_HIDE_SYSTEM_TOOLS="1")
    env.pop("AISP_FFMPEG", None)
    env.pop("AISP_WORDNET_DIR", None)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, env=env)
    return DemoRun(out, done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo run once per session (tests using it share one xdist group)."""
    return run_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_xdist(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """A second demo run, spread over two xdist workers."""
    return run_demo(tmp_path_factory.mktemp("demo-xdist"), "-n", "2")
