"""Bad inputs to the report commands and writers end in one line saying what is wrong with which input
(exit 2), never ``aisp: internal error``; names read from files cannot drive the terminal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_aisp import Finding
from pytest_aisp.cli import main
from pytest_aisp.findings import escape_control
from pytest_aisp.reporters.cli_output import emit, render
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.findings_json import JsonReport, read_json_report, write_json_report

ENTRY = {"test": "t.py::a", "path": "t.py", "line": 1, "accepted": False, "outcome": "failed",
         "finding": {"rule_id": "AISP-X-Y", "severity": "high", "message": "m", "location": "l", "evidence": {},
                     "metrics": {}}}
DEEP = "[" * 100_000 + "]" * 100_000


def _finding(**changes) -> dict:
    return dict(ENTRY, finding=dict(ENTRY["finding"], **changes))


BAD_REPORTS = {
    "a list": ("[1,2]", "expected a JSON object with 'version' and 'entries', got a list"),
    "entries of numbers": ('{"version": 2, "entries": [1]}', "entry 0: an entry must be an object, got 1"),
    "a finding that is a number": ('{"entries": [{"finding": 1}]}', "entry 0: a finding must be an object"),
    "a version that is text": ('{"version": "x", "entries": []}', "'version' must be an integer, got 'x'"),
    "a newer version": ('{"version": 99, "entries": []}', "version 99, written by a newer pytest-aisp"),
    "metrics of a list": (json.dumps({"entries": [], "metrics": {"t": [1]}}), "'metrics' of test 't' must be an"),
    "outcomes as a list": (json.dumps({"entries": [], "outcomes": [1]}), "'outcomes' must be an object"),
    "an unknown severity": (json.dumps({"entries": [_finding(severity="loud")]}), "unknown severity 'loud'"),
    "evidence as a list": (json.dumps({"entries": [_finding(evidence=[1])]}), "'evidence' must be an object"),
    "a metric that is text": (json.dumps({"entries": [_finding(metrics={"a": "x"})]}), "metric 'a' must be a"),
    "a line that is text": (json.dumps({"entries": [dict(ENTRY, line="x")]}), "'line' must be an integer"),
    "deep nesting": ('{"entries": [{"finding": {"evidence": ' + DEEP + "}}]}", "nests objects or lists too deeply"),
}


@pytest.mark.parametrize("content, message", BAD_REPORTS.values(), ids=list(BAD_REPORTS))
def test_baseline_update_names_what_is_wrong_with_the_findings_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    (tmp_path / "aisp-findings.json").write_text(content)
    assert main(["baseline", "update", "--report-dir", str(tmp_path), "--baseline", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aisp: error: ") and "internal error" not in err and err.count("\n") == 1, err
    assert message in err and "aisp-findings.json" in err


BAD_SARIF = {
    "results of numbers": ({"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [1]}]},
                           "runs[0].results[0] must be an object"),
    "runs of numbers": ({"version": "2.1.0", "runs": [1]}, "runs[0] is not an object"),
    "rules of numbers": ({"version": "2.1.0", "runs": [{"tool": {"driver": {"rules": [1]}}}]},
                         "rules[0] must be an object with a string 'id'"),
    "a tool that is a list": ({"version": "2.1.0", "runs": [{"tool": []}]}, "tool.driver is missing"),
    "a list": ([1], "is not a SARIF log: expected a JSON object"),
    "no version": ({}, "is not a SARIF 2.1.0 log"),
}


@pytest.mark.parametrize("document, message", BAD_SARIF.values(), ids=list(BAD_SARIF))
def test_report_merge_names_what_is_wrong_with_which_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, message: str) -> None:
    good = tmp_path / "good.sarif"
    good.write_text(json.dumps({"version": "2.1.0", "runs": []}))
    bad = tmp_path / "bad.sarif"
    bad.write_text(json.dumps(document))
    assert main(["report", "merge", str(tmp_path / "out.sarif"), str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and message in err and "bad.sarif" in err, err


@pytest.mark.parametrize("content", [DEEP, b"\xff\xfe\x00binary"], ids=["deep", "binary"])
def test_report_merge_refuses_unreadable_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], content) -> None:
    bad = tmp_path / "bad.sarif"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    assert main(["report", "merge", str(tmp_path / "out.sarif"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and ("too deeply" in err or "not UTF-8" in err), err


def test_outputs_that_are_directories_or_under_files_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sarif = tmp_path / "in.sarif"
    sarif.write_text(json.dumps({"version": "2.1.0", "runs": []}))
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    assert main(["report", "merge", str(tmp_path / "folder"), str(sarif)]) == 2
    assert main(["report", "merge", str(tmp_path / "file" / "x.sarif"), str(sarif)]) == 2
    report = tmp_path / "r"
    write_json_report(report / "aisp-findings.json", JsonReport(()), tool_version="0")
    assert main(["baseline", "update", "--report-dir", str(report), "--baseline", str(tmp_path / "folder")]) == 2
    assert main(["baseline", "update", "--report-dir", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert "is a directory; give a file name" in err and "file is a file, not a folder" in err
    assert "--report-dir" in err and "is a file" in err
    with pytest.raises(Exception, match="is a directory; give a file name"):
        emit("text", tmp_path / "folder")


def test_an_output_file_named_on_the_command_line_needs_an_existing_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`aisp ... --output` under a missing folder created the folders (as whoever runs it); a typo in the path
    must not (fails on the previous commit). Report files of a pytest run still get their folder."""
    import pickle

    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps([1, 2]))
    out = tmp_path / "no" / "such" / "scan.json"
    assert main(["scan", str(model), "--format", "json", "--output", str(out)]) == 2
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "no").exists()
    (tmp_path / "no").mkdir()
    assert main(["scan", str(model), "--format", "json", "--output", str(tmp_path / "no" / "scan.json")]) == 0


def test_a_nan_metric_and_deep_evidence_are_written_as_valid_json(tmp_path: Path) -> None:
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["x"] = {}
        inner = inner["x"]
    finding = Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt", {"nested": deep, "v": math.inf},
                      {"robust_acc": math.nan})
    path = tmp_path / "aisp-findings.json"
    write_json_report(path, JsonReport((ReportedFinding(finding, "t::a"),), metrics={"t::a": {"x": math.nan}}),
                      tool_version="0")
    body = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    written = body["entries"][0]["finding"]
    assert written["metrics"] == {"robust_acc": "nan"} and body["metrics"] == {"t::a": {"x": "nan"}}
    assert written["evidence"]["v"] == "inf" and "cut" in json.dumps(written["evidence"])
    assert math.isnan(read_json_report(path).entries[0].finding.metrics["robust_acc"])
    text = render("json", [finding], json_body=lambda: {"metric": math.nan}, text=str)
    assert json.loads(text) == {"metric": "nan"}


def test_pytest_refuses_report_paths_that_are_directories(pytester: pytest.Pytester) -> None:
    pytester.mkdir("reports")
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--aisp-sarif=reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--aisp-sarif (--aisp-sarif) names the directory */reports; give a file name*"])


ESCAPES = "mylib\x1b[2K\r\x1b]0;pwned\x07.Model"


def test_escape_control_shows_terminal_sequences() -> None:
    assert escape_control(ESCAPES) == "mylib\\x1b[2K\\r\\x1b]0;pwned\\x07.Model"
    assert escape_control("a\nb\tc") == "a\nb\tc"
    assert escape_control("a\nb", keep_newlines=False) == "a\\nb"
    assert escape_control("rtl\u202eevil") == "rtl\\u202eevil"
    finding = Finding("AISP-SCAN-PICKLE-GLOBAL", "high", f"unknown global {ESCAPES}", "m.pkl")
    assert "\x1b" not in finding.one_line() and "\r" not in finding.one_line()
    assert "\x1b" not in render("text", [finding], json_body=dict, text=lambda: finding.message)


def test_no_raw_escape_reaches_the_terminal_or_the_reports(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pytester.makepyfile(test_esc=f'''
import pytest
from pytest_aisp import Finding, UnsafeArtifact, enforce, record_finding

@pytest.mark.aisp
def test_scan():
    name = {ESCAPES!r}
    enforce([record_finding(Finding("AISP-SCAN-PICKLE-GLOBAL", "high", "unknown global " + name, "m.pkl",
                                    {{"global": name}}))], UnsafeArtifact, headline="unsafe: " + name)
''')
    result = pytester.runpytest_subprocess("--aisp-html=out/r.html")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "\x1b" not in out and "\x07" not in out
    assert "unknown global mylib\\x1b[2K\\r\\x1b]0;pwned\\x07.Model" in out
    assert "\x1b" not in (pytester.path / "out" / "r.html").read_text()


def test_every_subcommand_takes_fail_on_from_the_project_and_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flag wins, then AISP_FAIL_ON, then [tool.aisp] fail_on, then the subcommand's own default (pins:
    low). Before, a subcommand's default ignored the configuration (fails on the previous commit)."""
    from pytest_aisp import config

    # the session's settings come back after the test; here each step resolves the project afresh
    monkeypatch.setattr(config, "_current", None)
    (tmp_path / "requirements.txt").write_text("numpy>=1.0\n")  # one low finding: an unpinned range
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AISP_FAIL_ON", raising=False)
    assert main(["pins", "."]) == 1  # pins' own default, low
    (tmp_path / "pyproject.toml").write_text('[tool.aisp]\nfail_on = "high"\n')
    config.set_current_settings(None)
    assert main(["pins", "."]) == 0
    monkeypatch.setenv("AISP_FAIL_ON", "low")
    config.set_current_settings(None)
    assert main(["pins", "."]) == 1
    assert main(["pins", ".", "--fail-on", "critical"]) == 0
