"""SARIF 2.1.0: one run, tool pytest-aisp, a rule per rule id (and severity), a result per finding.

What GitHub code scanning needs, besides the schema:

- every rule carries its own documented text (``shortDescription``, ``fullDescription``, ``help`` with
  the fix, ``helpUri``) and its own ``security-severity``; a finding raised at another severity than the
  rule's nominal one is reported under the sub-rule ``RULE/severity`` (GitHub reads the severity from
  the rule, never from the result);
- every result carries ``partialFingerprints.primaryLocationLineHash`` set from the finding's stable
  identity (:mod:`pytest_aisp.identity`). Without it GitHub hashes the text of the result's line,
  which is the same ``def`` line for every finding of a (parametrized) test, and merges them.

Accepted (baselined) findings are left out. Expected findings (xfailed and negative tests) are left out
by default, or reported at ``note`` level under ``RULE/expected`` with ``expected="note"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.reporters.entries import ReportedFinding, fingerprint, with_fingerprints
from pytest_aisp.reporters.findings_json import json_text, write_text_file
from pytest_aisp.reporters.rules import DOCS_URL, RuleDoc, descriptor_id, rule_doc

__all__ = ["EXPECTED_MODES", "FINGERPRINT_KEY", "build_sarif", "fingerprint", "merge_sarif", "write_sarif"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/pytest-aisp/pytest-aisp"
FINGERPRINT_KEY = "aispFinding/v2"
GITHUB_FINGERPRINT_KEY = "primaryLocationLineHash"
EXPECTED_SUFFIX = "expected"
EXPECTED_MODES = ("omit", "note")

# GitHub code scanning reads security-severity: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
# info has none: such a rule shows as a plain note, not as a security alert.
SECURITY_SEVERITY: dict[Severity, str | None] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: None,
}
LEVEL: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def rule_name(rule_id: str) -> str:
    """``AISP-SCAN-PICKLE-GLOBAL`` -> ``ScanPickleGlobal`` (SARIF rule names are identifiers);
    a sub-rule ``AISP-LLM-DATA-LEAK/critical`` -> ``LlmDataLeakCritical``."""
    rule_id = rule_id.replace("/", "-")
    parts = rule_id.split("-")[1:] if rule_id.startswith("AISP-") else rule_id.split("-")
    return "".join(p.capitalize() for p in parts if p)


def shown_entries(entries: Iterable[ReportedFinding], expected: str) -> list[ReportedFinding]:
    """What a report shows: not accepted by the baseline, and expected findings only with ``note``."""
    if expected not in EXPECTED_MODES:
        raise AispError(f"expected findings must be reported as one of {', '.join(EXPECTED_MODES)}, "
                        f"got {expected!r}")
    return [e for e in with_fingerprints(list(entries))
            if not e.accepted and not (e.is_expected and expected == "omit")]


def report_rule(entry: ReportedFinding, nominal: Mapping[str, Severity] | None = None) -> str:
    """The rule ``entry`` is reported under: ``RULE``, ``RULE/severity`` or ``RULE/expected``.

    ``nominal`` gives the severity of rules the docs do not describe (the worst seen in the run).
    """
    rule_id = entry.finding.rule_id
    if entry.is_expected:
        return f"{rule_id}/{EXPECTED_SUFFIX}"
    if rule_doc(rule_id) is None and nominal and nominal.get(rule_id) not in (None, entry.finding.severity):
        return f"{rule_id}/{entry.finding.severity.value}"
    return descriptor_id(rule_id, entry.finding.severity)


def rules_of(
    entries: Iterable[ReportedFinding], expected: str
) -> tuple[list[tuple[str, ReportedFinding]], dict[str, list[Finding]]]:
    """The entries a report shows, each with the rule it goes under, and each rule's findings: what SARIF
    and SonarQube both build their rules and results from."""
    shown = shown_entries(entries, expected)
    nominal = undocumented_nominals(shown)
    reported = [(report_rule(e, nominal), e) for e in shown]
    by_rule: dict[str, list[Finding]] = {}
    for descriptor, entry in reported:
        by_rule.setdefault(descriptor, []).append(entry.finding)
    return reported, by_rule


def undocumented_nominals(entries: Iterable[ReportedFinding]) -> dict[str, Severity]:
    """For rules the docs do not describe: the worst severity seen, used as their nominal one."""
    worst: dict[str, Severity] = {}
    for entry in entries:
        rule_id = entry.finding.rule_id
        if rule_doc(rule_id) is None and not entry.is_expected:
            worst[rule_id] = max(worst.get(rule_id, entry.finding.severity), entry.finding.severity)
    return worst


def descriptor_severity(descriptor: str, findings: Sequence[Finding]) -> Severity:
    """The severity a reported rule stands for: its suffix, else its documented nominal severity."""
    rule_id, _, suffix = descriptor.partition("/")
    if suffix and suffix != EXPECTED_SUFFIX:
        return Severity.parse(suffix)
    doc = rule_doc(rule_id)
    if doc is not None and not suffix:
        return doc.nominal
    return max(f.severity for f in findings)


def rule_texts(rule_id: str, severity: Severity, *, expected: bool = False) -> dict[str, str]:
    """The human text of a rule: short and full description, help as text and Markdown, help URI."""
    doc = rule_doc(rule_id)
    if doc is None:
        module = rule_id.split("-")[1].lower() if rule_id.startswith("AISP-") and rule_id.count("-") >= 2 else ""
        uri = DOCS_URL.format(page=module) if module else INFORMATION_URI
        short = f"pytest-aisp rule {rule_id}"
        full = (f"{rule_id} is not described in pytest-aisp's rule tables; the finding's message says what "
                "was found.")
        fix = "See the finding's message and evidence."
    else:
        uri, short, full, fix = doc.help_uri, _first_sentence(doc.meaning), _full(doc), doc.fix
    note = (" Raised in an xfailed or negative test, where the finding was expected; it is not an alert."
            if expected else "")
    return {
        "short": short + (" (expected)" if expected else ""),
        "full": full + note,
        "help_text": f"{full}{note}\n\nHow to fix: {fix}\n\nSeverity: {severity.value}. Rule table: {uri}",
        "help_markdown": (f"**{rule_id}** ({severity.value}): {_md(full)}{note}\n\n**How to fix:** {_md(fix)}\n\n"
                          f"See the [rule table]({uri})."),
        "uri": uri,
    }


def _full(doc: RuleDoc) -> str:
    text = _plain(doc.meaning)
    text = text[0].upper() + text[1:] if text else text
    if not text.endswith("."):
        text += "."
    return text + (f" {_plain(doc.extra)}." if doc.extra else "")


def _first_sentence(text: str, limit: int = 200) -> str:
    plain = _plain(text)
    for stop in (". ", "; "):
        if stop in plain:
            plain = plain.split(stop, 1)[0]
    if len(plain) > limit:
        plain = plain[:limit].rsplit(" ", 1)[0] + " ..."
    return plain[0].upper() + plain[1:] if plain else plain


def _plain(markdown: str) -> str:
    return markdown.replace("`", "").strip().rstrip(".")


def _md(markdown: str) -> str:
    return markdown.strip()


def _descriptor(descriptor: str, findings: Sequence[Finding]) -> dict[str, Any]:
    rule_id, _, suffix = descriptor.partition("/")
    expected = suffix == EXPECTED_SUFFIX
    severity = descriptor_severity(descriptor, findings)
    texts = rule_texts(rule_id, severity, expected=expected)
    module = findings[0].module
    properties: dict[str, Any] = {"tags": ["security", f"aisp-{module}"] + (["aisp-expected"] if expected else [])}
    security = None if expected else SECURITY_SEVERITY[severity]
    if security is not None:
        properties["security-severity"] = security
    return {
        "id": descriptor,
        "name": rule_name(descriptor),
        "shortDescription": {"text": texts["short"]},
        "fullDescription": {"text": texts["full"]},
        "help": {"text": texts["help_text"], "markdown": texts["help_markdown"]},
        "helpUri": texts["uri"],
        "defaultConfiguration": {"level": "note" if expected else LEVEL[severity]},
        "properties": properties,
    }


def _uri(path: str) -> tuple[str, bool]:
    """(URI, relative?) of a report path: relative POSIX paths stay relative (to ``%SRCROOT%``)."""
    candidate = Path(path)
    if candidate.is_absolute():
        return candidate.as_uri(), False
    text = str(PurePosixPath(candidate.as_posix()))
    return (text[2:] if text.startswith("./") else text), True


def _result(entry: ReportedFinding, descriptor: str, rule_index: int) -> dict[str, Any]:
    finding = entry.finding
    uri, relative = _uri(entry.path or ".")
    artifact: dict[str, Any] = {"uri": uri}
    if relative:
        artifact["uriBaseId"] = "%SRCROOT%"
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if entry.line:
        physical["region"] = {"startLine": max(1, entry.line)}
    message = finding.message + (f" ({finding.location})" if finding.location else "")
    data = finding.to_dict()
    properties: dict[str, Any] = {
        "aisp-rule": finding.rule_id,
        "aisp-severity": finding.severity.value,
        "aisp-location": finding.location,
    }
    if not entry.is_expected and SECURITY_SEVERITY[finding.severity] is not None:
        properties["security-severity"] = SECURITY_SEVERITY[finding.severity]
    if entry.nodeid:
        properties["aisp-test"] = entry.nodeid
    if entry.is_expected:
        properties["aisp-expected"] = entry.expected
    if data["metrics"]:
        properties["aisp-metrics"] = data["metrics"]
    key = fingerprint(entry)
    result: dict[str, Any] = {
        "ruleId": descriptor,
        "ruleIndex": rule_index,
        "level": "note" if entry.is_expected else LEVEL[finding.severity],
        "message": {"text": message or finding.rule_id},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {FINGERPRINT_KEY: key, GITHUB_FINGERPRINT_KEY: key},
        "properties": properties,
    }
    if finding.location:
        result["locations"][0]["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "resource"}]
    return result


def build_sarif(
    entries: Iterable[ReportedFinding], *, expected: str = "omit", tool_version: str | None = None
) -> dict[str, Any]:
    """A SARIF 2.1.0 log of ``entries``: accepted findings left out, expected ones per ``expected``."""
    from pytest_aisp import __version__

    reported, by_rule = rules_of(entries, expected)
    rule_ids = sorted(by_rule)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    driver = {
        "name": "pytest-aisp",
        "version": tool_version or __version__,
        "informationUri": INFORMATION_URI,
        "rules": [_descriptor(rule_id, by_rule[rule_id]) for rule_id in rule_ids],
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": driver},
            "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the pytest rootdir"}}},
            "results": [_result(e, descriptor, index[descriptor]) for descriptor, e in reported],
        }],
    }


def sarif_text(document: Mapping[str, Any]) -> str:
    """A SARIF document as JSON text (strict JSON: a NaN read from an input becomes a string)."""
    return json_text(document)


def write_sarif(path: Path, entries: Iterable[ReportedFinding], *, expected: str = "omit") -> None:
    """Write the SARIF log of ``entries`` to ``path`` (parents created)."""
    write_text_file(path, sarif_text(build_sarif(entries, expected=expected)), what="the SARIF report")


def merge_sarif(documents: Sequence[Any], names: Sequence[str] | None = None) -> dict[str, Any]:
    """One SARIF log with one run from several pytest-aisp SARIF logs (CI shards).

    Results keep their fingerprints; a result present in several shards (same rule and fingerprint)
    is kept once; rule indexes are rebuilt against the merged rule list. ``AispError`` names the input
    and the part of it that is not SARIF.
    """
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    version = None
    for number, doc in enumerate(documents):
        name = names[number] if names and number < len(names) else f"input {number + 1}"
        for run in _runs(doc, name):
            driver = run["tool"]["driver"]
            version = version or driver.get("version")
            for rule in driver.get("rules", []):
                rules.setdefault(rule["id"], rule)
            for result in run.get("results", []):
                fingerprints = result.get("partialFingerprints") or {}
                key = str(fingerprints.get(FINGERPRINT_KEY) or fingerprints.get("aispFinding/v1") or "")
                if key:
                    if (result.get("ruleId", ""), key) in seen:
                        continue
                    seen.add((result.get("ruleId", ""), key))
                results.append(dict(result))
    rule_ids = sorted(rules)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    for result in results:
        if result.get("ruleId") in index:
            result["ruleIndex"] = index[result["ruleId"]]
        else:
            result.pop("ruleIndex", None)
    from pytest_aisp import __version__

    driver = {
        "name": "pytest-aisp",
        "version": version or __version__,
        "informationUri": INFORMATION_URI,
        "rules": [rules[r] for r in rule_ids],
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION,
            "runs": [{"tool": {"driver": driver},
                      "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the pytest rootdir"}}},
                      "results": results}]}


def _runs(doc: Any, name: str) -> list[dict[str, Any]]:
    """The runs of one SARIF document, each checked for what merging reads; ``AispError`` otherwise."""
    if not isinstance(doc, dict):
        raise AispError(f"{name} is not a SARIF log: expected a JSON object, got {type(doc).__name__}")
    if doc.get("version") != SARIF_VERSION:
        raise AispError(f"{name} is not a SARIF {SARIF_VERSION} log (version {doc.get('version')!r:.40})")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise AispError(f"{name}: 'runs' must be a list of runs")
    for i, run in enumerate(runs):
        where = f"{name}: runs[{i}]"
        if not isinstance(run, dict):
            raise AispError(f"{where} is not an object")
        tool = run.get("tool")
        if not isinstance(tool, dict) or not isinstance(tool.get("driver"), dict):
            raise AispError(f"{where}.tool.driver is missing or not an object")
        rules = tool["driver"].get("rules", [])
        if not isinstance(rules, list):
            raise AispError(f"{where}.tool.driver.rules must be a list")
        for j, rule in enumerate(rules):
            if not isinstance(rule, dict) or not isinstance(rule.get("id"), str):
                raise AispError(f"{where}.tool.driver.rules[{j}] must be an object with a string 'id'")
        results = run.get("results", [])
        if not isinstance(results, list):
            raise AispError(f"{where}.results must be a list")
        for j, result in enumerate(results):
            if not isinstance(result, dict):
                raise AispError(f"{where}.results[{j}] must be an object, got {type(result).__name__}")
            if not isinstance(result.get("ruleId", ""), str):
                raise AispError(f"{where}.results[{j}].ruleId must be a string")
            if not isinstance(result.get("partialFingerprints", {}), dict):
                raise AispError(f"{where}.results[{j}].partialFingerprints must be an object")
    return runs
