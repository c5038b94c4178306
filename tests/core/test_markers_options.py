"""Marker selection, every option with its ini twin, and bad values as usage errors."""

from __future__ import annotations

import pytest

from pytest_aisp.config import OPTIONS

MODULE = """
import pytest

def test_plain():
    pass

def test_uses_fixture(aisp_config):
    pass

@pytest.mark.aisp_scan
def test_submarked():
    pass

@pytest.mark.aisp
def test_marked():
    pass
"""


def test_dash_m_aisp_selects_every_security_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sel=MODULE)
    result = pytester.runpytest("-m", "aisp", "-v")
    result.assert_outcomes(passed=3, deselected=1)
    result.stdout.no_fnmatch_line("*test_plain*PASSED*")


def test_dash_m_not_aisp_selects_none_of_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sel=MODULE)
    result = pytester.runpytest("-m", "not aisp", "-v")
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(["*test_plain PASSED*"])


def test_module_level_submarker_marks_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mod="import pytest\npytestmark = pytest.mark.aisp_llm\ndef test_a(): pass\n")
    pytester.runpytest("-m", "aisp").assert_outcomes(passed=1)


def test_help_lists_the_aisp_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*AI security checks (pytest-aisp)*"])
    for spec in OPTIONS:
        result.stdout.fnmatch_lines([f"*{spec.flag}*"])


VALUES = {
    "model": ("model.pt", "model.pt"),
    "data": ("eval.npz", "eval.npz"),
    "model_class": ("acme.models:DigitsCNN", "acme.models:DigitsCNN"),
    "model_kwargs": ('{"channels":8}', "{'channels': 8}"),
    "onnx_output": ("probabilities", "probabilities"),
    "llm_endpoint": ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    "manifest": ("aisp-manifest.json", "aisp-manifest.json"),
    "gpus": ("0,GPU-1f2e", "('0', 'GPU-1f2e')"),
    "seed": ("1234", "1234"),
    "fail_on": ("high", "high"),
    "baseline": ("base.json", "base.json"),
    "sarif": ("out.sarif", "out.sarif"),
    "sonar": ("sonar.json", "sonar.json"),
    "report_dir": ("reports", "reports"),
    "history": ("hist.db", "hist.db"),
}
SHOW = """
from pathlib import Path

def test_show(aisp_config):
    value = getattr(aisp_config, {name!r})
    print("VALUE=" + (value.name if isinstance(value, Path) else str(value)))
    print("SOURCE=" + aisp_config.sources[{name!r}])
"""


def _prepare(pytester: pytest.Pytester, name: str) -> None:
    pytester.makepyfile(test_show=SHOW.format(name=name))
    if name == "baseline":
        pytester.makefile(".json", base='{"version": 1, "entries": []}')


@pytest.mark.parametrize("name", sorted(VALUES))
def test_option_from_command_line(pytester: pytest.Pytester, name: str) -> None:
    _prepare(pytester, name)
    raw, shown = VALUES[name]
    flag = "--aisp-" + name.replace("_", "-")
    result = pytester.runpytest("-s", f"{flag}={raw}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*VALUE={shown}", f"SOURCE={flag}"])


@pytest.mark.parametrize("name", sorted(VALUES))
def test_option_from_ini(pytester: pytest.Pytester, name: str) -> None:
    _prepare(pytester, name)
    raw, shown = VALUES[name]
    pytester.makeini(f"[pytest]\naisp_{name} = {raw}\n")
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*VALUE={shown}", f"SOURCE=ini aisp_{name}"])


def test_tool_aisp_table_and_precedence(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.aisp]\nseed = 7\nfail_on = "low"\n[tool.aisp.llm]\napi = "rest"\n')
    pytester.makepyfile(test_t="""
def test_t(aisp_config):
    assert aisp_config.seed == 9            # the command line wins
    assert aisp_config.fail_on.value == "low"
    assert aisp_config.section("llm") == {"api": "rest"}
""")
    pytester.runpytest("--aisp-seed", "9").assert_outcomes(passed=1)


def test_environment_overrides_the_files(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI job's AISP_* variable wins over what the repository's files set; the command line wins over both."""
    monkeypatch.setenv("AISP_SEED", "5")
    monkeypatch.setenv("AISP_MODEL", "models/from_env.pt")
    pytester.makepyprojecttoml('[tool.aisp]\nseed = 7\nmodel = "models/from_file.pt"\n')
    pytester.makeini("[pytest]\naisp_seed = 8\n")
    pytester.makepyfile(test_t="""
def test_t(aisp_config, aisp_seed):
    assert aisp_seed == 5
    assert aisp_config.source_of("seed") == "environment AISP_SEED"
    assert aisp_config.model.name == "from_env.pt"
""")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--aisp-seed", "9", "-k", "nothing").assert_outcomes()


def test_paths_resolve_against_the_rootdir_from_a_subdirectory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyprojecttoml('[tool.aisp]\nmodel = "models/cnn.pt"\n')
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "cnn.pt").write_bytes(b"x")
    tests = pytester.mkdir("tests")
    (tests / "test_t.py").write_text(
        "def test_t(aisp_config):\n"
        "    assert aisp_config.model.is_absolute() and aisp_config.model.is_file()\n"
    )
    monkeypatch.chdir(tests)
    pytester.runpytest("test_t.py").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--aisp-fail-on", "severe"], "*--aisp-fail-on*'severe'*info, low, medium, high, critical*"),
        (["--aisp-seed", "-3"], "*--aisp-seed*'-3'*non-negative integer*"),
        (["--aisp-seed", "abc"], "*--aisp-seed*'abc'*"),
        (["--aisp-llm-endpoint", "ftp://x"], "*--aisp-llm-endpoint*http*URL*"),
        (["--aisp-gpus", ","], "*--aisp-gpus*comma-separated*"),
        (["--aisp-baseline", "missing.json"], "*--aisp-baseline*does not exist*aisp baseline update*"),
    ],
)
def test_bad_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile(test_t="def test_t(): pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_value_names_its_source(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naisp_fail_on = loud\n")
    pytester.makepyfile(test_t="def test_t(): pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini aisp_fail_on*'loud'*"])


def test_report_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t="def test_t(): pass\n")
    result = pytester.runpytest("--aisp-seed", "3", "--aisp-gpus", "4,6")
    result.stdout.fnmatch_lines([
        "aisp: pytest-aisp *, seed=3, fail-on=medium, hypothesis profile=*",
        "aisp: gpus=4,6, threads=*, baseline=none",
        "aisp: backends: torch=*",
    ])


UNCONFIGURED_TESTS = ("def test_m(aisp_model): pass\ndef test_l(llm_endpoint): pass\n"
                      "def test_a(artifact_manifest): pass\n")


def test_unconfigured_fixture_is_an_error_naming_every_place_to_set_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job with a misspelt AISP_MODEL must not go green having checked nothing (it skipped before)."""
    monkeypatch.setenv("AISP_MODLE", "models/cnn.pt")
    pytester.makepyfile(test_t=UNCONFIGURED_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(errors=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*aisp_model needs --aisp-model (ini aisp_model, [[]tool.aisp[]] model, environment AISP_MODEL)*",
        "*llm_endpoint needs --aisp-llm-endpoint (ini aisp_llm_endpoint,*environment AISP_LLM_ENDPOINT)*",
        "*artifact_manifest needs --aisp-manifest*aisp_missing = \"skip\"*",
    ])


def test_skipping_unconfigured_fixtures_is_an_opt_in_that_is_counted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t=UNCONFIGURED_TESTS)
    result = pytester.runpytest("--aisp-missing=skip")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines([
        "aisp: 1 test(s) skipped because aisp_model is not configured*nothing was checked there",
        "aisp: 1 test(s) skipped because artifact_manifest is not configured*",
    ])
    pytester.makeini("[pytest]\naisp_missing = skip\n")
    pytester.runpytest().assert_outcomes(skipped=3)


def test_one_test_may_opt_into_skipping(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t="import pytest\n@pytest.mark.aisp_optional\ndef test_m(aisp_model): pass\n"
                               "def test_l(llm_endpoint): pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(skipped=1, errors=1)


def test_a_bad_missing_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_t="def test_t(): pass\n")
    result = pytester.runpytest("--aisp-missing=ignore")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--aisp-missing*'ignore'*error, skip*"])


def test_team_conftest_overrides_a_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import pytest\n@pytest.fixture\ndef aisp_model():\n    return 'team model'\n")
    pytester.makepyfile(test_t="def test_m(aisp_model):\n    assert aisp_model == 'team model'\n")
    pytester.runpytest("-m", "aisp").assert_outcomes(passed=1)


def test_verbose_header_shows_each_value_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISP_FAIL_ON", "high")
    pytester.makepyprojecttoml('[tool.aisp]\nseed = 7\n')
    pytester.makepyfile(test_t="def test_t(): pass\n")
    result = pytester.runpytest("-v", "--aisp-gpus", "1")
    result.stdout.fnmatch_lines([
        "aisp:   model = - (default)",
        "aisp:   gpus = 1 (--aisp-gpus)",
        "aisp:   seed = 7 ([[]tool.aisp[]] seed)",
        "aisp:   fail_on = high (environment AISP_FAIL_ON)",
    ])


def test_a_binary_aisp_toml_is_a_setting_error_naming_the_file(tmp_path) -> None:
    """(pytest itself stops on a binary pyproject.toml; aisp.toml and the aisp command are ours to read)"""
    from pytest_aisp.config import SettingError, resolve_settings

    (tmp_path / "aisp.toml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(SettingError, match=r"aisp\.toml is not valid TOML"):
        resolve_settings(tmp_path, {}, {})
