"""Run history at scale, SQLite and PostgreSQL: ingest throughput, database size, page latency, and eight
concurrent ingesting processes.

    python benchmarks/bench_history.py --quick    # 1,000 runs x 100 findings per database (the default run)
    python benchmarks/bench_history.py            # 10,000 runs x 100 findings per database (the issue's size)

Ingest: every run goes through ``HistoryStore.record`` (one transaction per run, upserts, the run's row
locked). The anchor does the same rows with the driver's own fastest path and nothing else, also one
transaction per run: ``COPY`` for PostgreSQL, ``executemany`` for SQLite, into the same schema. The ratio
ours / anchor is the price of the store (below 1 would be faster than the anchor).

Pages: overview, a findings filter and trends of the busiest repository (half of all runs are its main
branch; the rest rotate over ten projects and three branches), served by the dashboard app in process
(Starlette's test client), timed as p50/p95 over repeated requests. Goal: p95 under 200 ms. The trends query
reads a window of the last 50 runs through the (project, branch, id) index and per-run counts, so its time
must not grow with every run ever stored: it is timed at a tenth of the runs and again at all of them, the
window full both times (linear growth would be 10x).
There is no outside anchor for the pages: the goal is absolute. Pages are timed on databases at rest: after
the bulk load, PostgreSQL's tables are vacuumed and analyzed (what autovacuum does soon after) so that it does
not run during the timings.

Concurrency: eight processes ingest into PostgreSQL at once (own runs plus shards of shared runs); every run
must be there whole, and the server must count no deadlock.

PostgreSQL runs from the installed binaries (initdb/pg_ctl, ``apt-get install -y postgresql``) with its
default durability (fsync on); SQLite with its defaults in WAL mode. Both on the same disk.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_aisp.dashboard import schema  # noqa: E402
from pytest_aisp.dashboard.db import connect, parse_history_url  # noqa: E402
from pytest_aisp.dashboard.store import RunInfo, RunRecord, finding_key, open_store  # noqa: E402
from pytest_aisp.findings import Finding  # noqa: E402
from pytest_aisp.reporters.entries import ReportedFinding  # noqa: E402

PROJECTS = 10
BRANCHES = ("main", "dev", "feature/x")
TESTS = 10
FINDINGS_POOL = 150
SEVERITIES = ("critical", "high", "medium", "medium", "low", "low", "info")
RULES = ("AISP-SCAN-PICKLE-GLOBAL", "AISP-ROBUST-EVASION", "AISP-LLM-INJECTION", "AISP-NLP-FLIP",
         "AISP-SUPPLY-TAMPERED", "AISP-MM-INVARIANCE")
GOAL_P95_MS = 200.0


def make_run(index: int, findings: int, key_prefix: str = "run") -> RunRecord:
    """Run ``index``: every other run is the busiest repository's main branch (org/model-00), the others rotate
    over ten projects and three branches; ``findings`` findings drawn from the project's pool (most repeat run
    after run, some come and go), and three metrics for each of ten tests."""
    rng = random.Random(index)
    if index % 2 == 0:
        project, branch = "org/model-00", "main"
    else:
        slot = index // 2
        project = f"org/model-{slot % PROJECTS:02d}"
        branch = BRANCHES[(slot // PROJECTS) % len(BRANCHES)]
    chosen = sorted(rng.sample(range(FINDINGS_POOL), findings)) if findings <= FINDINGS_POOL else range(findings)
    entries = []
    for k in chosen:
        test = f"tests/test_model_security.py::test_check_{k % TESTS}"
        finding = Finding(RULES[k % len(RULES)], SEVERITIES[k % len(SEVERITIES)],
                          f"finding {k} of {project}: the check found a weakness worth a look", f"models/m{k}.pt",
                          {"eps": 0.03, "opcode": "GLOBAL", "k": k}, {"robust_acc": round(rng.random(), 3)})
        entries.append(ReportedFinding(finding, test, "tests/test_model_security.py", 10 + k % 50, k % 11 == 0,
                                       "failed"))
    metrics = {f"tests/test_model_security.py::test_check_{t}": {
        "robust_acc": round(0.5 + 0.3 * rng.random(), 3), "attack_success_rate": round(0.3 * rng.random(), 3),
        "llm_probe_seconds": round(1 + rng.random(), 3)} for t in range(TESTS)}
    outcomes = {test: "failed" for test in metrics}
    created = f"2026-{1 + index // 40000 % 12:02d}-01T00:00:00+00:00"
    return RunRecord(RunInfo(f"{key_prefix}:{index}", created, branch, f"{index:040x}", "", "bench", project),
                     outcomes, tuple(entries), metrics)


def ingest(url: str, start: int, count: int, findings: int) -> float:
    """Record runs ``start .. start+count`` through the store; seconds taken."""
    with open_store(url) as store:
        began = time.perf_counter()
        for index in range(start, start + count):
            store.record(make_run(index, findings))
        return time.perf_counter() - began


def _rows(run_id: int, record: RunRecord) -> tuple[list[tuple], list[tuple], list[tuple]]:
    findings = [(run_id, finding_key(e), e.finding.rule_id, e.finding.severity.value, e.finding.module,
                 e.finding.message, e.finding.location, e.nodeid or "", e.path or "", e.line, int(e.accepted), 0,
                 json.dumps(e.finding.evidence), json.dumps(e.finding.metrics)) for e in record.entries]
    metrics = [(run_id, t, n, v) for t, values in record.metrics.items() for n, v in values.items()]
    outcomes = [(run_id, t, o) for t, o in record.outcomes.items()]
    return findings, metrics, outcomes


FINDING_COLUMNS = ("run_id, fingerprint, rule_id, severity, module, message, location, test, path, line, accepted, "
                   "expected, evidence, metrics")


def anchor_ingest(url: str, count: int, findings: int) -> float:
    """The same rows with the driver's fastest path, one transaction per run (no upserts, no locks)."""
    db = connect(parse_history_url(url))
    try:
        schema.migrate(db)
        records = [make_run(i, findings, "anchor") for i in range(count)]
        began = time.perf_counter()
        for run_id, record in enumerate(records, start=1):
            info = record.info
            finding_rows, metric_rows, outcome_rows = _rows(run_id, record)
            with db.transaction():
                db.execute("INSERT INTO runs (id, run_key, created, branch, commit_sha, build_url, source, project, "
                           "finding_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run_id, info.run_key, info.created, info.branch, info.commit, info.build_url,
                            info.source, info.project, len(finding_rows)))
                if db.dialect.name == "postgresql":
                    conn = db._conn
                    with conn.cursor() as cur:
                        for table, columns, rows in (("findings", FINDING_COLUMNS, finding_rows),
                                                     ("metrics", "run_id, test, name, value", metric_rows),
                                                     ("test_outcomes", "run_id, nodeid, outcome", outcome_rows)):
                            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                                for row in rows:
                                    copy.write_row(row)
                else:
                    db.executemany(f"INSERT INTO findings ({FINDING_COLUMNS}) VALUES "
                                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", finding_rows)
                    db.executemany("INSERT INTO metrics (run_id, test, name, value) VALUES (?, ?, ?, ?)", metric_rows)
                    db.executemany("INSERT INTO test_outcomes (run_id, nodeid, outcome) VALUES (?, ?, ?)",
                                   outcome_rows)
        return time.perf_counter() - began
    finally:
        db.close()


def database_size(url: str) -> int:
    location = parse_history_url(url)
    if location.kind == "sqlite":
        db = connect(location)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        return sum(p.stat().st_size for p in location.path.parent.glob(location.path.name + "*"))
    db = connect(location)
    try:
        return int(db.one("SELECT pg_database_size(current_database()) AS size")["size"])
    finally:
        db.close()


def settle(url: str) -> None:
    """What a database at rest looks like: PostgreSQL's autovacuum has vacuumed and analyzed the freshly loaded
    tables (done here at once, so it does not run during the timings); SQLite's WAL is checkpointed."""
    location = parse_history_url(url)
    db = connect(location)
    try:
        db.execute("VACUUM (ANALYZE)" if location.kind == "postgresql" else "PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def page_latency(url: str, paths: dict[str, str], repeat: int) -> dict[str, tuple[float, float]]:
    """p50 and p95 (ms) of each page, served in process after one warm-up request."""
    import warnings

    warnings.filterwarnings("ignore")
    from starlette.testclient import TestClient

    from pytest_aisp.dashboard.app import DashboardConfig, create_app

    scratch = Path(tempfile.mkdtemp(prefix="aisp-bench-app-"))
    client = TestClient(create_app(DashboardConfig(url, scratch / "aisp-baseline.json", scratch)))
    result = {}
    for name, path in paths.items():
        assert client.get(path).status_code == 200, path
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200
        times.sort()
        result[name] = (statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))])
    client.close()
    return result


PAGES = {
    "overview (all projects)": "/",
    "overview (one project)": "/?project=org%2Fmodel-00",
    "findings filter": "/findings?project=org%2Fmodel-00&branch=main&severity=high&status=open&sort=rule",
    "trends (50 runs)": "/trends?project=org%2Fmodel-00&branch=main&runs=50",
}


def _concurrent_writer(url: str, worker: int, runs: int, findings: int) -> None:
    with open_store(url) as store:
        for k in range(runs):
            store.record(make_run(1_000_000 + worker * runs + k, findings, "concurrent"))
            shard = make_run(2_000_000 + k % 16, 5, "shared")
            shard = RunRecord(shard.info, {f"w{worker}::{k}": "passed"}, tuple(
                ReportedFinding(e.finding, f"w{worker}::{k}", e.path, e.line) for e in shard.entries))
            store.record(shard)


def concurrent_ingest(url: str, writers: int, runs: int, findings: int) -> dict[str, float]:
    db = connect(parse_history_url(url))
    deadlocks_before = int(db.one("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
                           ["deadlocks"])
    db.close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_concurrent_writer, args=(url, w, runs, findings)) for w in range(writers)]
    began = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join(3600)
    seconds = time.perf_counter() - began
    failed = sum(1 for p in procs if p.exitcode != 0)
    with open_store(url) as store:
        own = store.db.one("SELECT COUNT(*) AS n, SUM(finding_count) AS f FROM runs WHERE run_key LIKE 'concurrent:%'")
        shared = store.db.one("SELECT COUNT(*) AS n, SUM(finding_count) AS f FROM runs WHERE run_key LIKE 'shared:%'")
        whole = store.db.one("SELECT COUNT(*) AS n FROM runs r WHERE run_key LIKE 'concurrent:%' AND finding_count <> "
                             "(SELECT COUNT(*) FROM findings f WHERE f.run_id = r.id)")
        deadlocks = int(store.db.one("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
                        ["deadlocks"]) - deadlocks_before
    return {"seconds": seconds, "failed": failed, "runs": int(own["n"]), "expected": writers * runs,
            "findings": int(own["f"] or 0), "expected_findings": writers * runs * findings,
            "shared_shards": int(shared["f"] or 0), "expected_shards": writers * runs * 5,
            "half_written": int(whole["n"]), "deadlocks": deadlocks}


@contextmanager
def sqlite_url() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="aisp-bench-sqlite-"))
    try:
        yield str(folder / "history.db")
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def measure(label: str, url_factory: Callable[[], str], anchor_url: str, runs: int, findings: int,
            repeat: int) -> list[str]:
    url = url_factory()
    lines = []
    tenth = max(1, runs // 10)
    first = ingest(url, 0, tenth, findings)
    settle(url)
    small = page_latency(url, {"trends (50 runs)": PAGES["trends (50 runs)"]}, repeat)["trends (50 runs)"]
    rest = ingest(url, tenth, runs - tenth, findings)
    seconds = first + rest
    anchor = anchor_ingest(anchor_url, runs, findings)
    size = database_size(url)
    settle(anchor_url)
    settle(url)
    lines.append(f"{label}: ingest {runs:,} runs x {findings} findings")
    lines.append(f"  {'ours (HistoryStore.record)':34} {runs / seconds:9.1f} runs/s  {runs * findings / seconds:10.0f} "
                 f"findings/s  {seconds:8.1f} s")
    anchor_name = "anchor (COPY, txn per run)" if label == "PostgreSQL" else "anchor (executemany, txn per run)"
    lines.append(f"  {anchor_name:34} {runs / anchor:9.1f} runs/s  {runs * findings / anchor:10.0f} findings/s  "
                 f"{anchor:8.1f} s")
    lines.append(f"  ours / anchor time: {seconds / anchor:.2f}")
    lines.append(f"  database size: {size / 2**20:.1f} MiB ({size / (runs * findings):.0f} bytes per stored finding)")
    pages = page_latency(url, PAGES, repeat)
    lines.append(f"  pages at {runs:,} runs (p50 / p95 ms over {repeat} requests; goal p95 < {GOAL_P95_MS:.0f} ms):")
    for name, (p50, p95) in pages.items():
        verdict = "ok" if p95 < GOAL_P95_MS else "OVER GOAL"
        lines.append(f"    {name:26} {p50:7.1f} / {p95:7.1f}  {verdict}")
    big = pages["trends (50 runs)"]
    growth = runs / tenth
    lines.append(f"  trends at {tenth:,} runs {small[0]:.1f} ms p50, at {runs:,} runs {big[0]:.1f} ms p50: "
                 f"x{big[0] / small[0]:.2f} for x{growth:.0f} the runs (linear growth would be x{growth:.0f})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs per database (the default tox -e bench run)")
    parser.add_argument("--runs", type=int, help="runs per database (default 10,000; 1,000 with --quick)")
    parser.add_argument("--findings", type=int, default=100, help="findings per run (default 100)")
    parser.add_argument("--repeat", type=int, default=30, help="requests per page for the latency figures")
    parser.add_argument("--writers", type=int, default=8, help="concurrent ingesting processes (PostgreSQL)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    args = parser.parse_args()
    runs = args.runs or (1_000 if args.quick else 10_000)
    if args.quick and not args.runs:
        print("quick size: 1,000 runs x 100 findings per database; the issue's 10,000 x 100 is "
              "`python benchmarks/bench_history.py` (or `tox -e bench -- --full history`), several minutes each")
    report: list[str] = []
    if args.only != "postgresql":
        with sqlite_url() as url, sqlite_url() as anchor_url:
            report += measure("SQLite", lambda: url, anchor_url, runs, args.findings, args.repeat)
    if args.only != "sqlite":
        from tests.fixture_scripts import load_fixture_script  # the scripts the tests use

        pg = load_fixture_script("dashboard/pg_server.py", "aisp_pg_server")
        if pg.find_bindir() is None or importlib.util.find_spec("psycopg") is None:
            report.append(f"PostgreSQL: not measured (needs {pg.INSTALL_LINE} and pip install "
                          '"pytest-aisp[postgresql]")')
        else:
            with pg.throwaway_postgres(durable=True) as server:
                report += measure("PostgreSQL", lambda: server.create_database("bench"),
                                  server.create_database("anchor"), runs, args.findings, args.repeat)
                per_writer = max(10, runs // (10 * args.writers))
                result = concurrent_ingest(server.create_database("concurrent"), args.writers, per_writer,
                                           args.findings)
                ok = (result["failed"] == 0 and result["runs"] == result["expected"]
                      and result["findings"] == result["expected_findings"]
                      and result["shared_shards"] == result["expected_shards"] and result["half_written"] == 0
                      and result["deadlocks"] == 0)
                report.append(
                    f"PostgreSQL, {args.writers} concurrent ingesting processes x {per_writer} runs (+ a shard of a "
                    f"shared run after each): {result['seconds']:.1f} s, "
                    f"{result['runs']}/{result['expected']} runs, {result['findings']}/{result['expected_findings']} "
                    f"findings, {result['shared_shards']}/{result['expected_shards']} shards, "
                    f"{result['half_written']} half-written, {result['failed']} failed processes, "
                    f"{result['deadlocks']} deadlocks: {'ok' if ok else 'FAILED'}")
                if not ok:
                    print("\n".join(report))
                    return 1
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
