"""Trigger tests: the known patch, and the Neural-Cleanse-style search."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import Trigger, assert_trigger_free, evaluate_trigger


def test_known_trigger_flips_the_backdoored_model(backdoor_cnn, poison_fixtures, poison_script):
    f = poison_fixtures
    with pytest.raises(RobustnessFailure, match="trigger success") as info:
        assert_trigger_free(
            backdoor_cnn, (f.x_test, f.y_test), trigger=Trigger(*poison_script.patch_trigger()), target=0
        )
    assert info.value.result.success_rate > 0.9


def test_known_trigger_leaves_the_clean_twin_alone(clean_cnn, poison_fixtures, poison_script):
    f = poison_fixtures
    result = assert_trigger_free(clean_cnn, (f.x_test, f.y_test), trigger=poison_script.stamp, target=0)
    assert result.success_rate < 0.05


def test_search_finds_the_backdoor_class(backdoor_cnn, poison_fixtures):
    f = poison_fixtures
    with pytest.raises(RobustnessFailure, match="anomaly index") as info:
        assert_trigger_free(backdoor_cnn, (f.x_test, f.y_test))
    result = info.value.result
    assert result.suspect_class == 0
    assert result.anomaly_index > 2.0


def test_search_passes_the_clean_twin(clean_cnn, poison_fixtures):
    f = poison_fixtures
    result = assert_trigger_free(clean_cnn, (f.x_test, f.y_test))
    assert result.anomaly_index < 2.0
    assert len(result.per_class) == 10


def test_trigger_on_a_label_only_callable(backdoor_cnn, poison_fixtures, poison_script):
    f = poison_fixtures
    labels = poison_script.label_api(backdoor_cnn)
    result = evaluate_trigger(
        labels, (f.x_test, f.y_test), trigger=poison_script.stamp, search=False, nb_classes=10
    )
    assert result.target == 0 and result.success_rate > 0.9


def test_bad_inputs_are_errors(clean_cnn, poison_fixtures, poison_script):
    f = poison_fixtures
    with pytest.raises(AispError, match="needs gradients"):
        evaluate_trigger(poison_script.probability_api(clean_cnn), (f.x_test, f.y_test))
    with pytest.raises(AispError, match="keep the shape"):
        evaluate_trigger(clean_cnn, (f.x_test, f.y_test), trigger=lambda x: x[:, :, :4], search=False)
    with pytest.raises(AispError, match="give a trigger"):
        evaluate_trigger(clean_cnn, (f.x_test, f.y_test), search=False)
    with pytest.raises(AispError):
        evaluate_trigger(clean_cnn, (f.x_test, np.zeros(3)), search=False, trigger=poison_script.stamp)


def test_search_through_as_classifier(backdoor_cnn, poison_fixtures):
    from pytest_aisp.robust import as_classifier

    f = poison_fixtures
    result = evaluate_trigger(as_classifier(backdoor_cnn), (f.x_test, f.y_test), steps=40)
    assert result.suspect_class == 0
