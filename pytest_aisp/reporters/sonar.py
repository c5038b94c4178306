"""SonarQube generic issue import, 10.3+ format: top-level ``rules`` with ``impacts``, issues without severity."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_aisp.findings import Finding, Severity
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.sarif import rule_name

ENGINE_ID = "pytest-aisp"
IMPACT: dict[Severity, str] = {
    Severity.CRITICAL: "HIGH",
    Severity.HIGH: "HIGH",
    Severity.MEDIUM: "MEDIUM",
    Severity.LOW: "LOW",
    Severity.INFO: "LOW",
}


def _rule(rule_id: str, worst: Finding) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": rule_name(rule_id),
        "description": f"pytest-aisp rule {rule_id} ({worst.module} module); see docs/{worst.module}.md",
        "engineId": ENGINE_ID,
        "cleanCodeAttribute": "TRUSTWORTHY",
        "impacts": [{"softwareQuality": "SECURITY", "severity": IMPACT[worst.severity]}],
    }


def _issue(entry: ReportedFinding) -> dict[str, Any]:
    finding = entry.finding
    message = finding.message + (f" ({finding.location})" if finding.location else "")
    location: dict[str, Any] = {"message": message[:4000], "filePath": entry.path or "."}
    if entry.line:
        location["textRange"] = {"startLine": max(1, entry.line)}
    return {"ruleId": finding.rule_id, "primaryLocation": location}


def build_sonar(entries: Iterable[ReportedFinding]) -> dict[str, Any]:
    """The generic issue report of ``entries``; accepted (baselined) findings are left out."""
    shown = [e for e in entries if not e.accepted]
    worst: dict[str, Finding] = {}
    for entry in shown:
        current = worst.get(entry.finding.rule_id)
        if current is None or entry.finding.severity > current.severity:
            worst[entry.finding.rule_id] = entry.finding
    return {
        "rules": [_rule(rule_id, worst[rule_id]) for rule_id in sorted(worst)],
        "issues": [_issue(e) for e in shown],
    }


def write_sonar(path: Path, entries: Iterable[ReportedFinding]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_sonar(entries), indent=2) + "\n", encoding="utf-8")
