"""Training-data screening without a model (rule ``AISP-ROBUST-DATASET``).

Three signals, each on a feature vector per sample (the flattened inputs, or embeddings you pass):
near-duplicate inputs that carry different labels, samples whose nearest neighbours agree on another
label (flipped or planted labels), and per-class spectral outliers (samples far along the top singular
direction of their class, where a planted sub-population shows up).
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
from pytest_aisp.robust._access import check_data
from pytest_aisp.robust._common import check_fraction, rounded
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-DATASET"
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class DatasetScreen:
    """What :func:`scan_dataset` found: suspect row indices by signal."""

    findings: tuple[Finding, ...]
    conflicting_duplicates: tuple[tuple[int, int], ...]
    label_outliers: tuple[int, ...]
    suggested_labels: Mapping[int, int]
    spectral_outliers: tuple[int, ...]
    size: int
    seconds: float

    @property
    def suspects(self) -> tuple[int, ...]:
        """Every row some signal flagged, sorted."""
        rows = set(self.label_outliers) | set(self.spectral_outliers)
        rows |= {i for pair in self.conflicting_duplicates for i in pair}
        return tuple(sorted(rows))

    @property
    def passed(self) -> bool:
        return not self.findings


def scan_dataset(
    x: Any,
    y: Any,
    *,
    features: np.ndarray | None = None,
    k: int = 10,
    min_agreement: float = 0.7,
    duplicate_radius: float = 0.05,
    spectral_z: float = 8.0,
    max_outlier_fraction: float = 0.02,
    max_spectral_fraction: float = 0.02,
    location: str = "dataset",
) -> DatasetScreen:
    """Screen ``(x, y)`` for label conflicts, flipped labels and planted sub-populations.

    A row is a label outlier when at least ``min_agreement`` of its ``k`` nearest neighbours share one
    label other than its own. Two rows are conflicting duplicates when they lie within
    ``duplicate_radius`` times the median nearest-neighbour distance of each other and disagree. A row
    is a spectral outlier when its projection on its class's top singular vector lies more than
    ``spectral_z`` robust standard deviations from the class median.
    """
    started = time.perf_counter()
    check_fraction(min_agreement, "min_agreement")
    check_fraction(max_outlier_fraction, "max_outlier_fraction")
    check_fraction(max_spectral_fraction, "max_spectral_fraction")
    x, labels = check_data((x, y), "dataset")
    feats = (x if features is None else np.asarray(features)).reshape(len(x), -1).astype(np.float64)
    if len(feats) != len(labels):
        raise AispError(f"features hold {len(feats)} rows for {len(labels)} labels; they must match")
    if not np.all(np.isfinite(feats)):
        raise AispError("the dataset holds NaN or infinite values; clean them before screening")
    if len(feats) <= k:
        raise AispError(f"scan_dataset needs more than k={k} samples, got {len(feats)}")
    neighbours = require("sklearn.neighbors", "art")
    dist, idx = neighbours.NearestNeighbors(n_neighbors=k + 1).fit(feats).kneighbors(feats)
    dist, idx = dist[:, 1:], idx[:, 1:]
    conflicts = _conflicting_duplicates(dist, idx, labels, duplicate_radius)
    outliers, suggested = _label_outliers(idx, labels, min_agreement)
    spectral = _spectral_outliers(feats, labels, spectral_z)
    n = len(labels)
    findings: list[Finding] = []
    if conflicts:
        findings.append(
            Finding(
                RULE,
                Severity.MEDIUM,
                f"{len(conflicts)} pairs of (near-)identical inputs carry different labels",
                location,
                evidence={
                    "pairs": [list(p) for p in conflicts[:20]],
                    "recommendation": "relabel or drop one of each pair",
                },
                metrics={"dataset_conflicting_pairs": len(conflicts)},
            )
        )
    if len(outliers) / n > max_outlier_fraction:
        findings.append(
            Finding(
                RULE,
                Severity.HIGH,
                f"{len(outliers)} samples ({len(outliers) / n:.1%}, bound {max_outlier_fraction:.1%}) "
                "carry a label "
                "their nearest neighbours disagree with: flipped or planted labels",
                location,
                evidence={
                    "rows": outliers[:20],
                    "suggested_labels": {str(r): suggested[r] for r in outliers[:20]},
                    "recommendation": "review these rows; drop or relabel before training",
                },
                metrics={"dataset_label_outlier_fraction": rounded(len(outliers) / n)},
            )
        )
    if len(spectral) / n > max_spectral_fraction:
        findings.append(
            Finding(
                RULE,
                Severity.MEDIUM,
                f"{len(spectral)} samples ({len(spectral) / n:.1%}, bound {max_spectral_fraction:.1%}) "
                "are spectral "
                "outliers of their class: a possible planted sub-population",
                location,
                evidence={"rows": spectral[:20], "recommendation": "inspect these rows for a shared pattern"},
                metrics={"dataset_spectral_outlier_fraction": rounded(len(spectral) / n)},
            )
        )
    result = DatasetScreen(
        tuple(findings),
        tuple(conflicts),
        tuple(outliers),
        suggested,
        tuple(spectral),
        n,
        time.perf_counter() - started,
    )
    record_findings(result.findings)
    record_metric("dataset_label_outlier_fraction", len(outliers) / n)
    return result


def assert_dataset_clean(
    x: Any,
    y: Any,
    *,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> DatasetScreen:
    """Fail with ``RobustnessFailure`` when :func:`scan_dataset` finds label conflicts, too many label
    outliers or too many spectral outliers; return the screen otherwise."""
    __tracebackhide__ = True
    result = scan_dataset(x, y, **kwargs)
    example = ""
    if result.label_outliers:
        row = result.label_outliers[0]
        given, suggested = int(np.asarray(y)[row]), result.suggested_labels[row]
        example = f"; e.g. row {row} is labelled {given}, its neighbours say {suggested}"
    details = (
        f"{len(result.label_outliers)} label outliers, {len(result.conflicting_duplicates)} conflicting "
        f"duplicate pairs, {len(result.spectral_outliers)} spectral outliers in {result.size} rows{example}"
    )
    enforce(
        result.findings,
        RobustnessFailure,
        headline="the training data looks poisoned or mislabelled",
        details=details,
        result=result,
        fail_on=fail_on,
    )
    return result


def _conflicting_duplicates(
    dist: np.ndarray,
    idx: np.ndarray,
    labels: np.ndarray,
    radius: float,
) -> list[tuple[int, int]]:
    scale = float(np.median(dist[:, 0]))
    cutoff = radius * scale if scale > 0 else 0.0
    pairs = set()
    for row, col in zip(*np.nonzero(dist <= cutoff)):
        other = int(idx[row, col])
        if labels[row] != labels[other]:
            pairs.add((min(int(row), other), max(int(row), other)))
    return sorted(pairs)


def _label_outliers(
    idx: np.ndarray, labels: np.ndarray, min_agreement: float
) -> tuple[list[int], dict[int, int]]:
    neighbour_labels = labels[idx]
    outliers: list[int] = []
    suggested: dict[int, int] = {}
    for row, votes in enumerate(neighbour_labels):
        counts = np.bincount(votes)
        top = int(counts.argmax())
        if top != labels[row] and counts[top] >= min_agreement * len(votes):
            outliers.append(row)
            suggested[row] = top
    return outliers, suggested


def _spectral_outliers(feats: np.ndarray, labels: np.ndarray, z_cut: float) -> list[int]:
    rows_out: list[int] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 10:
            continue
        centred = feats[rows] - feats[rows].mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        proj = centred @ vt[0]
        median = np.median(proj)
        mad = MAD_SCALE * np.median(np.abs(proj - median))
        if mad <= 0:
            continue
        rows_out.extend(int(r) for r in rows[np.abs(proj - median) / mad > z_cut])
    return sorted(rows_out)
