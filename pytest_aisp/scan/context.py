"""The state one file's scan carries while it walks containers: findings, bytes read, depth, limits."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import Finding, Severity
from pytest_aisp.scan.policy import ScanPolicy
from pytest_aisp.scan.rules import LIMIT, RULES_BY_ID, UNSCANNABLE

# Evidence strings are cut to this many characters: findings stay small in every report.
EVIDENCE_CHARS = 200
# Name given to ``scan_nested`` for a value a later ``pickle.loads`` reads: one stream, the rest ignored.
LOADS_NAME = "<pickle.loads>"


# Control characters (terminal escapes, carriage returns, bidi overrides) in names read from a file.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def short(text: str, limit: int = EVIDENCE_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\x1b``): a name read from a hostile file
    must not move the cursor, clear a line or reorder text in a terminal or a report."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


@dataclass
class ScanContext:
    """Mutable state of one top-level file's scan (never shared between files)."""

    path: Path
    policy: ScanPolicy
    findings: list[Finding] = field(default_factory=list)
    bytes_read: int = 0
    members: int = 0
    formats: list[str] = field(default_factory=list)
    # Set by the engine: scan ``data`` (a member or decompressed stream) found at ``location``.
    nested: Callable[[ScanContext, Any, str, int, str], str] | None = None
    # Payloads carried as data: the byte budget shared by the whole file, and how many decoding
    # layers and pickle stages lie between the file and what this context scans.
    data_budget: Any = None
    data_depth: int = 0

    @property
    def limits(self) -> Any:
        return self.policy.limits

    def add(self, rule_id: str, message: str, location: str, evidence: dict[str, Any] | None = None,
            severity: Severity | str | None = None) -> None:
        """Add a finding of ``rule_id`` (at its default severity unless one is given)."""
        rule = RULES_BY_ID[rule_id]
        evidence = {k: (printable(short(v)) if isinstance(v, str) else v) for k, v in (evidence or {}).items()}
        finding = Finding(rule_id=rule_id, severity=Severity.parse(severity or rule.severity),
                          message=printable(message), location=printable(location), evidence=evidence)
        if finding not in self.findings:
            self.findings.append(finding)

    def unscannable(self, location: str, why: str, **evidence: Any) -> None:
        """Fail closed: record that ``location`` was not checked, and why."""
        self.add(UNSCANNABLE, f"unscannable: {why}", location, {"reason": why, **evidence})

    def limit(self, location: str, what: str, **evidence: Any) -> None:
        """Record that a limit stopped the scan of ``location``."""
        self.add(LIMIT, f"scan limit reached: {what}; the rest was not checked", location,
                 {"limit": what, **evidence})

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        """Work on bytes already counted as read from the file (a member, a decompressed stream):
        ``bytes_read`` counts bytes of the file, so what happens inside adds nothing."""
        before = self.bytes_read
        try:
            yield
        finally:
            self.bytes_read = before

    def scan_nested(self, data: Any, location: str, depth: int, name_hint: str = "") -> str:
        """Scan ``data`` as an artifact of its own (a container member); return its format."""
        if depth > self.limits.max_container_depth:
            self.limit(location, f"containers nested deeper than {self.limits.max_container_depth}")
            return "nested"
        assert self.nested is not None
        with self.counted():
            return self.nested(self, data, location, depth, name_hint)
