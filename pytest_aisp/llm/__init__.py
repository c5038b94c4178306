"""LLM endpoint probing: injection, jailbreaks, encodings, leaks and insecure output.

Names load lazily from their submodules, so ``import pytest_aisp.llm`` does not import httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "TextSignal": "detectors",
    "normalize": "detectors",
    "scan_prompt": "detectors",
    "scan_response": "detectors",
    "scan_code": "detectors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    submodule = _EXPORTS.get(name)
    if submodule is None:
        raise AttributeError(f"module 'pytest_aisp.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_aisp.llm.{submodule}"), name)
    globals()[name] = value
    return value
