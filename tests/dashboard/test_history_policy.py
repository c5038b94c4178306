"""``history`` in pyproject.toml records CI runs, not every local run; the command line always records; a
config key forces either way; the terminal says where a run went or why it did not."""

from __future__ import annotations

import pytest

from pytest_aisp.dashboard.history_policy import CI_VARIABLES

TEST_FILE = '''
import pytest
from pytest_aisp import Finding, record_finding

@pytest.mark.aisp
def test_one():
    record_finding(Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt"))
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A repository whose pyproject.toml names a history, run on a developer machine (no CI variables)."""
    for name in (*CI_VARIABLES, "AISP_HISTORY", "AISP_HISTORY_RECORD"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyprojecttoml('[tool.aisp]\nhistory = ".aisp/history.db"\nfail_on = "critical"\n')
    pytester.makepyfile(test_h=TEST_FILE)
    return pytester


def test_a_local_run_is_not_recorded_and_says_so(project: pytest.Pytester) -> None:
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    assert not (project.path / ".aisp" / "history.db").exists()
    result.stdout.fnmatch_lines(
        ["*history not recorded into *.aisp/history.db: a history from [[]tool.aisp] history records CI runs only*"])


def test_a_ci_run_records(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = project.runpytest()
    assert (project.path / ".aisp" / "history.db").is_file()
    result.stdout.fnmatch_lines(["*wrote history run 1 into *.aisp/history.db (CI is set)*"])


def test_ci_false_is_a_local_run(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    project.runpytest()
    assert not (project.path / ".aisp" / "history.db").exists()


def test_the_command_line_and_the_environment_always_record(project: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """As `tox -e demo` does: --aisp-history on the command line records a local run."""
    project.runpytest("--aisp-history=reports/history.db").stdout.fnmatch_lines(
        ["*wrote history run 1 into *reports/history.db (from --aisp-history)*"])
    monkeypatch.setenv("AISP_HISTORY", "env.db")
    project.runpytest()
    assert (project.path / "reports" / "history.db").is_file() and (project.path / "env.db").is_file()


def test_a_config_key_forces_either_way(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    project.runpytest("--aisp-history-record=always").stdout.fnmatch_lines(
        ["*wrote history run 1 into *.aisp/history.db (history_record = always)*"])
    (project.path / ".aisp" / "history.db").unlink()
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("AISP_HISTORY_RECORD", "never")
    project.runpytest().stdout.fnmatch_lines(["*history not recorded*history_record = never*"])
    assert not (project.path / ".aisp" / "history.db").exists()
    result = project.runpytest("--aisp-history-record=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--aisp-history-record*sometimes*auto, always, never*"])


def test_a_history_that_cannot_be_written_fails_the_session(project: pytest.Pytester) -> None:
    (project.path / "taken.db").write_bytes(b"not a database at all, but a text file" * 40)
    result = project.runpytest("--aisp-history=taken.db")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*aisp: error: history not recorded into *taken.db: history database *taken.db cannot be read*"])
