"""The reference a monitor compares live inputs with: mean, precision, a sample, bounds, a threshold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pytest_aisp.findings import AispError

FORMAT = "aisp-monitor-reference/1"


@dataclass(frozen=True)
class Reference:
    """What normal inputs look like.

    ``mean`` and ``precision`` (regularised inverse covariance) give the Mahalanobis distance;
    ``threshold`` is its ``quantile`` on held-out reference rows; ``sample`` is kept for the
    per-feature KS tests; ``lower``/``upper`` are the per-feature minima and maxima seen.
    """

    mean: np.ndarray
    precision: np.ndarray
    sample: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    threshold: float
    quantile: float
    rows: int

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def mahalanobis(self, x: np.ndarray) -> np.ndarray:
        """Distances of the rows of ``x`` (or of one vector) to the reference mean."""
        centred = np.atleast_2d(np.asarray(x, dtype=np.float64)) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision, centred), 0.0))

    def save(self, path: str | Path) -> Path:
        """Write the reference as a NumPy ``.npz`` (no pickles)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"format": FORMAT, "threshold": self.threshold, "quantile": self.quantile,
                           "rows": self.rows})
        with target.open("wb") as handle:
            np.savez(handle, mean=self.mean, precision=self.precision, sample=self.sample,
                     lower=self.lower, upper=self.upper, meta=np.array(meta))
        return target

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        """Read a reference written by :meth:`save` or ``aisp monitor fit``."""
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != FORMAT:
                    raise AispError(f"{source} is not a monitor reference ({meta.get('format')!r}); "
                                    "make one with `aisp monitor fit`")
                return cls(mean=data["mean"], precision=data["precision"], sample=data["sample"],
                           lower=data["lower"], upper=data["upper"], threshold=float(meta["threshold"]),
                           quantile=float(meta["quantile"]), rows=int(meta["rows"]))
        except (OSError, KeyError, ValueError) as exc:
            raise AispError(f"cannot read monitor reference {source}: {exc}; "
                            "make one with `aisp monitor fit DATA --out PATH`") from None


def fit_reference(x: np.ndarray, *, quantile: float = 0.995, sample_size: int = 2000,
                  holdout: float = 0.2, seed: int = 0) -> Reference:
    """Fit a reference to the rows of ``x`` (n samples by d features).

    Mean and covariance come from one part of the rows; the distance threshold is the
    ``quantile`` of the distances of the ``holdout`` share, so it is not fitted in-sample.
    """
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 10 or not np.all(np.isfinite(data)):
        raise AispError(f"a reference needs a finite 2-D array of at least 10 rows, got shape {data.shape}")
    if not 0.5 <= quantile < 1:
        raise AispError(f"quantile must lie in [0.5, 1), got {quantile}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.shape[0])
    cut = max(round(data.shape[0] * (1 - holdout)), 2)
    fit_rows, held = data[order[:cut]], data[order[cut:]] if cut < data.shape[0] else data[order[:cut]]
    mean = fit_rows.mean(axis=0)
    cov = np.atleast_2d(np.cov(fit_rows, rowvar=False))
    # Ridge on the diagonal: constant features (blank pixels) would make the covariance singular.
    ridge = 1e-3 * max(float(np.trace(cov)) / cov.shape[0], 1e-12) + 1e-9
    precision = np.linalg.inv(cov + ridge * np.eye(cov.shape[0]))
    sample = data[order[: min(sample_size, data.shape[0])]]
    partial = Reference(mean=mean, precision=precision, sample=sample, lower=data.min(axis=0),
                        upper=data.max(axis=0), threshold=0.0, quantile=quantile, rows=int(data.shape[0]))
    threshold = float(np.quantile(partial.mahalanobis(held), quantile))
    return Reference(mean=mean, precision=precision, sample=sample, lower=partial.lower, upper=partial.upper,
                     threshold=threshold, quantile=quantile, rows=int(data.shape[0]))


def load_rows(path: str | Path, key: str = "x") -> np.ndarray:
    """Rows for :func:`fit_reference` from ``.npy``, ``.npz`` (array ``key``), ``.csv`` or a traffic log."""
    source = Path(path)
    try:
        if source.suffix == ".npy":
            return np.load(source, allow_pickle=False)
        if source.suffix == ".npz":
            with np.load(source, allow_pickle=False) as data:
                if key not in data:
                    raise AispError(f"{source} has no array {key!r} (has {sorted(data.files)}); pass --key")
                return data[key]
        if source.suffix == ".csv":
            return np.loadtxt(source, delimiter=",", ndmin=2)
        if source.suffix in {".jsonl", ".json"}:
            from pytest_aisp.monitor.events import read_events

            rows = [e.features for e in read_events(source) if isinstance(e.features, tuple)]
            if not rows:
                raise AispError(f"{source} holds no events with feature vectors")
            return np.asarray(rows, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise AispError(f"cannot read reference data {source}: {exc}") from None
    raise AispError(f"{source}: reference data must be .npy, .npz, .csv or a .jsonl traffic log")
