"""The run history: an SQLite file (``.aisp/history.db`` by default) of runs, test outcomes, findings,
metrics and triage decisions.

The schema version lives in the table ``schema_version``; opening a database written by a newer
pytest-aisp is refused with a clear error, an older one is migrated in place. Writers use one
transaction per run with a busy timeout, so an xdist controller and several CI agents can record
into one file at once.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.sarif import fingerprint

SCHEMA_VERSION = 1
DEFAULT_HISTORY = Path(".aisp") / "history.db"
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    branch TEXT NOT NULL DEFAULT '',
    commit_sha TEXT NOT NULL DEFAULT '',
    build_url TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS test_outcomes (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    nodeid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (run_id, nodeid)
);
CREATE TABLE IF NOT EXISTS findings (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    module TEXT NOT NULL,
    message TEXT NOT NULL,
    location TEXT NOT NULL,
    test TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '',
    line INTEGER,
    accepted INTEGER NOT NULL DEFAULT 0,
    evidence TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, fingerprint)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    test TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, test, name)
);
CREATE TABLE IF NOT EXISTS triage (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    expires TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_by_fingerprint ON findings(fingerprint);
"""


@dataclass(frozen=True)
class RunInfo:
    """Where a run came from."""

    run_key: str
    created: str
    branch: str = ""
    commit: str = ""
    build_url: str = ""
    source: str = ""


@dataclass(frozen=True)
class RunRecord:
    """One run to store: its info, each test's outcome, its findings (with metrics)."""

    info: RunInfo
    outcomes: dict[str, str] = field(default_factory=dict)
    entries: tuple[ReportedFinding, ...] = ()
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredRun:
    """A run as read back, with its id."""

    id: int
    info: RunInfo


@dataclass(frozen=True)
class StoredFinding:
    """A finding as read back from one run."""

    run_id: int
    fingerprint: str
    finding: Finding
    test: str
    path: str
    line: int | None
    accepted: bool


def resolve_url(url: str | Path) -> Path:
    """The SQLite file a history URL names: a path, ``sqlite:///relative`` or ``sqlite:////absolute``.

    Other database URLs are refused: this version stores history in SQLite only.
    """
    text = str(url)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///"):])
    if "://" in text:
        raise AispError(
            f"history URL {text!r} is not supported: this version of pytest-aisp stores history in SQLite "
            "only; use a path or sqlite:///path/to/history.db"
        )
    return Path(text)


class HistoryStore:
    """An open history database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise AispError(
                f"history database {path} cannot be read ({exc}); it is not an aisp history or it is corrupt. "
                "Nothing was changed: move it aside and record again, or restore it from a backup"
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" in tables:
            row = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = row[0] or 0
            if version > SCHEMA_VERSION:
                raise AispError(
                    f"history database {self.path} has schema version {version}; this pytest-aisp reads up to "
                    f"{SCHEMA_VERSION}. Upgrade pytest-aisp; nothing was changed"
                )
            if version == SCHEMA_VERSION:
                return
        elif tables:
            raise AispError(f"{self.path} is an SQLite database but not an aisp history; nothing was changed")
        with self._transaction() as db:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    # --- writing ----------------------------------------------------------------------------

    def record(self, run: RunRecord) -> int:
        """Store ``run``; a run key seen before (another shard of the same run) adds to that run."""
        info = run.info
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_key, created, branch, commit_sha, build_url, source) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (info.run_key, info.created, info.branch, info.commit, info.build_url, info.source),
            )
            run_id = db.execute("SELECT id FROM runs WHERE run_key = ?", (info.run_key,)).fetchone()[0]
            db.executemany(
                "INSERT OR REPLACE INTO test_outcomes (run_id, nodeid, outcome) VALUES (?, ?, ?)",
                [(run_id, nodeid, outcome) for nodeid, outcome in run.outcomes.items()],
            )
            for entry in run.entries:
                self._insert_entry(db, run_id, entry)
            db.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, test, name, value) VALUES (?, ?, ?, ?)",
                [(run_id, test, name, float(v)) for test, values in run.metrics.items() for name, v in values.items()],
            )
        return int(run_id)

    @staticmethod
    def _insert_entry(db: sqlite3.Connection, run_id: int, entry: ReportedFinding) -> None:
        finding = entry.finding
        data = finding.to_dict()
        db.execute(
            "INSERT OR REPLACE INTO findings (run_id, fingerprint, rule_id, severity, module, message, location, "
            "test, path, line, accepted, evidence, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, fingerprint(entry), finding.rule_id, finding.severity.value, finding.module, finding.message,
             finding.location, entry.nodeid or "", entry.path or "", entry.line, int(entry.accepted),
             json.dumps(data["evidence"]), json.dumps(data["metrics"])),
        )
        db.executemany(
            "INSERT OR REPLACE INTO metrics (run_id, test, name, value) VALUES (?, ?, ?, ?)",
            [(run_id, entry.nodeid or "", name, float(value)) for name, value in finding.metrics.items()],
        )

    def set_triage(self, fp: str, status: str, reason: str, owner: str = "", expires: str | None = None) -> None:
        """Record a triage decision (``accepted`` or ``false_positive``) for a finding fingerprint."""
        if status not in ("accepted", "false_positive"):
            raise AispError(f"triage status must be 'accepted' or 'false_positive', got {status!r}")
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO triage (fingerprint, status, reason, owner, expires, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (fp, status, reason, owner, expires, created),
            )

    # --- reading ----------------------------------------------------------------------------

    def runs(self, branch: str | None = None) -> list[StoredRun]:
        """Runs, oldest first, optionally of one branch."""
        query = "SELECT * FROM runs" + (" WHERE branch = ?" if branch is not None else "") + " ORDER BY id"
        rows = self._db.execute(query, (branch,) if branch is not None else ()).fetchall()
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> StoredRun | None:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def branches(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT branch FROM runs ORDER BY branch")]

    def latest_per_branch(self) -> dict[str, StoredRun]:
        return {branch: self.runs(branch)[-1] for branch in self.branches()}

    def previous(self, run: StoredRun) -> StoredRun | None:
        """The run before ``run`` on the same branch."""
        row = self._db.execute(
            "SELECT * FROM runs WHERE branch = ? AND id < ? ORDER BY id DESC LIMIT 1", (run.info.branch, run.id)
        ).fetchone()
        return _run(row) if row else None

    def findings(self, run_id: int) -> list[StoredFinding]:
        rows = self._db.execute("SELECT * FROM findings WHERE run_id = ? ORDER BY rule_id, test", (run_id,))
        return [_finding(row) for row in rows]

    def finding_history(self, fp: str) -> list[tuple[StoredRun, StoredFinding]]:
        rows = self._db.execute(
            "SELECT f.*, r.run_key, r.created, r.branch, r.commit_sha, r.build_url, r.source "
            "FROM findings f JOIN runs r ON r.id = f.run_id WHERE f.fingerprint = ? ORDER BY r.id", (fp,)
        ).fetchall()
        return [(_run(row, id_column="run_id"), _finding(row)) for row in rows]

    def outcomes(self, run_id: int) -> dict[str, str]:
        rows = self._db.execute("SELECT nodeid, outcome FROM test_outcomes WHERE run_id = ?", (run_id,))
        return {r[0]: r[1] for r in rows}

    def metric_series(self, branch: str) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """(test, metric name) -> [(run id, value)] over the branch's runs, oldest first."""
        rows = self._db.execute(
            "SELECT m.test, m.name, m.run_id, m.value FROM metrics m JOIN runs r ON r.id = m.run_id "
            "WHERE r.branch = ? ORDER BY m.run_id", (branch,)
        )
        series: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for test, name, run_id, value in rows:
            series.setdefault((test, name), []).append((run_id, value))
        return series

    def triage(self) -> dict[str, dict[str, Any]]:
        return {r["fingerprint"]: dict(r) for r in self._db.execute("SELECT * FROM triage")}


def _run(row: sqlite3.Row, id_column: str = "id") -> StoredRun:
    info = RunInfo(row["run_key"], row["created"], row["branch"], row["commit_sha"], row["build_url"], row["source"])
    return StoredRun(int(row[id_column]), info)


def _finding(row: sqlite3.Row) -> StoredFinding:
    finding = Finding(
        rule_id=row["rule_id"], severity=row["severity"], message=row["message"], location=row["location"],
        evidence=json.loads(row["evidence"]), metrics=json.loads(row["metrics"]),
    )
    return StoredFinding(int(row["run_id"]), row["fingerprint"], finding, row["test"], row["path"], row["line"],
                         bool(row["accepted"]))


def open_store(url: str | Path) -> HistoryStore:
    """Open (and create or migrate) the history at ``url``."""
    return HistoryStore(resolve_url(url))


def diff_fingerprints(current: Sequence[StoredFinding], previous: Iterable[StoredFinding]) -> tuple[set[str], set[str]]:
    """(new, fixed) fingerprints of ``current`` against ``previous``."""
    now = {f.fingerprint for f in current}
    before = {f.fingerprint for f in previous}
    return now - before, before - now
