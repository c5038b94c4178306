"""``aisp llm probe`` and ``aisp llm list``: LLM endpoint probing without pytest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_aisp.findings import SEVERITY_NAMES, AispError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aisp llm probe`` and ``aisp llm list``."""
    llm = subparsers.add_parser("llm", help="probe an LLM endpoint for injection, jailbreaks and leaks")
    commands = llm.add_subparsers(dest="llm_command", metavar="COMMAND", parser_class=type(llm))

    probe = commands.add_parser("probe", help="run probes against an endpoint and report findings")
    probe.add_argument("--endpoint", required=True, help="chat URL, e.g. http://127.0.0.1:8000/v1/chat/completions")
    probe.add_argument("--api", choices=("openai", "rest"), default="openai")
    probe.add_argument("--probes", nargs="+", default=["all"], metavar="NAME",
                       help="families (injection, jailbreak ...), probe names, or all (default)")
    probe.add_argument("--attempts", type=int, default=3, help="attempts per probe (default 3)")
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--model", default="default", help="model name sent to an openai endpoint")
    probe.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                       help="extra header; ${ENV_VAR} in VALUE is read from the environment")
    probe.add_argument("--request-template", help="rest: JSON body with $INPUT, $SYSTEM, $SESSION, $HISTORY")
    probe.add_argument("--response-path", help="rest: where the answer is, e.g. $.reply.text")
    probe.add_argument("--session", choices=("history", "user", "header", "cookie"), default="history",
                       help="how conversations are kept apart (default: history)")
    probe.add_argument("--session-header", default="X-Session-Id")
    probe.add_argument("--session-cookie", default="session")
    probe.add_argument("--canary", action="append", default=[], help="a canary planted in the server's prompt")
    probe.add_argument("--secret", action="append", default=[],
                       help="a string that must never appear in answers (${ENV_VAR} allowed)")
    probe.add_argument("--concurrency", type=int, default=8)
    probe.add_argument("--timeout", type=float, default=30.0)
    probe.add_argument("--retries", type=int, default=3)
    probe.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    probe.add_argument("--output", type=Path, help="write the report here instead of stdout")
    probe.add_argument("--fail-on", choices=SEVERITY_NAMES, default="medium",
                       help="lowest severity that makes the exit code 1 (default medium)")
    probe.set_defaults(func=run_probe)

    listing = commands.add_parser("list", help="list the probes, their families and OWASP ids")
    listing.set_defaults(func=run_list)
    llm.set_defaults(func=lambda args: _usage(llm))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise AispError(f"--header wants 'Name: value', got {value.split(':')[0]!r}...")
        headers[name.strip()] = rest.strip()
    return headers


def run_probe(args: argparse.Namespace) -> int:
    from pytest_aisp.llm.endpoint import LLMEndpoint
    from pytest_aisp.llm.probing import probe_llm

    options: dict[str, Any] = {
        "url": args.endpoint, "api": args.api, "model": args.model, "headers": _headers(args.header),
        "session": args.session, "session_header": args.session_header, "session_cookie": args.session_cookie,
        "canaries": tuple(args.canary), "secrets": tuple(args.secret), "concurrency": args.concurrency,
        "timeout": args.timeout, "retries": args.retries,
    }
    if args.api == "rest":
        options["request_template"] = args.request_template or '{"message": "$INPUT"}'
        options["response_path"] = args.response_path or ""
    elif args.response_path:
        options["response_path"] = args.response_path
    endpoint = LLMEndpoint(**options)
    result = probe_llm(endpoint, args.probes, attempts=args.attempts, seed=args.seed)
    from pytest_aisp.reporters.cli_output import emit, exit_code, render

    emit(render(args.format, result.findings, json_body=result.to_dict, text=lambda: render_text(result)),
         args.output)
    return exit_code(result.findings, args.fail_on)


def render_text(result: Any) -> str:
    """A plain-text report: one line per probe, then the findings with their smallest transcript."""
    lines = [f"aisp llm probe {result.endpoint}: {result.attempts} attempts, {result.requests} requests, "
             f"{result.seconds:.1f} s, attack success {result.attack_success_rate:.0%}, "
             f"false positives on controls {result.false_positive_rate:.0%}"]
    for family, stats in result.by_family().items():
        hits = sum(s.hits for s in stats)
        attempts = sum(s.attempts for s in stats)
        lines.append(f"  {family:<20} {hits:>3}/{attempts:<3} hits  {stats[0].owasp}")
        lines.extend(f"    {s.summary()}" for s in stats if s.hits or s.inapplicable)
    if result.findings:
        lines.append("findings:")
        for finding in result.findings:
            lines.append("  " + finding.one_line())
            transcript = finding.evidence.get("transcript", "")
            lines.extend("      " + line for line in transcript.splitlines()[:8])
    else:
        lines.append("no findings")
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> int:
    from pytest_aisp.llm.catalogue import FAMILIES, PROBES

    for name, family in FAMILIES.items():
        print(f"{name}  {family.rule_id}  {family.owasp}  [{family.severity}]")
        for probe in PROBES.values():
            if probe.family == name:
                print(f"    {probe.name:<36} {probe.description}")
    return 0
