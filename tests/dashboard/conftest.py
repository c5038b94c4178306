"""A seeded history: two runs on main (a regression and a new finding) and one on a feature branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aisp.dashboard.store import HistoryStore, RunInfo, RunRecord, open_store
from pytest_aisp.findings import Finding
from pytest_aisp.reporters.entries import ReportedFinding

TEST = "tests/test_model_security.py::test_robust_to_pgd"


def entry(rule: str, severity: str, location: str, test: str = TEST, accepted: bool = False,
          metrics: dict | None = None) -> ReportedFinding:
    finding = Finding(rule, severity, f"{rule} at {location}", location, {"eps": 0.03}, metrics or {})
    return ReportedFinding(finding, test, "tests/test_model_security.py", 12, accepted, "failed")


def seed_history(store: HistoryStore) -> None:
    store.record(RunRecord(
        RunInfo("ci:1", "2026-11-01T10:00:00+00:00", "main", "a" * 40, "https://ci.example/1"),
        {TEST: "passed"},
        (entry("AISP-SCAN-PICKLE-GLOBAL", "medium", "models/old.pkl", "tests/test_scan.py::test_safe"),),
        {TEST: {"robust_acc": 0.82}},
    ))
    store.record(RunRecord(
        RunInfo("ci:2", "2026-11-02T10:00:00+00:00", "main", "b" * 40),
        {TEST: "failed"},
        (entry("AISP-ROBUST-EVASION", "high", "models/cnn.pt", metrics={"robust_acc": 0.41}),
         entry("AISP-LLM-INJECTION", "critical", "http://127.0.0.1:8000/v1", "tests/test_llm.py::test_inj")),
        {TEST: {"robust_acc": 0.41}},
    ))
    store.record(RunRecord(
        RunInfo("ci:3", "2026-11-02T11:00:00+00:00", "feature/x", "c" * 40),
        {TEST: "passed"},
        (),
        {TEST: {"robust_acc": 0.9}},
    ))


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / ".aisp" / "history.db"
    with open_store(path) as store:
        seed_history(store)
    return path
