"""Trigger tests: the known patch, and the Neural Cleanse search on the backdoored CNNs and the clean twin."""

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
    from pytest_aisp.robust import as_classifier

    f = poison_fixtures
    with pytest.raises(RobustnessFailure, match="anomaly index") as info:
        assert_trigger_free(as_classifier(backdoor_cnn), (f.x_test, f.y_test))
    result = info.value.result
    assert result.suspect_class == 0
    assert result.anomaly_index > 2.0
    assert result.per_class[0].reached and result.per_class[0].success_rate >= 0.9


def test_search_passes_the_clean_twin(clean_cnn, poison_fixtures):
    f = poison_fixtures
    result = assert_trigger_free(clean_cnn, (f.x_test, f.y_test))
    assert result.anomaly_index < 2.0
    assert len(result.per_class) == 10
    assert all(t.works(0.9) for t in result.per_class.values())  # every class has some working trigger


@pytest.mark.slow
@pytest.mark.parametrize("name", ["blend", "warp", "lowfreq"])
def test_search_finds_triggers_that_are_no_patch(name, poison_script, poison_fixtures):
    f = poison_fixtures
    model = poison_script.load_cnn(f.backdoor_model(name))
    result = evaluate_trigger(model, (f.x_test, f.y_test))
    assert result.suspect_class == poison_script.BACKDOORS[name].target
    assert result.anomaly_index > 2.0 and not result.passed


def test_cost_schedule_follows_the_paper():
    from pytest_aisp.robust.trigger import COST_DOWN, COST_UP, INIT_COST, PATIENCE, _CostSchedule

    schedule = _CostSchedule(2)
    works, fails = np.array([1.0, 0.0]), np.array([0.0, 0.0])
    for _ in range(PATIENCE):
        schedule.update(works, np.array([5.0, 5.0]))
    assert schedule.cost.tolist() == [INIT_COST, 0.0]  # switched on after PATIENCE working epochs only
    for _ in range(PATIENCE):
        schedule.update(works, np.array([4.0, 5.0]))
    assert schedule.cost[0] == pytest.approx(INIT_COST * COST_UP)
    for _ in range(PATIENCE):
        schedule.update(fails, np.array([3.0, 5.0]))
    assert schedule.cost[0] == pytest.approx(INIT_COST * COST_UP / COST_DOWN)
    # the best mask is the smallest one that worked, not the smaller one that did not
    assert schedule.best[0] == 4.0 and np.isinf(schedule.best[1])


def test_search_stops_once_the_best_mask_stalls():
    from pytest_aisp.robust.trigger import EARLY_STOP_PATIENCE, _CostSchedule

    schedule = _CostSchedule(1)
    schedule.raised[:] = schedule.lowered[:] = True
    schedule.update(np.array([1.0]), np.array([5.0]))
    for _ in range(EARLY_STOP_PATIENCE):
        assert not schedule.done[0]
        schedule.update(np.array([1.0]), np.array([4.99]))  # less than 1% smaller: no progress
    assert schedule.done[0]


def test_anomaly_index_has_no_floor():
    from pytest_aisp.robust.trigger import _anomaly_indices

    norms = dict(enumerate([10.0, 10.0, 10.0, 10.2, 9.8, 10.1, 9.9, 10.0, 10.0, 5.0]))
    # median 10, MAD 0.05: class 9 lies 5 / (1.4826 * 0.05) robust deviations below the median
    assert _anomaly_indices(norms)[9] == pytest.approx(5.0 / (1.4826 * 0.05))


def test_a_small_mask_that_does_not_work_is_no_evidence(clean_cnn, poison_fixtures):
    from pytest_aisp.robust.trigger import _judge, _most_anomalous, _Search

    f = poison_fixtures
    rng = np.random.default_rng(0)
    masks, patterns = {}, {}
    for c in range(10):
        masks[c] = np.zeros((1, 8, 8), np.float32)
        if c:  # every class but 0 gets a large white square; class 0 an empty mask of norm 0
            masks[c][:, rng.integers(0, 2) :, rng.integers(0, 2) :][:, :6, :6] = 1.0
        patterns[c] = np.ones((1, 8, 8), np.float32)
    found = _Search(masks, patterns, {c: float(m.sum()) for c, m in masks.items()}, dict.fromkeys(range(10), True), 1)
    per_class = _judge(clean_cnn, None, found, f.x_test, f.y_test)
    assert per_class[0].anomaly_index > 2.0  # the most anomalous norm ...
    assert per_class[0].success_rate < 0.05 and not per_class[0].works(0.9)  # ... but the trigger does nothing
    assert _most_anomalous(per_class, 0.9) != 0


def test_trigger_on_a_label_only_callable(backdoor_cnn, poison_fixtures, poison_script):
    f = poison_fixtures
    labels = poison_script.label_api(backdoor_cnn)
    result = evaluate_trigger(labels, (f.x_test, f.y_test), trigger=poison_script.stamp, search=False, nb_classes=10)
    assert result.target == 0 and result.success_rate > 0.9


def test_bad_inputs_are_errors(clean_cnn, poison_fixtures, poison_script):
    f = poison_fixtures
    with pytest.raises(AispError, match="needs gradients"):
        evaluate_trigger(poison_script.probability_api(clean_cnn), (f.x_test, f.y_test))
    with pytest.raises(AispError, match="keep the shape"):
        evaluate_trigger(clean_cnn, (f.x_test, f.y_test), trigger=lambda x: x[:, :, :4], search=False)
    with pytest.raises(AispError, match="give a trigger"):
        evaluate_trigger(clean_cnn, (f.x_test, f.y_test), search=False)
    with pytest.raises(AispError, match="at least 1"):
        evaluate_trigger(clean_cnn, (f.x_test, f.y_test), epochs=0)
    with pytest.raises(AispError, match="at least 4"):
        evaluate_trigger(clean_cnn, (f.x_test[:3], f.y_test[:3]))
    with pytest.raises(AispError):
        evaluate_trigger(clean_cnn, (f.x_test, np.zeros(3)), search=False, trigger=poison_script.stamp)
