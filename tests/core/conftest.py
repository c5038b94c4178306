"""Helpers for the plugin tests: a test module that records findings through the public API."""

from __future__ import annotations

import json
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
