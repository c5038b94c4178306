"""What every report is made from: a finding with the test and place it came from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_aisp.findings import Finding


@dataclass(frozen=True)
class ReportedFinding:
    """A finding as the reports see it.

    ``nodeid`` is the pytest test (None for CLI runs); ``path`` and ``line`` the place a report
    points at (the test file and line, or the artifact path with no line); ``accepted`` is True
    when a baseline entry accepts it (reports then leave it out or mark it).
    """

    finding: Finding
    nodeid: str | None = None
    path: str | None = None
    line: int | None = None
    accepted: bool = False
    outcome: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.nodeid,
            "path": self.path,
            "line": self.line,
            "accepted": self.accepted,
            "outcome": self.outcome,
            "finding": self.finding.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportedFinding:
        return cls(
            finding=Finding.from_dict(data["finding"]),
            nodeid=data.get("test"),
            path=data.get("path"),
            line=data.get("line"),
            accepted=bool(data.get("accepted", False)),
            outcome=str(data.get("outcome", "")),
        )


def from_cli(findings: Iterable[Finding]) -> list[ReportedFinding]:
    """Entries for findings of a CLI run: each points at the artifact path its location starts with."""
    return [ReportedFinding(finding=f, path=artifact_path(f.location) or None) for f in findings]


def artifact_path(location: str) -> str:
    """The file part of a location: ``model.pt:archive/data.pkl`` -> ``model.pt``; URLs are kept whole."""
    if "://" in location:
        return ""
    head = location.split(":", 1)[0] if ":" in location and not _is_windows_drive(location) else location
    return head.strip()


def _is_windows_drive(location: str) -> bool:
    return len(location) > 2 and location[1] == ":" and location[2] in "\\/"
