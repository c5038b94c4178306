"""The history schema and its forward migrations, the same for SQLite and PostgreSQL.

``schema_version`` holds the version. Opening a database runs every migration above its version, in one
transaction (PostgreSQL: under an advisory lock, so many CI agents opening a new database at once migrate
it once). A database is inspected before anything is written to it: a newer version, a database holding
other tables, or tables that lack the columns their version promises are refused, unchanged.
"""

from __future__ import annotations

from pytest_aisp.dashboard.db import Database, HistoryUnavailable

# Statements per version, in order; {serial}, {bigint} and {real} are the dialect's column types.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        """CREATE TABLE IF NOT EXISTS runs (
            id {serial},
            run_key TEXT NOT NULL UNIQUE,
            created TEXT NOT NULL,
            branch TEXT NOT NULL DEFAULT '',
            commit_sha TEXT NOT NULL DEFAULT '',
            build_url TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE IF NOT EXISTS test_outcomes (
            run_id {bigint} NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            nodeid TEXT NOT NULL,
            outcome TEXT NOT NULL,
            PRIMARY KEY (run_id, nodeid))""",
        """CREATE TABLE IF NOT EXISTS findings (
            run_id {bigint} NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
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
            evidence TEXT NOT NULL DEFAULT '{{}}',
            metrics TEXT NOT NULL DEFAULT '{{}}',
            PRIMARY KEY (run_id, fingerprint))""",
        """CREATE TABLE IF NOT EXISTS metrics (
            run_id {bigint} NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            test TEXT NOT NULL,
            name TEXT NOT NULL,
            value {real} NOT NULL,
            PRIMARY KEY (run_id, test, name))""",
        """CREATE TABLE IF NOT EXISTS triage (
            fingerprint TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            owner TEXT NOT NULL DEFAULT '',
            expires TEXT,
            created TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS findings_by_fingerprint ON findings(fingerprint)",
    ),
    # Projects, expected findings, per-project triage with who decided, and what the pages need to stay fast
    # at tens of thousands of runs: runs indexed by (project, branch, id), a per-run finding count.
    2: (
        "ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN finding_count INTEGER NOT NULL DEFAULT 0",
        "UPDATE runs SET finding_count = (SELECT COUNT(*) FROM findings WHERE findings.run_id = runs.id)",
        "CREATE INDEX runs_by_branch ON runs(project, branch, id)",
        "ALTER TABLE findings ADD COLUMN expected INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE triage_decisions (
            project TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            rule_id TEXT NOT NULL DEFAULT '',
            test TEXT NOT NULL DEFAULT '',
            location TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            owner TEXT NOT NULL DEFAULT '',
            expires TEXT,
            decided_by TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL,
            PRIMARY KEY (project, fingerprint))""",
        """INSERT INTO triage_decisions (project, fingerprint, rule_id, test, location, status, reason, owner,
                                         expires, decided_by, created)
           SELECT '', t.fingerprint,
                  COALESCE((SELECT f.rule_id FROM findings f WHERE f.fingerprint = t.fingerprint LIMIT 1), ''),
                  COALESCE((SELECT f.test FROM findings f WHERE f.fingerprint = t.fingerprint LIMIT 1), ''),
                  COALESCE((SELECT f.location FROM findings f WHERE f.fingerprint = t.fingerprint LIMIT 1), ''),
                  t.status, t.reason, t.owner, t.expires, '', t.created
           FROM triage t""",
        "DROP TABLE triage",
        "ALTER TABLE triage_decisions RENAME TO triage",
        """CREATE TABLE triage_log (
            id {serial},
            project TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            owner TEXT NOT NULL DEFAULT '',
            expires TEXT,
            decided_by TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL)""",
        "CREATE INDEX triage_log_by_finding ON triage_log(project, fingerprint, id)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

# The columns each version promises; a database whose tables lack one is refused as not an aisp history.
_V1_COLUMNS: dict[str, frozenset[str]] = {
    "schema_version": frozenset({"version"}),
    "runs": frozenset({"id", "run_key", "created", "branch", "commit_sha", "build_url", "source"}),
    "test_outcomes": frozenset({"run_id", "nodeid", "outcome"}),
    "findings": frozenset({"run_id", "fingerprint", "rule_id", "severity", "module", "message", "location",
                           "test", "path", "line", "accepted", "evidence", "metrics"}),
    "metrics": frozenset({"run_id", "test", "name", "value"}),
    "triage": frozenset({"fingerprint", "status", "reason", "owner", "expires", "created"}),
}
EXPECTED_COLUMNS: dict[int, dict[str, frozenset[str]]] = {
    1: _V1_COLUMNS,
    2: {
        **_V1_COLUMNS,
        "runs": _V1_COLUMNS["runs"] | {"project", "finding_count"},
        "findings": _V1_COLUMNS["findings"] | {"expected"},
        "triage": frozenset({"project", "fingerprint", "rule_id", "test", "location", "status", "reason", "owner",
                             "expires", "decided_by", "created"}),
        "triage_log": frozenset({"id", "project", "fingerprint", "status", "reason", "owner", "expires",
                                 "decided_by", "created"}),
    },
}
# PostgreSQL: one number for the advisory lock every migrating writer takes.
_MIGRATION_LOCK = 0x61697370  # "aisp"


def inspect(db: Database) -> int:
    """The schema version of ``db`` (0: an empty database). Raise ``HistoryUnavailable`` for a database that
    is newer, holds other tables, or whose tables do not match their version. Reads only."""
    columns = db.table_columns()
    if "schema_version" not in columns:
        if columns:
            others = ", ".join(sorted(columns)[:5])
            raise HistoryUnavailable(
                f"history database {db.shown} is a database but not an aisp history (it holds {others}); "
                "nothing was changed. Point --aisp-history / --db at a new file or an empty database"
            )
        return 0
    row = db.one("SELECT MAX(version) AS version FROM schema_version")
    version = int(row["version"]) if row and row["version"] is not None else -1
    if version > SCHEMA_VERSION:
        raise HistoryUnavailable(
            f"history database {db.shown} has schema version {version}; this pytest-aisp reads up to "
            f"{SCHEMA_VERSION}. Upgrade pytest-aisp; nothing was changed"
        )
    if version not in EXPECTED_COLUMNS:
        raise HistoryUnavailable(
            f"history database {db.shown} has a schema_version table without a valid version; it is not an "
            "aisp history or it was altered. Nothing was changed: move it aside and record again"
        )
    missing = [
        f"{table} ({', '.join(sorted(wanted - columns.get(table, set())))})"
        for table, wanted in EXPECTED_COLUMNS[version].items()
        if not wanted <= columns.get(table, set())
    ]
    if missing:
        raise HistoryUnavailable(
            f"history database {db.shown} says schema version {version} but lacks columns of it: "
            f"{'; '.join(missing)}. It was not written by pytest-aisp or was altered; nothing was changed: "
            "move it aside (or restore a backup) and record again"
        )
    return version


def migrate(db: Database) -> None:
    """Bring ``db`` to :data:`SCHEMA_VERSION` (after :func:`inspect` accepted it)."""
    if inspect(db) == SCHEMA_VERSION:
        return

    def upgrade(tx: Database) -> None:
        if tx.dialect.name == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        version = inspect(tx)  # again, now that no other writer can migrate at the same time
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                tx.execute(tx.dialect.ddl(statement))
        if version < SCHEMA_VERSION:
            tx.execute("DELETE FROM schema_version")
            tx.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    db.write(upgrade)
