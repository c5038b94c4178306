"""Model-extraction detection: PRADA per client, plus an off-manifold query signal against a reference.

PRADA (Juuti et al., EuroS&P 2019) keeps, per client and predicted class, a growing set of
queries; each new query's minimum distance to its class's set joins the distance set ``D``.
Natural queries give roughly normally distributed distances; synthetic queries crafted near a
few seeds do not, so a Shapiro-Wilk statistic ``W`` below ``delta`` raises the alarm.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.findings import Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.reference import Reference
from pytest_aisp.monitor.state import LruTable


class _ClassSet:
    """One class's query set for a client: points and the running statistics of their distances."""

    __slots__ = ("count", "dist_count", "dist_sum", "dist_sumsq", "points", "threshold")

    def __init__(self, dim: int, capacity: int) -> None:
        self.points = np.empty((min(capacity, 16), dim))
        self.count = 0
        self.threshold = 0.0
        self.dist_count = 0
        self.dist_sum = 0.0
        self.dist_sumsq = 0.0

    def min_distance(self, x: np.ndarray) -> float:
        return float(np.sqrt(np.min(np.sum((self.points[: self.count] - x) ** 2, axis=1))))

    def stats_after(self, distance: float) -> tuple[int, float, float, float]:
        """(count, sum, sum of squares, threshold) once a point at ``distance`` joins the set."""
        count = self.dist_count + 1
        total = self.dist_sum + distance
        squares = self.dist_sumsq + distance * distance
        mean = total / count
        std = math.sqrt(max(squares / count - mean * mean, 0.0))
        return count, total, squares, max(self.threshold, mean - std)

    def add(self, x: np.ndarray, capacity: int, stats: tuple[int, float, float, float] | None = None) -> None:
        if self.count == self.points.shape[0]:
            grown = np.empty((min(max(self.count * 2, 1), capacity), self.points.shape[1]))
            grown[: self.count] = self.points[: self.count]
            self.points = grown
        self.points[self.count] = x
        self.count += 1
        if stats is not None:
            self.dist_count, self.dist_sum, self.dist_sumsq, self.threshold = stats

    def reset(self) -> None:
        self.count, self.threshold, self.dist_count, self.dist_sum, self.dist_sumsq = 0, 0.0, 0, 0.0, 0.0


class _ClientState:
    __slots__ = ("classes", "distances", "off_manifold", "queries", "since_check", "w")

    def __init__(self, max_distances: int) -> None:
        self.classes: dict[int, _ClassSet] = {}
        self.distances: deque[float] = deque(maxlen=max_distances)
        self.since_check = 0
        self.queries = 0
        self.off_manifold = 0
        self.w = 1.0


@dataclass(frozen=True)
class _Step:
    """What one query changed: the distance set when a test is due, and the off-manifold counts
    (client queries, client off-manifold, endpoint queries, endpoint off-manifold) when judged."""

    distances: np.ndarray | None
    counts: tuple[int, int, int, int] | None


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

    ``shared``: a :class:`~pytest_aisp.monitor.shared.RedisState` to keep the per-client state in,
    shared by every replica (None: in this process). A thief splitting its queries across
    replicas then meets one distance set, as it would meet one process. Each replica keeps a
    copy of the class points it has used and fetches only the points others added.
    """

    SYNC_ATTEMPTS = 5

    name = "extraction"
    rule_id = "AISP-MON-EXTRACTION"
    severity = Severity.HIGH

    def __init__(self, *, delta: float = 0.85, min_distances: int = 100, check_every: int = 20,
                 max_points_per_class: int = 500, max_distances: int = 2000, max_clients: int = 10_000,
                 reference: Reference | None = None, max_off_manifold: float = 0.5, min_queries: int = 50,
                 max_endpoints: int = 100, shared: Any = None) -> None:
        if not 0 < delta < 1 or min_distances < 3:
            raise ValueError("delta must lie in (0, 1) and min_distances be at least 3")
        self.delta = float(delta)
        self.min_distances = int(min_distances)
        self.check_every = int(check_every)
        self.max_points_per_class = int(max_points_per_class)
        self.reference = reference
        self.max_off_manifold = float(max_off_manifold)
        self.min_queries = int(min_queries)
        self.max_distances = int(max_distances)
        self.shared = shared
        # With shared state: this replica's copy of each client's class points.
        self._copies: LruTable[dict[int, _ClassSet]] = LruTable(max_clients, dict)
        # [queries, off-manifold queries] per endpoint, all clients together.
        self._endpoints: LruTable[list[int]] = LruTable(max_endpoints, lambda: [0, 0])
        self._clients: LruTable[_ClientState] = LruTable(max_clients, lambda: _ClientState(max_distances))

    def statistic(self, client: str) -> float:
        """The last Shapiro-Wilk ``W`` computed for ``client`` (1.0 before the first test)."""
        if self.shared is not None:
            w = self.shared.get_value(client, "prada", "w")
            return 1.0 if w is None else w
        state = self._clients.peek(client)
        return state.w if state is not None else 1.0

    def observe(self, event: Event) -> list[Alert]:
        label = predicted_class(event.prediction)
        if label is None or not isinstance(event.features, tuple):
            return []
        x = np.asarray(event.features, dtype=np.float64)
        far = None if self.reference is None else bool(self.reference.mahalanobis(x)[0] > self.reference.threshold)
        step = (self._local_step(event, label, x, far) if self.shared is None
                else self._shared_step(event, label, x, far))
        alerts: list[Alert] = []
        if step.distances is not None:
            from scipy.stats import shapiro

            w = float(shapiro(step.distances).statistic)
            if self.shared is None:
                self._clients.get(event.client).w = w
            else:
                self.shared.set_value(event.client, "prada", "w", w)
            if w < self.delta:
                alerts.append(make_alert(
                    self, event, f"client {event.client} queries like a model thief (PRADA): Shapiro-Wilk "
                    f"W={w:.3f} < {self.delta:g} over {step.distances.size} query distances",
                    signal="prada", w=round(w, 4), delta=self.delta, distances=int(step.distances.size)))
        shares = self._off_manifold(step.counts)
        if shares is not None:
            mine, others, queries = shares
            alerts.append(make_alert(
                self, event, f"client {event.client}: {mine:.0%} of its {queries} queries lie off the "
                f"data manifold (others: {others:.0%}; limit {self.max_off_manifold:.0%}): synthetic or "
                "random-query extraction", signal="off_manifold", share=round(mine, 4),
                others_share=round(others, 4), queries=queries))
        return alerts

    def _local_step(self, event: Event, label: int, x: np.ndarray, far: bool | None) -> _Step:
        state = self._clients.get(event.client)
        group = state.classes.get(label)
        if group is None:
            group = state.classes[label] = _ClassSet(x.shape[0], self.max_points_per_class)
        if group.count == 0:
            group.add(x, self.max_points_per_class)
        else:
            distance = group.min_distance(x)
            state.distances.append(distance)
            state.since_check += 1
            if distance > group.threshold and group.count < self.max_points_per_class:
                group.add(x, self.max_points_per_class, group.stats_after(distance))
        due = None
        if len(state.distances) >= self.min_distances and state.since_check >= self.check_every:
            state.since_check = 0
            due = np.fromiter(state.distances, dtype=np.float64)
        counts = None
        if far is not None:
            totals = self._endpoints.get(event.endpoint)
            totals[0] += 1
            totals[1] += far
            state.queries += 1
            state.off_manifold += far
            counts = (state.queries, state.off_manifold, totals[0], totals[1])
        return _Step(due, counts)

    def _shared_step(self, event: Event, label: int, x: np.ndarray, far: bool | None) -> _Step:
        classes = self._copies.get(event.client)
        group = classes.get(label)
        if group is None:
            group = classes[label] = _ClassSet(x.shape[0], self.max_points_per_class)
        point = x.astype("<f8").tobytes()
        for _ in range(self.SYNC_ATTEMPTS):
            distance = stats = None
            if group.count > 0:
                distance = group.min_distance(x)
                if distance > group.threshold and group.count < self.max_points_per_class:
                    stats = group.stats_after(distance)
            step = self.shared.prada_step(
                event.client, event.endpoint, label, expected_bytes=group.count * len(point), point=point,
                distance=distance, stats=stats, far=far, max_distances=self.max_distances,
                check_every=self.check_every, min_distances=self.min_distances)
            if step.stale:  # another replica added points to this class: take them and try again
                if step.from_byte == 0:
                    group.reset()
                for row in np.frombuffer(step.points, dtype="<f8").reshape(-1, x.shape[0]):
                    group.add(row, self.max_points_per_class)
                if step.stats is not None:
                    group.dist_count, group.dist_sum, group.dist_sumsq, group.threshold = step.stats
                continue
            if distance is None or stats is not None:
                group.add(x, self.max_points_per_class, stats)
            return _Step(step.distances, step.counts if far is not None else None)
        raise RuntimeError(f"the shared PRADA state of a client changed under this replica {self.SYNC_ATTEMPTS} "
                           "times in a row; the query went unchecked")

    def _off_manifold(self, counts: tuple[int, int, int, int] | None) -> tuple[float, float, int] | None:
        """(client's off-manifold share, other clients' share, client's queries) when the client alerts."""
        if counts is None:
            return None
        queries, off, all_queries, all_off = counts
        if queries < self.min_queries or queries % self.check_every:
            return None
        mine = off / queries
        other_queries = all_queries - queries
        others = (all_off - off) / other_queries if other_queries > 0 else 0.0
        if mine > self.max_off_manifold and others < mine / 2:
            return mine, others, queries
        return None
