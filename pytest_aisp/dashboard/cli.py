"""``aisp history ingest`` and ``aisp dashboard``.

Both read the project's configuration like every other entry point: the history URL defaults to
``history`` (``--aisp-history``'s key / ``AISP_HISTORY``), and the dashboard's own settings come from its
flags, then ``AISP_DASHBOARD_*`` variables, then ``[tool.aisp.dashboard]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError

DEFAULT_DB = ".aisp/history.db"
DEFAULT_LISTEN = "127.0.0.1:8765"
DEFAULT_BASELINE = "aisp-baseline.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    history = subparsers.add_parser("history", help="the run history the dashboard reads")
    actions = history.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    ingest = actions.add_parser("ingest", help="record report folders (aisp-findings.json or *.sarif) as one run")
    ingest.add_argument("report_dirs", type=Path, nargs="+", metavar="REPORT_DIR")
    ingest.add_argument("--db", help=f"history: a path, sqlite:/// or postgresql:// URL (default: the configured "
                                     f"history, else {DEFAULT_DB})")
    ingest.add_argument("--run-id", help="run key shared by the shards of one run (default: from CI variables)")
    ingest.add_argument("--project", help="project (repository) of the run (default: AISP_PROJECT, the CI's "
                                          "repository variable, the origin remote, the folder name)")
    ingest.add_argument("--branch", help="branch of the run (default: from CI variables or git)")
    ingest.set_defaults(func=history_ingest)

    dashboard = subparsers.add_parser("dashboard", help="serve the security dashboard")
    dashboard.add_argument("--db", help=f"history: a path, sqlite:/// or postgresql:// URL (default: the "
                                        f"configured history, else {DEFAULT_DB})")
    dashboard.add_argument("--listen", help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    dashboard.add_argument("--baseline", type=Path, help=f"baseline file triage writes (default {DEFAULT_BASELINE})")
    dashboard.add_argument("--baseline-dir", type=Path,
                           help="write each project's triage to DIR/<project>/aisp-baseline.json instead")
    dashboard.add_argument("--root", type=Path, default=None, help="project root for aisp.toml (default: the "
                                                                   "project above the working directory)")
    dashboard.add_argument("--root-path", help="path prefix a reverse proxy serves the dashboard under (/aisp)")
    dashboard.add_argument("--trusted-proxy", action="append", metavar="ADDRESS",
                           help="address or network of a reverse proxy whose identity header is believed "
                                "(repeat or comma-separate)")
    dashboard.add_argument("--user-header", help="identity header the trusted proxy sets (default X-Forwarded-User)")
    dashboard.set_defaults(func=serve_dashboard)


def _pick(flag: Any, env: str, table: Mapping[str, Any], key: str, default: Any) -> Any:
    """Flag > environment variable > [tool.aisp.dashboard] key > default."""
    if flag not in (None, "", []):
        return flag
    if os.environ.get(env):
        return os.environ[env]
    if table.get(key) not in (None, "", []):
        return table[key]
    return default


def _history_url(flag: str | None, settings: Any) -> str:
    """``--db`` as given (relative to the working directory), else the configured history (relative to the
    project root, as pytest reads it), else ``.aisp/history.db`` at the project root."""
    if flag:
        return flag
    url = settings.history or DEFAULT_DB
    return url if "://" in url else str(settings.resolve(Path(url)))


def history_ingest(args: argparse.Namespace) -> int:
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.dashboard.db import redact_url
    from pytest_aisp.dashboard.ingest import record_from_report_dir, run_info
    from pytest_aisp.dashboard.store import open_store

    settings = settings_for_cli()
    url = _history_url(args.db, settings)
    info = run_info(Path("."), run_key=args.run_id)
    changes: dict[str, Any] = {"source": "ingest"}
    if args.project:
        changes["project"] = args.project
    if args.branch:
        changes["branch"] = args.branch
    info = type(info)(**{**info.__dict__, **changes})
    for folder in args.report_dirs:
        if not folder.is_dir():
            raise AispError(f"{folder} is not a folder of reports")
    records = [record_from_report_dir(folder, info) for folder in args.report_dirs]
    with open_store(url) as store:
        for record in records:
            run_id = store.record(record)
    print(f"aisp: recorded {len(args.report_dirs)} report folder(s) as run {run_id} of {info.project or '-'} "
          f"{info.branch} in {redact_url(url)}", file=sys.stderr)
    return 0


def dashboard_config(args: argparse.Namespace) -> tuple[Any, str]:
    """The dashboard's configuration from its flags, the environment and ``[tool.aisp.dashboard]``."""
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.dashboard.access import DEFAULT_USER_HEADER, parse_proxies
    from pytest_aisp.dashboard.app import DashboardConfig, normalize_root_path
    from pytest_aisp.dashboard.metric_catalog import catalog_from_config

    settings = settings_for_cli(start=args.root)
    table = settings.section("dashboard")
    root = (args.root or settings.rootdir).resolve()
    listen = str(_pick(args.listen, "AISP_DASHBOARD_LISTEN", table, "listen", DEFAULT_LISTEN))
    baseline = Path(_pick(args.baseline, "AISP_DASHBOARD_BASELINE", table, "baseline", DEFAULT_BASELINE))
    baseline_dir = _pick(args.baseline_dir, "AISP_DASHBOARD_BASELINE_DIR", table, "baseline_dir", None)
    proxies = _pick(args.trusted_proxy, "AISP_DASHBOARD_TRUSTED_PROXIES", table, "trusted_proxies", [])
    proxy_list = proxies.split(",") if isinstance(proxies, str) else [p for item in proxies for p in
                                                                      str(item).split(",")]
    metrics = table.get("metrics", {})
    if not isinstance(metrics, Mapping):
        raise AispError("[tool.aisp.dashboard] metrics must be a table of metric names")
    config = DashboardConfig(
        db_url=_history_url(args.db, settings),
        baseline_path=baseline if baseline.is_absolute() else root / baseline,
        project_root=root,
        token=os.environ.get("AISP_DASHBOARD_TOKEN") or None,
        baseline_dir=None if baseline_dir is None else (root / Path(baseline_dir)),
        trusted_proxies=parse_proxies(proxy_list),
        user_header=str(_pick(args.user_header, "AISP_DASHBOARD_USER_HEADER", table, "user_header",
                              DEFAULT_USER_HEADER)),
        root_path=normalize_root_path(str(_pick(args.root_path, "AISP_DASHBOARD_ROOT_PATH", table, "root_path", ""))),
        catalog=catalog_from_config(metrics),
    )
    return config, listen


def serve_dashboard(args: argparse.Namespace) -> int:
    from pytest_aisp.dashboard.app import create_app
    from pytest_aisp.dashboard.store import open_store
    from pytest_aisp.serving import parse_listen, run_server

    config, listen = dashboard_config(args)
    host, port = parse_listen(listen)
    with open_store(config.db_url) as store:  # a corrupt, foreign or newer database fails here, before serving
        shown = store.shown
    app = create_app(config)
    if config.trusted_proxies:
        mode = (f"read-write for users named by {config.user_header} from "
                f"{', '.join(str(p) for p in config.trusted_proxies)}"
                + (" or holding the token" if config.token else ""))
    elif config.token:
        mode = "read-write with the token"
    else:
        mode = "read-only (set AISP_DASHBOARD_TOKEN to triage and configure)"
    print(f"aisp: dashboard of {shown} on http://{host}:{port}{config.root_path}/ ({mode})", file=sys.stderr)
    # The peer address decides whether an identity header is believed: uvicorn must not replace it with a
    # forwarded-for header.
    run_server(app, host, port, extra="dashboard", proxy_headers=False)
    return 0
