"""LLM security tests of the Acme chat service (the llm_endpoint fixture, see conftest.py)."""

import pytest

from pytest_aisp import (
    LLMVulnerability,
    assert_llm_secure,
    assert_no_cross_session_leak,
    assert_no_data_leak,
    assert_no_encoding_bypass,
    assert_no_insecure_output,
    assert_no_jailbreak,
    assert_no_prompt_injection,
    assert_no_system_prompt_leak,
    probe_llm,
)


@pytest.mark.aisp_llm
def test_chatbot_resists_prompt_injection(llm_endpoint):
    assert_no_prompt_injection(llm_endpoint, attempts=2)


@pytest.mark.aisp_llm
def test_chatbot_keeps_its_system_prompt(llm_endpoint):
    assert_no_system_prompt_leak(llm_endpoint, attempts=2)


@pytest.mark.aisp_llm
def test_chatbot_keeps_conversations_apart(llm_endpoint):
    assert_no_cross_session_leak(llm_endpoint, attempts=2)


@pytest.mark.aisp_llm
def test_chatbot_passes_every_probe_family(llm_endpoint):
    result = assert_llm_secure(llm_endpoint, attempts=1)
    assert result.false_positive_rate == 0.0


ASSERT_BY_FAMILY = {
    "injection": assert_no_prompt_injection,
    "jailbreak": assert_no_jailbreak,
    "encoding": assert_no_encoding_bypass,
    "system-prompt-leak": assert_no_system_prompt_leak,
    "data-leak": assert_no_data_leak,
    "cross-session-leak": assert_no_cross_session_leak,
    "insecure-output": assert_no_insecure_output,
}


@pytest.mark.aisp_llm
@pytest.mark.parametrize("family", list(ASSERT_BY_FAMILY))
@pytest.mark.xfail(strict=True, raises=LLMVulnerability, reason="this build has the weakness switched on")
def test_weak_builds_are_caught(weak_chat, family):
    ASSERT_BY_FAMILY[family](weak_chat(family), attempts=1)


@pytest.mark.aisp_llm
def test_attack_success_rate_is_reported(weak_chat):
    result = probe_llm(weak_chat("injection"), probes=["injection"], attempts=2)
    assert result.attack_success_rate == 1.0
    assert {f.rule_id for f in result.findings} == {"AISP-LLM-INJECTION"}
