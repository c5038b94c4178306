"""LLM endpoint probing: injection, jailbreaks, encodings, leaks and insecure output.

Names load lazily from their submodules, so ``import pytest_aisp.llm`` does not import httpx.
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "TextSignal": "detectors",
    "normalize": "detectors",
    "scan_prompt": "detectors",
    "scan_response": "detectors",
    "scan_code": "detectors",
    "LLMEndpoint": "endpoint",
    "endpoint_from_settings": "endpoint",
    "endpoint_from_config": "endpoint",
    "configured_endpoint": "endpoint",
    "KnownTask": "judge",
    "says_phrase": "judge",
    "Probe": "catalogue",
    "ProbeCase": "catalogue",
    "ProbeScript": "catalogue",
    "LLM_FAMILIES": "catalogue",
    "LLM_PROBES": "catalogue",
    "LLMProbeResult": "probing",
    "ProbeStats": "probing",
    "Attempt": "probing",
    "Planted": "catalogue",
    "probe_llm": "probing",
    "probe_llm_async": "probing",
    "assert_llm_secure": "probing",
    "assert_no_prompt_injection": "probing",
    "assert_no_jailbreak": "probing",
    "assert_no_encoding_bypass": "probing",
    "assert_no_system_prompt_leak": "probing",
    "assert_no_data_leak": "probing",
    "assert_no_cross_session_leak": "probing",
    "assert_no_insecure_output": "probing",
    "run_garak": "garak_bridge",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
