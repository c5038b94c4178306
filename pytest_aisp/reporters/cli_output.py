"""What every ``aisp`` subcommand does with its findings: render text, JSON or SARIF, write it, pick the exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity, escape_control
from pytest_aisp.reporters.entries import from_cli
from pytest_aisp.reporters.findings_json import json_text, write_text_file
from pytest_aisp.reporters.sarif import build_sarif, sarif_text
from pytest_aisp.verdict import decide

FORMATS = ("text", "json", "sarif")
EXIT_OK, EXIT_FINDINGS = 0, 1


def render(fmt: str, findings: Sequence[Finding], *, json_body: Callable[[], Mapping[str, Any]],
           text: Callable[[], str]) -> str:
    """The report in ``fmt``: ``text()`` (control characters shown escaped, so names read from files
    cannot rewrite the terminal), ``json_body()`` as JSON, or a SARIF log of ``findings``."""
    if fmt == "json":
        try:
            return json_text(json_body()).rstrip("\n")
        except RecursionError:
            raise AispError("the result nests too deeply to write as JSON; use --format text or sarif") from None
    if fmt == "sarif":
        return sarif_text(build_sarif(from_cli(findings))).rstrip("\n")
    if fmt == "text":
        return escape_control(text())
    raise AispError(f"unknown output format {fmt!r}; use one of: {', '.join(FORMATS)}")


def emit(text: str, output: Path | str | None = None) -> None:
    """Print ``text``, or write it to ``output`` (in a folder that exists); ``AispError`` when ``output``
    is a directory or cannot be written."""
    if output is None:
        sys.stdout.write(text + "\n")
        return
    write_text_file(Path(output), text + "\n", what="the output", create_folders=False)


def exit_code(
    findings: Sequence[Finding], fail_on: Severity | str | None, *, default: Severity | str = "medium"
) -> int:
    """1 when a finding reaches the threshold (the same verdict as the ``assert_*`` helpers), else 0. The
    threshold is ``fail_on`` (the subcommand's flag) when given, else the configured one (``AISP_FAIL_ON`` or
    ``[tool.aisp] fail_on`` of the project), else the subcommand's ``default``."""
    if fail_on is None:
        fail_on = configured_fail_on() or default
    return EXIT_FINDINGS if decide(findings, fail_on=fail_on, nodeid="").failing else EXIT_OK


FAIL_ON_HELP = "lowest severity that makes the exit code 1 (default: AISP_FAIL_ON or [tool.aisp] fail_on, else {})"


def configured_fail_on() -> Severity | None:
    """The fail-on threshold the environment or the project's files set, or None when only the default."""
    from pytest_aisp.config import SettingError, current_settings

    try:
        settings = current_settings()
    except SettingError as exc:
        raise AispError(str(exc)) from None
    return settings.fail_on if settings.source_of("fail_on") != "default" else None
