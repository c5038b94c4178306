"""Backdoor detection on the BadNets digits CNN and its clean twin."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import assert_no_backdoor, evaluate_backdoor

METHODS = ["activation_clustering", "spectral_signature"]


@pytest.mark.parametrize("method", METHODS)
def test_backdoored_model_is_flagged_with_the_planted_samples(method, backdoor_cnn, poison_fixtures):
    f = poison_fixtures
    with pytest.raises(RobustnessFailure) as info:
        assert_no_backdoor(backdoor_cnn, (f.x_poisoned, f.y_poisoned), method=method)
    result = info.value.result
    suspects = np.array(result.suspect_indices)
    assert f.is_poison[suspects].mean() >= 0.95  # what it flags was planted
    assert f.is_poison[suspects].sum() >= 0.9 * f.is_poison.sum()  # and it finds nearly all of it
    assert result.per_class[0].suspects > 0
    assert "class 0" in str(info.value)
    assert info.value.findings[0].rule_id == "AISP-ROBUST-BACKDOOR"


@pytest.mark.parametrize("method", METHODS)
def test_clean_twin_passes(method, clean_cnn, poison_fixtures):
    f = poison_fixtures
    result = assert_no_backdoor(clean_cnn, (f.x_train, f.y_train), method=method)
    assert result.passed and result.suspect_fraction == 0.0
    # ART proposes suspects in every class; none of them is confirmed
    assert sum(c.candidates for c in result.per_class.values()) > 0


def test_evaluate_is_deterministic_and_never_raises(backdoor_cnn, poison_fixtures):
    f = poison_fixtures
    first = evaluate_backdoor(backdoor_cnn, (f.x_poisoned, f.y_poisoned), seed=3)
    second = evaluate_backdoor(backdoor_cnn, (f.x_poisoned, f.y_poisoned), seed=3)
    assert first.suspect_indices == second.suspect_indices
    assert not first.passed


def test_conv_activations_given_as_4d_are_flattened(backdoor_cnn, poison_fixtures):
    import torch

    f = poison_fixtures
    with torch.no_grad():
        conv = backdoor_cnn[:5](torch.from_numpy(f.x_poisoned)).numpy()  # (N, 32, 4, 4)
    result = evaluate_backdoor(backdoor_cnn, (f.x_poisoned, f.y_poisoned), activations=conv)
    assert not result.passed


def test_model_without_activations_is_an_error(poison_fixtures):
    from sklearn.linear_model import LogisticRegression

    f = poison_fixtures
    flat = f.x_train.reshape(len(f.x_train), -1)
    model = LogisticRegression(max_iter=50).fit(flat[:200], f.y_train[:200])
    with pytest.raises(AispError, match="exposes no activations"):
        evaluate_backdoor(model, (flat, f.y_train))


def test_mismatched_shapes_and_unknown_method_are_errors(clean_cnn, poison_fixtures):
    f = poison_fixtures
    with pytest.raises(AispError, match="must match"):
        evaluate_backdoor(clean_cnn, (f.x_train, f.y_train[:-3]))
    with pytest.raises(AispError, match="method must be"):
        evaluate_backdoor(clean_cnn, (f.x_train, f.y_train), method="nope")


def test_findings_reach_the_record(backdoor_cnn, poison_fixtures):
    from pytest_aisp.recorder import recording

    f = poison_fixtures
    with recording("t::x") as record:
        evaluate_backdoor(backdoor_cnn, (f.x_poisoned, f.y_poisoned))
    assert [x.rule_id for x in record.findings] == ["AISP-ROBUST-BACKDOOR"]
    assert record.metrics["backdoor_suspect_fraction"] > 0.01
    assert record.attachments and record.attachments[0].content.startswith(b"\x89PNG")


def test_tiny_and_missing_classes_are_reported_not_crashed(backdoor_cnn, poison_fixtures):
    f = poison_fixtures
    keep = (f.y_poisoned != 4) & ((f.y_poisoned != 7) | (np.arange(len(f.y_poisoned)) % 40 == 0))
    result = evaluate_backdoor(backdoor_cnn, (f.x_poisoned[keep], f.y_poisoned[keep]))
    assert 7 in result.unchecked_classes and 4 not in result.per_class
    assert any(x.severity.value == "low" for x in result.findings)
    assert result.per_class[0].suspects > 0
