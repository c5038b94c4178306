"""robust module."""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []

# poisoning, backdoors, extraction, membership
_POISON_EXPORTS: dict[str, str] = {
    "evaluate_backdoor": "backdoor",
    "assert_no_backdoor": "backdoor",
    "BackdoorResult": "backdoor",
    "Trigger": "trigger",
    "evaluate_trigger": "trigger",
    "assert_trigger_free": "trigger",
    "TriggerResult": "trigger",
    "evaluate_poisoning": "poisoning",
    "assert_poisoning_resistant": "poisoning",
    "PoisoningResult": "poisoning",
    "scan_dataset": "dataset_screen",
    "assert_dataset_clean": "dataset_screen",
    "DatasetScreen": "dataset_screen",
    "evaluate_extraction": "extraction",
    "assert_extraction_resistant": "extraction",
    "ExtractionResult": "extraction",
    "evaluate_membership": "membership",
    "assert_no_membership_leakage": "membership",
    "MembershipResult": "membership",
}
__all__ += list(_POISON_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _POISON_EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_POISON_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
