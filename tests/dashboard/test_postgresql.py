"""The history in a real PostgreSQL server (started by the ``pg_server`` fixture from the installed binaries):
pytest and the ``aisp`` command record into it and serve it, credentials stay out of output and storage,
foreign and newer databases are refused unchanged, and many agents opening a new database migrate it once."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.dashboard.db import HistoryUnavailable, connect, parse_history_url
from pytest_aisp.dashboard.store import SCHEMA_VERSION, open_store

psycopg = pytest.importorskip("psycopg", reason='psycopg is not installed (pip install "pytest-aisp[postgresql]")')


def _all_text(url: str) -> str:
    """Every value of every table, as one string."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        return "\n".join(str(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"'))


def test_pytest_records_into_postgresql_and_never_shows_the_password(pytester: pytest.Pytester, pg_server,
                                                                      pg_url: str) -> None:
    pytester.makepyfile(test_h='''
import pytest
from pytest_aisp import Finding, record_finding, record_metric

@pytest.mark.aisp
def test_one():
    record_metric("robust_acc", 0.75)
    record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt"))
''')
    result = pytester.runpytest("-v", f"--aisp-history={pg_url}")
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert pg_server.password not in output
    assert f"history run 1 into postgresql://aisp:***@127.0.0.1:{pg_server.port}/" in output
    with open_store(pg_url) as store:
        (run,) = store.runs()
        (stored,) = store.findings(run.id)
        assert stored.finding.rule_id == "AISP-ROBUST-EVASION" and run.finding_count == 1
        assert store.run_metrics(run.id) == {("test_h.py::test_one", "robust_acc"): 0.75}
    stored_text = _all_text(pg_url)
    assert pg_server.password not in stored_text and str(pg_server.port) not in stored_text


def test_credentials_from_pg_environment_variables(pg_server, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = pg_url.replace(f":{pg_server.password}@", "@")
    assert pg_server.password not in bare
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    with pytest.raises(HistoryUnavailable, match=r"cannot connect .*PGPASSWORD") as refused:
        open_store(bare)
    assert pg_server.password not in str(refused.value)
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    with open_store(bare) as store:
        assert store.runs() == []
    host_only = f"postgresql:///{pg_url.rsplit('/', 1)[1]}"
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(pg_server.port))
    monkeypatch.setenv("PGUSER", pg_server.user)
    with open_store(host_only) as store:
        assert store.runs() == []
    wrong = pg_url.replace(f":{pg_server.password}@", ":not-the-password@")
    with pytest.raises(HistoryUnavailable, match="password authentication failed") as refused:
        open_store(wrong)
    assert "not-the-password" not in str(refused.value)


def test_foreign_and_newer_postgresql_databases_are_refused_unchanged(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(HistoryUnavailable, match=r"not an aisp history \(it holds users\)"):
        open_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert tables == {"users"}
        conn.execute("DROP TABLE users")
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(HistoryUnavailable, match="Upgrade pytest-aisp"):
        open_store(pg_url)


def _open(url: str) -> None:
    open_store(url).close()


def test_agents_opening_a_new_database_at_once_migrate_it_once(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(pg_url,)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    db = connect(parse_history_url(pg_url))
    try:
        assert db.query("SELECT version FROM schema_version") == [{"version": SCHEMA_VERSION}]
    finally:
        db.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_aisp_ingest_and_dashboard_on_postgresql(pg_server, pg_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "aisp.sarif").write_text(
        '{"runs": [{"results": [{"ruleId": "AISP-LLM-INJECTION", "level": "error", "message": {"text": "leak"}, '
        '"properties": {"aisp-severity": "critical", "aisp-test": "t.py::test_llm", "aisp-location": "http://x"}}]}]}')
    assert main(["history", "ingest", str(reports), "--db", pg_url, "--run-id", "r1", "--project", "org/llm",
                 "--branch", "main"]) == 0
    err = capsys.readouterr().err
    assert "run 1 of org/llm main" in err and pg_server.password not in err
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pytest_aisp.cli", "dashboard", "--db", pg_url, "--listen",
                             f"127.0.0.1:{port}", "--root", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.2)
        assert "Overview: org/llm" in page and "Gate failed" in page
        assert "new critical finding AISP-LLM-INJECTION" in page
        findings = urllib.request.urlopen(f"http://127.0.0.1:{port}/findings", timeout=5).read().decode()
        assert "AISP-LLM-INJECTION" in findings
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "postgresql://aisp:***@" in out and pg_server.password not in out
