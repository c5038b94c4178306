"""``aisp monitor``: fit a reference, replay a traffic log, run the sidecar proxy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_aisp.config import read_tool_table
from pytest_aisp.findings import SEVERITY_NAMES, AispError
from pytest_aisp.reporters.cli_output import FAIL_ON_HELP

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aisp monitor fit|replay|serve``."""
    monitor = subparsers.add_parser("monitor", help="runtime monitoring: fit a reference, replay logs, sidecar")
    commands = monitor.add_subparsers(dest="monitor_command", metavar="SUBCOMMAND")
    monitor.set_defaults(func=lambda args: _usage(monitor))

    fit = commands.add_parser("fit", help="fit the reference that drift, OOD and extraction checks compare with")
    fit.add_argument("data", type=Path, help=".npy, .npz (array --key), .csv, or a .jsonl traffic log")
    fit.add_argument("--out", type=Path, required=True, help="where to write the reference (.npz)")
    fit.add_argument("--key", default="x", help="array name inside an .npz (default x)")
    fit.add_argument("--quantile", type=float, default=0.995,
                     help="held-out quantile of the Mahalanobis distance used as the OOD threshold")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(func=_fit)

    replay = commands.add_parser("replay", help="replay a JSON-lines traffic log through the detectors")
    replay.add_argument("log", type=Path)
    _monitor_options(replay)
    replay.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    replay.add_argument("--output", type=Path, help="write the report here instead of stdout")
    replay.add_argument("--fail-on", default=None, choices=SEVERITY_NAMES, help=FAIL_ON_HELP.format("medium"))
    replay.set_defaults(func=_replay)

    serve = commands.add_parser("serve", help="run a monitoring reverse proxy in front of an endpoint")
    serve.add_argument("--upstream", required=True, help="URL of the endpoint to forward to")
    serve.add_argument("--listen", default="127.0.0.1:9100", help="HOST:PORT to listen on (default 127.0.0.1:9100)")
    _monitor_options(serve)
    serve.add_argument("--features-field", help="JSON request field holding the model input")
    serve.add_argument("--prediction-field", help="JSON response field holding the model output")
    serve.add_argument("--chat", action="store_true",
                       help="an LLM endpoint: read prompts and answers from OpenAI-style or REST chat bodies")
    serve.add_argument("--alerts-log", type=Path, help="append alerts as JSON lines to this file")
    serve.add_argument("--events-log", type=Path, help="record every request as a traffic log")
    serve.add_argument("--webhook", help="POST alerts to this URL")
    serve.add_argument("--block-floods", action="store_true", help="answer 429 to clients with a rate alert")
    serve.add_argument("--harden", choices=("round", "top1"),
                       help="round or top-1 the scores returned to clients with an extraction alert")
    serve.add_argument("--shared-state", metavar="URL",
                       help="redis:// URL: keep per-client detector state there, shared by every replica "
                            "(overrides [tool.aisp.monitor.shared] url)")
    serve.set_defaults(func=_serve)


def _monitor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path,
                        help="TOML file with [tool.aisp.monitor] (default: pyproject.toml/aisp.toml here)")
    parser.add_argument("--reference", type=Path, help="reference from `aisp monitor fit` (overrides config)")
    parser.add_argument("--detectors", help="comma-separated detector names (overrides config)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def load_section(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """``[tool.aisp.monitor]`` from ``--config`` (or the current directory), with CLI overrides."""
    if args.config is not None:
        try:
            with args.config.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise AispError(f"cannot read --config {args.config}: {exc}") from None
        table = data.get("tool", {}).get("aisp", data)
        section, root = dict(table.get("monitor", {})), args.config.resolve().parent
    else:
        root = Path.cwd()
        section = dict(read_tool_table(root).get("monitor", {}))
    if args.reference is not None:
        section["reference"] = str(args.reference.resolve())
    if args.detectors:
        section["detectors"] = [n.strip() for n in args.detectors.split(",") if n.strip()]
    return section, root


def _fit(args: argparse.Namespace) -> int:
    from pytest_aisp.monitor.reference import fit_reference, load_rows

    rows = load_rows(args.data, args.key)
    reference = fit_reference(rows, quantile=args.quantile, seed=args.seed)
    reference.save(args.out)
    print(f"fitted a reference on {reference.rows} rows x {reference.dim} features "
          f"(Mahalanobis threshold {reference.threshold:.3f} at q={reference.quantile}) -> {args.out}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from pytest_aisp.monitor.config import monitor_from_config
    from pytest_aisp.monitor.traffic import replay

    section, root = load_section(args)
    monitor = monitor_from_config(section, rootdir=root, metrics=False, shared=False)
    result = replay(monitor, args.log)
    findings = list(result.findings)
    from pytest_aisp.reporters.cli_output import emit, exit_code, render

    def as_json() -> dict:
        return {"source": result.source, "events": result.events, "alerts": [a.to_dict() for a in result.alerts],
                "detector_errors": dict(result.detector_errors), "findings": [f.to_dict() for f in findings]}

    def as_text() -> str:
        lines = [f"{result.events} events, {len(result.alerts)} alerts from {result.source}"]
        lines += [f"  {a.ts:.3f} [{a.severity.value}] {a.rule_id} {a.detector} {a.client}: {a.message}"
                  for a in result.alerts]
        lines += [f"  {f.one_line()}" for f in findings if f.rule_id == "AISP-MON-UNCHECKED"]
        return "\n".join(lines)

    emit(render(args.format, findings, json_body=as_json, text=as_text), args.output)
    return exit_code(findings, args.fail_on)


def build_sidecar(args: argparse.Namespace) -> Any:
    """The monitored proxy app that ``aisp monitor serve`` runs (also used by tests)."""
    from pytest_aisp.monitor.config import monitor_from_config
    from pytest_aisp.monitor.middleware import AispMonitorMiddleware, chat_answer, chat_prompt, json_field
    from pytest_aisp.monitor.policy import ResponsePolicy
    from pytest_aisp.monitor.proxy import proxy_app
    from pytest_aisp.monitor.sinks import EventLog, JsonLinesSink, WebhookSink

    if not str(args.upstream).startswith(("http://", "https://")):
        raise AispError(f"--upstream must be an http(s) URL, got {args.upstream!r}")
    section, root = load_section(args)
    if getattr(args, "shared_state", None):
        section["shared"] = {**dict(section.get("shared") or {}), "url": args.shared_state}
        section["shared"].pop("url_env", None)
    monitor = monitor_from_config(section, rootdir=root)
    for detector in monitor.detectors:
        if getattr(detector, "shared", None) is not None:
            detector.shared.check()  # a wrong URL fails at start, not as unchecked requests later
            break
    if args.alerts_log:
        monitor.sinks.append(JsonLinesSink(args.alerts_log))
    if args.webhook:
        monitor.sinks.append(WebhookSink(args.webhook))
    policy = ResponsePolicy(block_floods=args.block_floods, harden_extraction=args.harden is not None,
                            harden=args.harden or "round")
    features = json_field(args.features_field) if args.features_field else None
    prediction = json_field(args.prediction_field) if args.prediction_field else None
    if getattr(args, "chat", False):
        features, prediction = chat_prompt, chat_answer
    return AispMonitorMiddleware(
        proxy_app(args.upstream), monitor=monitor, features=features, prediction=prediction,
        policy=policy, event_sinks=[EventLog(args.events_log)] if args.events_log else ())


def _serve(args: argparse.Namespace) -> int:
    from pytest_aisp.serving import parse_listen, run_server

    host, port = parse_listen(args.listen)
    app = build_sidecar(args)
    print(f"aisp monitor: proxying http://{host}:{port} -> {args.upstream} (metrics at /metrics)", flush=True)
    run_server(app, host, port)
    return 0
