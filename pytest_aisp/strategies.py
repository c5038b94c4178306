"""Hypothesis strategies for robustness properties: perturbations in Lp balls, attack settings and
text edits (``text_edits``, from the NLP module).

A full-size perturbation drawn element by element is slow to generate and fails Hypothesis' health
checks, and shrinks badly. These strategies draw a small grid of values and upsample it to the
input's shape (nearest neighbour), so an 8x8 or 3x224x224 perturbation costs a few dozen draws and
shrinks towards zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pytest_aisp.nlp.strategies import text_edits

__all__ = [
    "AttackConfig",
    "attack_configs",
    "float32_bound",
    "l2_perturbations",
    "linf_perturbations",
    "text_edits",
    "upsample",
]


def float32_bound(value: float) -> float:
    """The largest float32 that is <= ``value`` (so a drawn float32 never exceeds the bound)."""
    bound = np.float32(value)
    if float(bound) > value:
        bound = np.nextafter(bound, np.float32(-np.inf))
    return float(bound)


def grid_shape(shape: Sequence[int], grid: int | Sequence[int]) -> tuple[int, ...]:
    """The low-dimensional grid for ``shape``: ``min(dim, grid)`` per axis, or ``grid`` as given."""
    shape = tuple(int(d) for d in shape)
    if isinstance(grid, int):
        if grid < 1:
            raise ValueError("grid must be at least 1")
        return tuple(min(d, grid) for d in shape)
    cells = tuple(int(g) for g in grid)
    if len(cells) != len(shape) or any(g < 1 or g > d for g, d in zip(cells, shape)):
        raise ValueError(f"grid {cells} must have one entry per axis of {shape}, each between 1 and the "
                         "axis size")
    return cells


def upsample(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour upsampling of ``values`` to ``shape`` (each cell covers a block of the input)."""
    out = values
    for axis, size in enumerate(shape):
        index = (np.arange(size) * values.shape[axis]) // size
        out = np.take(out, index, axis=axis)
    return out


def linf_perturbations(shape: Sequence[int], eps: float, *,
                       grid: int | Sequence[int] = 4) -> st.SearchStrategy:
    """float32 arrays of ``shape`` with every entry in ``[-eps, eps]``: a grid of draws, upsampled."""
    if eps < 0:
        raise ValueError("eps must be >= 0")
    bound = float32_bound(eps)
    cells = grid_shape(shape, grid)
    elements = st.floats(-bound, bound, width=32, allow_nan=False, allow_infinity=False)
    return arrays(np.float32, cells, elements=elements).map(lambda g: upsample(g, shape).astype(np.float32))


def l2_perturbations(shape: Sequence[int], eps: float, *,
                     grid: int | Sequence[int] = 4) -> st.SearchStrategy:
    """float32 arrays of ``shape`` with L2 norm at most ``eps``: a direction drawn on a grid and
    upsampled, scaled by a drawn radius in ``[0, eps]``."""
    if eps < 0:
        raise ValueError("eps must be >= 0")
    cells = grid_shape(shape, grid)
    direction = arrays(np.float32, cells, elements=st.floats(-1, 1, width=32))
    radius = st.floats(0.0, 1.0)
    return st.tuples(direction, radius).map(
        lambda drawn: _scaled(upsample(drawn[0], shape), drawn[1] * eps, eps)
    )


def _scaled(direction: np.ndarray, radius: float, eps: float) -> np.ndarray:
    norm = float(np.linalg.norm(direction.astype(np.float64)))
    if norm == 0.0 or radius == 0.0:
        return np.zeros(direction.shape, dtype=np.float32)
    out = (direction.astype(np.float64) * (radius / norm)).astype(np.float32)
    # float32 rounding can push the norm just past eps: shrink until it is inside.
    while float(np.linalg.norm(out.astype(np.float64))) > eps:
        out = (out * np.float32(1 - 1e-6)).astype(np.float32)
    return out


@dataclass(frozen=True)
class AttackConfig:
    """One drawn attack setting, ready for ``evaluate_robustness(**config.kwargs())``."""

    attack: str
    eps: float
    norm: str
    steps: int
    restarts: int
    seed: int
    target: int | None = None

    def kwargs(self) -> dict[str, object]:
        """Keyword arguments of ``evaluate_robustness``."""
        out: dict[str, object] = {"attack": self.attack, "eps": self.eps, "norm": self.norm,
                                  "steps": self.steps, "restarts": self.restarts, "seed": self.seed}
        if self.target is not None:
            out.update(targeted=True, target=self.target)
        return out


def attack_configs(*, attacks: Sequence[str] = ("fgsm", "pgd"), eps: tuple[float, float] = (0.0, 0.1),
                   norms: Sequence[str] = ("inf",), steps: tuple[int, int] = (1, 20),
                   restarts: tuple[int, int] = (1, 2), seeds: tuple[int, int] = (0, 2**16),
                   nb_classes: int | None = None) -> st.SearchStrategy:
    """Attack settings: attack name, eps, norm, steps, restarts, seed and (with ``nb_classes``) an
    optional target class."""
    low, high = eps
    if not (0 <= low <= high) or not math.isfinite(high):
        raise ValueError("eps must be a range (low, high) with 0 <= low <= high")
    targets = st.none() if nb_classes is None else st.none() | st.integers(0, nb_classes - 1)
    return st.builds(
        AttackConfig,
        attack=st.sampled_from(tuple(attacks)),
        eps=st.floats(low, high, allow_nan=False),
        norm=st.sampled_from(tuple(norms)),
        steps=st.integers(*steps),
        restarts=st.integers(*restarts),
        seed=st.integers(*seeds),
        target=targets,
    )
