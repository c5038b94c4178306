"""Findings of xfailed and negative tests are expected: flagged in aisp-findings.json, never baselined, and
left out of SARIF, SonarQube and GitHub annotations (or reported as notes with --aisp-expected-findings=note).
The baseline and xfail no longer fight: following the docs (record, baseline update, rerun) keeps every
strict xfail an xfail."""

from __future__ import annotations

import json

import pytest

from pytest_aisp.cli import main

EXPECTED_PROJECT = '''
import pytest
from pytest_aisp import Finding, IntegrityFailure, RobustnessFailure, enforce, record_finding

def _weak(location):
    return record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", location, {"eps": 0.3}))

@pytest.mark.xfail(strict=True, raises=RobustnessFailure, reason="known weak at eps=0.3")
def test_known_weak():
    enforce([_weak("m.pt")], RobustnessFailure, headline="weak")

@pytest.mark.aisp
def test_tamper_is_caught():
    with pytest.raises(IntegrityFailure):
        enforce([record_finding(Finding("AISP-SUPPLY-MODIFIED", "critical", "changed", "copy/m.pt"))],
                IntegrityFailure, headline="tampered")

@pytest.mark.aisp
@pytest.mark.aisp_negative
def test_weak_build_is_measured():
    _weak("weak-build.pt")

@pytest.mark.aisp
def test_real_problem():
    _weak("release.pt")  # recorded, not asserted: a finding like any other
'''


def _entries(path) -> dict[str, dict]:
    body = json.loads((path / "aisp-findings.json").read_text())
    return {e["test"].split("::")[1]: e for e in body["entries"]}


def test_expected_findings_are_flagged_and_kept_out_of_alerts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_e=EXPECTED_PROJECT)
    result = pytester.runpytest("--aisp-report-dir=out", "--aisp-sarif=out/a.sarif", "--aisp-sonar=out/s.json")
    result.assert_outcomes(passed=3, xfailed=1)
    entries = _entries(pytester.path / "out")
    assert {name: (e["expected"], e["expected_reason"]) for name, e in entries.items()} == {
        "test_known_weak": (True, "xfail"),
        "test_tamper_is_caught": (True, "caught"),
        "test_weak_build_is_measured": (True, "marker"),
        "test_real_problem": (False, None),
    }
    sarif = json.loads((pytester.path / "out" / "a.sarif").read_text())["runs"][0]["results"]
    assert [r["properties"]["aisp-location"] for r in sarif] == ["release.pt"]
    sonar = json.loads((pytester.path / "out" / "s.json").read_text())["issues"]
    assert [i["primaryLocation"]["message"] for i in sonar] == ["weak (release.pt)"]
    result.stdout.fnmatch_lines(["*1 findings (1 high), 0 accepted by the baseline, 3 expected*"])


def test_expected_findings_as_notes_when_asked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(test_e=EXPECTED_PROJECT)
    result = pytester.runpytest("--aisp-sarif=a.sarif", "--aisp-expected-findings=note")
    run = json.loads((pytester.path / "a.sarif").read_text())["runs"][0]
    levels = {r["properties"]["aisp-location"]: (r["ruleId"], r["level"]) for r in run["results"]}
    assert levels["m.pt"] == ("AISP-ROBUST-EVASION/expected", "note")
    assert levels["copy/m.pt"] == ("AISP-SUPPLY-MODIFIED/expected", "note")
    assert levels["release.pt"] == ("AISP-ROBUST-EVASION", "error")
    expected_rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "AISP-SUPPLY-MODIFIED/expected")
    assert "security-severity" not in expected_rule["properties"]  # GitHub must not rank it critical
    out = result.stdout.str()
    assert "::notice file=test_e.py,line=11,title=AISP-SUPPLY-MODIFIED (expected)::changed (copy/m.pt)" in out
    assert "::error file=test_e.py,line=22,title=AISP-ROBUST-EVASION::weak (release.pt)" in out
    assert out.count("::error") == 1


def test_docs_workflow_keeps_strict_xfails_failing(pytester: pytest.Pytester) -> None:
    """record, `aisp baseline update`, rerun with the baseline: the xfail tests still xfail (no XPASS(strict))."""
    pytester.makepyfile(test_e=EXPECTED_PROJECT)
    pytester.runpytest("--aisp-report-dir=reports").assert_outcomes(passed=3, xfailed=1)
    baseline = pytester.path / "aisp-baseline.json"
    reports = str(pytester.path / "reports")
    assert main(["baseline", "update", "--report-dir", reports, "--baseline", str(baseline)]) == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert [(e["test"].split("::")[1], e["location"]) for e in entries] == [("test_real_problem", "release.pt")]
    pytester.runpytest("--aisp-baseline=aisp-baseline.json").assert_outcomes(passed=3, xfailed=1)


def test_a_baseline_entry_never_applies_inside_an_xfail_test(pytester: pytest.Pytester) -> None:
    """Even a baseline written by hand (or by an older version) that names an xfail test's finding."""
    pytester.makepyfile(test_e=EXPECTED_PROJECT)
    entry = {"rule_id": "AISP-ROBUST-EVASION", "test": "*", "location": "m.pt", "reason": "old"}
    pytester.makefile(".json", baseline=json.dumps({"version": 1, "entries": [entry]}))
    result = pytester.runpytest("--aisp-baseline=baseline.json", "-k", "known_weak")
    result.assert_outcomes(xfailed=1)


def test_a_negative_test_that_fails_has_unexpected_findings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_n='''
import pytest
from pytest_aisp import Finding, RobustnessFailure, enforce, record_finding

@pytest.mark.aisp_negative
def test_negative_but_broken():
    record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "a.pt"))
    assert False

def test_caught_then_another_failure():
    with pytest.raises(RobustnessFailure):
        enforce([record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "b.pt"))], RobustnessFailure,
                headline="weak")
    enforce([record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "c.pt"))], RobustnessFailure,
            headline="weak")
''')
    pytester.runpytest("--aisp-report-dir=out").assert_outcomes(failed=2)
    body = json.loads((pytester.path / "out" / "aisp-findings.json").read_text())
    flags = {e["finding"]["location"]: e["expected_reason"] for e in body["entries"]}
    assert flags == {"a.pt": None, "b.pt": "caught", "c.pt": None}
