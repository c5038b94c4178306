"""GitHub Actions: workflow-command annotations and a Markdown job summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from pytest_aisp.findings import Severity, escape_control
from pytest_aisp.reporters.entries import ReportedFinding

COMMAND: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "notice",
    Severity.INFO: "notice",
}


def escape_data(text: str) -> str:
    """Escape a workflow-command message as GitHub's runner expects (other control characters shown
    as ``\\xNN``, so a name read from a file cannot inject a second command)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return escape_control(text)


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(entry: ReportedFinding) -> str:
    """``::error file=...,line=...,title=RULE::message`` for one finding (``::notice`` when expected)."""
    finding = entry.finding
    props = []
    if entry.path:
        props.append(f"file={escape_property(entry.path)}")
    if entry.line:
        props.append(f"line={entry.line}")
    title = finding.rule_id + (" (expected)" if entry.is_expected else "")
    props.append(f"title={escape_property(title)}")
    where = f" ({finding.location})" if finding.location else ""
    command = "notice" if entry.is_expected else COMMAND[finding.severity]
    return f"::{command} {','.join(props)}::{escape_data(finding.message + where)}"


def is_github_actions(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS", "").lower() == "true"


def annotations(entries: Iterable[ReportedFinding], expected: str = "omit") -> list[str]:
    """The workflow commands for ``entries``: none for accepted findings, and for expected ones only
    with ``expected="note"`` (as notices)."""
    return [annotation(e) for e in entries
            if not e.accepted and not (e.is_expected and expected != "note")]


def write_annotations(entries: Iterable[ReportedFinding], out: TextIO, expected: str = "omit") -> None:
    for line in annotations(entries, expected):
        out.write(line + "\n")


def summary_markdown(entries: Sequence[ReportedFinding]) -> str:
    """A job-summary Markdown section: counts per severity and a table of findings."""
    shown = [e for e in entries if not e.accepted and not e.is_expected]
    accepted = sum(1 for e in entries if e.accepted)
    expected = sum(1 for e in entries if e.is_expected and not e.accepted)
    counts = Counter(e.finding.severity for e in shown)
    lines = ["## pytest-aisp findings", ""]
    totals = ", ".join(f"{counts[s]} {s.value}" for s in sorted(Severity, reverse=True) if counts[s])
    lines.append(f"{len(shown)} findings ({totals or 'none'}); {accepted} accepted by the baseline; "
                 f"{expected} expected (xfailed or negative tests).")
    if shown:
        lines += ["", "| severity | rule | test | location | message |", "|---|---|---|---|---|"]
        for e in sorted(shown, key=lambda e: (-e.finding.severity.rank, e.finding.rule_id)):
            cells = (e.finding.severity.value, e.finding.rule_id, e.nodeid or "", e.finding.location,
                     e.finding.message)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A Markdown table cell: pipes, HTML and control characters escaped, one line, at most 300 characters."""
    text = escape_control(text, keep_newlines=False)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|")[:300]


def append_summary(path: Path, entries: Sequence[ReportedFinding]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(summary_markdown(entries))
