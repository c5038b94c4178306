"""The history store: runs, findings, metrics, triage, migrations, corrupt files and concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.dashboard.ingest import record_from_report_dir, run_info
from pytest_aisp.dashboard.store import SCHEMA_VERSION, RunInfo, RunRecord, open_store, resolve_url
from pytest_aisp.dashboard.summary import summarize
from pytest_aisp.findings import AispError

from .conftest import entry


def test_summary_new_fixed_counts_and_gate(history: Path) -> None:
    with open_store(history) as store:
        latest = store.latest_per_branch()
        summary = summarize(store, latest["main"])
        assert len(summary.findings) == 2 and len(summary.new) == 2 and len(summary.fixed) == 1
        assert summary.counts == {("robust", "high"): 1, ("llm", "critical"): 1}
        assert not summary.gate_passed
        assert any("robust_acc" in r and "0.82" in r and "0.41" in r for r in summary.gate_reasons)
        assert any("AISP-LLM-INJECTION" in r for r in summary.gate_reasons)
        feature = summarize(store, latest["feature/x"])
        assert feature.gate_passed and feature.previous is None


def test_triage_clears_the_gate_for_that_finding(history: Path) -> None:
    with open_store(history) as store:
        run = store.latest_per_branch()["main"]
        injection = next(f for f in store.findings(run.id) if f.finding.rule_id == "AISP-LLM-INJECTION")
        store.set_triage(injection.fingerprint, "false_positive", "echo of the prompt")
        reasons = summarize(store, run).gate_reasons
        assert not any("AISP-LLM-INJECTION" in r for r in reasons)
        with pytest.raises(AispError, match="triage status"):
            store.set_triage(injection.fingerprint, "ignored", "x")


def test_shards_with_one_run_key_land_as_one_run(tmp_path: Path) -> None:
    with open_store(tmp_path / "h.db") as store:
        info = RunInfo("GITHUB_RUN_ID:77", "2026-11-03T00:00:00+00:00", "main")
        a = store.record(RunRecord(info, {"t::a": "passed"}, (entry("AISP-A-B", "low", "x", "t::a"),)))
        b = store.record(RunRecord(info, {"t::b": "failed"}, (entry("AISP-A-C", "high", "y", "t::b"),)))
        assert a == b
        assert len(store.runs()) == 1 and len(store.findings(a)) == 2
        assert store.outcomes(a) == {"t::a": "passed", "t::b": "failed"}


def _writer(path: str, index: int) -> None:
    with open_store(path) as store:
        for run in range(10):
            info = RunInfo(f"w{index}-{run}", "2026-11-03T00:00:00+00:00", "main")
            store.record(RunRecord(info, {f"t::{run}": "passed"}, tuple(
                entry(f"AISP-W-R{k}", "medium", f"loc{k}", f"t::{run}") for k in range(20))))


def test_two_concurrent_writers_do_not_corrupt_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "h.db")
    open_store(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, i)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with open_store(path) as store:
        runs = store.runs()
        assert len(runs) == 20
        assert all(len(store.findings(r.id)) == 20 for r in runs)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_corrupt_newer_and_foreign_databases_are_refused_unchanged(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 400)
    before = corrupt.read_bytes()
    with pytest.raises(AispError, match="corrupt"):
        open_store(corrupt)
    assert corrupt.read_bytes() == before
    newer = tmp_path / "newer.db"
    open_store(newer).close()
    db = sqlite3.connect(newer)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(AispError, match="Upgrade pytest-aisp"):
        open_store(newer)
    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE users (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(AispError, match="not an aisp history"):
        open_store(foreign)


def test_urls() -> None:
    assert resolve_url("sqlite:///.aisp/h.db") == Path(".aisp/h.db")
    assert resolve_url("sqlite:////abs/h.db") == Path("/abs/h.db")
    with pytest.raises(AispError, match="SQLite only"):
        resolve_url("postgresql://db/aisp")


def test_run_info_from_ci_variables(tmp_path: Path) -> None:
    env = {"GITHUB_RUN_ID": "99", "GITHUB_SHA": "d" * 40, "GITHUB_REF_NAME": "main",
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/repo"}
    info = run_info(tmp_path, env)
    assert (info.run_key, info.branch, info.commit) == ("GITHUB_RUN_ID:99", "main", "d" * 40)
    assert info.build_url == "https://github.com/org/repo/actions/runs/99"


def test_pytest_records_into_history_and_ingest_reads_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_h='''
import pytest
from pytest_aisp import Finding, record_finding, record_metric

@pytest.mark.aisp
def test_one():
    record_metric("robust_acc", 0.75)
    record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt"))
''')
    pytester.runpytest("-n", "2", "--aisp-history=hist.db", "--aisp-report-dir=reports",
                       "--aisp-sarif=sarif/aisp.sarif").assert_outcomes(passed=1)
    with open_store(pytester.path / "hist.db") as store:
        (run,) = store.runs()
        (stored,) = store.findings(run.id)
        assert stored.finding.rule_id == "AISP-ROBUST-EVASION" and stored.test == "test_h.py::test_one"
        assert store.metric_series(run.info.branch)[("test_h.py::test_one", "robust_acc")][0][1] == 0.75
    db = pytester.path / "ingested.db"
    assert main(["history", "ingest", str(pytester.path / "reports"), "--db", str(db), "--run-id", "r1"]) == 0
    assert main(["history", "ingest", str(pytester.path / "sarif"), "--db", str(db), "--run-id", "r2"]) == 0
    with open_store(db) as store:
        first, second = store.runs()
        assert [f.finding.rule_id for f in store.findings(first.id)] == ["AISP-ROBUST-EVASION"]
        from_sarif = store.findings(second.id)
        assert [(f.finding.rule_id, f.finding.severity.value, f.test) for f in from_sarif] == [
            ("AISP-ROBUST-EVASION", "high", "test_h.py::test_one")]


def test_ingest_rejects_folders_without_reports(tmp_path: Path) -> None:
    with pytest.raises(AispError, match=r"neither aisp-findings\.json nor a \.sarif"):
        record_from_report_dir(tmp_path, RunInfo("k", "t"))
    (tmp_path / "x.sarif").write_text(json.dumps({"no": "runs"}))
    with pytest.raises(AispError, match="is not a SARIF file"):
        record_from_report_dir(tmp_path, RunInfo("k", "t"))
