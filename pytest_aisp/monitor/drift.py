"""Input drift against a fitted reference: windowed KS tests per feature, and Mahalanobis outliers."""

from __future__ import annotations

import numpy as np

from pytest_aisp.findings import AispError, Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.reference import Reference
from pytest_aisp.monitor.state import CountWindow, LruTable


def _vector(event: Event, reference: Reference) -> np.ndarray | None:
    if not isinstance(event.features, tuple):
        return None
    if len(event.features) != reference.dim:
        raise AispError(f"event from {event.endpoint} has {len(event.features)} features, "
                        f"the reference {reference.dim}")
    return np.asarray(event.features, dtype=np.float64)


class _Ring:
    __slots__ = ("count", "rows", "since_check")

    def __init__(self, window: int, dim: int) -> None:
        self.rows = np.zeros((window, dim))
        self.count = 0
        self.since_check = 0


class DriftDetector:
    """Flags an endpoint whose recent inputs no longer match the reference, feature by feature.

    Every ``check_every`` events it runs a two-sample Kolmogorov-Smirnov test (scipy) of the
    last ``window`` inputs against the reference sample for each feature, and alerts when at
    least ``min_features`` features have a p-value below ``alpha`` divided by the number of
    features (Bonferroni).

    Parameters: ``reference`` (from ``aisp monitor fit``), ``window``, ``check_every``,
    ``alpha``, ``min_features``, ``max_endpoints``.
    """

    name = "drift"
    rule_id = "AISP-MON-DRIFT"
    severity = Severity.MEDIUM

    def __init__(self, reference: Reference, *, window: int = 200, check_every: int = 50,
                 alpha: float = 0.001, min_features: int = 1, max_endpoints: int = 100) -> None:
        if window < 20 or check_every < 1 or not 0 < alpha < 1:
            raise ValueError("window must be >= 20, check_every >= 1 and alpha in (0, 1)")
        self.reference = reference
        self.window = int(window)
        self.check_every = int(check_every)
        self.alpha = float(alpha)
        self.min_features = int(min_features)
        self._rings: LruTable[_Ring] = LruTable(max_endpoints, lambda: _Ring(self.window, reference.dim))
        # Features that never vary in the reference sample are left to the OOD detector.
        self._varying = np.flatnonzero(np.ptp(reference.sample, axis=0) > 0)

    def observe(self, event: Event) -> list[Alert]:
        x = _vector(event, self.reference)
        if x is None:
            return []
        ring = self._rings.get(event.endpoint)
        ring.rows[ring.count % self.window] = x
        ring.count += 1
        ring.since_check += 1
        if ring.count < self.window or ring.since_check < self.check_every:
            return []
        ring.since_check = 0
        return self._test(event, ring.rows)

    def _test(self, event: Event, rows: np.ndarray) -> list[Alert]:
        from scipy.stats import ks_2samp

        features = self._varying
        if features.size == 0:
            return []
        result = ks_2samp(rows[:, features], self.reference.sample[:, features], axis=0)
        pvalues = np.atleast_1d(result.pvalue)
        statistics = np.atleast_1d(result.statistic)
        limit = self.alpha / features.size
        drifted = np.flatnonzero(pvalues < limit)
        if drifted.size < self.min_features:
            return []
        worst = drifted[np.argsort(-statistics[drifted])][:5]
        return [make_alert(
            self, event, f"inputs to {event.endpoint} drifted: {drifted.size} of {features.size} features "
            f"differ from the reference (KS, p < {limit:.1e}) over the last {self.window} requests",
            client="*", drifted_features=int(drifted.size), features=int(features.size),
            max_ks=round(float(statistics[worst[0]]), 4),
            worst=[int(features[i]) for i in worst], window=self.window)]


class OODDetector:
    """Flags an endpoint when too many recent inputs lie far from the reference (Mahalanobis).

    An input is out of distribution when its distance to the reference mean exceeds the
    reference's threshold (its ``quantile`` on held-out rows) times ``threshold_scale``. The
    detector alerts when more than ``max_fraction`` of the last ``window`` inputs to an endpoint
    are, once it has seen ``min_events`` of them.
    """

    name = "ood"
    rule_id = "AISP-MON-DRIFT"
    severity = Severity.MEDIUM

    def __init__(self, reference: Reference, *, window: int = 100, min_events: int = 50,
                 max_fraction: float = 0.2, threshold_scale: float = 1.0, max_endpoints: int = 100) -> None:
        if not 0 < max_fraction < 1 or window < 1 or threshold_scale <= 0:
            raise ValueError("max_fraction must lie in (0, 1), window >= 1, threshold_scale > 0")
        self.reference = reference
        self.window = int(window)
        self.min_events = int(min_events)
        self.max_fraction = float(max_fraction)
        self.limit = reference.threshold * float(threshold_scale)
        self._windows: LruTable[CountWindow] = LruTable(max_endpoints, lambda: CountWindow(self.window))

    def observe(self, event: Event) -> list[Alert]:
        x = _vector(event, self.reference)
        if x is None:
            return []
        distance = float(self.reference.mahalanobis(x)[0])
        recent = self._windows.get(event.endpoint)
        recent.add(distance > self.limit)
        if recent.size < self.min_events or recent.fraction() <= self.max_fraction:
            return []
        return [make_alert(
            self, event, f"{recent.fraction():.0%} of the last {recent.size} inputs to {event.endpoint} are "
            f"out of distribution (Mahalanobis > {self.limit:.2f}; limit {self.max_fraction:.0%})",
            client="*", ood_fraction=round(recent.fraction(), 4), distance=round(distance, 3),
            threshold=round(self.limit, 3))]
