"""What a perturbation is: the dataclass each operations module builds, the signatures of its
implementations, and the loader of AugLy, through which several of them run.

It imports nothing of the multimodal folder but ``inputs.py``, so the operations modules (image_ops ...)
and the registry, which loads them, depend on it and never on each other in a circle.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_aisp.multimodal.inputs import Context

# (severity, rng, batch size) -> parameters; arrays of length n hold per-example choices.
ParameterMap = Callable[[float, np.random.Generator, int], dict[str, Any]]
# (batch, parameters, rng, context) -> perturbed batch of the same kind.
NativeFunction = Callable[[Any, Mapping[str, Any], np.random.Generator, Context], Any]
# (batch, parameters, seed, context) -> perturbed batch, one item at a time through AugLy.
AuglyFunction = Callable[[Any, Mapping[str, Any], int, Context], Any]


@dataclass(frozen=True)
class Perturbation:
    """One named perturbation: its severity mapping and its native (and maybe AugLy) implementation."""

    name: str
    mapping: str
    parameters: ParameterMap
    native: NativeFunction
    augly: AuglyFunction | None = None
    batched: bool = True
    augly_note: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def modality(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split(":", 1)[1]


def import_augly(module: str = "augly.image") -> Any:
    """Import an AugLy module. AugLy needs libmagic (through python-magic): the one inside the ``pylibmagic``
    wheel is loaded first when installed, so every machine runs the same library; Debian's ``libmagic1``
    serves otherwise."""
    with contextlib.suppress(ImportError):
        import pylibmagic  # noqa: F401  - puts its libmagic and magic.mgc first for python-magic
    return importlib.import_module(module)


def augly_available() -> bool:
    """True when AugLy's image module imports (with libmagic from the pylibmagic wheel or the system)."""
    try:
        import_augly("augly.image")
    except Exception:  # augly raises ImportError, or OSError when libmagic is missing
        return False
    return True
