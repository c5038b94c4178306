"""``aisp scan PATH... [--format text|json|sarif] [--fail-on SEVERITY] [--policy FILE] [--output FILE]``."""

from __future__ import annotations

import argparse

from pytest_aisp.findings import SEVERITY_NAMES, AispError, Severity


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``scan`` subcommand."""
    parser = subparsers.add_parser(
        "scan", help="scan model files for unsafe code and payloads, without running them",
        description="Scan model files and directories (recursively) for pickle payloads, unsafe globals, "
                    "Keras Lambda layers, dangerous TensorFlow ops, ONNX path traversal and more. "
                    "Exit 0: nothing at or above --fail-on; 1: findings; 2: usage or read error.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="model files or directories")
    parser.add_argument("--format", choices=("text", "json", "sarif"), default="text", help="output format")
    parser.add_argument("--fail-on", default=None, metavar="SEVERITY",
                        help="lowest severity that exits 1: " + ", ".join(SEVERITY_NAMES) + " (default medium)")
    parser.add_argument("--policy", default=None, metavar="FILE",
                        help="scan policy TOML (allow/deny/limits); default: [tool.aisp.scan] of the project's "
                             "pyproject.toml or aisp.toml (found above the working directory)")
    parser.add_argument("--output", "-o", default=None, metavar="FILE", help="write the report here, not stdout")
    parser.set_defaults(func=run_scan)


def _policy(args: argparse.Namespace) -> object:
    """``--policy FILE``, else the project's configured policy (``[tool.aisp.scan]``, ``AISP_FAIL_ON`` ...),
    the same one ``scan_artifact`` and ``assert_safe_artifact`` use by default."""
    from pytest_aisp.config import SettingError, settings_for_cli
    from pytest_aisp.scan.policy import load_policy_file, policy_from_settings

    if args.policy:
        return load_policy_file(args.policy)
    try:
        settings = settings_for_cli({})
    except (SettingError, UnicodeDecodeError) as exc:
        raise AispError(f"cannot read the project's configuration: {exc}") from None
    return policy_from_settings(settings)


def run_scan(args: argparse.Namespace) -> int:
    """Scan, print the report, return 0 (clean at --fail-on) or 1 (findings)."""
    from pytest_aisp.scan.engine import scan_artifact

    try:
        fail_on = Severity.parse(args.fail_on) if args.fail_on else None
    except ValueError as exc:
        raise AispError(f"--fail-on: {exc}") from None
    result = scan_artifact(args.paths, policy=_policy(args), fail_on=fail_on)  # type: ignore[arg-type]
    from pytest_aisp.reporters.cli_output import emit, render

    emit(render(args.format, result.findings, json_body=result.to_dict, text=lambda: render_text(result)), args.output)
    return 0 if result.ok else 1


def render_text(result: object) -> str:
    """A plain report: one line per file, its findings indented, then the summary. Names read from files
    are already escaped (no terminal control characters), and so are the paths printed here."""
    from pytest_aisp.scan.context import printable

    lines = []
    for file in result.files:  # type: ignore[attr-defined]
        status = "clean" if not file.findings else f"{len(file.findings)} finding(s)"
        lines.append(f"{printable(file.path)} [{file.format}] {status} ({file.bytes_read}/{file.size} bytes read)")
        for finding in sorted(file.findings, key=lambda f: -f.severity.rank):
            lines.append(f"  {finding.one_line()}")
    summary = result.to_dict()["summary"]  # type: ignore[attr-defined]
    lines.append(f"{summary['files']} file(s), {summary['findings']} finding(s), max severity "
                 f"{summary['max_severity'] or 'none'}, {summary['bytes_read']} of {summary['bytes_total']} bytes "
                 f"read in {summary['duration_s']:.3f}s: {'OK' if summary['ok'] else 'FAIL'} "
                 f"(fail-on {summary['fail_on']})")
    return "\n".join(lines)
