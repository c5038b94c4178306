"""The example ML repository's security suite, as `tox -e demo` runs it, and what its reports' consumers say.

The suite runs green with every known weakness still an xfail; its reports pass GitHub's SARIF rules (the
Multitool), SonarQube's importer rules and Jenkins' Content-Security-Policy; fingerprints are the same
run after run and under xdist, and no finding is lost through merge, history and baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from pytest_aisp.baseline import load_baseline
from pytest_aisp.cli import main
from pytest_aisp.reporters.findings_json import read_json_report
from tests.system_tools import chromium_page

from .conftest import ROOT, DemoRun
from .consumers import (
    indexed_files,
    multitool_problems,
    read_properties,
    served_like_jenkins,
    sonar_field_problems,
)

FINDINGS_SCHEMA = ROOT / "docs" / "schemas" / "aisp-findings.v2.schema.json"
pytestmark = pytest.mark.xdist_group("aisp-demo")  # one worker runs the demo once for all of these


def _ok(run: DemoRun) -> None:
    assert run.returncode == 0, run.output[-4000:]


def test_example_suite_passes_and_writes_every_report(demo: DemoRun, sarif_schema: dict) -> None:
    _ok(demo)
    summary = demo.output.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in (part.split()[:2] for part in summary.split(" in ")[0].split(", "))}
    assert counts.get("passed", 0) >= 38 and counts.get("xfailed", 0) >= 15, summary
    assert not {"failed", "error", "errors", "xpassed"} & set(counts), summary
    assert "skipped" not in counts, "no example may skip: the demo runs with every system tool hidden"
    jsonschema.validate(demo.json("aisp.sarif"), sarif_schema)
    jsonschema.validate(demo.json("aisp-findings.json"), json.loads(FINDINGS_SCHEMA.read_text()))
    sonar = demo.json("aisp-sonar.json")
    assert sonar["rules"] and sonar["issues"]
    cases = list(ET.parse(demo.out / "junit.xml").getroot().iter("testcase"))
    assert any(p.get("name") == "aisp.rule_ids" for case in cases for p in case.iter("property"))
    assert "aisp-findings" in (demo.out / "report.html").read_text()


def test_fingerprints_are_the_same_in_a_second_run_under_xdist_and_distinct(
        demo: DemoRun, demo_xdist: DemoRun) -> None:
    _ok(demo)
    _ok(demo_xdist)
    first = [e["fingerprint"] for e in demo.json("aisp-findings.json")["entries"]]
    second = [e["fingerprint"] for e in demo_xdist.json("aisp-findings.json")["entries"]]
    assert len(first) >= 60
    assert len(set(first)) == len(first), "two findings share a fingerprint"
    assert sorted(first) == sorted(second), "fingerprints changed between two runs of the same code"
    sarif = [[r["partialFingerprints"]["primaryLocationLineHash"] for r in run.json("aisp.sarif")["runs"][0]["results"]]
             for run in (demo, demo_xdist)]
    assert sorted(sarif[0]) == sorted(sarif[1]) and len(set(sarif[0])) == len(sarif[0])
    entries = demo.json("aisp-findings.json")["entries"]
    assert not [e["finding"]["location"] for e in entries if "pytest-of-" in e["finding"]["location"]]


def test_no_finding_is_lost_through_merge_history_and_baseline(demo: DemoRun, tmp_path: Path) -> None:
    _ok(demo)
    results = demo.json("aisp.sarif")["runs"][0]["results"]
    merged = tmp_path / "merged.sarif"
    assert main(["report", "merge", str(merged), str(demo.out / "aisp.sarif"), str(demo.out / "aisp.sarif")]) == 0
    assert len(json.loads(merged.read_text())["runs"][0]["results"]) == len(results)

    report = read_json_report(demo.out / "aisp-findings.json")
    with sqlite3.connect(demo.out / "history.db") as db:
        stored = {row[0] for row in db.execute("SELECT fingerprint FROM findings")}
    assert stored == {e.fingerprint for e in report.entries}

    baseline_path = tmp_path / "aisp-baseline.json"
    assert main(["baseline", "update", "--report-dir", str(demo.out), "--baseline", str(baseline_path)]) == 0
    baseline = load_baseline(baseline_path)
    open_entries = [e for e in report.entries if not e.is_expected]
    assert len(baseline.entries) == len(open_entries)
    by_test: dict[str, list] = {}
    for entry in open_entries:
        by_test.setdefault(entry.nodeid or "", []).append(entry.finding)
    for entry in open_entries:
        judged = baseline.judge(entry.finding, entry.nodeid, by_test[entry.nodeid or ""])
        assert judged is not None and not judged.problem, entry
    expected = [e for e in report.entries if e.is_expected]
    assert expected and all(baseline.match(e.finding, e.nodeid) is None for e in expected)


def test_demo_sarif_passes_the_multitool_with_github_rules(demo: DemoRun, tmp_path: Path) -> None:
    _ok(demo)
    problems = multitool_problems(demo.out / "aisp.sarif", tmp_path)
    assert problems == [], json.dumps(problems, indent=1)[:3000]
    rules = demo.json("aisp.sarif")["runs"][0]["tool"]["driver"]["rules"]
    assert rules and all(r["fullDescription"]["text"] and r["help"]["markdown"] for r in rules)


def test_demo_sonar_report_passes_the_importer_rules_and_the_example_indexes_cleanly(demo: DemoRun) -> None:
    _ok(demo)
    report = demo.json("aisp-sonar.json")
    assert sonar_field_problems(report, ROOT) == []
    examples = ROOT / "examples"
    properties = read_properties(examples / "sonar-project.properties")
    main_files, test_files = indexed_files(examples, properties)
    assert not main_files & test_files, f"indexed twice: {sorted(main_files & test_files)}"
    assert "test_model_security.py" in test_files and "conftest.py" in test_files
    assert "llm_app/app.py" in main_files or any(f.startswith("llm_app/") for f in main_files)
    issue_files = {i["primaryLocation"]["filePath"].removeprefix("examples/") for i in report["issues"]}
    assert issue_files <= test_files | main_files


def test_html_report_shows_the_findings_under_jenkins_csp(demo: DemoRun, tmp_path: Path) -> None:
    _ok(demo)
    page_text = (demo.out / "aisp-report.html").read_text()
    assert "<script" not in page_text and "style=" not in page_text and "<style" not in page_text
    assert "data:" not in page_text
    open_count = sum(1 for e in demo.json("aisp-findings.json")["entries"]
                     if not e["expected"] and not e["accepted"])
    with served_like_jenkins(demo.out) as url, chromium_page() as page:
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text))
        page.goto(f"{url}/aisp-report.html")
        table = page.locator("#findings")
        assert table.is_visible()
        assert table.locator("tbody tr").count() == open_count
        # the stylesheet beside the page applied: severity cells are coloured
        colour = table.locator("td.sev").first.evaluate("cell => getComputedStyle(cell).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
        shot = tmp_path / "aisp-report-jenkins-csp.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000
        if os.environ.get("AISP_DOCS_SCREENSHOTS"):  # refreshes the picture in docs/ci.md
            shutil.copy(shot, ROOT / "docs" / "img" / shot.name)
        assert not [m for m in blocked if "Content Security Policy" in m], blocked

        # pytest-html under the same policy: its results table stays empty (it builds rows with script)
        page.goto(f"{url}/report.html")
        assert page.locator("#results-table tbody tr").count() == 0


def test_junit_properties_sit_in_testcases_and_mark_expected_findings(demo: DemoRun) -> None:
    _ok(demo)
    cases = {c.get("name"): c for c in ET.parse(demo.out / "junit.xml").getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in case.iter("property")} for name, case in cases.items()}
    xfailed = props["test_known_weakness_at_large_eps"]
    assert xfailed["aisp.rule_ids"] == "AISP-ROBUST-EVASION" and xfailed["aisp.expected_findings"] == "1"
    listed = json.loads(xfailed["aisp.findings"])
    assert listed[0]["expected"] == "xfail" and len(listed[0]["fingerprint"]) == 32
    reasons = Counter(e["expected_reason"] for e in demo.json("aisp-findings.json")["entries"])
    assert reasons["xfail"] and reasons["caught"] and reasons["marker"]
