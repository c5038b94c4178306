"""SonarQube generic issue import, 10.3+ format: top-level ``rules`` with ``impacts``, issues without severity.

Rules carry the documented text and fix of each rule; a finding at another severity than its rule's
nominal one goes under ``RULE/severity``, as in SARIF, so SonarQube ranks it by its own severity.
Accepted findings are left out; expected findings (xfailed and negative tests) are left out by default,
or reported under ``RULE/expected`` with a LOW impact with ``expected="note"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_aisp.findings import Finding, Severity
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.findings_json import json_text, write_text_file
from pytest_aisp.reporters.sarif import (
    EXPECTED_SUFFIX,
    descriptor_severity,
    rule_name,
    rule_texts,
    rules_of,
)

ENGINE_ID = "pytest-aisp"
MAX_MESSAGE = 4000
# SonarQube 10.3 knows LOW, MEDIUM and HIGH impacts (INFO and BLOCKER came later): info maps to LOW.
IMPACT: dict[Severity, str] = {
    Severity.CRITICAL: "HIGH",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MEDIUM",
    Severity.LOW: "LOW",
    Severity.INFO: "LOW",
}


def _rule(descriptor: str, findings: list[Finding]) -> dict[str, Any]:
    rule_id, _, suffix = descriptor.partition("/")
    expected = suffix == EXPECTED_SUFFIX
    severity = descriptor_severity(descriptor, findings)
    texts = rule_texts(rule_id, severity, expected=expected)
    return {
        "id": descriptor,
        "name": f"{rule_name(descriptor)}: {texts['short']}"[:200],
        "description": texts["help_text"],
        "engineId": ENGINE_ID,
        "cleanCodeAttribute": "TRUSTWORTHY",
        "impacts": [{"softwareQuality": "SECURITY", "severity": "LOW" if expected else IMPACT[severity]}],
    }


def _issue(entry: ReportedFinding, descriptor: str) -> dict[str, Any]:
    finding = entry.finding
    message = finding.message + (f" ({finding.location})" if finding.location else "")
    location: dict[str, Any] = {"message": (message or finding.rule_id)[:MAX_MESSAGE], "filePath": entry.path or "."}
    if entry.line:
        location["textRange"] = {"startLine": max(1, entry.line)}
    return {"ruleId": descriptor, "primaryLocation": location}


def build_sonar(entries: Iterable[ReportedFinding], *, expected: str = "omit") -> dict[str, Any]:
    """The generic issue report of ``entries``."""
    reported, by_rule = rules_of(entries, expected)
    return {
        "rules": [_rule(descriptor, by_rule[descriptor]) for descriptor in sorted(by_rule)],
        "issues": [_issue(e, descriptor) for descriptor, e in reported],
    }


def write_sonar(path: Path, entries: Iterable[ReportedFinding], *, expected: str = "omit") -> None:
    write_text_file(path, json_text(build_sonar(entries, expected=expected)), what="the SonarQube report")
