"""The history store on SQLite and PostgreSQL: runs, findings, metrics, triage, migrations, corrupt files and
concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.dashboard import schema
from pytest_aisp.dashboard.db import HistoryUnavailable, connect, parse_history_url, redact_url
from pytest_aisp.dashboard.ingest import record_from_report_dir, run_info
from pytest_aisp.dashboard.store import SCHEMA_VERSION, RunInfo, RunRecord, open_store
from pytest_aisp.dashboard.summary import summarize
from pytest_aisp.findings import AispError

from .conftest import entry, sqlite_file


def test_summary_new_fixed_counts_and_gate(history_url: str) -> None:
    from .conftest import seed_history

    with open_store(history_url) as store:
        seed_history(store)
        latest = store.latest_per_branch()
        summary = summarize(store, latest["main"])
        assert (summary.finding_count, summary.new, summary.fixed, summary.expected) == (2, 2, 1, 0)
        assert summary.counts == {("robust", "high"): 1, ("llm", "critical"): 1}
        assert not summary.gate_passed
        assert any("robust_acc" in r and "0.82" in r and "0.41" in r for r in summary.gate_reasons)
        assert any("AISP-LLM-INJECTION" in r for r in summary.gate_reasons)
        feature = summarize(store, latest["feature/x"])
        assert feature.gate_passed and feature.previous is None


def test_triage_clears_the_gate_for_that_finding(history_url: str) -> None:
    from .conftest import seed_history

    with open_store(history_url) as store:
        seed_history(store)
        run = store.latest_per_branch()["main"]
        injection = next(f for f in store.findings(run.id) if f.finding.rule_id == "AISP-LLM-INJECTION")
        store.set_triage(injection.fingerprint, "false_positive", "echo of the prompt", project="other/repo")
        assert any("AISP-LLM-INJECTION" in r for r in summarize(store, run).gate_reasons)  # another project's
        store.set_triage(injection.fingerprint, "false_positive", "echo of the prompt")
        reasons = summarize(store, run).gate_reasons
        assert not any("AISP-LLM-INJECTION" in r for r in reasons)
        with pytest.raises(AispError, match="triage status"):
            store.set_triage(injection.fingerprint, "ignored", "x")


def test_shards_with_one_run_key_land_as_one_run(history_url: str) -> None:
    with open_store(history_url) as store:
        info = RunInfo("GITHUB_RUN_ID:77", "2026-11-03T00:00:00+00:00", "main", project="org/repo")
        a = store.record(RunRecord(info, {"t::a": "passed"}, (entry("AISP-A-B", "low", "x", "t::a"),)))
        b = store.record(RunRecord(info, {"t::b": "failed"}, (entry("AISP-A-C", "high", "y", "t::b"),)))
        assert a == b
        (run,) = store.runs()
        assert run.info.project == "org/repo" and run.finding_count == 2
        assert len(store.findings(a)) == 2
        assert store.outcomes(a) == {"t::a": "passed", "t::b": "failed"}


def test_same_queries_on_both_databases(history_url: str) -> None:
    """The seeded history reads back the same from SQLite and PostgreSQL: heads, previous, windows, triage."""
    from .conftest import seed_history

    with open_store(history_url) as store:
        seed_history(store)
        heads = store.latest_per_branch()
        assert sorted(heads) == ["feature/x", "main"]
        main_run = heads["main"]
        assert store.previous(main_run).info.run_key == "ci:1"
        assert [r.info.run_key for r in store.runs("main", last=1)] == ["ci:2"]
        series = store.metric_series("main", "", last=10)
        assert [v for _, v in series[("tests/test_model_security.py::test_robust_to_pgd", "robust_acc")]] == [0.82,
                                                                                                            0.41]
        assert len(store.metric_series("main", "", last=1)[
            ("tests/test_model_security.py::test_robust_to_pgd", "robust_acc")]) == 1
        fp = store.findings(main_run.id)[0].fingerprint
        store.set_triage(fp, "accepted", "tracked", "ml", "2027-01-31", decided_by="alice")
        store.set_triage(fp, "false_positive", "echo", decided_by="bob")
        assert store.triage("")[fp].decided_by == "bob"
        assert [d.decided_by for d in store.triage_log(fp)] == ["alice", "bob"]
        assert store.triage("other/project") == {}


def _writer(url: str, index: int, runs: int, findings: int) -> None:
    with open_store(url) as store:
        for run in range(runs):
            info = RunInfo(f"w{index}-{run}", "2026-11-03T00:00:00+00:00", "main", project=f"p{index % 3}")
            store.record(RunRecord(info, {f"t::{run}": "passed"}, tuple(
                entry(f"AISP-W-R{k}", "medium", f"loc{k}", f"t::{run}") for k in range(findings))))
            # Every writer also adds a shard to the same shared runs, racing the others for their row.
            shared = RunInfo(f"shared-{run % 4}", "2026-11-03T00:00:00+00:00", "main", project="shared")
            store.record(RunRecord(shared, {f"w{index}::{run}": "passed"},
                                   (entry("AISP-W-S", "low", f"w{index}-{run}", f"w{index}::{run}"),)))


def test_concurrent_writers_lose_nothing(history_url: str) -> None:
    """Two writers on SQLite, eight on PostgreSQL (as many CI agents): every run whole, shards of shared runs
    all kept, per-run counts right, no deadlock."""
    writers = 8 if history_url.startswith("postgresql") else 2
    open_store(history_url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(history_url, i, 10, 20)) for i in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    with open_store(history_url) as store:
        own = [r for r in store.runs() if r.info.project != "shared"]
        assert len(own) == writers * 10
        assert all(r.finding_count == 20 and len(store.findings(r.id)) == 20 for r in own)
        shared = store.runs(project="shared")
        assert len(shared) == 4
        assert sum(r.finding_count for r in shared) == writers * 10
        assert all(r.finding_count == len(store.findings(r.id)) for r in shared)
    if not history_url.startswith("postgresql"):
        assert sqlite3.connect(history_url).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _big_writer(url: str) -> None:
    with open_store(url) as store:
        for run in range(10_000):
            info = RunInfo(f"big-{run}", "2026-11-03T00:00:00+00:00", "main")
            store.record(RunRecord(info, {}, tuple(entry("AISP-K-R", "low", f"loc{k}", f"t::{k}")
                                                   for k in range(1500))))


def test_a_killed_writer_leaves_no_half_run(history_url: str) -> None:
    """One transaction per run: a writer killed mid-run leaves whole runs only."""
    open_store(history_url).close()
    proc = multiprocessing.get_context("spawn").Process(target=_big_writer, args=(history_url,))
    proc.start()
    deadline = time.monotonic() + 120
    with open_store(history_url) as store:
        while len(store.runs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    with open_store(history_url) as store:
        runs = store.runs()
        assert len(runs) >= 2
        assert {len(store.findings(r.id)) for r in runs} == {1500}
        assert {r.finding_count for r in runs} == {1500}


def test_v1_history_migrates_forward(history_url: str) -> None:
    """A history written by the previous schema (no projects, triage keyed by fingerprint) keeps its runs,
    findings and triage, and gains the new columns."""
    db = connect(parse_history_url(history_url))
    with db.transaction():
        for statement in schema.MIGRATIONS[1]:
            db.execute(db.dialect.ddl(statement))
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute("INSERT INTO runs (run_key, created, branch) VALUES ('old:1', '2026-01-01T00:00:00+00:00', "
                   "'main')")
        db.execute("INSERT INTO findings (run_id, fingerprint, rule_id, severity, module, message, location, test) "
                   "VALUES (1, 'f1', 'AISP-SCAN-PICKLE-GLOBAL', 'high', 'scan', 'm', 'model.pt', 't::a')")
        db.execute("INSERT INTO triage (fingerprint, status, reason, owner, created) VALUES ('f1', 'accepted', "
                   "'known', 'ml', '2026-01-02T00:00:00+00:00')")
    db.close()
    with open_store(history_url) as store:
        (run,) = store.runs()
        assert (run.info.project, run.finding_count) == ("", 1)
        (finding,) = store.findings(run.id)
        assert finding.finding.rule_id == "AISP-SCAN-PICKLE-GLOBAL" and not finding.expected
        decision = store.triage("")["f1"]
        assert (decision.status, decision.reason, decision.rule_id, decision.location) == (
            "accepted", "known", "AISP-SCAN-PICKLE-GLOBAL", "model.pt")
        assert schema.inspect(store.db) == SCHEMA_VERSION


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


def test_refused_databases_keep_every_byte(tmp_path: Path) -> None:
    """A foreign, wrong-schema or newer SQLite file is inspected read-only: refused without its header being
    switched to WAL, and no -wal/-shm file appears beside it."""
    cases = {
        "foreign.db": (("CREATE TABLE users (id INTEGER)",), "not an aisp history"),
        "wrong.db": (("CREATE TABLE schema_version (version INTEGER NOT NULL)",
                      "INSERT INTO schema_version VALUES (1)", "CREATE TABLE runs (id INTEGER PRIMARY KEY)"),
                     r"lacks columns of it: .*runs \(branch"),
        "newer.db": (("CREATE TABLE schema_version (version INTEGER NOT NULL)",
                      f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION + 1})"), "Upgrade pytest-aisp"),
    }
    for name, (statements, message) in cases.items():
        path = tmp_path / name
        before = sqlite_file(path, *statements)
        with pytest.raises(HistoryUnavailable, match=message):
            open_store(path)
        assert path.read_bytes() == before, f"{name} was changed"
        assert not (tmp_path / f"{name}-wal").exists() and not (tmp_path / f"{name}-shm").exists()


def test_nan_and_infinite_metrics_are_left_out(tmp_path: Path) -> None:
    with open_store(tmp_path / "h.db") as store:
        run_id = store.record(RunRecord(RunInfo("k", "t", "main"), {"t::a": "passed"},
                                        (entry("AISP-A-B", "low", "x", "t::a", metrics={"v": float("nan")}),),
                                        {"t::a": {"robust_acc": float("nan"), "x": float("inf"), "ok": 0.5}}))
        assert store.run_metrics(run_id) == {("t::a", "ok"): 0.5}


def test_urls() -> None:
    assert parse_history_url("sqlite:///.aisp/h.db").path == Path(".aisp/h.db")
    assert parse_history_url("sqlite:////abs/h.db").path == Path("/abs/h.db")
    assert parse_history_url(".aisp/h.db").path == Path(".aisp/h.db")
    pg = parse_history_url("postgres://ci:pw@db:5432/aisp")
    assert (pg.kind, pg.conninfo, pg.shown) == ("postgresql", "postgresql://ci:pw@db:5432/aisp",
                                                "postgresql://ci:***@db:5432/aisp")
    assert parse_history_url("postgresql+psycopg://db/aisp").conninfo == "postgresql://db/aisp"
    assert redact_url("postgresql://db/aisp?user=ci&password=pw&sslmode=require") == (
        "postgresql://db/aisp?user=ci&password=***&sslmode=require")
    with pytest.raises(AispError, match="not supported") as refused:
        parse_history_url("mysql://root:hunter2@db/aisp")
    assert "hunter2" not in str(refused.value)


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


def test_history_commands_read_the_configured_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`aisp history ingest` without --db records where `[tool.aisp] history` points, as pytest does."""
    (tmp_path / "pyproject.toml").write_text('[tool.aisp]\nhistory = "ci/history.db"\n')
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "aisp.sarif").write_text(json.dumps({"runs": [{"results": [
        {"ruleId": "AISP-SCAN-PICKLE-GLOBAL", "level": "error", "message": {"text": "os.system"},
         "properties": {"aisp-test": "t.py::test_scan", "aisp-location": "m.pkl"}}]}]}))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("AISP_HISTORY", raising=False)
    assert main(["history", "ingest", str(reports), "--run-id", "r1", "--project", "org/x"]) == 0
    with open_store(tmp_path / "ci" / "history.db") as store:
        (run,) = store.runs()
        assert (run.info.project, run.finding_count) == ("org/x", 1)
