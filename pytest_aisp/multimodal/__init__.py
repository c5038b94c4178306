"""Multimodal robustness: image, audio, video and text perturbations, invariance and cross-modal checks.

The names below load on first use, so ``import pytest_aisp.multimodal`` stays light (no scipy,
Pillow, Hypothesis or AugLy until a check runs).
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "evaluate_invariance": "invariance",
    "assert_invariant": "invariance",
    "find_breaking_severity": "invariance",
    "assert_breaking_severity": "invariance",
    "InvarianceResult": "invariance",
    "InvarianceCell": "invariance",
    "FailingExample": "invariance",
    "BreakingSeverity": "invariance",
    "evaluate_cross_modal": "crossmodal",
    "assert_cross_modal_consistent": "crossmodal",
    "evaluate_mismatch": "crossmodal",
    "assert_mismatch_detected": "crossmodal",
    "mismatched_samples": "crossmodal",
    "CrossModalResult": "crossmodal",
    "MismatchResult": "crossmodal",
    "apply_perturbation": "registry",
    "perturbation_parameters": "registry",
    "get_perturbation": "registry",
    "resolve_perturbations": "registry",
    "Perturbation": "registry",
}

__all__ = sorted([*_EXPORTS, "list_perturbations"])


__getattr__ = lazy_exports(__name__, _EXPORTS)


def list_perturbations() -> list[str]:
    """Every perturbation name (``image:blur`` ...)."""
    from pytest_aisp.multimodal.registry import registry

    return list(registry())
