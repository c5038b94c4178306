"""NLP security: adversarial text attacks, augmentation and bias checks for text classifiers.

Public names resolve lazily, so ``import pytest_aisp.nlp`` loads neither numpy-heavy engines nor
scikit-learn, NLTK or TextAttack.
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "TextClassifier": "classifier",
    "as_text_classifier": "classifier",
    "TextConstraints": "attack",
    "AdversarialText": "results",
    "TextRobustnessResult": "results",
    "evaluate_text_robustness": "attack",
    "assert_text_robust": "attack",
    "character_diff": "results",
    "local_sentence_encoder": "attack",
    "augment_texts": "augment",
    "CounterfactualPair": "bias",
    "CounterfactualResult": "bias",
    "GroupMetricsResult": "bias",
    "evaluate_counterfactual_fairness": "bias",
    "assert_counterfactual_fair": "bias",
    "evaluate_group_metrics": "bias",
    "group_of_terms": "bias",
    "text_edits": "strategies",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
