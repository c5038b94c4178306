"""What every ``aisp`` subcommand does with its findings: render text, JSON or SARIF, write it, pick the exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.reporters.entries import from_cli
from pytest_aisp.reporters.sarif import build_sarif
from pytest_aisp.verdict import decide

FORMATS = ("text", "json", "sarif")
EXIT_OK, EXIT_FINDINGS = 0, 1


def render(fmt: str, findings: Sequence[Finding], *, json_body: Callable[[], Mapping[str, Any]],
           text: Callable[[], str]) -> str:
    """The report in ``fmt``: ``text()``, ``json_body()`` as JSON, or a SARIF log of ``findings``."""
    if fmt == "json":
        return json.dumps(json_body(), indent=2)
    if fmt == "sarif":
        return json.dumps(build_sarif(from_cli(findings)), indent=2)
    if fmt == "text":
        return text()
    raise AispError(f"unknown output format {fmt!r}; use one of: {', '.join(FORMATS)}")


def emit(text: str, output: Path | str | None = None) -> None:
    """Print ``text``, or write it to ``output`` (its folder created)."""
    if output is None:
        sys.stdout.write(text + "\n")
        return
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise AispError(f"cannot write {path}: {exc.strerror or exc}") from None


def exit_code(findings: Sequence[Finding], fail_on: Severity | str | None) -> int:
    """1 when a finding reaches ``fail_on`` (the same verdict as the ``assert_*`` helpers), else 0."""
    return EXIT_FINDINGS if decide(findings, fail_on=fail_on, nodeid="").failing else EXIT_OK
