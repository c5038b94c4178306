"""The llm_endpoint fixture and the assertions inside a pytest run (pytester)."""

from __future__ import annotations

import pytest

TEST_FILE = """
from pytest_aisp import assert_no_prompt_injection, assert_no_system_prompt_leak

def test_injection(llm_endpoint):
    assert_no_prompt_injection(llm_endpoint, attempts=1)

def test_prompt_leak(llm_endpoint):
    assert_no_system_prompt_leak(llm_endpoint, attempts=1)
"""


def write_project(pytester: pytest.Pytester, url: str) -> None:
    pytester.makepyprojecttoml(f"""
[tool.aisp]
llm_endpoint = "{url}/api/chat"

[tool.aisp.llm]
api = "rest"
request_template = '{{"message": "$INPUT", "system": "$SYSTEM", "session": "$SESSION"}}'
response_path = "$.reply.text"
session = "history"
canaries = ["QZVXMARKERJW"]
""")
    pytester.makepyfile(test_llm=TEST_FILE)


def test_weak_app_fails_with_llm_vulnerability(pytester: pytest.Pytester, serve) -> None:
    write_project(pytester, serve("weak-system-prompt-leak"))
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "aisp")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*LLMVulnerability*", "*smallest counterexample*",
                                 "*AISP-LLM-SYSTEM-PROMPT-LEAK*"])


def test_hardened_app_passes(pytester: pytest.Pytester, serve) -> None:
    write_project(pytester, serve("hardened"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_unconfigured_fixture_skips(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm=TEST_FILE)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*--aisp-llm-endpoint*"])


def test_down_endpoint_errors_not_fails(pytester: pytest.Pytester, serve) -> None:
    write_project(pytester, serve({"broken": "garbage"}))
    result = pytester.runpytest("-p", "no:cacheprovider")
    # Never a pass: the test stops on AispError (not an AssertionError) with the status and first bytes.
    assert result.parseoutcomes().get("passed", 0) == 0
    result.stdout.fnmatch_lines(["*AispError*HTTP 200*<html>*not JSON*"])
