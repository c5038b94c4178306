"""The attack engine is only worth its numbers: correctness of the native attacks on real models."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.robust import evaluate_robustness, robustness_curve
from pytest_aisp.robust.evaluate import CLEAN_WRONG, FOOLED, ROBUST

ATTACK_SETTINGS = [
    ("fgsm", "inf", {}),
    ("pgd", "inf", {"steps": 10, "restarts": 2}),
    ("pgd", "2", {"steps": 10, "schedule": "cosine"}),
    ("apgd-ce", "inf", {"steps": 20}),
    ("apgd-ce", "2", {"steps": 20}),
    ("square", "inf", {"steps": 60}),
    ("noise", "inf", {"steps": 5}),
    ("noise", "2", {"steps": 5}),
]


def _distances(result, x):
    delta = (result.adversarial.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    return np.abs(delta).max(axis=1) if result.norm == "inf" else np.linalg.norm(delta, axis=1)


@pytest.mark.parametrize(("attack", "norm", "options"), ATTACK_SETTINGS)
def test_every_perturbation_stays_within_eps_and_bounds(digits_mlp, attack, norm, options):
    x, y = digits_mlp.x[:200], digits_mlp.y[:200]
    eps = 0.1 if norm == "inf" else 1.0
    result = evaluate_robustness(digits_mlp.module, (x, y), attack=attack, eps=eps, norm=norm, **options)
    assert np.all(_distances(result, x) <= eps + 1e-6)
    assert result.adversarial.min() >= 0.0 and result.adversarial.max() <= 1.0
    assert result.robust_acc <= result.clean_acc
    # Every counted success really is misclassified by the model.
    fooled = result.outcomes == FOOLED
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        predicted = digits_mlp.module(torch.from_numpy(result.adversarial)).argmax(1).numpy()
    assert np.all(predicted[fooled] != y[fooled])
    assert np.all(predicted[result.outcomes == ROBUST] == y[result.outcomes == ROBUST])


@pytest.mark.parametrize("attack", ["pgd", "square", "fgsm"])
def test_per_feature_bounds_hold_on_tabular_data(cancer_mlp, attack):
    lower, upper = cancer_mlp.extra["lower"], cancer_mlp.extra["upper"]
    from pytest_aisp.robust import as_classifier

    model = as_classifier(cancer_mlp.module, bounds=(lower, upper))
    x = cancer_mlp.x
    result = evaluate_robustness(model, cancer_mlp.data, attack=attack, eps=0.5, steps=20)
    assert np.all(_distances(result, x) <= 0.5 + 1e-6)
    low, high = np.minimum(lower, x), np.maximum(upper, x)  # clean points outside the box stay put
    assert np.all(result.adversarial >= low) and np.all(result.adversarial <= high)
    assert result.robust_acc < result.clean_acc


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd-ce", "square", "noise"])
def test_eps_zero_gives_the_clean_accuracy(digits_cnn, attack):
    result = evaluate_robustness(digits_cnn.module, digits_cnn.data, attack=attack, eps=0.0, steps=3)
    assert result.robust_acc == result.clean_acc
    assert not np.any(result.outcomes == FOOLED)


def test_accuracy_does_not_increase_with_eps(digits_mlp):
    levels = [0.0, 0.02, 0.05, 0.1, 0.2]
    curve = robustness_curve(digits_mlp.module, digits_mlp.data, eps=levels, attack="pgd", steps=20)
    assert curve.eps == tuple(levels)
    assert all(a >= b for a, b in zip(curve.accuracy, curve.accuracy[1:]))
    assert all(a >= b - 1e-12 for a, b in zip(curve.raw_accuracy, curve.raw_accuracy[1:]))
    assert curve.accuracy[0] == pytest.approx(curve.clean_acc)
    assert curve.accuracy[-1] < curve.accuracy[1]


@pytest.mark.parametrize("model_name", ["digits_mlp", "digits_cnn"])
def test_pgd_is_at_least_as_strong_as_fgsm(request, model_name):
    model = request.getfixturevalue(model_name)
    data = (model.x[:300], model.y[:300])
    for eps in (0.05, 0.1):
        fgsm = evaluate_robustness(model.module, data, attack="fgsm", eps=eps)
        pgd = evaluate_robustness(model.module, data, attack="pgd", eps=eps, steps=20)
        assert pgd.robust_acc <= fgsm.robust_acc


def test_very_large_eps_drives_accuracy_to_zero(digits_mlp):
    result = evaluate_robustness(digits_mlp.module, digits_mlp.data, attack="pgd", eps=1.0, steps=20)
    assert result.robust_acc <= 0.01
    assert result.attack_success_rate >= 0.99


def test_pgd_matches_the_closed_form_worst_case_of_a_linear_model(linear_binary):
    weight = linear_binary.module.weight.detach().numpy().astype(np.float64)
    bias = linear_binary.module.bias.detach().numpy().astype(np.float64)
    w, b = weight[1] - weight[0], bias[1] - bias[0]  # logit margin of class 1 over class 0
    x, y = linear_binary.x.astype(np.float64), linear_binary.y
    for eps in (0.05, 0.1, 0.2):
        # Under Linf + [0, 1] each feature moves eps against the label's side of w, clipped to the box.
        direction = np.where(y[:, None] == 1, -np.sign(w), np.sign(w))
        worst = np.clip(x + eps * direction, 0.0, 1.0)
        worst_margin = (worst @ w + b) * np.where(y == 1, 1.0, -1.0)
        clean_correct = ((x @ w + b > 0).astype(int) == y)
        closed_form_robust = clean_correct & (worst_margin > 0)
        result = evaluate_robustness(linear_binary.module, linear_binary.data, attack="pgd", eps=eps,
                                     steps=40)
        assert np.array_equal(result.outcomes == ROBUST, closed_form_robust)
        assert result.robust_acc == pytest.approx(closed_form_robust.mean())
    assert 0.0 < closed_form_robust.mean() < clean_correct.mean()  # the check is not vacuous


@pytest.mark.parametrize("model_name", ["digits_mlp", "digits_cnn"])
def test_native_pgd_agrees_with_art_pgd_within_one_point(request, model_name):
    pytest.importorskip("art")
    model = request.getfixturevalue(model_name)
    x, y = model.x[:300], model.y[:300]
    settings = {"eps": 0.05, "steps": 10, "step_size": 0.01}
    native = evaluate_robustness(model.module, (x, y), attack="pgd", random_start=False, **settings)
    art = evaluate_robustness(model.module, (x, y), attack="art:ProjectedGradientDescent", **settings)
    assert abs(native.robust_acc - art.robust_acc) <= 0.01
    assert native.clean_acc == art.clean_acc


SEEDED = [("pgd", {"restarts": 2, "steps": 10}), ("square", {"steps": 40}), ("apgd-ce", {"steps": 20}),
          ("noise", {})]


@pytest.mark.parametrize(("attack", "options"), SEEDED)
def test_the_same_seed_gives_the_same_numbers(digits_cnn, attack, options):
    x, y = digits_cnn.x[:150], digits_cnn.y[:150]
    first = evaluate_robustness(digits_cnn.module, (x, y), attack=attack, eps=0.08, seed=7, **options)
    second = evaluate_robustness(digits_cnn.module, (x, y), attack=attack, eps=0.08, seed=7, **options)
    assert np.array_equal(first.outcomes, second.outcomes)
    assert np.array_equal(first.adversarial, second.adversarial)
    assert first.robust_acc == second.robust_acc


def test_targeted_attack_reaches_its_target(digits_mlp):
    x, y = digits_mlp.x[:200], digits_mlp.y[:200]
    result = evaluate_robustness(digits_mlp.module, (x, y), attack="pgd", eps=0.3, steps=30, targeted=True,
                                 target=0)
    fooled = result.outcomes == FOOLED
    assert fooled.sum() > 0.5 * (result.outcomes != CLEAN_WRONG).sum()
    assert np.all(result.adversarial_labels[fooled] == 0)
    # A point of the target class cannot be pushed to it: robust if the model gets it right.
    own_class = (y == 0) & (result.outcomes != CLEAN_WRONG)
    assert own_class.any() and np.all(result.outcomes[own_class] == ROBUST)
    clean = evaluate_robustness(digits_mlp.module, (x, y), attack="noise", eps=0.0, steps=1)
    assert result.clean_acc == clean.clean_acc


def test_only_clean_correct_points_are_attacked(digits_mlp):
    x, y = digits_mlp.x[:300].copy(), digits_mlp.y[:300].copy()
    y[:30] = (y[:30] + 1) % 10  # wrong labels: misclassified before any attack
    result = evaluate_robustness(digits_mlp.module, (x, y), attack="pgd", eps=0.05, steps=5)
    assert np.all(result.outcomes[:30] == CLEAN_WRONG)
    assert np.array_equal(result.adversarial[:30], x[:30])
    assert result.n == 300 and result.clean_correct <= 270


def test_wilson_interval_contains_the_estimate():
    from pytest_aisp.robust import wilson_interval

    low, high = wilson_interval(81, 100)
    assert low < 0.81 < high
    assert (round(low, 3), round(high, 3)) == (0.722, 0.875)  # z = 1.96, checked by hand
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
