"""``aisp history ingest`` and ``aisp dashboard``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pytest_aisp.findings import AispError

DEFAULT_DB = ".aisp/history.db"


def register(subparsers: argparse._SubParsersAction) -> None:
    history = subparsers.add_parser("history", help="the run history the dashboard reads")
    actions = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    ingest = actions.add_parser("ingest", help="record report folders (aisp-findings.json or *.sarif) as one run")
    ingest.add_argument("report_dirs", type=Path, nargs="+", metavar="REPORT_DIR")
    ingest.add_argument("--db", default=DEFAULT_DB, help=f"history database (default {DEFAULT_DB})")
    ingest.add_argument("--run-id", help="run key shared by the shards of one run (default: from CI variables)")
    ingest.set_defaults(func=history_ingest)

    dashboard = subparsers.add_parser("dashboard", help="serve the security dashboard")
    dashboard.add_argument("--db", default=DEFAULT_DB, help=f"history database (default {DEFAULT_DB})")
    dashboard.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT (default 127.0.0.1:8765)")
    dashboard.add_argument("--baseline", type=Path, default=Path("aisp-baseline.json"),
                           help="baseline file triage writes (default aisp-baseline.json)")
    dashboard.add_argument("--root", type=Path, default=Path("."), help="project root for aisp.toml")
    dashboard.set_defaults(func=serve_dashboard)


def history_ingest(args: argparse.Namespace) -> int:
    from pytest_aisp.dashboard.ingest import record_from_report_dir, run_info
    from pytest_aisp.dashboard.store import open_store

    info = run_info(Path("."), run_key=args.run_id)
    info = type(info)(**{**info.__dict__, "source": "ingest"})
    with open_store(args.db) as store:
        for folder in args.report_dirs:
            if not folder.is_dir():
                raise AispError(f"{folder} is not a folder of reports")
            run_id = store.record(record_from_report_dir(folder, info))
    print(f"aisp: recorded {len(args.report_dirs)} report folder(s) as run {run_id} in {args.db}", file=sys.stderr)
    return 0


def serve_dashboard(args: argparse.Namespace) -> int:
    from pytest_aisp.dashboard.app import DashboardConfig, create_app
    from pytest_aisp.dashboard.store import open_store
    from pytest_aisp.serving import parse_listen, run_server

    host, port = parse_listen(args.listen)
    open_store(args.db).close()  # a corrupt or newer database fails here, before serving
    token = os.environ.get("AISP_DASHBOARD_TOKEN") or None
    app = create_app(DashboardConfig(args.db, args.baseline, args.root.resolve(), token))
    mode = "read-write" if token else "read-only (set AISP_DASHBOARD_TOKEN to triage and configure)"
    print(f"aisp: dashboard on http://{host}:{port}/ ({mode})", file=sys.stderr)
    run_server(app, host, port, extra="dashboard")
    return 0
