"""Poisoning resistance: a plain training pipeline against one that screens its data."""

from __future__ import annotations

import pytest

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import assert_poisoning_resistant, evaluate_poisoning


@pytest.fixture(scope="module")
def split(poison_fixtures):
    f = poison_fixtures
    return (f.x_train, f.y_train), (f.x_test, f.y_test)


def test_plain_pipeline_learns_the_backdoor(poison_script, split):
    with pytest.raises(RobustnessFailure, match="trigger success") as info:
        assert_poisoning_resistant(poison_script.train_mlp, split, attack="backdoor", rate=0.05)
    result = info.value.result
    assert result.backdoor_success > 0.8
    assert result.poisoned_rows == round(0.05 * len(split[0][1]))
    assert "recommendations" in info.value.findings[0].evidence


def test_any_stamping_function_can_be_the_trigger(poison_script, split):
    blend = poison_script.BACKDOORS["blend"]  # a noise image mixed in at alpha 0.25, no patch
    with pytest.raises(RobustnessFailure, match="trigger success") as info:
        assert_poisoning_resistant(poison_script.train_mlp, split, attack="backdoor", rate=0.1, trigger=blend.stamp)
    assert info.value.result.backdoor_success > 0.8
    with pytest.raises(AispError, match="keep the shape"):
        evaluate_poisoning(poison_script.train_mlp, split, attack="backdoor", trigger=lambda x: x[:, :, :4])


def test_screening_pipeline_resists_the_backdoor(poison_script, split):
    result = assert_poisoning_resistant(poison_script.train_screened_mlp, split, attack="backdoor", rate=0.05)
    assert result.backdoor_success < 0.05


def test_label_flip_measures_the_accuracy_drop(poison_script, split):
    result = evaluate_poisoning(
        poison_script.train_mlp,
        {"train": split[0], "test": split[1]},
        attack="label_flip",
        rate=0.4,
        max_acc_drop=0.0,
    )
    assert result.backdoor_success is None
    assert result.accuracy_drop > 0  # 40% flipped labels cost accuracy
    assert not result.passed


def test_train_fn_that_raises_is_an_error(split):
    def broken(x, y):
        raise RuntimeError("out of memory")

    with pytest.raises(AispError, match=r"train_fn raised.*out of memory"):
        evaluate_poisoning(broken, split)


def test_bad_data_and_attack_are_errors(poison_script, split):
    (x, y), (xt, yt) = split
    with pytest.raises(AispError, match="must match"):
        evaluate_poisoning(poison_script.train_mlp, ((x, y[:-1]), (xt, yt)))
    with pytest.raises(AispError, match="shape"):
        evaluate_poisoning(poison_script.train_mlp, ((x, y), (xt[:, :, :4], yt)))
    with pytest.raises(AispError, match="attack must be"):
        evaluate_poisoning(poison_script.train_mlp, split, attack="gradient_matching")
    with pytest.raises(AispError, match="returned None"):
        evaluate_poisoning(lambda x, y: None, split)


def test_findings_of_checks_inside_train_fn_stay_out_of_the_record(poison_script, split):
    from pytest_aisp.recorder import recording

    with recording("t::poisoning") as record:
        evaluate_poisoning(poison_script.train_screened_mlp, split, attack="backdoor")
    assert record.findings == []  # the screening inside train_fn found the poison; not reported here
