"""Adversarial inputs: values outside declared bounds, and feature-squeezing disagreement."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pytest_aisp.findings import Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.state import CountWindow, LruTable

ScoreModel = Callable[[np.ndarray], np.ndarray]


def squeeze_bits(x: np.ndarray, bits: int, lower: float = 0.0, upper: float = 1.0) -> np.ndarray:
    """Reduce ``x`` (scaled to ``[lower, upper]``) to ``2**bits`` levels per value."""
    levels = 2 ** bits - 1
    unit = np.clip((x - lower) / (upper - lower), 0.0, 1.0)
    return np.round(unit * levels) / levels * (upper - lower) + lower


def squeeze_score(model: ScoreModel, x: np.ndarray, bits: int, lower: float = 0.0, upper: float = 1.0
                  ) -> np.ndarray:
    """L1 distance between the model's scores on ``x`` and on its squeezed copy, per row."""
    rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
    scores = np.asarray(model(np.concatenate([rows, squeeze_bits(rows, bits, lower, upper)])), dtype=np.float64)
    return np.abs(scores[: len(rows)] - scores[len(rows):]).sum(axis=1)


def calibrate_squeeze_threshold(model: ScoreModel, benign: np.ndarray, *, bits: int = 2,
                                false_positive_rate: float = 0.01, lower: float = 0.0, upper: float = 1.0
                                ) -> float:
    """The squeeze score that only ``false_positive_rate`` of ``benign`` rows exceed."""
    return float(np.quantile(squeeze_score(model, benign, bits, lower, upper), 1 - false_positive_rate))


class AdversarialInputDetector:
    """Flags inputs outside their declared bounds, and clients whose inputs the model answers
    differently once squeezed (Xu et al., NDSS 2018).

    Parameters:

    - ``lower``, ``upper``: the valid range, one number for all features or one per feature;
      any input outside it alerts at once (high);
    - ``model``: a callable from an ``(n, d)`` array to ``(n, k)`` class scores (probabilities);
      without it only the bounds are checked;
    - ``bits``: bit depth of the squeezed copy; ``threshold``: L1 score disagreement above
      which an input is suspicious (see :func:`calibrate_squeeze_threshold`);
    - ``window`` and ``min_flagged``: a client alerts when ``min_flagged`` of its last ``window``
      inputs are suspicious; ``max_clients`` bounds the state.
    """

    name = "adversarial"
    rule_id = "AISP-MON-ADVERSARIAL"
    severity = Severity.HIGH

    def __init__(self, *, lower: float | Sequence[float] | None = None,
                 upper: float | Sequence[float] | None = None, model: ScoreModel | None = None,
                 bits: int = 2, threshold: float = 0.5, window: int = 50, min_flagged: int = 8,
                 max_clients: int = 100_000) -> None:
        if lower is None and upper is None and model is None:
            raise ValueError("give bounds (lower/upper), a model, or both")
        self.lower = None if lower is None else np.asarray(lower, dtype=np.float64)
        self.upper = None if upper is None else np.asarray(upper, dtype=np.float64)
        self.model = model
        self.bits = int(bits)
        self.threshold = float(threshold)
        self.min_flagged = int(min_flagged)
        self._squeeze_lower = float(np.min(self.lower)) if self.lower is not None else 0.0
        self._squeeze_upper = float(np.max(self.upper)) if self.upper is not None else 1.0
        self._clients: LruTable[CountWindow] = LruTable(max_clients, lambda: CountWindow(window))

    def observe(self, event: Event) -> list[Alert]:
        if not isinstance(event.features, tuple):
            return []
        x = np.asarray(event.features, dtype=np.float64)
        outside = self._outside(x)
        if outside.size:
            first = int(outside[0])
            return [make_alert(
                self, event, f"input from {event.client} has {outside.size} values outside the declared bounds "
                f"(feature {first} = {x[first]:.4g})", signal="bounds", outside=int(outside.size),
                feature=first, value=float(x[first]))]
        if self.model is None:
            return []
        score = float(squeeze_score(self.model, x, self.bits, self._squeeze_lower, self._squeeze_upper)[0])
        recent = self._clients.get(event.client)
        recent.add(score > self.threshold)
        if recent.flagged < self.min_flagged:
            return []
        return [make_alert(
            self, event, f"{recent.flagged} of the last {recent.size} inputs from {event.client} change the "
            f"model's answer when squeezed to {self.bits} bits (L1 > {self.threshold:.3g}; last {score:.3g})",
            signal="squeeze", flagged=recent.flagged, window=recent.size, score=round(score, 4),
            threshold=self.threshold)]

    def _outside(self, x: np.ndarray) -> np.ndarray:
        bad = np.zeros(x.shape, dtype=bool) | ~np.isfinite(x)
        if self.lower is not None:
            bad |= x < self.lower
        if self.upper is not None:
            bad |= x > self.upper
        return np.flatnonzero(bad)
