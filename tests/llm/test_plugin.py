"""The llm_endpoint fixture and the assertions inside a pytest run (pytester)."""

from __future__ import annotations

import pytest

TEST_FILE = """
from pytest_aisp import assert_no_jailbreak, assert_no_system_prompt_leak

def test_jailbreak(llm_endpoint):
    assert_no_jailbreak(llm_endpoint, attempts=1)

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


def test_unconfigured_fixture_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm=TEST_FILE)
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*llm_endpoint needs --aisp-llm-endpoint*"])


def test_down_endpoint_errors_not_fails(pytester: pytest.Pytester, serve) -> None:
    write_project(pytester, serve({"broken": "garbage"}))
    result = pytester.runpytest("-p", "no:cacheprovider")
    # Never a pass: the test stops on AispError (not an AssertionError) with the status and first bytes.
    assert result.parseoutcomes().get("passed", 0) == 0
    result.stdout.fnmatch_lines(["*AispError*HTTP 200*<html>*not JSON*"])


def test_endpoint_factory_applies_tool_aisp_llm_to_a_runtime_url(pytester: pytest.Pytester, serve, app) -> None:
    # The port is known only at run time; [tool.aisp.llm] (canaries, attempts, api ...) still applies.
    pytester.makepyprojecttoml(f"""
[tool.aisp.llm]
attempts = 1
canaries = ["{app.SERVER_CANARY}"]
max_tokens = 50
""")
    pytester.makepyfile(test_factory=f"""
import pytest
from pytest_aisp import LLMVulnerability, assert_no_system_prompt_leak, probe_llm

URL = "{serve("weak-system-prompt-leak")}/v1/chat/completions"

def test_factory(llm_endpoint_factory):
    endpoint = llm_endpoint_factory(url=URL)
    assert (endpoint.attempts, endpoint.max_tokens) == (1, 50)
    assert endpoint.canaries == ("{app.SERVER_CANARY}",)
    result = probe_llm(endpoint, "system-prompt-leak.direct")
    assert result.attempts == result.hits == 1
    answer = result.probes[0].records[0].attack.turns[-1].content
    assert "{app.SERVER_CANARY}" not in answer and "***" in answer  # the configured canary, redacted
""")
    pytester.runpytest("-p", "no:cacheprovider", "-m", "aisp").assert_outcomes(passed=1)
