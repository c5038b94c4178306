"""Backdoor detection on a trained model and its training data (rule ``AISP-ROBUST-BACKDOOR``).

ART proposes suspects in each class: ``ActivationDefence`` (two-means clustering of the model's
activations, the smaller cluster) or ``SpectralSignatureDefense`` (the points furthest along the top
singular vector). Both propose suspects in *every* class, clean ones included (ART issues #1188 and
#2313), so a class is only flagged when its suspects share a stamped input pattern that the rest
of the class lacks: a set of input features held at one value in the suspects and far from that
value elsewhere in the class, which is what a patch or pixel trigger leaves behind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import attach, record_findings, record_metric
from pytest_aisp.robust._access import check_data, penultimate_activations
from pytest_aisp.robust._common import check_fraction, rounded, seeded_numpy, thumbnails_png
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-BACKDOOR"
METHODS = ("activation_clustering", "spectral_signature")
MIN_CLASS_SIZE = 10


@dataclass(frozen=True)
class ClassScreen:
    """One class: how many samples, how many ART proposed, how many carry a stamped pattern."""

    label: int
    size: int
    candidates: int
    suspects: int
    stamped_features: int

    @property
    def suspect_fraction(self) -> float:
        return self.suspects / self.size if self.size else 0.0


@dataclass(frozen=True)
class BackdoorResult:
    """What :func:`evaluate_backdoor` found."""

    method: str
    findings: tuple[Finding, ...]
    per_class: Mapping[int, ClassScreen]
    suspect_indices: tuple[int, ...]
    suspect_fraction: float
    seconds: float
    unchecked_classes: tuple[int, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.findings


def evaluate_backdoor(
    model: Any,
    train_data: Any,
    *,
    method: str = "activation_clustering",
    max_suspect_fraction: float = 0.01,
    activations: np.ndarray | None = None,
    min_shift: float = 0.5,
    max_spread: float = 0.05,
    min_stamped_features: int = 4,
    eps: float = 0.1,
    seed: int = 0,
    location: str = "model",
) -> BackdoorResult:
    """Screen ``model``'s training data ``(x, y)`` for a planted backdoor.

    ``activations`` (N, ...) replaces the model's own penultimate activations (they are flattened
    either way). A class is flagged when the ART suspects of ``method`` share at least
    ``min_stamped_features`` input features held within ``max_spread`` of one value that is at least
    ``min_shift`` away from the rest of the class (both as fractions of the data range). The check
    fails when the flagged suspects exceed ``max_suspect_fraction`` of the training data.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise AispError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_fraction(max_suspect_fraction, "max_suspect_fraction")
    x, y = check_data(train_data, "train_data")
    acts = _activations(model, x, activations)
    flat_x = x.reshape(len(x), -1).astype(np.float64)
    span = float(flat_x.max() - flat_x.min()) or 1.0
    candidates = _art_candidates(acts, y, method, eps, seed)
    per_class: dict[int, ClassScreen] = {}
    suspects: list[np.ndarray] = []
    unchecked: list[int] = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        if len(rows) < MIN_CLASS_SIZE:
            unchecked.append(int(label))
            continue
        group = candidates[rows]
        stamped, carriers = _stamped_pattern(flat_x[rows] / span, group, min_shift, max_spread)
        confirmed = len(stamped) >= min_stamped_features
        flagged = rows[carriers] if confirmed else np.zeros(0, dtype=int)
        suspects.append(flagged)
        per_class[int(label)] = ClassScreen(
            int(label), len(rows), int(group.sum()), len(flagged), len(stamped)
        )
    suspect_idx = np.sort(np.concatenate(suspects)) if suspects else np.zeros(0, dtype=int)
    fraction = len(suspect_idx) / len(y)
    findings = _findings(per_class, suspect_idx, fraction, max_suspect_fraction, unchecked, method, location)
    result = BackdoorResult(
        method,
        tuple(findings),
        per_class,
        tuple(int(i) for i in suspect_idx),
        fraction,
        time.perf_counter() - started,
        tuple(unchecked),
    )
    record_findings(result.findings)
    record_metric("backdoor_suspect_fraction", fraction)
    if len(suspect_idx) and x.ndim in (3, 4):
        png = thumbnails_png(x[suspect_idx[:8]])
        if png:
            attach(f"backdoor suspects ({method})", png)
    return result


def assert_no_backdoor(
    model: Any,
    train_data: Any,
    *,
    method: str = "activation_clustering",
    max_suspect_fraction: float = 0.01,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> BackdoorResult:
    """Fail with ``RobustnessFailure`` when :func:`evaluate_backdoor` flags more than
    ``max_suspect_fraction`` of the training data as backdoor poison; return the result otherwise."""
    __tracebackhide__ = True
    result = evaluate_backdoor(
        model, train_data, method=method, max_suspect_fraction=max_suspect_fraction, **kwargs
    )
    worst = max(result.per_class.values(), key=lambda c: c.suspects, default=None)
    details = (
        f"{len(result.suspect_indices)} of the training samples ({result.suspect_fraction:.1%}) "
        "look planted; "
        f"bound {max_suspect_fraction:.1%}"
    )
    if worst is not None and worst.suspects:
        details += (
            f"; worst class {worst.label}: {worst.suspects}/{worst.size} samples share a pattern on "
            f"{worst.stamped_features} input features; first suspects {list(result.suspect_indices[:5])}"
        )
    enforce(
        result.findings,
        RobustnessFailure,
        headline=f"backdoor detected by {method}",
        details=details,
        result=result,
        fail_on=fail_on,
    )
    return result


def _activations(model: Any, x: np.ndarray, given: np.ndarray | None) -> np.ndarray:
    acts = penultimate_activations(model, x) if given is None else np.asarray(given, np.float64)
    if len(acts) != len(x):
        raise AispError(f"activations hold {len(acts)} rows for {len(x)} training samples; they must match")
    # ART's activation defences expect (N, features); conv activations arrive as (N, C, H, W).
    return acts.reshape(len(acts), -1)


class _ClassCount:
    """What ``ActivationDefence`` reads of its classifier once activations are supplied."""

    def __init__(self, nb_classes: int) -> None:
        self.nb_classes = nb_classes


def _art_candidates(acts: np.ndarray, y: np.ndarray, method: str, eps: float, seed: int) -> np.ndarray:
    """A boolean mask of the samples ART proposes as poison."""
    require("art", "art")
    if method == "activation_clustering":
        from art.defences.detector.poison import ActivationDefence

        # ART clusters every class id up to the largest; give it only the classes big enough to
        # cluster, renumbered 0..k-1, so missing or tiny classes cannot break its KMeans.
        labels, counts = np.unique(y, return_counts=True)
        kept = labels[counts >= MIN_CLASS_SIZE]
        rows = np.flatnonzero(np.isin(y, kept))
        mask = np.zeros(len(y), bool)
        if len(kept) == 0:
            return mask
        y_kept = np.searchsorted(kept, y[rows])
        defence = ActivationDefence(_ClassCount(len(kept)), acts[rows], y_kept)  # type: ignore[arg-type]
        defence.activations_by_class = defence._segment_by_class(acts[rows], y_kept)
        smallest = min(len(a) for a in defence.activations_by_class)
        nb_dims = max(1, min(10, acts.shape[1], smallest - 1))
        with seeded_numpy(seed):
            _, is_clean = defence.detect_poison(
                nb_clusters=2, nb_dims=nb_dims, reduce="PCA", cluster_analysis="smaller"
            )
        mask[rows] = np.asarray(is_clean) == 0
        return mask
    from art.defences.detector.poison import SpectralSignatureDefense

    mask = np.zeros(len(y), bool)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        if len(rows) < 2:
            continue
        scores = SpectralSignatureDefense.spectral_signature_scores(acts[rows])[:, 0]
        cutoff = np.quantile(scores, max(1.0 - 1.5 * eps, 0.0))
        mask[rows[scores >= cutoff]] = True
    return mask


def _stamped_pattern(
    x_class: np.ndarray,
    group: np.ndarray,
    min_shift: float,
    max_spread: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Features held at one value across ``group`` and far from it in the rest of the class, and which
    rows of the class carry that value on all of them."""
    if group.sum() < 2 or (~group).sum() < 2:
        return np.zeros(0, dtype=int), np.zeros(len(x_class), bool)
    inside, outside = x_class[group], x_class[~group]
    level = np.median(inside, axis=0)
    # A few clean samples among the suspects must not hide the pattern: take the 90th percentile.
    spread = np.quantile(np.abs(inside - level), 0.9, axis=0)
    shift = np.abs(outside.mean(axis=0) - level)
    stamped = np.flatnonzero((spread <= max_spread) & (shift >= min_shift))
    carriers = np.all(np.abs(x_class[:, stamped] - level[stamped]) <= max_spread, axis=1)
    return stamped, carriers


def _findings(
    per_class: Mapping[int, ClassScreen],
    suspects: np.ndarray,
    fraction: float,
    bound: float,
    unchecked: list[int],
    method: str,
    location: str,
) -> list[Finding]:
    findings: list[Finding] = []
    flagged = {label: c for label, c in per_class.items() if c.suspects}
    if fraction > bound:
        worst = max(flagged.values(), key=lambda c: c.suspects)
        findings.append(
            Finding(
                RULE,
                Severity.HIGH,
                f"{len(suspects)} training samples ({fraction:.1%}, bound {bound:.1%}) "
                "carry a stamped pattern "
                f"in class {worst.label}: a likely backdoor trigger",
                location,
                evidence={
                    "method": method,
                    "suspect_indices": [int(i) for i in suspects[:20]],
                    "per_class": {
                        str(k): {
                            "size": c.size,
                            "suspects": c.suspects,
                            "stamped_features": c.stamped_features,
                        }
                        for k, c in flagged.items()
                    },
                    "recommendation": "remove the suspects and retrain; check where those samples came from",
                },
                metrics={
                    "backdoor_suspect_fraction": rounded(fraction),
                    "backdoor_flagged_classes": len(flagged),
                },
            )
        )
    if unchecked:
        findings.append(
            Finding(
                RULE,
                Severity.LOW,
                f"classes {unchecked} have fewer than {MIN_CLASS_SIZE} training samples "
                "and were not screened",
                location,
                evidence={"method": method, "unchecked_classes": unchecked},
            )
        )
    return findings
