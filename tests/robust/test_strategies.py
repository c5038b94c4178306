"""The Hypothesis strategies: perturbations inside their balls, drawn cheaply; attack settings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_aisp.strategies import (
    AttackConfig,
    attack_configs,
    float32_bound,
    grid_shape,
    l2_perturbations,
    linf_perturbations,
    upsample,
)


@settings(max_examples=40, deadline=None)
@given(delta=linf_perturbations((1, 28, 28), 0.1), eps=st.just(0.1))
def test_linf_perturbations_stay_in_the_ball(delta, eps):
    assert delta.shape == (1, 28, 28) and delta.dtype == np.float32
    assert float(np.abs(delta).max()) <= eps


@settings(max_examples=40, deadline=None)
@given(data=st.data(), eps=st.floats(0.0, 3.0))
def test_l2_perturbations_stay_in_the_ball(data, eps):
    delta = data.draw(l2_perturbations((3, 16, 16), eps, grid=(3, 4, 4)))
    assert delta.shape == (3, 16, 16)
    assert float(np.linalg.norm(delta.astype(np.float64))) <= eps


@settings(max_examples=30, deadline=None)
@given(eps=st.floats(1e-8, 10.0))
def test_float32_bound_never_exceeds_eps(eps):
    bound = float32_bound(eps)
    assert bound <= eps and np.float32(bound) == bound
    assert eps - bound <= abs(eps) * 2.0**-23  # within one float32 step


def test_upsample_repeats_grid_cells_in_blocks():
    grid = np.arange(4, dtype=np.float32).reshape(2, 2)
    out = upsample(grid, (4, 4))
    assert out.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert grid_shape((1, 28, 28), 4) == (1, 4, 4)
    with pytest.raises(ValueError):
        grid_shape((8, 8), (9, 1))


@settings(max_examples=30, deadline=None)
@given(config=attack_configs(attacks=("fgsm", "pgd", "square"), eps=(0.0, 0.2), nb_classes=10))
def test_attack_configs_are_valid_settings(config):
    assert isinstance(config, AttackConfig)
    assert config.attack in {"fgsm", "pgd", "square"} and 0.0 <= config.eps <= 0.2
    assert 1 <= config.steps <= 20 and 1 <= config.restarts <= 2
    kwargs = config.kwargs()
    assert kwargs["attack"] == config.attack
    assert (config.target is None) == ("target" not in kwargs)


@settings(max_examples=6, deadline=None)
@given(config=attack_configs(attacks=("fgsm", "pgd", "noise"), eps=(0.0, 0.3), steps=(1, 5)))
def test_any_drawn_attack_keeps_its_promises(digits_mlp, config):
    """Property: whatever the settings, robust accuracy <= clean accuracy and perturbations stay in eps."""
    from pytest_aisp.robust import evaluate_robustness

    x, y = digits_mlp.x[:80], digits_mlp.y[:80]
    result = evaluate_robustness(digits_mlp.module, (x, y), **config.kwargs())
    assert result.robust_acc <= result.clean_acc
    assert float(np.abs(result.adversarial - x).max()) <= config.eps + 1e-6
