"""What every report is made from: a finding with the test and place it came from."""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_aisp.findings import Finding
from pytest_aisp.identity import fingerprint_of, number_occurrences

# Why a finding was expected (``ReportedFinding.expected``): it was raised in an xfailed test, raised as
# an AispFailure that the (passing) test caught, or recorded in a passing test marked ``aisp_negative``.
EXPECTED_REASONS = ("xfail", "caught", "marker")


@dataclass(frozen=True)
class ReportedFinding:
    """A finding as the reports see it.

    ``nodeid`` is the pytest test (None for CLI runs); ``path`` and ``line`` the place a report
    points at (the test file and line, or the artifact path with no line); ``accepted`` is True
    when a baseline entry accepts it (reports then leave it out or mark it). ``fingerprint`` is its
    stable identity (:mod:`pytest_aisp.identity`), set when the entry is made; ``expected`` says why
    the finding was expected (one of :data:`EXPECTED_REASONS`), or is empty when it was not.
    """

    finding: Finding
    nodeid: str | None = None
    path: str | None = None
    line: int | None = None
    accepted: bool = False
    outcome: str = ""
    fingerprint: str = ""
    expected: str = ""

    @property
    def is_expected(self) -> bool:
        """True for a finding of an xfailed or negative test: never baselined, never an alert."""
        return bool(self.expected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.nodeid,
            "path": self.path,
            "line": self.line,
            "accepted": self.accepted,
            "expected": self.is_expected,
            "expected_reason": self.expected or None,
            "outcome": self.outcome,
            "fingerprint": fingerprint(self),
            "finding": self.finding.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportedFinding:
        """An entry read back; ``ValueError`` naming the field when ``data`` is not one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an entry must be an object, got {reprlib.repr(data)[:40]}")
        if "finding" not in data:
            raise ValueError("an entry needs a 'finding' object")
        for key in ("test", "path", "outcome", "fingerprint", "expected_reason"):
            if data.get(key) is not None and not isinstance(data.get(key), str):
                raise ValueError(f"an entry's '{key}' must be a string or null, got {data.get(key)!r:.40}")
        line = data.get("line")
        if line is not None and (isinstance(line, bool) or not isinstance(line, int)):
            raise ValueError(f"an entry's 'line' must be an integer or null, got {line!r:.40}")
        reason = data.get("expected_reason") or ("xfail" if data.get("expected") is True else "")
        if reason and reason not in EXPECTED_REASONS:
            raise ValueError(f"an entry's 'expected_reason' must be one of {', '.join(EXPECTED_REASONS)}, "
                             f"got {reason!r:.40}")
        return cls(
            finding=Finding.from_dict(data["finding"]),
            nodeid=data.get("test"),
            path=data.get("path"),
            line=line,
            accepted=data.get("accepted") is True,
            outcome=data.get("outcome") or "",
            fingerprint=data.get("fingerprint") or "",
            expected=reason,
        )


def fingerprint(entry: ReportedFinding) -> str:
    """The entry's stable fingerprint: the one it was given when made, else computed from its identity.

    This is the key SARIF, ``aisp report merge``, the dashboard history and the baseline share.
    Entries made by the plugin, the CLI and the report readers carry theirs, numbered when several
    findings of one test share an identity; computing one here cannot see such siblings, so call
    :func:`with_fingerprints` on a whole list instead where entries come without one.
    """
    return entry.fingerprint or fingerprint_of(entry.finding, entry.nodeid)


def with_fingerprints(entries: Sequence[ReportedFinding]) -> list[ReportedFinding]:
    """``entries`` with a fingerprint each: those without one get theirs from their identity,
    numbered in order where several share one."""
    missing = [e for e in entries if not e.fingerprint]
    if not missing:
        return list(entries)
    numbered = iter(number_occurrences((e.finding, e.nodeid) for e in missing))
    return [e if e.fingerprint else dataclasses.replace(e, fingerprint=next(numbered)) for e in entries]


def from_cli(findings: Iterable[Finding]) -> list[ReportedFinding]:
    """Entries for findings of a CLI run: each points at the artifact path its location starts with."""
    return with_fingerprints([ReportedFinding(finding=f, path=artifact_path(f.location) or None) for f in findings])


def artifact_path(location: str) -> str:
    """The file part of a location: ``model.pt:archive/data.pkl`` -> ``model.pt``; URLs are kept whole."""
    if "://" in location:
        return ""
    head = location.split(":", 1)[0] if ":" in location and not _is_windows_drive(location) else location
    return head.strip()


def _is_windows_drive(location: str) -> bool:
    return len(location) > 2 and location[1] == ":" and location[2] in "\\/"
