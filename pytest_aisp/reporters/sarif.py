"""SARIF 2.1.0: one run, tool pytest-aisp, a rule per rule id, a result per (non-accepted) finding."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.reporters.entries import ReportedFinding

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS_URL = "https://github.com/pytest-aisp/pytest-aisp/blob/main/docs/{module}.md"
FINGERPRINT_KEY = "aispFinding/v1"

# GitHub code scanning reads security-severity: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, else low.
SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
LEVEL: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def fingerprint(entry: ReportedFinding) -> str:
    """A stable hash of rule id, test and location: no line numbers, so it survives edits."""
    key = "\x1f".join((entry.finding.rule_id, entry.nodeid or "", entry.finding.location))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def rule_name(rule_id: str) -> str:
    """``AISP-SCAN-PICKLE-GLOBAL`` -> ``ScanPickleGlobal`` (SARIF rule names are identifiers)."""
    parts = rule_id.split("-")[1:] if rule_id.startswith("AISP-") else rule_id.split("-")
    return "".join(p.capitalize() for p in parts if p)


def _uri(path: str) -> str:
    posix = PurePosixPath(Path(path).as_posix())
    text = str(posix)
    return text[2:] if text.startswith("./") else text


def _rule(rule_id: str, findings: Sequence[Finding]) -> dict[str, Any]:
    worst = max(f.severity for f in findings)
    module = findings[0].module
    return {
        "id": rule_id,
        "name": rule_name(rule_id),
        "shortDescription": {"text": findings[0].message.split("\n", 1)[0][:200]},
        "helpUri": DOCS_URL.format(module=module),
        "defaultConfiguration": {"level": LEVEL[worst]},
        "properties": {"security-severity": SECURITY_SEVERITY[worst], "tags": ["security", f"aisp-{module}"]},
    }


def _result(entry: ReportedFinding, rule_index: int) -> dict[str, Any]:
    finding = entry.finding
    region = {"startLine": max(1, entry.line)} if entry.line else None
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(entry.path or "."), "uriBaseId": "%SRCROOT%"}}
    if region:
        physical["region"] = region
    message = finding.message + (f" ({finding.location})" if finding.location else "")
    properties: dict[str, Any] = {
        "security-severity": SECURITY_SEVERITY[finding.severity],
        "aisp-severity": finding.severity.value,
        "aisp-location": finding.location,
    }
    if entry.nodeid:
        properties["aisp-test"] = entry.nodeid
    if finding.metrics:
        properties["aisp-metrics"] = dict(finding.metrics)
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": message},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(entry)},
        "properties": properties,
    }
    if finding.location:
        result["locations"][0]["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "resource"}]
    return result


def build_sarif(entries: Iterable[ReportedFinding], *, tool_version: str | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log of ``entries``; accepted (baselined) findings are left out."""
    from pytest_aisp import __version__

    shown = [e for e in entries if not e.accepted]
    by_rule: dict[str, list[Finding]] = {}
    for entry in shown:
        by_rule.setdefault(entry.finding.rule_id, []).append(entry.finding)
    rule_ids = sorted(by_rule)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    driver = {
        "name": "pytest-aisp",
        "version": tool_version or __version__,
        "informationUri": "https://github.com/pytest-aisp/pytest-aisp",
        "rules": [_rule(rule_id, by_rule[rule_id]) for rule_id in rule_ids],
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": driver},
            "results": [_result(e, index[e.finding.rule_id]) for e in shown],
        }],
    }


def write_sarif(path: Path, entries: Iterable[ReportedFinding]) -> None:
    """Write the SARIF log of ``entries`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_sarif(entries), indent=2) + "\n", encoding="utf-8")


def merge_sarif(documents: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One SARIF log with one run from several pytest-aisp SARIF logs (CI shards).

    Results keep their fingerprints; a result present in several shards is kept once; rule
    indexes are rebuilt against the merged rule list.
    """
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    version = None
    for number, doc in enumerate(documents):
        if not isinstance(doc, dict) or doc.get("version") != SARIF_VERSION or not isinstance(doc.get("runs"), list):
            raise AispError(f"input {number + 1} is not a SARIF {SARIF_VERSION} log")
        for run in doc["runs"]:
            driver = run.get("tool", {}).get("driver", {})
            version = version or driver.get("version")
            for rule in driver.get("rules", []):
                rules.setdefault(rule["id"], rule)
            for result in run.get("results", []):
                key = (result.get("ruleId", ""), json.dumps(result.get("partialFingerprints", {}), sort_keys=True))
                if key in seen and result.get("partialFingerprints"):
                    continue
                seen.add(key)
                results.append(dict(result))
    rule_ids = sorted(rules)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    for result in results:
        if result.get("ruleId") in index:
            result["ruleIndex"] = index[result["ruleId"]]
    from pytest_aisp import __version__

    driver = {
        "name": "pytest-aisp",
        "version": version or __version__,
        "informationUri": "https://github.com/pytest-aisp/pytest-aisp",
        "rules": [rules[r] for r in rule_ids],
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION,
            "runs": [{"tool": {"driver": driver}, "results": results}]}
