"""Backdoor detection on the digits CNNs of every trigger type and their clean twin."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import assert_no_backdoor, evaluate_backdoor
from pytest_aisp.robust.backdoor import _beyond_every_clean_row

METHODS = ["activation_clustering", "spectral_signature", "strip"]
TRIGGERS = ["patch", "blend", "warp", "lowfreq"]


@pytest.fixture(scope="module")
def backdoored(poison_script, poison_fixtures):
    """name -> (model, x, y, is_poison, target) for every trigger type."""
    f = poison_fixtures
    out = {}
    for name in TRIGGERS:
        x, y, is_poison = f.poisoned(name)
        out[name] = (
            poison_script.load_cnn(f.backdoor_model(name)),
            x,
            y,
            is_poison,
            poison_script.BACKDOORS[name].target,
        )
    return out


def test_blended_backdoor_fails_assert_no_backdoor(backdoored, poison_fixtures):
    # A noise image mixed in at alpha 0.25 leaves no constant input pattern; it used to pass.
    model, x, y, is_poison, target = backdoored["blend"]
    f = poison_fixtures
    with pytest.raises(RobustnessFailure, match=f"class {target}") as info:
        assert_no_backdoor(model, (x, y), clean_data=(f.x_test, f.y_test))
    result = info.value.result
    assert result.flagged_classes == (target,)
    assert is_poison[list(result.suspect_indices)].mean() >= 0.9
    assert info.value.findings[0].rule_id == "AISP-ROBUST-BACKDOOR"


@pytest.mark.parametrize("name", TRIGGERS)
def test_every_trigger_type_is_flagged_in_its_target_class(name, backdoored, poison_fixtures):
    model, x, y, is_poison, target = backdoored[name]
    f = poison_fixtures
    result = evaluate_backdoor(model, (x, y), clean_data=(f.x_test, f.y_test), method="spectral_signature")
    assert not result.passed
    assert result.flagged_classes == (target,)
    suspects = np.array(result.suspect_indices)
    assert is_poison[suspects].mean() >= 0.9  # what it flags was planted
    assert is_poison[suspects].sum() >= 0.3 * is_poison.sum()  # rows beyond every clean row: a third or more
    assert result.per_class[target].p_value < result.threshold


@pytest.mark.parametrize("name", ["patch", "lowfreq"])
def test_activation_clustering_flags_what_it_can(name, backdoored, poison_fixtures):
    model, x, y, is_poison, target = backdoored[name]
    f = poison_fixtures
    with pytest.raises(RobustnessFailure) as info:
        assert_no_backdoor(model, (x, y), clean_data=(f.x_test, f.y_test), method="activation_clustering")
    result = info.value.result
    assert result.flagged_classes == (target,)
    assert is_poison[list(result.suspect_indices)].mean() >= 0.9


@pytest.mark.parametrize("method", METHODS)
def test_clean_twin_passes(method, clean_cnn, poison_fixtures):
    f = poison_fixtures
    result = assert_no_backdoor(clean_cnn, (f.x_train, f.y_train), clean_data=(f.x_test, f.y_test), method=method)
    assert result.passed and result.suspect_fraction == 0.0
    assert len(result.per_class) == 10
    assert min(c.p_value for c in result.per_class.values()) > result.threshold


def test_strip_flags_the_low_frequency_trigger_from_outputs_alone(backdoored, poison_fixtures, poison_script):
    model, x, y, is_poison, target = backdoored["lowfreq"]
    f = poison_fixtures
    endpoint = poison_script.probability_api(model)  # a callable returning probabilities: no activations
    with pytest.raises(RobustnessFailure) as info:
        assert_no_backdoor(endpoint, (x, y), clean_data=(f.x_test, f.y_test), method="strip", nb_classes=10)
    result = info.value.result
    assert result.flagged_classes == (target,)
    assert is_poison[list(result.suspect_indices)].mean() >= 0.9
    with pytest.raises(AispError, match="exposes no activations"):
        evaluate_backdoor(endpoint, (x, y), clean_data=(f.x_test, f.y_test), method="spectral_signature")


def test_evaluate_is_deterministic_and_never_raises(backdoored, poison_fixtures):
    model, x, y, _, _ = backdoored["patch"]
    f = poison_fixtures
    runs = [
        evaluate_backdoor(model, (x, y), clean_data=(f.x_test, f.y_test), method="activation_clustering", seed=3)
        for _ in range(2)
    ]
    assert runs[0].suspect_indices == runs[1].suspect_indices
    assert [c.p_value for c in runs[0].per_class.values()] == [c.p_value for c in runs[1].per_class.values()]
    assert not runs[0].passed


def test_conv_activations_given_as_4d_are_flattened(backdoored, poison_fixtures):
    import torch

    model, x, y, _, target = backdoored["patch"]
    f = poison_fixtures
    with torch.no_grad():
        conv = model[:5](torch.from_numpy(x)).numpy()  # (N, 32, 4, 4)
        clean_conv = model[:5](torch.from_numpy(f.x_test)).numpy()
    result = evaluate_backdoor(
        model, (x, y), clean_data=(f.x_test, f.y_test), activations=conv, clean_activations=clean_conv
    )
    assert result.flagged_classes == (target,)


def test_clean_data_is_required_and_checked(clean_cnn, poison_fixtures):
    f = poison_fixtures
    with pytest.raises(AispError, match="needs clean_data"):
        evaluate_backdoor(clean_cnn, (f.x_train, f.y_train))
    with pytest.raises(AispError, match="shape"):
        evaluate_backdoor(clean_cnn, (f.x_train, f.y_train), clean_data=(f.x_test[:, :, :4], f.y_test))
    with pytest.raises(AispError, match="must match"):
        evaluate_backdoor(clean_cnn, (f.x_train, f.y_train[:-3]), clean_data=(f.x_test, f.y_test))


def test_model_without_activations_is_an_error(poison_fixtures):
    from sklearn.linear_model import LogisticRegression

    f = poison_fixtures
    flat = f.x_train.reshape(len(f.x_train), -1)
    model = LogisticRegression(max_iter=300).fit(flat[:200], f.y_train[:200])
    with pytest.raises(AispError, match="exposes no activations"):
        evaluate_backdoor(model, (flat, f.y_train), clean_data=(f.x_test.reshape(len(f.x_test), -1), f.y_test))


def test_bad_options_are_errors(clean_cnn, poison_fixtures):
    f = poison_fixtures
    data, clean = (f.x_train, f.y_train), (f.x_test, f.y_test)
    with pytest.raises(AispError, match="method must be"):
        evaluate_backdoor(clean_cnn, data, clean_data=clean, method="nope")
    with pytest.raises(AispError, match="significance"):
        evaluate_backdoor(clean_cnn, data, clean_data=clean, significance=1.5)
    with pytest.raises(AispError, match="significance"):
        evaluate_backdoor(clean_cnn, data, clean_data=clean, significance="0.01")
    with pytest.raises(AispError, match="overlays"):
        evaluate_backdoor(clean_cnn, data, clean_data=clean, method="strip", overlays=0)


def test_findings_reach_the_record(backdoored, poison_fixtures):
    from pytest_aisp.recorder import recording

    model, x, y, _, _ = backdoored["warp"]
    f = poison_fixtures
    with recording("t::x") as record:
        evaluate_backdoor(model, (x, y), clean_data=(f.x_test, f.y_test))
    assert [x.rule_id for x in record.findings] == ["AISP-ROBUST-BACKDOOR"]
    assert record.metrics["backdoor_suspect_fraction"] > 0.01
    assert record.attachments and record.attachments[0].content.startswith(b"\x89PNG")


def test_tiny_and_missing_classes_are_reported_not_crashed(backdoored, poison_fixtures):
    model, x, y, _, target = backdoored["patch"]
    f = poison_fixtures
    keep = (y != 4) & ((y != 7) | (np.arange(len(y)) % 40 == 0))
    clean_keep = f.y_test != 6  # class 6 has training rows but nothing clean to compare with
    result = evaluate_backdoor(model, (x[keep], y[keep]), clean_data=(f.x_test[clean_keep], f.y_test[clean_keep]))
    assert {6, 7} <= set(result.unchecked_classes) and 4 not in result.per_class
    assert any(x.severity.value == "low" for x in result.findings)
    assert result.flagged_classes == (target,)


def test_a_screen_of_nothing_fails(backdoored, poison_fixtures):
    model, x, y, _, _ = backdoored["patch"]
    f = poison_fixtures
    few = np.concatenate([np.flatnonzero(f.y_test == c)[:4] for c in range(10)])  # 4 clean rows a class
    with pytest.raises(RobustnessFailure, match="no class was"):
        assert_no_backdoor(model, (x, y), clean_data=(f.x_test[few], f.y_test[few]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**16))
def test_p_value_is_the_exact_permutation_probability(n_train, n_clean, seed):
    # Under exchangeability every assignment of the pooled scores to training and clean rows is equally
    # likely: the p-value must be the share of assignments with at least as many training rows above
    # every clean row.
    scores = np.random.default_rng(seed).permutation(n_train + n_clean).astype(float)
    observed = _beyond_every_clean_row(scores[:n_train], scores[n_train:])
    k = int(observed.suspects.sum())
    count = 0
    splits = list(itertools.combinations(range(n_train + n_clean), n_train))
    for train_idx in splits:
        clean_idx = [i for i in range(n_train + n_clean) if i not in train_idx]
        if (scores[list(train_idx)] > scores[clean_idx].max()).sum() >= k:
            count += 1
    assert math.isclose(observed.p_value, count / len(splits), rel_tol=1e-9)
