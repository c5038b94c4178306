"""Model-extraction detection: PRADA per client, plus an off-manifold query signal against a reference.

PRADA (Juuti et al., EuroS&P 2019) keeps, per client and predicted class, a growing set of
queries; each new query's minimum distance to its class's set joins the distance set ``D``.
Natural queries give roughly normally distributed distances; synthetic queries crafted near a
few seeds do not, so a Shapiro-Wilk statistic ``W`` below ``delta`` raises the alarm.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from pytest_aisp.findings import Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.reference import Reference
from pytest_aisp.monitor.state import LruTable


class _ClassSet:
    __slots__ = ("count", "dist_count", "dist_sum", "dist_sumsq", "points", "threshold")

    def __init__(self, dim: int, capacity: int) -> None:
        self.points = np.empty((min(capacity, 16), dim))
        self.count = 0
        self.threshold = 0.0
        self.dist_count = 0
        self.dist_sum = 0.0
        self.dist_sumsq = 0.0


class _ClientState:
    __slots__ = ("classes", "distances", "off_manifold", "queries", "since_check", "w")

    def __init__(self, max_distances: int) -> None:
        self.classes: dict[int, _ClassSet] = {}
        self.distances: deque[float] = deque(maxlen=max_distances)
        self.since_check = 0
        self.queries = 0
        self.off_manifold = 0
        self.w = 1.0


def predicted_class(prediction: object) -> int | None:
    """The class of a prediction given as a label or a score vector (argmax)."""
    if isinstance(prediction, bool):
        return int(prediction)
    if isinstance(prediction, int):
        return prediction
    if isinstance(prediction, tuple) and prediction:
        return max(range(len(prediction)), key=prediction.__getitem__)  # first maximum, as argmax
    if isinstance(prediction, str) and prediction.lstrip("-").isdigit():
        return int(prediction)
    return None


class ExtractionDetector:
    """Flags a client whose queries look like a model-extraction attack.

    PRADA parameters:

    - ``delta``: Shapiro-Wilk ``W`` below which the client's distance set is an attack;
    - ``min_distances``: distances collected before the test runs (PRADA uses 100);
    - ``check_every``: queries between two tests;
    - ``max_points_per_class`` and ``max_distances``: bounds on what is kept per client
      (the most recent distances are tested);
    - ``max_clients``: clients tracked (least recently seen forgotten first).

    Off-manifold parameters (used when a ``reference`` is given): a thief without natural data
    (random queries, KnockoffNets-style with noise) sends inputs that lie far from the data the
    model serves. A client alerts when, after ``min_queries``, more than ``max_off_manifold`` of
    its queries lie outside the reference's Mahalanobis threshold while the other clients of the
    endpoint send less than half that share (a drift that hits every client is the DRIFT rule's).
    """

    name = "extraction"
    rule_id = "AISP-MON-EXTRACTION"
    severity = Severity.HIGH

    def __init__(self, *, delta: float = 0.85, min_distances: int = 100, check_every: int = 20,
                 max_points_per_class: int = 500, max_distances: int = 2000, max_clients: int = 10_000,
                 reference: Reference | None = None, max_off_manifold: float = 0.5, min_queries: int = 50,
                 max_endpoints: int = 100) -> None:
        if not 0 < delta < 1 or min_distances < 3:
            raise ValueError("delta must lie in (0, 1) and min_distances be at least 3")
        self.delta = float(delta)
        self.min_distances = int(min_distances)
        self.check_every = int(check_every)
        self.max_points_per_class = int(max_points_per_class)
        self.reference = reference
        self.max_off_manifold = float(max_off_manifold)
        self.min_queries = int(min_queries)
        # [queries, off-manifold queries] per endpoint, all clients together.
        self._endpoints: LruTable[list[int]] = LruTable(max_endpoints, lambda: [0, 0])
        self._clients: LruTable[_ClientState] = LruTable(max_clients, lambda: _ClientState(max_distances))

    def statistic(self, client: str) -> float:
        """The last Shapiro-Wilk ``W`` computed for ``client`` (1.0 before the first test)."""
        state = self._clients.peek(client)
        return state.w if state is not None else 1.0

    def observe(self, event: Event) -> list[Alert]:
        label = predicted_class(event.prediction)
        if label is None or not isinstance(event.features, tuple):
            return []
        x = np.asarray(event.features, dtype=np.float64)
        state = self._clients.get(event.client)
        alerts: list[Alert] = []
        self._prada_update(state, label, x)
        if len(state.distances) >= self.min_distances and state.since_check >= self.check_every:
            state.since_check = 0
            from scipy.stats import shapiro

            state.w = float(shapiro(np.fromiter(state.distances, dtype=np.float64)).statistic)
            if state.w < self.delta:
                alerts.append(make_alert(
                    self, event, f"client {event.client} queries like a model thief (PRADA): Shapiro-Wilk "
                    f"W={state.w:.3f} < {self.delta:g} over {len(state.distances)} query distances",
                    signal="prada", w=round(state.w, 4), delta=self.delta, distances=len(state.distances)))
        shares = self._off_manifold_update(state, event.endpoint, x)
        if shares is not None:
            mine, others = shares
            alerts.append(make_alert(
                self, event, f"client {event.client}: {mine:.0%} of its {state.queries} queries lie off the "
                f"data manifold (others: {others:.0%}; limit {self.max_off_manifold:.0%}): synthetic or "
                "random-query extraction", signal="off_manifold", share=round(mine, 4),
                others_share=round(others, 4), queries=state.queries))
        return alerts

    def _prada_update(self, state: _ClientState, label: int, x: np.ndarray) -> None:
        group = state.classes.get(label)
        if group is None:
            group = state.classes[label] = _ClassSet(x.shape[0], self.max_points_per_class)
        if group.count == 0:
            group.points[0] = x
            group.count = 1
            return
        d_min = float(np.sqrt(np.min(np.sum((group.points[: group.count] - x) ** 2, axis=1))))
        state.distances.append(d_min)
        state.since_check += 1
        if d_min > group.threshold and group.count < self.max_points_per_class:
            if group.count == group.points.shape[0]:
                grown = np.empty((min(group.count * 2, self.max_points_per_class), x.shape[0]))
                grown[: group.count] = group.points
                group.points = grown
            group.points[group.count] = x
            group.count += 1
            group.dist_count += 1
            group.dist_sum += d_min
            group.dist_sumsq += d_min * d_min
            mean = group.dist_sum / group.dist_count
            std = math.sqrt(max(group.dist_sumsq / group.dist_count - mean * mean, 0.0))
            group.threshold = max(group.threshold, mean - std)

    def _off_manifold_update(self, state: _ClientState, endpoint: str, x: np.ndarray
                             ) -> tuple[float, float] | None:
        if self.reference is None:
            return None
        far = bool(self.reference.mahalanobis(x)[0] > self.reference.threshold)
        totals = self._endpoints.get(endpoint)
        totals[0] += 1
        totals[1] += far
        state.queries += 1
        state.off_manifold += far
        if state.queries < self.min_queries or state.queries % self.check_every:
            return None
        mine = state.off_manifold / state.queries
        other_queries = totals[0] - state.queries
        others = (totals[1] - state.off_manifold) / other_queries if other_queries > 0 else 0.0
        if mine > self.max_off_manifold and others < mine / 2:
            return mine, others
        return None
