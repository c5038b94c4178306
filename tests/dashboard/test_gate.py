"""The gate reads every metric the right way round: a direction and a tolerance per metric, timings and counts
never a security regression by default; expected findings (xfailed or negative tests) are never new."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pytest_aisp.dashboard.app import DashboardConfig, create_app
from pytest_aisp.dashboard.metric_catalog import builtin_spec, catalog_from_config
from pytest_aisp.dashboard.store import RunInfo, RunRecord, open_store
from pytest_aisp.dashboard.summary import summarize
from pytest_aisp.findings import AispError
from pytest_aisp.reporters.entries import ReportedFinding

from .conftest import entry

LLM_TEST = "tests/test_model_security.py::test_llm_endpoint"


def two_runs(path: Path, test: str, before: dict[str, float], after: dict[str, float],
             entries: tuple[ReportedFinding, ...] = ()) -> None:
    with open_store(path) as store:
        store.record(RunRecord(RunInfo("r1", "2026-11-01T00:00:00+00:00", "main"), {test: "passed"}, (),
                               {test: before}))
        store.record(RunRecord(RunInfo("r2", "2026-11-02T00:00:00+00:00", "main"), {test: "passed"}, entries,
                               {test: after}))


def overview(path: Path, tmp_path: Path) -> str:
    config = DashboardConfig(str(path), tmp_path / "aisp-baseline.json", tmp_path)
    return TestClient(create_app(config)).get("/").text


def test_a_faster_probe_is_not_a_regression(tmp_path: Path) -> None:
    """The reported case: llm_probe_seconds 1.24 -> 1.107 failed the gate as 'regressed'."""
    path = tmp_path / "h.db"
    two_runs(path, LLM_TEST, {"llm_probe_seconds": 1.24, "llm_attack_success_rate": 0.1, "llm_attempts": 70},
             {"llm_probe_seconds": 1.107, "llm_attack_success_rate": 0.1, "llm_attempts": 90})
    page = overview(path, tmp_path)
    assert "Gate passed" in page and "regressed" not in page and "1.107" not in page


def test_a_slower_probe_is_noted_but_does_not_gate(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    two_runs(path, LLM_TEST, {"llm_probe_seconds": 1.2}, {"llm_probe_seconds": 4.8})
    page = overview(path, tmp_path)
    assert "Gate passed" in page and "llm_probe_seconds" in page and "timing metrics do not gate" in page


@pytest.mark.parametrize(("name", "before", "after", "fails"), [
    ("robust_acc", 0.80, 0.70, True),            # higher is better: down fails
    ("robust_acc", 0.70, 0.80, False),
    ("robust_acc", 0.80, 0.79, False),           # within the 0.02 tolerance
    ("attack_success_rate", 0.10, 0.30, True),   # lower is better: up fails
    ("attack_success_rate", 0.30, 0.10, False),
    ("llm_attack_success_rate", 0.0, 0.05, True),
    ("nlp_counterfactual_flip_rate", 0.02, 0.10, True),
    ("mm.agreement.gaussian_noise@0.1", 0.95, 0.85, True),
    ("mm.agreement.gaussian_noise@0.1", 0.85, 0.95, False),
    ("membership_auc", 0.55, 0.70, True),
    ("extraction_fidelity", 0.90, 0.60, False),
    ("llm_probe_seconds", 1.0, 9.0, False),      # timings never gate by default
    ("verify_seconds", 9.0, 1.0, False),
    ("scan_files", 10, 3, False),                 # counts neither
    ("my_custom_value", 1.0, -5.0, False),        # unknown: no direction, no gate
])
def test_direction_and_tolerance_per_metric(tmp_path: Path, name: str, before: float, after: float,
                                            fails: bool) -> None:
    path = tmp_path / "h.db"
    two_runs(path, "t::m", {name: before}, {name: after})
    with open_store(path) as store:
        summary = summarize(store, store.latest_per_branch()["main"])
    assert (not summary.gate_passed) is fails, summary.gate_reasons


def test_teams_set_direction_tolerance_and_gating(tmp_path: Path) -> None:
    catalog = catalog_from_config({
        "llm_probe_seconds": {"gate": True, "tolerance": 0.5},
        "my_recall": {"better": "higher", "tolerance": 0.01, "gate": True, "range": [0, 1]},
    })
    path = tmp_path / "h.db"
    two_runs(path, "t::m", {"llm_probe_seconds": 1.0, "my_recall": 0.9}, {"llm_probe_seconds": 1.4,
                                                                          "my_recall": 0.85})
    with open_store(path) as store:
        reasons = summarize(store, store.latest_per_branch()["main"], catalog=catalog).gate_reasons
    assert len(reasons) == 1 and "my_recall" in reasons[0] and "higher is better" in reasons[0]
    two_runs(tmp_path / "slow.db", "t::m", {"llm_probe_seconds": 1.0}, {"llm_probe_seconds": 1.6})
    with open_store(tmp_path / "slow.db") as store:
        (reason,) = summarize(store, store.latest_per_branch()["main"], catalog=catalog).gate_reasons
    assert "llm_probe_seconds" in reason and "tolerance 50%" in reason
    for bad, message in (({"x": {"better": "up"}}, "better must be one of"), ({"x": {"tolerance": -1}}, "tolerance"),
                         ({"x": {"colour": "red"}}, "unknown keys"), ({"x": 3}, "must be a table")):
        with pytest.raises(AispError, match=message):
            catalog_from_config(bad)


def test_every_metric_has_a_direction_and_a_range() -> None:
    assert builtin_spec("robust_acc").better == "higher" and builtin_spec("robust_acc").hi == 1.0
    assert builtin_spec("attack_success_rate").better == "lower"
    assert builtin_spec("llm_probe_seconds").better == "lower" and not builtin_spec("llm_probe_seconds").gate
    assert builtin_spec("poisoning_badnets_backdoor_success").better == "lower"
    assert builtin_spec("mm.breaking_severity.jpeg").better == "higher"


@dataclass(frozen=True)
class FlaggedEntry(ReportedFinding):
    """An entry as the reports write it once they flag expected findings (negative tests)."""

    expected: bool = False


def test_expected_findings_are_never_new_and_never_gate(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    xfailed = entry("AISP-ROBUST-EVASION", "critical", "models/cnn.pt", "t::test_known_weakness", outcome="xfailed")
    negative = FlaggedEntry(entry("AISP-SUPPLY-TAMPERED", "high", "models/m.pt", "t::test_tamper").finding,
                            "t::test_tamper", "t.py", 3, False, "passed", expected=True)
    real = entry("AISP-LLM-INJECTION", "high", "http://x", "t::test_llm")
    two_runs(path, "t::m", {}, {}, (xfailed, negative))
    page = overview(path, tmp_path)
    assert "Gate passed" in page and "2 expected" in page
    config = DashboardConfig(str(path), tmp_path / "aisp-baseline.json", tmp_path)
    findings = TestClient(create_app(config)).get("/findings", params={"status": "expected"}).text
    assert "AISP-ROBUST-EVASION" in findings and "AISP-SUPPLY-TAMPERED" in findings
    with open_store(path) as store:
        store.record(RunRecord(RunInfo("r3", "2026-11-03T00:00:00+00:00", "main"), {}, (xfailed, negative, real)))
        summary = summarize(store, store.latest_per_branch()["main"])
    assert summary.gate_reasons == ("new high finding AISP-LLM-INJECTION in t::test_llm",)


def test_pytest_xfailed_findings_reach_the_history_as_expected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x='''
import pytest
from pytest_aisp import Finding, record_finding

@pytest.mark.aisp
@pytest.mark.xfail(strict=True)
def test_known_weakness():
    record_finding(Finding("AISP-ROBUST-EVASION", "critical", "weak", "m.pt"))
    assert False
''')
    pytester.runpytest("--aisp-history=h.db").assert_outcomes(xfailed=1)
    with open_store(pytester.path / "h.db") as store:
        run = store.latest_per_branch()[store.branches()[0]]
        (stored,) = store.findings(run.id)
        assert stored.expected and summarize(store, run).gate_passed
