"""assert_locally_robust: Hypothesis searches the eps ball around one input."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.findings import RobustnessFailure
from pytest_aisp.robust import assert_locally_robust, evaluate_local_robustness

pytest.importorskip("torch")


def _confident_point(model):
    import torch

    with torch.no_grad():
        logits = model.module(torch.from_numpy(model.x))
    top2 = logits.topk(2, dim=1).values
    index = int((top2[:, 0] - top2[:, 1]).argmax())
    return model.x[index], int(model.y[index])


def test_a_confident_point_is_locally_robust_at_a_tiny_eps(digits_mlp):
    x, y = _confident_point(digits_mlp)
    result = assert_locally_robust(digits_mlp.module, x, y, eps=0.01, max_examples=30)
    assert result.robust and result.examples >= 30 and result.findings == ()


def test_a_counterexample_is_shrunk_and_reported(digits_mlp):
    x, y = digits_mlp.x[0], int(digits_mlp.y[0])
    with pytest.raises(RobustnessFailure) as caught:
        assert_locally_robust(digits_mlp.module, x, y, eps=0.6, max_examples=60, grid=2)
    result = caught.value.result
    assert result.perturbation is not None and result.distance <= 0.6 + 1e-6
    assert result.adversarial_label != y
    assert "smallest perturbation found" in str(caught.value)
    assert "@reproduce_failure" in result.reproduce
    assert np.all(np.clip(x + result.perturbation, 0, 1) == x + result.perturbation)


def test_the_search_repeats_with_the_same_seed(digits_mlp):
    x, y = digits_mlp.x[1], int(digits_mlp.y[1])
    first = evaluate_local_robustness(digits_mlp.module, x, y, eps=0.6, norm="2", max_examples=40, seed=3)
    second = evaluate_local_robustness(digits_mlp.module, x, y, eps=0.6, norm="2", max_examples=40, seed=3)
    assert first.examples == second.examples and first.distance == second.distance
