"""pytest-aisp: AI security checks as pytest assertions.

The core names are imported here; each module's public names (``assert_robust``,
``scan_artifact``, ``probe_llm`` ...) are loaded on first use, so ``import pytest_aisp``
stays fast and never imports torch, ART, garak or TextAttack.
"""

from __future__ import annotations

import importlib
from typing import Any

from pytest_aisp.findings import (
    AispError,
    AispFailure,
    BackendMissing,
    Finding,
    IntegrityFailure,
    InvarianceFailure,
    LLMVulnerability,
    MonitorAlert,
    RobustnessFailure,
    Severity,
    TextRobustnessFailure,
    UnsafeArtifact,
)
from pytest_aisp.recorder import attach, record_finding, record_findings, record_metric
from pytest_aisp.verdict import decide, enforce

__version__ = "0.1.0"

# Module packages whose ``__all__`` names are re-exported lazily from here.
MODULES: tuple[str, ...] = ("scan", "robust", "llm", "nlp", "multimodal", "supply", "monitor", "dashboard")

__all__ = [
    "MODULES",
    "AispError",
    "AispFailure",
    "BackendMissing",
    "Finding",
    "IntegrityFailure",
    "InvarianceFailure",
    "LLMVulnerability",
    "MonitorAlert",
    "RobustnessFailure",
    "Severity",
    "TextRobustnessFailure",
    "UnsafeArtifact",
    "__version__",
    "attach",
    "decide",
    "enforce",
    "record_finding",
    "record_findings",
    "record_metric",
]


def _module_exports(name: str) -> Any:
    for module_name in MODULES:
        try:
            module = importlib.import_module(f"pytest_aisp.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pytest_aisp.{module_name}":
                continue
            raise
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'pytest_aisp' has no attribute {name!r}")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    value = _module_exports(name)
    globals()[name] = value
    return value
