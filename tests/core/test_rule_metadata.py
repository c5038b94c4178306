"""Rule metadata comes from the rule tables in docs/: SARIF and SonarQube rules carry each rule's own text, fix
and nominal severity; a finding at another severity goes under its own sub-rule so GitHub ranks it right."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pytest_aisp import Finding
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.rules import CATALOGUE, catalogue_json, parse_docs, parse_rule_tables, rule_doc
from pytest_aisp.reporters.sarif import build_sarif
from pytest_aisp.reporters.sonar import build_sonar

from .conftest import ROOT
from .consumers import multitool_problems, sonar_field_problems


def test_packaged_rules_match_the_docs_tables() -> None:
    docs = parse_docs(ROOT / "docs")
    assert CATALOGUE.read_text(encoding="utf-8") == catalogue_json(docs.values()), (
        "pytest_aisp/reporters/rules.json is out of date: run `python -m pytest_aisp.reporters.rules docs`")
    assert {"AISP-SCAN-PICKLE-GLOBAL", "AISP-LLM-DATA-LEAK", "AISP-ROBUST-BACKDOOR", "AISP-MON-ERRORS"} <= set(docs)
    for doc in docs.values():
        assert doc.severities and doc.meaning and doc.fix, doc.rule_id


def test_parser_reads_every_table_layout() -> None:
    page = """## Probe families
| rule id | severity | OWASP | what it means | how to fix |
| --- | --- | --- | --- | --- |
| `AISP-X-LEAK` | high, critical for keys | LLM02 | answers carry secrets | redact `answers` |

### Rules
| id | severity | meaning | fix |
|----|----------|---------|-----|
| AISP-X-BACKDOOR | high | a trigger | retrain |
| AISP-X-BACKDOOR | low | classes too small | add data |
"""
    leak, backdoor = parse_rule_tables("x", page)
    assert leak.severities[0].value == "high" and [s.value for s in leak.severities] == ["high", "critical"]
    assert leak.extra == "OWASP: LLM02" and leak.anchor == "probe-families" and leak.fix == "redact `answers`"
    assert [s.value for s in backdoor.severities] == ["high", "low"]
    assert backdoor.meaning == "a trigger (high); classes too small (low)"


def _entry(rule: str, severity: str, location: str = "app:probe") -> ReportedFinding:
    finding = Finding(rule, severity, f"{rule} with a random canary QZ{hash(location) % 9999}", location,
                      {"probe": location})
    return ReportedFinding(finding, "tests/test_a.py::test_a", "tests/test_a.py", 3)


def test_sarif_rules_carry_the_documented_text_and_severity() -> None:
    sarif = build_sarif([_entry("AISP-LLM-DATA-LEAK", "critical", "a"), _entry("AISP-LLM-DATA-LEAK", "high", "b"),
                         _entry("AISP-NLP-ADVERSARIAL", "info", "c"), _entry("AISP-SCAN-PICKLE-GLOBAL", "high", "d")])
    run = sarif["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {"AISP-LLM-DATA-LEAK", "AISP-LLM-DATA-LEAK/high", "AISP-NLP-ADVERSARIAL/info",
                          "AISP-SCAN-PICKLE-GLOBAL"}
    leak = rules["AISP-LLM-DATA-LEAK"]
    doc = rule_doc("AISP-LLM-DATA-LEAK")
    assert doc.nominal.value == "critical"  # the first severity its docs row names
    assert leak["properties"]["security-severity"] == "9.5"
    assert rules["AISP-LLM-DATA-LEAK/high"]["properties"]["security-severity"] == "8.0"
    assert "security-severity" not in rules["AISP-NLP-ADVERSARIAL/info"]["properties"]
    assert leak["shortDescription"]["text"].startswith("Answers carry customer data")
    assert "QZ" not in json.dumps(rules)  # nothing of a finding's message leaks into rule text
    assert doc.fix in leak["help"]["markdown"] and "How to fix" in leak["help"]["text"]
    assert leak["helpUri"].endswith("docs/llm.md#probe-families")
    assert "LLM02" in leak["fullDescription"]["text"]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert run["tool"]["driver"]["rules"][by_rule["AISP-LLM-DATA-LEAK/high"]["ruleIndex"]]["id"] == \
        "AISP-LLM-DATA-LEAK/high"


def test_an_undocumented_rule_gets_honest_metadata() -> None:
    sarif = build_sarif([_entry("AISP-CUSTOM-THING", "medium", "a"), _entry("AISP-CUSTOM-THING", "low", "b")])
    rules = {r["id"]: r for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert set(rules) == {"AISP-CUSTOM-THING", "AISP-CUSTOM-THING/low"}
    assert rules["AISP-CUSTOM-THING"]["properties"]["security-severity"] == "5.5"
    assert "not described" in rules["AISP-CUSTOM-THING"]["fullDescription"]["text"]


def test_sonar_rules_follow_the_same_split(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("import x\n\ndef test_a():\n    pass\n")
    report = build_sonar([_entry("AISP-LLM-DATA-LEAK", "critical", "a"), _entry("AISP-LLM-DATA-LEAK", "high", "b")])
    assert sonar_field_problems(report, tmp_path) == []
    impacts = {r["id"]: r["impacts"][0]["severity"] for r in report["rules"]}
    assert impacts == {"AISP-LLM-DATA-LEAK": "HIGH", "AISP-LLM-DATA-LEAK/high": "HIGH"}
    assert [i["ruleId"] for i in report["issues"]] == ["AISP-LLM-DATA-LEAK", "AISP-LLM-DATA-LEAK/high"]
    assert "How to fix" in report["rules"][0]["description"]


def test_sarif_of_every_kind_passes_the_multitool(tmp_path: Path, sarif_schema: dict) -> None:
    entries = [_entry("AISP-LLM-DATA-LEAK", "high", "a"), _entry("AISP-LLM-DATA-LEAK", "critical", "b"),
               _entry("AISP-CUSTOM-THING", "low", "c"),
               ReportedFinding(Finding("AISP-MON-RATE", "medium", "flood", "/p:client=x"), "tests/test_a.py::test_b",
                               "tests/test_a.py", 3, expected="marker")]
    path = tmp_path / "all.sarif"
    document = build_sarif(entries, expected="note")
    jsonschema.validate(document, sarif_schema)
    path.write_text(json.dumps(document))
    assert multitool_problems(path, tmp_path) == []


@pytest.mark.parametrize("mode", ["omit", "note"])
def test_a_cli_sarif_with_absolute_paths_is_valid(tmp_path: Path, sarif_schema: dict, mode: str) -> None:
    entry = ReportedFinding(Finding("AISP-SCAN-PICKLE-GLOBAL", "high", "x", str(tmp_path / "m.pkl")),
                            path=str(tmp_path / "m.pkl"))
    document = build_sarif([entry], expected=mode)
    jsonschema.validate(document, sarif_schema)
    uri = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri["uri"].startswith("file:///") and "uriBaseId" not in uri
