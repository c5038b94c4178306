"""Findings of the poisoning checks reach JUnit and SARIF through the plugin."""

from __future__ import annotations

import json

PIPELINE_TEST = """
import numpy as np
import pytest_aisp


def _blobs(flip):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (60, 4)), rng.normal(8, 1, (60, 4))])
    y = np.repeat([0, 1], 60)
    y[:flip] = 1
    return x, y


def test_flipped():
    pytest_aisp.assert_dataset_clean(*_blobs(6))


def test_clean():
    pytest_aisp.assert_dataset_clean(*_blobs(0))
"""


def test_dataset_findings_reach_junit_and_sarif(pytester):
    pytester.makepyfile(test_pipeline=PIPELINE_TEST)
    result = pytester.runpytest("--junitxml=junit.xml", "--aisp-sarif=out.sarif", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*RobustnessFailure*", "*label outliers*"])
    junit = (pytester.path / "junit.xml").read_text()
    assert "AISP-ROBUST-DATASET" in junit
    sarif = json.loads((pytester.path / "out.sarif").read_text())
    rules = {r["ruleId"].split("/")[0] for run in sarif["runs"] for r in run["results"]}  # RULE/severity sub-rules
    assert rules == {"AISP-ROBUST-DATASET"}
