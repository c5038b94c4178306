"""Adversarial robustness (evasion) checks, as an ML team writes them."""

from __future__ import annotations

import pytest

from pytest_aisp import RobustnessFailure
from pytest_aisp.robust import (
    assert_locally_robust,
    assert_no_gradient_masking,
    assert_robust,
    robustness_curve,
)

pytestmark = pytest.mark.aisp_robust


def test_model_withstands_small_pgd_perturbations(aisp_model):
    # The card's call: 40% of the way to a visible change of a digit, 70% must still be right.
    assert_robust(aisp_model, attack="pgd", eps=0.03, min_acc=0.7)


@pytest.mark.xfail(strict=True, raises=RobustnessFailure, reason="undefended model: weak at eps=0.2")
def test_known_weakness_at_large_eps(aisp_model):
    assert_robust(aisp_model, attack="apgd-ce", eps=0.2, min_acc=0.7)


def test_robust_accuracy_is_not_an_artefact_of_gradient_masking(aisp_model):
    assert_no_gradient_masking(aisp_model, eps=0.03, max_samples=200, square_steps=100)


def test_robustness_curve_is_reported(aisp_model):
    curve = robustness_curve(aisp_model, eps=[0.0, 0.01, 0.03, 0.1], attack="pgd", steps=10)
    assert curve.accuracy[0] >= 0.9  # eps=0 is the clean accuracy


def test_tabular_model_under_black_box_attack(tabular_model):
    # ONNX runs black-box: score-based square attack within per-feature bounds.
    assert_robust(tabular_model, attack="square", eps=0.1, min_acc=0.8, steps=200)


def test_one_confident_digit_is_locally_robust(aisp_model):
    x, y = aisp_model.x[0], int(aisp_model.y[0])
    assert_locally_robust(aisp_model, x, y, eps=0.01, max_examples=50)
