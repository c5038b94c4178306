"""Findings reach JUnit, SARIF, SonarQube, GitHub and the JSON report, with and without xdist."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from .conftest import SARIF_SCHEMA

SARIF_SCHEMA_DIR = SARIF_SCHEMA.parent

XDIST = [[], ["-n", "2"]]
XDIST_IDS = ["serial", "xdist"]


def _properties(junit_path) -> dict[str, dict[str, str]]:
    tree = ET.parse(junit_path)
    found: dict[str, dict[str, str]] = {}
    for case in tree.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        found[case.get("name")] = props
    return found


@pytest.mark.parametrize("extra", XDIST, ids=XDIST_IDS)
def test_findings_reach_junit_properties(findings_project: pytest.Pytester, extra: list[str]) -> None:
    result = findings_project.runpytest_subprocess("--junitxml=out/junit.xml", *extra)
    result.assert_outcomes(passed=2, failed=1)
    props = _properties(findings_project.path / "out" / "junit.xml")
    weak = props["test_weak"]
    assert weak["aisp.max_severity"] == "high"
    assert weak["aisp.rule_ids"] == "AISP-ROBUST-EVASION"
    assert float(weak["aisp.metric.robust_acc"]) == pytest.approx(0.41)
    listed = json.loads(weak["aisp.findings"])
    assert listed[0]["rule_id"] == "AISP-ROBUST-EVASION" and listed[0]["evidence"] == {"eps": 0.03}
    assert props["test_info_only"]["aisp.max_severity"] == "low"
    assert "aisp.findings" not in props["test_clean"]
    failure = ET.parse(findings_project.path / "out" / "junit.xml").find(".//testcase[@name='test_weak']/failure")
    assert failure is not None and "AISP-ROBUST-EVASION" in failure.text and "0.41" in failure.text


def test_failure_output_has_an_aisp_section(findings_project: pytest.Pytester) -> None:
    result = findings_project.runpytest()
    result.stdout.fnmatch_lines([
        "*RobustnessFailure: model is not robust",
        "*[[]high] AISP-ROBUST-EVASION: robust accuracy 0.41 < 0.70 at eps=0.03 (models/digits.pt)",
        "*- aisp findings -*",
    ])
    result.stdout.fnmatch_lines(["*2 findings (1 high, 1 low), 0 accepted by the baseline*"])


@pytest.mark.parametrize("extra", XDIST, ids=XDIST_IDS)
def test_sarif_validates_against_the_schema(
    findings_project: pytest.Pytester, sarif_schema: dict, extra: list[str]
) -> None:
    findings_project.runpytest_subprocess("--aisp-sarif=out/aisp.sarif", *extra)
    sarif = json.loads((findings_project.path / "out" / "aisp.sarif").read_text())
    jsonschema.validate(sarif, sarif_schema)
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "pytest-aisp"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["AISP-ROBUST-EVASION", "AISP-ROBUST-NOTE"]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    weak = by_rule["AISP-ROBUST-EVASION"]
    assert weak["level"] == "error"
    assert weak["properties"]["security-severity"] == "8.0"
    assert weak["partialFingerprints"]["aispFinding/v2"] == weak["partialFingerprints"]["primaryLocationLineHash"]
    physical = weak["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "test_models.py"
    assert physical["region"]["startLine"] == 10
    assert by_rule["AISP-ROBUST-NOTE"]["level"] == "note"


def test_sonar_report_shape(findings_project: pytest.Pytester) -> None:
    findings_project.runpytest("--aisp-sonar=out/sonar.json")
    report = json.loads((findings_project.path / "out" / "sonar.json").read_text())
    assert {r["id"] for r in report["rules"]} == {"AISP-ROBUST-EVASION", "AISP-ROBUST-NOTE"}
    for rule in report["rules"]:
        assert rule["engineId"] == "pytest-aisp" and rule["name"]
        assert rule["impacts"] and {"softwareQuality", "severity"} <= set(rule["impacts"][0])
        assert "type" not in rule and "severity" not in rule
    severities = {r["id"]: r["impacts"][0]["severity"] for r in report["rules"]}
    assert severities == {"AISP-ROBUST-EVASION": "HIGH", "AISP-ROBUST-NOTE": "LOW"}
    for issue in report["issues"]:
        assert "severity" not in issue and "type" not in issue
        assert issue["primaryLocation"]["filePath"] == "test_models.py"
        assert issue["primaryLocation"]["message"]
        assert issue["primaryLocation"]["textRange"]["startLine"] >= 1


def test_github_annotations_and_summary(findings_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = findings_project.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    findings_project.makepyfile(test_escape="""
from pytest_aisp import Finding, record_finding
import pytest

@pytest.mark.aisp
def test_odd():
    record_finding(Finding("AISP-LLM-DATA-LEAK", "critical", "100% leaked,\\nsee: transcript", "http://h:1/v1"))
""")
    result = findings_project.runpytest_subprocess("-n", "2")
    for line in (
        "::error file=test_models.py,line=10,title=AISP-ROBUST-EVASION::robust accuracy 0.41*",
        "::notice file=test_models.py,line=13,title=AISP-ROBUST-NOTE::*",
        "::error file=test_escape.py,line=4,title=AISP-LLM-DATA-LEAK::100%25 leaked,%0Asee: transcript (http://h:1/v1)",
    ):
        result.stdout.fnmatch_lines([line])
    assert result.stdout.str().count("::error file=test_models.py") == 1  # controller only, not per worker
    text = summary.read_text()
    assert "## pytest-aisp findings" in text
    assert "| high | AISP-ROBUST-EVASION | test_models.py::test_weak | models/digits.pt |" in text


def test_no_annotations_outside_github(findings_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    result = findings_project.runpytest()
    assert "::error" not in result.stdout.str()


def test_html_report_carries_findings_and_pictures(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
           b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")
    pytester.makepyfile(test_h=f"""
import pytest
from pytest_aisp import Finding, attach, record_finding

@pytest.mark.aisp
def test_pic():
    attach("clean vs adversarial", {png!r})
    record_finding(Finding("AISP-MM-INVARIANCE", "medium", "agreement 0.62 < 0.90 under brightness", "cnn.pt"))
""")
    pytester.runpytest("--html=out/report.html", "--self-contained-html").assert_outcomes(passed=1)
    page = (pytester.path / "out" / "report.html").read_text()
    assert "AISP-MM-INVARIANCE" in page and "aisp-findings" in page
    assert "data:image/png;base64" in page


def test_json_report_records_entries_and_outcomes(findings_project: pytest.Pytester) -> None:
    findings_project.runpytest("--aisp-report-dir=out")
    body = json.loads((findings_project.path / "out" / "aisp-findings.json").read_text())
    assert body["version"] == 2
    assert body["outcomes"]["test_models.py::test_weak"] == "failed"
    assert body["outcomes"]["test_models.py::test_clean"] == "passed"
    assert {e["finding"]["rule_id"] for e in body["entries"]} == {"AISP-ROBUST-EVASION", "AISP-ROBUST-NOTE"}
    assert body["metrics"]["test_models.py::test_weak"] == {"robust_acc": 0.41}


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.mark.parametrize("extra", XDIST, ids=XDIST_IDS)
def test_static_html_report_needs_no_script_inline_style_or_data_uris(pytester: pytest.Pytester,
                                                                      extra: list[str]) -> None:
    pytester.makepyfile(test_h=f"""
import pytest
from pytest_aisp import Finding, attach, record_finding, record_metric

@pytest.mark.aisp
def test_pic(tmp_path):
    attach("clean vs adversarial", {PNG!r})
    record_metric("robust_acc", 0.41)
    record_finding(Finding("AISP-MM-INVARIANCE", "medium", "agreement 0.62 < 0.90 <b>x</b>",
                           str(tmp_path / "cnn.pt")))
""")
    pytester.runpytest_subprocess("--aisp-html=out/aisp.html", *extra).assert_outcomes(passed=1)
    out = pytester.path / "out"
    page = (out / "aisp.html").read_text()
    assert '<link rel="stylesheet" href="aisp.css">' in page and (out / "aisp.css").is_file()
    for forbidden in ("<script", "<style", "style=", "data:", "onload=", "onclick="):
        assert forbidden not in page, forbidden
    (picture,) = (out / "aisp-files").iterdir()
    assert picture.read_bytes() == PNG and f'src="aisp-files/{picture.name}"' in page
    assert 'id="findings"' in page and "AISP-MM-INVARIANCE" in page and "{tmp_path}/cnn.pt" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "robust_acc" in page


def test_json_report_validates_against_the_published_schema(findings_project: pytest.Pytester) -> None:
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schemas" /
                         "aisp-findings.v2.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    findings_project.runpytest("--aisp-report-dir=out")
    body = json.loads((findings_project.path / "out" / "aisp-findings.json").read_text())
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
    broken = dict(body, entries=[dict(body["entries"][0], fingerprint="not-a-fingerprint")])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_junit_properties_can_go_to_the_testsuite_for_strict_consumers(findings_project: pytest.Pytester) -> None:
    findings_project.runpytest("--junitxml=out/j.xml", "--aisp-junit-properties=testsuite", "-n", "2")
    root = ET.parse(findings_project.path / "out" / "j.xml").getroot()
    suite = root.find("testsuite")
    assert all(case.find("properties") is None for case in suite.iter("testcase"))
    names = {p.get("name"): p.get("value") for p in suite.find("properties").iter("property")}
    assert names["aisp.test_models.py::test_weak.max_severity"] == "high"
    assert "aisp.test_models.py::test_weak.metric.robust_acc" in names
    xmlschema = pytest.importorskip("xmlschema")
    strict = xmlschema.XMLSchema(str(SARIF_SCHEMA_DIR / "junit-10.xsd"))
    assert strict.is_valid(str(findings_project.path / "out" / "j.xml"))
    # the default (properties in each testcase, where Jenkins' JUnit plugin reads them) is not valid there
    findings_project.runpytest("--junitxml=out/default.xml")
    assert not strict.is_valid(str(findings_project.path / "out" / "default.xml"))


def test_no_import_circle_between_the_session_and_the_dashboard() -> None:
    import subprocess
    import sys

    code = ("import pytest_aisp.dashboard.ingest, pytest_aisp.core_cli, sys;"
            "print('pytest_aisp.reporters.session' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_report_that_cannot_be_written_fails_the_run_with_one_line(findings_project: pytest.Pytester) -> None:
    (findings_project.path / "blocker").write_text("a file where a folder should be")
    result = findings_project.runpytest("--aisp-report-dir=blocker/reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["aisp: error: cannot write the aisp findings report to */blocker/reports/"
                                 "aisp-findings.json: */blocker is a file, not a folder"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_example_jenkinsfile_publishes_the_report_jenkins_can_show() -> None:
    text = (Path(__file__).resolve().parents[2] / "examples" / "Jenkinsfile").read_text()
    assert "--aisp-html=reports/aisp/index.html" in text
    assert "publishHTML target: [reportDir: 'reports/aisp', reportFiles: 'index.html'" in text
    assert "keepProperties: true" in text and "1217.v4297208a_a_b_ce" in text
    assert "--self-contained-html" not in text  # pytest-html's report stays blank under Jenkins' CSP
