"""Membership inference (rule ``AISP-ROBUST-MEMBERSHIP``): can an attacker tell training samples
from unseen ones by the model's outputs?

Three attacks score every sample: the loss threshold attack (low loss -> member), the confidence
threshold attack (high top probability -> member) and ART's ``MembershipInferenceBlackBox`` (a random
forest trained on half of the members and non-members, scored on the other half). Each reports its
ROC AUC with a bootstrap interval and its true-positive rate at 1% false positives.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.robust._access import check_data, model_access, predict_proba
from pytest_aisp.robust._common import check_fraction, rounded, seeded_numpy
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-MEMBERSHIP"
ATTACKS = ("loss", "confidence", "art_blackbox")
LOW_FPR = 0.01


@dataclass(frozen=True)
class AttackScore:
    """One attack's power: AUC, its bootstrap interval, and TPR at 1% FPR."""

    name: str
    auc: float
    auc_low: float
    auc_high: float
    tpr_at_low_fpr: float


@dataclass(frozen=True)
class MembershipResult:
    """What :func:`evaluate_membership` measured."""

    attacks: Mapping[str, AttackScore]
    findings: tuple[Finding, ...]
    members: int
    non_members: int
    seconds: float

    @property
    def worst(self) -> AttackScore:
        """The attack with the highest AUC."""
        return max(self.attacks.values(), key=lambda a: a.auc)

    @property
    def auc(self) -> float:
        return self.worst.auc

    @property
    def passed(self) -> bool:
        return not self.findings


def evaluate_membership(
    model: Any,
    train_data: Any,
    holdout_data: Any,
    *,
    attacks: tuple[str, ...] = ATTACKS,
    max_auc: float = 0.6,
    max_tpr_at_low_fpr: float | None = None,
    n_bootstrap: int = 200,
    nb_classes: int | None = None,
    seed: int = 0,
    location: str = "model",
) -> MembershipResult:
    """Attack ``model`` with members ``train_data`` and non-members ``holdout_data`` (both ``(x, y)``).

    A finding when the strongest attack's AUC exceeds ``max_auc`` or, when given, its TPR at 1% FPR
    exceeds ``max_tpr_at_low_fpr``. Use as many members as non-members, at least 20 of each.
    """
    started = time.perf_counter()
    unknown = set(attacks) - set(ATTACKS)
    if unknown or not attacks:
        raise AispError(f"attacks must be a non-empty subset of {', '.join(ATTACKS)}, got {attacks!r}")
    check_fraction(max_auc, "max_auc")
    x_in, y_in = check_data(train_data, "train_data")
    x_out, y_out = check_data(holdout_data, "holdout_data")
    if x_in.shape[1:] != x_out.shape[1:]:
        raise AispError(f"members have input shape {x_in.shape[1:]} but non-members {x_out.shape[1:]}")
    if min(len(x_in), len(x_out)) < 20:
        raise AispError("membership inference needs at least 20 members and 20 non-members")
    classes = nb_classes or int(max(y_in.max(), y_out.max())) + 1
    access = model_access(model, classes)
    p_in, p_out = predict_proba(access, x_in), predict_proba(access, x_out)
    if p_in.shape[1] <= max(y_in.max(), y_out.max()):
        raise AispError(
            f"the model returns {p_in.shape[1]} classes but labels go up to {max(y_in.max(), y_out.max())}"
        )
    rng = np.random.default_rng(seed)
    scores: dict[str, AttackScore] = {}
    for name in attacks:
        if name == "art_blackbox":
            s_in, s_out = _art_blackbox(x_in, y_in, p_in, x_out, y_out, p_out, classes, seed)
        else:
            s_in, s_out = _threshold_scores(name, p_in, y_in), _threshold_scores(name, p_out, y_out)
        scores[name] = _score(name, s_in, s_out, n_bootstrap, rng)
    findings = _findings(scores, max_auc, max_tpr_at_low_fpr, len(x_in), len(x_out), location)
    result = MembershipResult(scores, tuple(findings), len(x_in), len(x_out), time.perf_counter() - started)
    record_findings(result.findings)
    record_metric("membership_auc", result.auc)
    record_metric("membership_tpr_at_1pct_fpr", result.worst.tpr_at_low_fpr)
    return result


def assert_no_membership_leakage(
    model: Any,
    train_data: Any,
    holdout_data: Any,
    *,
    max_auc: float = 0.6,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> MembershipResult:
    """Fail with ``RobustnessFailure`` when a membership attack reaches an AUC above ``max_auc``;
    return the result otherwise."""
    __tracebackhide__ = True
    result = evaluate_membership(model, train_data, holdout_data, max_auc=max_auc, **kwargs)
    worst = result.worst
    details = (
        f"{worst.name} attack: AUC {worst.auc:.3f} (95% interval {worst.auc_low:.3f}-{worst.auc_high:.3f}), "
        f"bound {max_auc}; TPR at 1% FPR {worst.tpr_at_low_fpr:.1%}; "
        + ", ".join(f"{a.name} {a.auc:.3f}" for a in result.attacks.values())
    )
    enforce(
        result.findings,
        RobustnessFailure,
        headline="the model leaks training-set membership",
        details=details,
        result=result,
        fail_on=fail_on,
    )
    return result


def _threshold_scores(name: str, proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    if name == "loss":
        return np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))  # minus the loss: higher -> member
    return proba.max(axis=1)


def _art_blackbox(
    x_in: np.ndarray,
    y_in: np.ndarray,
    p_in: np.ndarray,
    x_out: np.ndarray,
    y_out: np.ndarray,
    p_out: np.ndarray,
    classes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Membership probabilities from ART's black-box attack on the halves it was not fitted on."""
    require("art", "art")
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier

    rng = np.random.default_rng(seed)
    order_in, order_out = rng.permutation(len(x_in)), rng.permutation(len(x_out))
    fit_in, eval_in = np.array_split(order_in, 2)
    fit_out, eval_out = np.array_split(order_out, 2)
    estimator = BlackBoxClassifier(lambda x: np.zeros((len(x), classes)), x_in.shape[1:], classes)
    onehot = np.eye(classes)
    with seeded_numpy(seed):
        attack = MembershipInferenceBlackBox(estimator, input_type="prediction", attack_model_type="rf")
        attack.fit(
            x_in[fit_in],
            onehot[y_in[fit_in]],
            x_out[fit_out],
            onehot[y_out[fit_out]],
            pred=p_in[fit_in],
            test_pred=p_out[fit_out],
        )
        s_in = attack.infer(x_in[eval_in], onehot[y_in[eval_in]], pred=p_in[eval_in], probabilities=True)
        s_out = attack.infer(
            x_out[eval_out], onehot[y_out[eval_out]], pred=p_out[eval_out], probabilities=True
        )
    return _member_column(s_in), _member_column(s_out)


def _member_column(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, float)
    return scores[:, -1] if scores.ndim == 2 else scores.reshape(-1)


def roc_auc(s_in: np.ndarray, s_out: np.ndarray) -> float:
    """P(member score > non-member score), ties counted half (the Mann-Whitney form of the ROC AUC)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([s_in, s_out]))
    n_in, n_out = len(s_in), len(s_out)
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def tpr_at_fpr(s_in: np.ndarray, s_out: np.ndarray, fpr: float = LOW_FPR) -> float:
    """Share of members scored above the threshold that lets through ``fpr`` of non-members."""
    threshold = np.quantile(s_out, 1.0 - fpr, method="higher")
    return float(np.mean(s_in > threshold))


def _score(
    name: str, s_in: np.ndarray, s_out: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> AttackScore:
    auc = roc_auc(s_in, s_out)
    boot = [roc_auc(rng.choice(s_in, len(s_in)), rng.choice(s_out, len(s_out))) for _ in range(n_bootstrap)]
    low, high = np.quantile(boot, [0.025, 0.975]) if boot else (auc, auc)
    return AttackScore(name, auc, float(low), float(high), tpr_at_fpr(s_in, s_out))


def _findings(
    scores: Mapping[str, AttackScore],
    max_auc: float,
    max_tpr: float | None,
    members: int,
    non_members: int,
    location: str,
) -> list[Finding]:
    worst = max(scores.values(), key=lambda a: a.auc)
    over_auc = worst.auc > max_auc
    over_tpr = max_tpr is not None and worst.tpr_at_low_fpr > max_tpr
    if not (over_auc or over_tpr):
        return []
    what = (
        f"membership AUC {worst.auc:.3f} > {max_auc}"
        if over_auc
        else f"TPR at 1% FPR {worst.tpr_at_low_fpr:.1%} > {max_tpr:.1%}"
    )
    return [
        Finding(
            RULE,
            Severity.HIGH,
            f"the {worst.name} attack tells training samples from unseen ones: {what} "
            f"(interval {worst.auc_low:.3f}-{worst.auc_high:.3f})",
            location,
            evidence={
                "attacks": {
                    a.name: {
                        "auc": rounded(a.auc),
                        "auc_interval": [rounded(a.auc_low), rounded(a.auc_high)],
                        "tpr_at_1pct_fpr": rounded(a.tpr_at_low_fpr),
                    }
                    for a in scores.values()
                },
                "members": members,
                "non_members": non_members,
                "recommendation": "regularise (weight decay, label smoothing, early stopping), "
                "train on more data, "
                "or train with differential privacy; return labels instead of scores",
            },
            metrics={
                "membership_auc": rounded(worst.auc),
                "membership_tpr_at_1pct_fpr": rounded(worst.tpr_at_low_fpr),
            },
        )
    ]
