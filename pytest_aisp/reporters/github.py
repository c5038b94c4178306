"""GitHub Actions: workflow-command annotations and a Markdown job summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from pytest_aisp.findings import Severity
from pytest_aisp.reporters.entries import ReportedFinding

COMMAND: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "notice",
    Severity.INFO: "notice",
}


def escape_data(text: str) -> str:
    """Escape a workflow-command message as GitHub's runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(entry: ReportedFinding) -> str:
    """``::error file=...,line=...,title=RULE::message`` for one finding."""
    finding = entry.finding
    props = []
    if entry.path:
        props.append(f"file={escape_property(entry.path)}")
    if entry.line:
        props.append(f"line={entry.line}")
    props.append(f"title={escape_property(finding.rule_id)}")
    where = f" ({finding.location})" if finding.location else ""
    return f"::{COMMAND[finding.severity]} {','.join(props)}::{escape_data(finding.message + where)}"


def is_github_actions(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS", "").lower() == "true"


def write_annotations(entries: Iterable[ReportedFinding], out: TextIO) -> None:
    for entry in entries:
        if not entry.accepted:
            out.write(annotation(entry) + "\n")


def summary_markdown(entries: Sequence[ReportedFinding]) -> str:
    """A job-summary Markdown section: counts per severity and a table of findings."""
    shown = [e for e in entries if not e.accepted]
    accepted = len(entries) - len(shown)
    counts = Counter(e.finding.severity for e in shown)
    lines = ["## pytest-aisp findings", ""]
    totals = ", ".join(f"{counts[s]} {s.value}" for s in sorted(Severity, reverse=True) if counts[s])
    lines.append(f"{len(shown)} findings ({totals or 'none'}); {accepted} accepted by the baseline.")
    if shown:
        lines += ["", "| severity | rule | test | location | message |", "|---|---|---|---|---|"]
        for e in sorted(shown, key=lambda e: (-e.finding.severity.rank, e.finding.rule_id)):
            cells = (e.finding.severity.value, e.finding.rule_id, e.nodeid or "", e.finding.location,
                     e.finding.message)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def append_summary(path: Path, entries: Sequence[ReportedFinding]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(summary_markdown(entries))
