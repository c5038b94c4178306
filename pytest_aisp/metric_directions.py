"""Which way each measured metric is better, for the baseline's "got worse" check (and any gate).

A metric not listed (a count, a setting, a bound such as ``min_acc``) has no direction and is never
compared. Metrics named ``min_*``/``max_*`` that are not listed here are the bounds a check ran with;
they are part of a finding's identity (:mod:`pytest_aisp.identity`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

HIGHER_IS_BETTER: frozenset[str] = frozenset({
    "robust_acc", "clean_acc", "accuracy", "attacked_accuracy", "clean_accuracy", "agreement", "w",
    "nlp_attacked_accuracy", "nlp_clean_accuracy", "poisoning_clean_accuracy", "detection_rate",
})
LOWER_IS_BETTER: frozenset[str] = frozenset({
    "attack_success_rate", "asr_low", "asr_high", "hits", "false_positive_rate", "nlp_attack_success_rate",
    "flip_rate", "max_score_gap", "score_gap", "nlp_counterfactual_flip_rate", "nlp_counterfactual_max_score_gap",
    "nlp_demographic_parity_gap", "nlp_equalized_odds_gap", "mean_words_changed",
    "auc", "membership_auc", "extraction_accuracy", "extraction_fidelity", "fidelity",
    "backdoor_suspect_fraction", "backdoor_flagged_classes", "trigger_success_rate", "trigger_anomaly_index",
    "poisoning_acc_drop", "poisoning_backdoor_success", "dataset_label_outlier_fraction",
    "dataset_spectral_outlier_fraction", "dataset_conflicting_pairs",
    "joint_only_rate", "false_alarm_rate",
    "error_rate", "share", "drifted_features", "max_ks", "auth_failures", "over_budget",
})
TOLERANCE = 1e-9


def metric_direction(name: str) -> str | None:
    """``"higher"`` or ``"lower"`` (is better) for a known measured metric, None for anything else."""
    if name in HIGHER_IS_BETTER:
        return "higher"
    if name in LOWER_IS_BETTER:
        return "lower"
    return None


def is_bound(name: str) -> bool:
    """True for a metric that is a check's bound (``min_acc``, ``max_auc`` ...), not a measurement."""
    return name.startswith(("min_", "max_")) and metric_direction(name) is None


def measured_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The measured values of ``metrics`` that have a direction (what a baseline entry records)."""
    return {name: float(value) for name, value in sorted(metrics.items())
            if metric_direction(name) is not None and math.isfinite(float(value))}
