"""Adversarial robustness: evasion attacks as assertions (native torch attacks, ART for the rest).

Submodules that import torch, ART or scikit-learn are loaded on first use of one of their names,
so ``import pytest_aisp.robust`` stays fast.
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

# Evasion: public name -> submodule that defines it.
_EVASION: dict[str, str] = {
    "AdversarialExample": "evaluate",
    "Classifier": "model",
    "LocalRobustnessResult": "local",
    "ModelUnderTest": "model",
    "RemoteEndpoint": "model",
    "RobustnessCurve": "evaluate",
    "RobustnessResult": "evaluate",
    "SageMakerEndpoint": "model",
    "SanityResult": "sanity",
    "as_classifier": "model",
    "assert_locally_robust": "local",
    "assert_no_gradient_masking": "sanity",
    "assert_robust": "evaluate",
    "evaluate_gradient_masking": "sanity",
    "evaluate_local_robustness": "local",
    "evaluate_robustness": "evaluate",
    "model_under_test_from_settings": "model",
    "robustness_curve": "evaluate",
    "wilson_interval": "evaluate",
}

_LOCATIONS: dict[str, str] = {**_EVASION}

__all__ = [
    # evasion
    "AdversarialExample",
    "Classifier",
    "LocalRobustnessResult",
    "ModelUnderTest",
    "RemoteEndpoint",
    "RobustnessCurve",
    "RobustnessResult",
    "SageMakerEndpoint",
    "SanityResult",
    "as_classifier",
    "assert_locally_robust",
    "assert_no_gradient_masking",
    "assert_robust",
    "evaluate_gradient_masking",
    "evaluate_local_robustness",
    "evaluate_robustness",
    "model_under_test_from_settings",
    "robustness_curve",
    "wilson_interval",
]


__getattr__ = lazy_exports(__name__, _LOCATIONS)


# poisoning, backdoors, extraction, membership
_POISONING: dict[str, str] = {
    "BackdoorResult": "backdoor",
    "DatasetScreen": "dataset_screen",
    "ExtractionResult": "extraction",
    "MembershipResult": "membership",
    "PoisoningResult": "poisoning",
    "Trigger": "trigger",
    "TriggerResult": "trigger",
    "assert_dataset_clean": "dataset_screen",
    "assert_extraction_resistant": "extraction",
    "assert_no_backdoor": "backdoor",
    "assert_no_membership_leakage": "membership",
    "assert_poisoning_resistant": "poisoning",
    "assert_trigger_free": "trigger",
    "evaluate_backdoor": "backdoor",
    "evaluate_extraction": "extraction",
    "evaluate_membership": "membership",
    "evaluate_poisoning": "poisoning",
    "evaluate_trigger": "trigger",
    "scan_dataset": "dataset_screen",
}
_LOCATIONS.update(_POISONING)
__all__ += sorted(_POISONING)
