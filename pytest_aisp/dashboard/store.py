"""The run history: runs (project, branch, commit, build), test outcomes, findings, metrics and triage
decisions, in SQLite (``.aisp/history.db`` by default) or PostgreSQL.

Each run is written in one transaction: a reader or another writer sees all of it or none of it. Shards of
one CI run share a run key and add to one run; the run's row is locked while a shard writes, so two shards
of one run never interleave and shards of different runs never wait on each other. Pages read only what they
show: the latest run per branch, a window of recent runs for trends (``runs(project, branch, id)`` index and
a per-run finding count), never a scan of every run ever stored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.dashboard import schema
from pytest_aisp.dashboard.db import Database, HistoryUnavailable, connect, parse_history_url
from pytest_aisp.findings import AispError, Finding
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.sarif import fingerprint as _sarif_fingerprint

SCHEMA_VERSION = schema.SCHEMA_VERSION
TRIAGE_STATUSES = ("accepted", "false_positive")
# How many runs a finding's page lists; older appearances are counted, not listed.
FINDING_HISTORY_SHOWN = 100


def finding_key(entry: ReportedFinding) -> str:
    """The identity of a finding across runs: the fingerprint SARIF reports (the one place the history
    takes it from)."""
    return _sarif_fingerprint(entry)


def is_expected(entry: ReportedFinding) -> bool:
    """Whether a finding was expected: raised inside an xfailed test, or flagged so by the reports (a
    negative test that asserts the check fails). Read defensively: an entry without the flag is not."""
    return bool(getattr(entry, "expected", False)) or entry.outcome in ("xfailed",)


@dataclass(frozen=True)
class RunInfo:
    """Where a run came from."""

    run_key: str
    created: str
    branch: str = ""
    commit: str = ""
    build_url: str = ""
    source: str = ""
    project: str = ""


@dataclass(frozen=True)
class RunRecord:
    """One run to store: its info, each test's outcome, its findings, and each test's metrics."""

    info: RunInfo
    outcomes: dict[str, str] = field(default_factory=dict)
    entries: tuple[ReportedFinding, ...] = ()
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredRun:
    """A run as read back, with its id and how many findings it holds."""

    id: int
    info: RunInfo
    finding_count: int = 0


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
    expected: bool = False


@dataclass(frozen=True)
class TriageDecision:
    """A triage decision on one finding of one project, and who made it."""

    project: str
    fingerprint: str
    status: str
    reason: str
    owner: str = ""
    expires: str | None = None
    decided_by: str = ""
    created: str = ""
    rule_id: str = ""
    test: str = ""
    location: str = ""


@dataclass(frozen=True)
class FindingKey:
    """A finding of a run as the overview counts it."""

    fingerprint: str
    rule_id: str
    severity: str
    module: str
    test: str
    path: str
    accepted: bool
    expected: bool


_RUN_COLUMNS = "id, run_key, created, branch, commit_sha, build_url, source, project, finding_count"


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class HistoryStore:
    """An open history database (see :func:`open_store`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def shown(self) -> str:
        """The database as it may be shown (no password)."""
        return self.db.shown

    @property
    def path(self) -> Path | None:
        return self.db.location.path

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------

    def record(self, run: RunRecord) -> int:
        """Store ``run`` in one transaction; a run key seen before (another shard of the same run) adds to
        that run. Metrics that are not finite numbers are left out (they cannot be charted or compared)."""
        info = run.info
        outcomes = sorted(run.outcomes.items())
        findings: dict[str, tuple] = {}
        for entry in run.entries:
            finding = entry.finding
            data = finding.to_dict()
            key = finding_key(entry)
            findings[key] = (
                key, finding.rule_id, finding.severity.value, finding.module, finding.message, finding.location,
                entry.nodeid or "", entry.path or "", entry.line, int(entry.accepted), int(is_expected(entry)),
                json.dumps(data["evidence"], default=str), json.dumps(data["metrics"], default=str),
            )
        metrics = sorted(
            (test, name, value)
            for test, values in run.metrics.items()
            for name, raw in values.items()
            if (value := _finite(raw)) is not None
        )

        def write(db: Database) -> int:
            db.execute(
                "INSERT INTO runs (run_key, created, branch, commit_sha, build_url, source, project) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_key) DO NOTHING",
                (info.run_key, info.created, info.branch, info.commit, info.build_url, info.source, info.project),
            )
            # Lock the run's row: another shard of this run waits here until this one commits.
            row = db.one("SELECT id FROM runs WHERE run_key = ?" + db.dialect.lock_row, (info.run_key,))
            assert row is not None
            run_id = int(row["id"])
            db.executemany(
                "INSERT INTO test_outcomes (run_id, nodeid, outcome) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, nodeid) DO UPDATE SET outcome = excluded.outcome",
                [(run_id, nodeid, outcome) for nodeid, outcome in outcomes],
            )
            db.executemany(
                "INSERT INTO findings (run_id, fingerprint, rule_id, severity, module, message, location, test, "
                "path, line, accepted, expected, evidence, metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, fingerprint) DO UPDATE SET rule_id = excluded.rule_id, "
                "severity = excluded.severity, module = excluded.module, message = excluded.message, "
                "location = excluded.location, test = excluded.test, path = excluded.path, line = excluded.line, "
                "accepted = excluded.accepted, expected = excluded.expected, evidence = excluded.evidence, "
                "metrics = excluded.metrics",
                [(run_id, *values) for _, values in sorted(findings.items())],
            )
            db.executemany(
                "INSERT INTO metrics (run_id, test, name, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, test, name) DO UPDATE SET value = excluded.value",
                [(run_id, test, name, value) for test, name, value in metrics],
            )
            db.execute("UPDATE runs SET finding_count = (SELECT COUNT(*) FROM findings WHERE run_id = ?) "
                       "WHERE id = ?", (run_id, run_id))
            return run_id

        return int(self.db.write(write))

    def set_triage(self, fp: str, status: str, reason: str, owner: str = "", expires: str | None = None, *,
                   project: str = "", decided_by: str = "", rule_id: str = "", test: str = "",
                   location: str = "") -> TriageDecision:
        """Record a triage decision (``accepted`` or ``false_positive``) for a finding of ``project``, with who
        made it; the previous decision stays in the triage log."""
        if status not in TRIAGE_STATUSES:
            raise AispError(f"triage status must be 'accepted' or 'false_positive', got {status!r}")
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        decision = TriageDecision(project, fp, status, reason, owner, expires, decided_by, created, rule_id, test,
                                  location)

        def write(db: Database) -> None:
            db.execute(
                "INSERT INTO triage (project, fingerprint, rule_id, test, location, status, reason, owner, expires, "
                "decided_by, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project, fingerprint) DO UPDATE SET rule_id = excluded.rule_id, "
                "test = excluded.test, location = excluded.location, status = excluded.status, "
                "reason = excluded.reason, owner = excluded.owner, expires = excluded.expires, "
                "decided_by = excluded.decided_by, created = excluded.created",
                (project, fp, rule_id, test, location, status, reason, owner, expires, decided_by, created),
            )
            db.execute(
                "INSERT INTO triage_log (project, fingerprint, status, reason, owner, expires, decided_by, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project, fp, status, reason, owner, expires, decided_by, created),
            )

        self.db.write(write)
        return decision

    # --- reading ----------------------------------------------------------------------------

    def runs(self, branch: str | None = None, *, project: str | None = None, last: int | None = None
             ) -> list[StoredRun]:
        """Runs, oldest first, optionally of one project and branch, optionally only the ``last`` few."""
        where, params = _where(project=project, branch=branch)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY id"
        if last is not None:
            sql = f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY id DESC LIMIT ?"
            rows = self.db.query(sql, (*params, int(last)))[::-1]
        else:
            rows = self.db.query(sql, params)
        return [_run(row) for row in rows]

    def run(self, run_id: int) -> StoredRun | None:
        row = self.db.one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return _run(row) if row else None

    def projects(self) -> list[str]:
        return [r["project"] for r in self.db.query("SELECT DISTINCT project FROM runs ORDER BY project")]

    def branches(self, project: str | None = None) -> list[str]:
        where, params = _where(project=project)
        rows = self.db.query(f"SELECT DISTINCT branch FROM runs{where} ORDER BY branch", params)
        return [r["branch"] for r in rows]

    def heads(self, project: str | None = None) -> list[StoredRun]:
        """The latest run of every (project, branch), optionally of one project; by project, then branch."""
        where, params = _where(project=project)
        rows = self.db.query(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id IN "
            f"(SELECT MAX(id) FROM runs{where} GROUP BY project, branch) ORDER BY project, branch", params
        )
        return [_run(row) for row in rows]

    def latest_per_branch(self, project: str | None = None) -> dict[str, StoredRun]:
        """Branch -> its latest run (of one project; of all projects when there is only one)."""
        return {run.info.branch: run for run in self.heads(project)}

    def previous(self, run: StoredRun) -> StoredRun | None:
        """The run before ``run`` on the same project and branch."""
        row = self.db.one(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE project = ? AND branch = ? AND id < ? ORDER BY id DESC LIMIT 1",
            (run.info.project, run.info.branch, run.id),
        )
        return _run(row) if row else None

    def findings(self, run_id: int) -> list[StoredFinding]:
        rows = self.db.query("SELECT * FROM findings WHERE run_id = ? ORDER BY rule_id, test", (run_id,))
        return [_finding(row) for row in rows]

    def fingerprints(self, run_id: int) -> set[str]:
        rows = self.db.query("SELECT fingerprint FROM findings WHERE run_id = ?", (run_id,))
        return {r["fingerprint"] for r in rows}

    def finding_history(self, fp: str, project: str | None = None, *, last: int = FINDING_HISTORY_SHOWN
                        ) -> list[tuple[StoredRun, StoredFinding]]:
        """The runs (of ``project``) a finding appeared in, oldest first; only the ``last`` few."""
        where = " AND r.project = ?" if project is not None else ""
        params: tuple = (fp, project) if project is not None else (fp,)
        rows = self.db.query(
            "SELECT f.*, r.run_key, r.created, r.branch, r.commit_sha, r.build_url, r.source, r.project, "
            "r.finding_count FROM findings f JOIN runs r ON r.id = f.run_id "
            f"WHERE f.fingerprint = ?{where} ORDER BY r.id DESC LIMIT ?", (*params, int(last))
        )
        return [(_run(row, id_column="run_id"), _finding(row)) for row in reversed(rows)]

    # --- what the overview reads, for many runs in a fixed number of queries ----------------------

    def previous_ids(self, runs: Sequence[StoredRun]) -> dict[int, int | None]:
        """Run id -> the id of the run before it on the same project and branch (None: the first)."""
        if not runs:
            return {}
        marks = ", ".join("?" for _ in runs)
        rows = self.db.query(
            "SELECT r.id, (SELECT MAX(p.id) FROM runs p WHERE p.project = r.project AND p.branch = r.branch "
            f"AND p.id < r.id) AS previous FROM runs r WHERE r.id IN ({marks})", [run.id for run in runs])
        return {int(r["id"]): (None if r["previous"] is None else int(r["previous"])) for r in rows}

    def finding_keys(self, run_ids: Sequence[int]) -> dict[int, list[FindingKey]]:
        """Run id -> what the overview needs of each finding (no message, evidence or metrics), read through the
        findings' (run_id, fingerprint) key: the work grows with the runs asked for, never with the history."""
        result: dict[int, list[FindingKey]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return result
        marks = ", ".join("?" for _ in run_ids)
        rows = self.db.query("SELECT run_id, fingerprint, rule_id, severity, module, test, path, accepted, expected "
                             f"FROM findings WHERE run_id IN ({marks})", list(run_ids))
        for r in rows:
            result[int(r["run_id"])].append(FindingKey(r["fingerprint"], r["rule_id"], r["severity"], r["module"],
                                                       r["test"], r["path"], bool(r["accepted"]),
                                                       bool(r["expected"])))
        return result

    def triaged(self, projects: Iterable[str]) -> set[tuple[str, str]]:
        """(project, fingerprint) of every triage decision of these projects."""
        names = sorted(set(projects))
        if not names:
            return set()
        marks = ", ".join("?" for _ in names)
        rows = self.db.query(f"SELECT project, fingerprint FROM triage WHERE project IN ({marks})", names)
        return {(r["project"], r["fingerprint"]) for r in rows}

    def metrics_of(self, run_ids: Sequence[int]) -> dict[int, dict[tuple[str, str], float]]:
        """Run id -> (test, metric name) -> value."""
        if not run_ids:
            return {}
        marks = ", ".join("?" for _ in run_ids)
        rows = self.db.query(f"SELECT run_id, test, name, value FROM metrics WHERE run_id IN ({marks})", list(run_ids))
        result: dict[int, dict[tuple[str, str], float]] = {run_id: {} for run_id in run_ids}
        for r in rows:
            result[int(r["run_id"])][(r["test"], r["name"])] = float(r["value"])
        return result

    def runs_by_id(self, run_ids: Iterable[int]) -> dict[int, StoredRun]:
        ids = sorted(set(run_ids))
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        return {int(r["id"]): _run(r) for r in self.db.query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id IN ({marks})",
                                                             ids)}

    def outcomes(self, run_id: int) -> dict[str, str]:
        rows = self.db.query("SELECT nodeid, outcome FROM test_outcomes WHERE run_id = ?", (run_id,))
        return {r["nodeid"]: r["outcome"] for r in rows}

    def run_metrics(self, run_id: int) -> dict[tuple[str, str], float]:
        """(test, metric name) -> value of one run."""
        return self.metrics_of([run_id])[run_id]

    def metric_series(self, branch: str, project: str | None = None, *, last: int | None = None
                      ) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """(test, metric name) -> [(run id, value)] over the branch's runs (the ``last`` few), oldest first."""
        where, params = _where(project=project, branch=branch)
        window = f"SELECT id FROM runs{where} ORDER BY id DESC" + (" LIMIT ?" if last is not None else "")
        rows = self.db.query(
            f"SELECT m.test, m.name, m.run_id, m.value FROM metrics m JOIN ({window}) w ON w.id = m.run_id "
            "ORDER BY m.run_id", (*params, *((int(last),) if last is not None else ()))
        )
        series: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for row in rows:
            series.setdefault((row["test"], row["name"]), []).append((int(row["run_id"]), float(row["value"])))
        return series

    def triage(self, project: str | None = None) -> dict[str, TriageDecision]:
        """Fingerprint -> the triage decision in force (of one project)."""
        where, params = _where(project=project)
        rows = self.db.query(f"SELECT * FROM triage{where}", params)
        return {r["fingerprint"]: _decision(r) for r in rows}

    def triage_log(self, fp: str, project: str = "") -> list[TriageDecision]:
        """Every decision ever made on a finding of ``project``, oldest first."""
        rows = self.db.query("SELECT * FROM triage_log WHERE project = ? AND fingerprint = ? ORDER BY id",
                             (project, fp))
        return [_decision(r) for r in rows]


def _where(**conditions: str | None) -> tuple[str, tuple]:
    used = [(column, value) for column, value in conditions.items() if value is not None]
    if not used:
        return "", ()
    return " WHERE " + " AND ".join(f"{column} = ?" for column, _ in used), tuple(v for _, v in used)


def _run(row: dict[str, Any], id_column: str = "id") -> StoredRun:
    info = RunInfo(row["run_key"], row["created"], row["branch"], row["commit_sha"], row["build_url"], row["source"],
                   row.get("project") or "")
    return StoredRun(int(row[id_column]), info, int(row.get("finding_count") or 0))


def _finding(row: dict[str, Any]) -> StoredFinding:
    finding = Finding(
        rule_id=row["rule_id"], severity=row["severity"], message=row["message"], location=row["location"],
        evidence=json.loads(row["evidence"]), metrics=json.loads(row["metrics"]),
    )
    return StoredFinding(int(row["run_id"]), row["fingerprint"], finding, row["test"], row["path"], row["line"],
                         bool(row["accepted"]), bool(row.get("expected") or 0))


def _decision(row: dict[str, Any]) -> TriageDecision:
    return TriageDecision(
        project=row["project"], fingerprint=row["fingerprint"], status=row["status"], reason=row["reason"],
        owner=row.get("owner") or "", expires=row.get("expires"), decided_by=row.get("decided_by") or "",
        created=row.get("created") or "", rule_id=row.get("rule_id") or "", test=row.get("test") or "",
        location=row.get("location") or "",
    )


def open_store(url: str | Path) -> HistoryStore:
    """Open the history at ``url`` (a path, ``sqlite:///...`` or ``postgresql://...``): inspected without
    writing first, then created or migrated. A corrupt, foreign or newer database raises
    ``HistoryUnavailable`` and is left exactly as it was."""
    location = parse_history_url(url)
    if location.kind == "sqlite":
        assert location.path is not None
        if location.path.is_dir():
            raise HistoryUnavailable(f"history database {location.path} is a directory; name a file")
        if location.path.exists():
            probe = connect(location, read_only=True)
            try:
                schema.inspect(probe)
            finally:
                probe.close()
    db = connect(location)
    try:
        schema.migrate(db)
    except BaseException:
        db.close()
        raise
    return HistoryStore(db)
