"""Backdoor detection on a trained model, its training data and clean data (rule ``AISP-ROBUST-BACKDOOR``).

A backdoor is planted through training rows that carry a trigger and the target label. Whatever the
trigger looks like (a patch, a blended image, a warp, a colour or frequency change), the model must
learn to tell those rows apart from the genuine rows of the target class, and that leaves a
sub-population in the class that clean data of the class does not have. Each method scores the
training rows of every class and compares them with clean rows of the same class (``clean_data``: a
held-out split the model never saw), so a planted sub-population is told from a natural one (a
second handwriting style) by being absent from clean data:

- ``activation_clustering`` (Chen et al., 2019): ART's ``cluster_activations`` splits the class's
  penultimate activations (training and clean rows together; PCA to 10 dimensions, two-means)
  into two clusters; a cluster that holds far more training rows than its share of clean rows is
  planted (one-sided Fisher exact test).
- ``spectral_signature`` (Tran et al., 2018): training rows are projected on the top singular vector of
  the class's centred training activations; the score is the distance from the clean rows' median.
  Planted rows lie beyond every clean row (exact permutation test on that count).
- ``strip`` (Gao et al., 2019): each row is superimposed on random clean images; a row that carries a
  trigger keeps its prediction, so the mean entropy of the predictions stays low. Rows below every
  clean row of the class count, as above. Needs only the model's outputs (any model, also black-box).

A class is flagged when its p-value is below ``significance`` divided by the number of classes
screened (Bonferroni), so a clean model fails at most ``significance`` of the time when training and
clean rows of a class are exchangeable. Every result lists the per-class p-values and suspects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import attach, record_findings, record_metric
from pytest_aisp.robust._access import check_data, model_access, penultimate_activations, predict_proba
from pytest_aisp.robust._common import check_fraction, rounded, seeded_numpy, thumbnails_png
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-BACKDOOR"
METHODS = ("activation_clustering", "spectral_signature", "strip")
MIN_CLASS_SIZE = 10  # training rows a class needs to be screened
MIN_CLEAN_ROWS = 5  # clean rows of the class it is compared with
STRIP_BLEND = 0.5  # the input's weight in a STRIP overlay, as in the paper


@dataclass(frozen=True)
class ClassScreen:
    """One class: its training and clean rows, the suspects among the training rows, and the p-value
    of the test that the suspects are no more than chance."""

    label: int
    size: int
    clean_rows: int
    suspects: int
    p_value: float
    flagged: bool

    @property
    def suspect_fraction(self) -> float:
        return self.suspects / self.size if self.size else 0.0


@dataclass(frozen=True)
class BackdoorResult:
    """What :func:`evaluate_backdoor` found. ``suspect_indices`` are rows of the training data in
    flagged classes; ``threshold`` is the per-class p-value below which a class is flagged."""

    method: str
    findings: tuple[Finding, ...]
    per_class: Mapping[int, ClassScreen]
    suspect_indices: tuple[int, ...]
    suspect_fraction: float
    threshold: float
    seconds: float
    unchecked_classes: tuple[int, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def flagged_classes(self) -> tuple[int, ...]:
        return tuple(label for label, c in self.per_class.items() if c.flagged)


@dataclass(frozen=True)
class _Scored:
    """A method's verdict on one class: which of its training rows are suspects, and the p-value."""

    suspects: np.ndarray
    p_value: float


def evaluate_backdoor(
    model: Any,
    train_data: Any,
    *,
    clean_data: Any = None,
    method: str = "spectral_signature",
    significance: float = 0.01,
    max_suspect_fraction: float = 0.01,
    activations: np.ndarray | None = None,
    clean_activations: np.ndarray | None = None,
    overlays: int = 20,
    nb_classes: int | None = None,
    seed: int = 0,
    location: str = "model",
) -> BackdoorResult:
    """Screen ``model``'s training data ``(x, y)`` for a planted backdoor by comparing every class with
    ``clean_data`` ``(x, y)`` (held-out rows known to be clean, e.g. the validation split).

    ``activations`` / ``clean_activations`` (N, ...) replace the model's penultimate activations for the
    activation methods. The check fails when a class's p-value is below ``significance`` / (classes
    screened) and its suspects are more than ``max_suspect_fraction`` of the training data. ``overlays``
    is the number of clean images each row is superimposed on for ``strip``.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise AispError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_fraction(max_suspect_fraction, "max_suspect_fraction")
    if not isinstance(significance, (int, float)) or not 0.0 < significance < 1.0:
        raise AispError(f"significance must be a number in (0, 1), got {significance!r}")
    if clean_data is None:
        raise AispError(
            "evaluate_backdoor needs clean_data=(x, y): held-out rows the model was not trained on and that "
            "are known to be clean (a validation split). Every method compares each class's training rows "
            "with clean rows of the class; without them a planted sub-population cannot be told from a "
            "natural one"
        )
    x, y = check_data(train_data, "train_data")
    x_clean, y_clean = check_data(clean_data, "clean_data")
    if x.shape[1:] != x_clean.shape[1:]:
        raise AispError(f"train_data inputs have shape {x.shape[1:]} but clean_data inputs {x_clean.shape[1:]}")
    screened, unchecked = _classes(y, y_clean)
    threshold = significance / max(len(screened), 1)
    score = _scorer(
        method, model, (x, y), (x_clean, y_clean), activations, clean_activations, overlays, nb_classes, seed
    )
    per_class: dict[int, ClassScreen] = {}
    suspects: list[np.ndarray] = []
    with seeded_numpy(seed):
        for label in screened:
            rows, clean_rows = np.flatnonzero(y == label), np.flatnonzero(y_clean == label)
            scored = score(rows, clean_rows)
            flagged = scored.p_value < threshold
            if flagged:
                suspects.append(rows[scored.suspects])
            per_class[label] = ClassScreen(
                label, len(rows), len(clean_rows), int(scored.suspects.sum()), scored.p_value, flagged
            )
    suspect_idx = np.sort(np.concatenate(suspects)) if suspects else np.zeros(0, dtype=int)
    fraction = len(suspect_idx) / len(y)
    findings = _findings(
        per_class, suspect_idx, fraction, max_suspect_fraction, threshold, unchecked, method, location
    )
    result = BackdoorResult(
        method,
        tuple(findings),
        per_class,
        tuple(int(i) for i in suspect_idx),
        fraction,
        threshold,
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
    clean_data: Any = None,
    method: str = "spectral_signature",
    significance: float = 0.01,
    max_suspect_fraction: float = 0.01,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> BackdoorResult:
    """Fail with ``RobustnessFailure`` when :func:`evaluate_backdoor` finds a class whose training rows
    hold a sub-population its clean rows lack; return the result otherwise."""
    __tracebackhide__ = True
    result = evaluate_backdoor(
        model,
        train_data,
        clean_data=clean_data,
        method=method,
        significance=significance,
        max_suspect_fraction=max_suspect_fraction,
        **kwargs,
    )
    flagged = [c for c in result.per_class.values() if c.flagged]
    details = (
        f"{len(result.suspect_indices)} of the training samples ({result.suspect_fraction:.1%}) look planted; "
        f"bound {max_suspect_fraction:.1%}"
    )
    if flagged:
        worst = min(flagged, key=lambda c: c.p_value)
        details += (
            f"; class {worst.label}: {worst.suspects} of {worst.size} training samples unlike its "
            f"{worst.clean_rows} clean samples (p = {worst.p_value:.1e} < {result.threshold:.1e}); "
            f"first suspects {list(result.suspect_indices[:5])}"
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


def _classes(y: np.ndarray, y_clean: np.ndarray) -> tuple[list[int], list[int]]:
    """Classes with enough training and clean rows to screen, and the training classes without."""
    screened, unchecked = [], []
    for label in np.unique(y):
        if (y == label).sum() >= MIN_CLASS_SIZE and (y_clean == label).sum() >= MIN_CLEAN_ROWS:
            screened.append(int(label))
        else:
            unchecked.append(int(label))
    return screened, unchecked


Scorer = Callable[[np.ndarray, np.ndarray], _Scored]


def _scorer(
    method: str,
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    clean: tuple[np.ndarray, np.ndarray],
    activations: np.ndarray | None,
    clean_activations: np.ndarray | None,
    overlays: int,
    nb_classes: int | None,
    seed: int,
) -> Scorer:
    """The per-class test of ``method``: (training rows, clean rows of one class) -> suspects, p-value."""
    (x, y), (x_clean, y_clean) = train, clean
    if method == "strip":
        if overlays < 1:
            raise AispError(f"overlays must be at least 1, got {overlays}")
        classes = nb_classes or int(max(y.max(), y_clean.max())) + 1
        entropy, clean_entropy = _strip_entropies(model, x, x_clean, overlays, classes, seed)
        return lambda rows, clean_rows: _beyond_every_clean_row(-entropy[rows], -clean_entropy[clean_rows])
    acts = _activations(model, x, activations, "activations")
    clean_acts = _activations(model, x_clean, clean_activations, "clean_activations")
    if acts.shape[1] != clean_acts.shape[1]:
        raise AispError(
            f"activations have {acts.shape[1]} features per row but clean_activations {clean_acts.shape[1]}"
        )
    if method == "spectral_signature":
        return lambda rows, clean_rows: _spectral(acts[rows], clean_acts[clean_rows])
    return lambda rows, clean_rows: _clustered(acts[rows], clean_acts[clean_rows])


def _activations(model: Any, x: np.ndarray, given: np.ndarray | None, name: str) -> np.ndarray:
    acts = penultimate_activations(model, x) if given is None else np.asarray(given, np.float64)
    if len(acts) != len(x):
        raise AispError(f"{name} hold {len(acts)} rows for {len(x)} samples; they must match")
    # the methods work on (N, features); conv activations arrive as (N, C, H, W)
    return acts.reshape(len(acts), -1)


def _spectral(train: np.ndarray, clean: np.ndarray) -> _Scored:
    """Tran et al.'s spectral signature, scored against the clean rows of the class."""
    centred = train - train.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    direction = vt[0]
    # Centre on the clean rows, not on the training mean: planted rows can be half of a class and
    # move its mean, so distance from the clean median is what sets them apart.
    centre = float(np.median(clean @ direction))
    return _beyond_every_clean_row(np.abs(train @ direction - centre), np.abs(clean @ direction - centre))


def _clustered(train: np.ndarray, clean: np.ndarray) -> _Scored:
    """Chen et al.'s activation clustering through ART, each cluster tested against its clean share."""
    require("art", "art")
    stats = require("scipy.stats", "art")
    from art.defences.detector.poison.activation_defence import cluster_activations

    both = np.concatenate([train, clean])
    nb_dims = max(1, min(10, both.shape[1], len(both) - 1))
    # ART reduces and clusters each entry of the list it is given: here the one class. PCA, as ART's
    # ActivationDefence uses by default (its cluster_activations function defaults to FastICA, which
    # whitens every component to unit variance, so two-means would weigh noise like signal).
    clusters = np.asarray(cluster_activations([both], nb_clusters=2, nb_dims=nb_dims, reduce="PCA")[0][0])
    in_train = clusters[: len(train)]
    best = _Scored(np.zeros(len(train), bool), 1.0)
    for cluster in (0, 1):
        members = int((clusters == cluster).sum())
        from_train = int((in_train == cluster).sum())
        # One-sided Fisher exact test: more training rows in the cluster than its size predicts.
        p_value = float(stats.hypergeom.sf(from_train - 1, len(both), members, len(train)))
        p_value = min(1.0, 2 * p_value)  # two clusters tested
        if p_value < best.p_value:
            best = _Scored(in_train == cluster, p_value)
    return best


def _beyond_every_clean_row(train_scores: np.ndarray, clean_scores: np.ndarray) -> _Scored:
    """Training rows scoring above every clean row, and the exact p-value of that many or more when
    training and clean scores are exchangeable: the chance that the top k of the pooled scores are all
    training rows, C(n_train, k) / C(n_train + n_clean, k)."""
    beyond = train_scores > clean_scores.max()
    k, n_train, n_clean = int(beyond.sum()), len(train_scores), len(clean_scores)
    log_p = _log_comb(n_train, k) - _log_comb(n_train + n_clean, k)
    return _Scored(beyond, float(math.exp(log_p)))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _strip_entropies(
    model: Any, x: np.ndarray, x_clean: np.ndarray, overlays: int, nb_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """STRIP's mean prediction entropy (bits) of every training and clean row superimposed on
    ``overlays`` random clean images (a clean row never on itself)."""
    if len(x_clean) < 2:
        raise AispError("strip needs at least two clean rows to superimpose")
    access = model_access(model, nb_classes)
    rng = np.random.default_rng(seed)

    def entropy(batch: np.ndarray, partners: np.ndarray) -> np.ndarray:
        out = np.empty(len(batch))
        chunk = max(1, 4096 // overlays)
        for start in range(0, len(batch), chunk):
            part = batch[start : start + chunk]
            mixed = STRIP_BLEND * part[:, None] + (1 - STRIP_BLEND) * x_clean[partners[start : start + chunk]]
            proba = predict_proba(access, mixed.reshape(-1, *x.shape[1:]).astype(np.float32))
            proba = np.clip(proba, 1e-12, 1.0).reshape(len(part), overlays, -1)
            out[start : start + len(part)] = -(proba * np.log2(proba)).sum(axis=2).mean(axis=1)
        return out

    train_partners = rng.integers(0, len(x_clean), size=(len(x), overlays))
    # a clean row draws its partners from the other clean rows
    offsets = rng.integers(1, len(x_clean), size=(len(x_clean), overlays))
    clean_partners = (np.arange(len(x_clean))[:, None] + offsets) % len(x_clean)
    return entropy(x, train_partners), entropy(x_clean, clean_partners)


def _findings(
    per_class: Mapping[int, ClassScreen],
    suspects: np.ndarray,
    fraction: float,
    bound: float,
    threshold: float,
    unchecked: list[int],
    method: str,
    location: str,
) -> list[Finding]:
    findings: list[Finding] = []
    flagged = {label: c for label, c in per_class.items() if c.flagged}
    if flagged and fraction > bound:
        worst = min(flagged.values(), key=lambda c: c.p_value)
        findings.append(
            Finding(
                RULE,
                Severity.HIGH,
                f"{len(suspects)} training samples ({fraction:.1%}, bound {bound:.1%}) form a sub-population "
                f"that clean data lacks, in class {worst.label} (p = {worst.p_value:.1e}): "
                "a likely backdoor",
                location,
                evidence={
                    "method": method,
                    "suspect_indices": [int(i) for i in suspects[:20]],
                    "p_value_threshold": threshold,
                    "per_class": {
                        str(k): {
                            "size": c.size,
                            "clean_rows": c.clean_rows,
                            "suspects": c.suspects,
                            "p_value": c.p_value,
                        }
                        for k, c in flagged.items()
                    },
                    "recommendation": "remove the suspects and retrain; check where those samples came from",
                },
                metrics={
                    "backdoor_suspect_fraction": rounded(fraction),
                    "backdoor_flagged_classes": len(flagged),
                    "backdoor_min_p_value": worst.p_value,
                },
            )
        )
    if unchecked:
        # fail closed: a class that could not be screened is a finding, and a screen of nothing fails
        nothing_screened = not per_class
        findings.append(
            Finding(
                RULE,
                Severity.MEDIUM if nothing_screened else Severity.LOW,
                f"classes {unchecked} have fewer than {MIN_CLASS_SIZE} training or {MIN_CLEAN_ROWS} clean "
                "samples and were not screened" + ("; no class was" if nothing_screened else ""),
                location,
                evidence={"method": method, "unchecked_classes": unchecked},
            )
        )
    return findings
