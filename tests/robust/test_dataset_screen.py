"""Dataset screening: flipped labels are found, the clean split passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import assert_dataset_clean, scan_dataset


def test_flipped_labels_are_screened_out(poison_fixtures):
    f = poison_fixtures
    with pytest.raises(RobustnessFailure, match="neighbours") as info:
        assert_dataset_clean(f.x_train, f.y_flipped)
    screen = info.value.result
    found = np.array(screen.label_outliers)
    assert f.is_flipped[found].mean() > 0.9  # precision
    assert f.is_flipped[found].sum() > 0.9 * f.is_flipped.sum()  # recall
    row = screen.label_outliers[0]
    assert screen.suggested_labels[row] == f.y_train[row]


def test_clean_split_passes(poison_fixtures):
    f = poison_fixtures
    screen = assert_dataset_clean(f.x_train, f.y_train)
    assert len(screen.label_outliers) < 0.02 * len(f.y_train)


def test_conflicting_duplicates(poison_fixtures):
    f = poison_fixtures
    x = np.concatenate([f.x_train, f.x_train[:3]])
    y = np.concatenate([f.y_train, (f.y_train[:3] + 1) % 10])
    screen = scan_dataset(x, y)
    assert {(i, len(f.y_train) + i) for i in range(3)} <= set(screen.conflicting_duplicates)
    assert any("different labels" in x.message for x in screen.findings)


def test_planted_patch_shows_as_spectral_outliers(poison_fixtures):
    f = poison_fixtures
    screen = scan_dataset(f.x_poisoned, f.y_poisoned)
    assert f.is_poison[list(screen.spectral_outliers)].mean() > 0.9


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_relabelling_classes_does_not_change_the_suspects(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(6, 1, (40, 3))])
    y = np.repeat([0, 1], 40)
    y[5] = 1
    perm = np.array([1, 0])
    assert scan_dataset(x, y).label_outliers == scan_dataset(x, perm[y]).label_outliers
    assert 5 in scan_dataset(x, y).label_outliers


def test_bad_input_is_an_error():
    with pytest.raises(AispError, match="must match"):
        scan_dataset(np.zeros((20, 3)), np.zeros(19, int))
    with pytest.raises(AispError, match="NaN"):
        scan_dataset(np.full((20, 3), np.nan), np.zeros(20, int))
