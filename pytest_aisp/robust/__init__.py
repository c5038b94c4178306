"""Adversarial robustness: evasion attacks as assertions (native torch attacks, ART for the rest).

Submodules that import torch, ART or scikit-learn are loaded on first use of one of their names,
so ``import pytest_aisp.robust`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> submodule that defines it.
_EVASION: dict[str, str] = {
    "as_classifier": "model",
    "Classifier": "model",
    "ModelUnderTest": "model",
    "RemoteEndpoint": "model",
    "SageMakerEndpoint": "model",
    "model_under_test_from_settings": "model",
}

_LOCATIONS: dict[str, str] = {**_EVASION}

__all__ = [
    # evasion
    "Classifier",
    "ModelUnderTest",
    "RemoteEndpoint",
    "SageMakerEndpoint",
    "as_classifier",
    "model_under_test_from_settings",
]


def __getattr__(name: str) -> Any:
    module_name = _LOCATIONS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_aisp.robust' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_aisp.robust.{module_name}"), name)
    globals()[name] = value
    return value
