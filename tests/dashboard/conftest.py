"""A seeded history (two runs on main: a regression and a new finding; one on a feature branch), and a throwaway
PostgreSQL server started from the installed binaries (fixtures/dashboard/pg_server.py).

Without PostgreSQL's binaries the PostgreSQL tests skip with the install line; under ``CI`` they fail.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pytest_aisp.dashboard.store import HistoryStore, RunInfo, RunRecord, open_store
from pytest_aisp.findings import Finding
from pytest_aisp.reporters.entries import ReportedFinding
from tests.fixture_scripts import load_fixture_script
from tests.system_tools import hidden, require_tool

TEST = "tests/test_model_security.py::test_robust_to_pgd"
ROOT = Path(__file__).resolve().parents[2]


def entry(rule: str, severity: str, location: str, test: str = TEST, accepted: bool = False,
          metrics: dict | None = None, outcome: str = "failed") -> ReportedFinding:
    finding = Finding(rule, severity, f"{rule} at {location}", location, {"eps": 0.03}, metrics or {})
    return ReportedFinding(finding, test, "tests/test_model_security.py", 12, accepted, outcome)


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


def pg_server_module() -> ModuleType:
    return load_fixture_script("dashboard/pg_server.py", "aisp_pg_server")


@pytest.fixture(scope="session")
def pg_server() -> Iterator:
    """A PostgreSQL server for the whole session (initdb + pg_ctl in a temporary directory)."""
    pg = pg_server_module()
    if pg.find_bindir() is None or hidden("postgresql"):
        require_tool("postgresql", "the history tests start a throwaway server with initdb and pg_ctl")
    import psycopg  # noqa: F401  - the postgresql extra (in "all")
    with pg.throwaway_postgres() as server:
        yield server


_databases = itertools.count()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A new, empty database on the session's server; its URL carries the password."""
    return pg_server.create_database(f"aisp_test_{os.getpid()}_{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests against both databases."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    return request.getfixturevalue("pg_url")


def sqlite_file(path: Path, *statements: str) -> bytes:
    """Make an SQLite file at ``path`` by running ``statements``; return its bytes."""
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return path.read_bytes()
