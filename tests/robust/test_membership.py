"""Membership inference: the overfit MLP leaks, the regularised twin does not."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import assert_no_membership_leakage, evaluate_membership
from pytest_aisp.robust.membership import roc_auc, tpr_at_fpr


def test_overfit_model_leaks(poison_script, poison_fixtures):
    f = poison_fixtures
    model = poison_script.load_mlp(f.member_overfit)
    members, holdout = f.member_split("overfit")
    with pytest.raises(RobustnessFailure, match="AUC") as info:
        assert_no_membership_leakage(model, members, holdout, max_auc=0.6)
    result = info.value.result
    assert result.auc > 0.7 and result.worst.auc_low > 0.6
    assert set(result.attacks) == {"loss", "confidence", "art_blackbox"}


def test_regularised_model_passes(poison_script, poison_fixtures):
    f = poison_fixtures
    model = poison_script.load_mlp(f.member_regular)
    members, holdout = f.member_split("regular")
    result = assert_no_membership_leakage(model, members, holdout, max_auc=0.6)
    assert result.auc < 0.6


def test_sklearn_estimator_and_determinism(poison_fixtures):
    from sklearn.neural_network import MLPClassifier

    f = poison_fixtures
    x = f.x_train.reshape(len(f.x_train), -1)
    model = MLPClassifier((64,), max_iter=300, random_state=0).fit(x[:60], f.y_train[:60])
    holdout = (f.x_test.reshape(len(f.x_test), -1)[:60], f.y_test[:60])
    first = evaluate_membership(model, (x[:60], f.y_train[:60]), holdout, seed=1)
    second = evaluate_membership(model, (x[:60], f.y_train[:60]), holdout, seed=1)
    assert first.attacks == second.attacks
    assert first.auc > 0.6


def test_auc_and_tpr_helpers():
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == 0.5
    assert tpr_at_fpr(np.linspace(1, 2, 100), np.linspace(0, 1, 100)) > 0.9


def test_bad_input_is_an_error(poison_script, poison_fixtures):
    f = poison_fixtures
    model = poison_script.load_mlp(f.member_regular)
    with pytest.raises(AispError, match="at least 20"):
        evaluate_membership(model, (f.x_train[:5], f.y_train[:5]), (f.x_test[:5], f.y_test[:5]))
    with pytest.raises(AispError, match="input shape"):
        evaluate_membership(model, (f.x_train[:40], f.y_train[:40]), (f.x_test[:40, :, :4], f.y_test[:40]))
    with pytest.raises(AispError, match="attacks must be"):
        evaluate_membership(
            model, (f.x_train[:40], f.y_train[:40]), (f.x_test[:40], f.y_test[:40]), attacks=("shadow",)
        )
