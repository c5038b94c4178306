"""Extraction: the full-probability endpoint can be copied, the top-1 twin resists at the same budget."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp import AispError, RobustnessFailure
from pytest_aisp.robust import assert_extraction_resistant, evaluate_extraction
from pytest_aisp.robust._access import outputs_to_proba

BUDGET = 100
MAX_FIDELITY = 0.87


@pytest.fixture(scope="module")
def thief(poison_script, poison_fixtures):
    return poison_script.thief_blends(poison_fixtures.x_train)


def test_probability_endpoint_is_extractable(poison_script, clean_cnn, poison_fixtures, thief):
    f = poison_fixtures
    with pytest.raises(RobustnessFailure, match="fidelity") as info:
        assert_extraction_resistant(
            poison_script.probability_api(clean_cnn),
            query_budget=BUDGET,
            max_fidelity=MAX_FIDELITY,
            thief_data=thief,
            holdout_data=(f.x_test, f.y_test),
            nb_classes=10,
        )
    result = info.value.result
    assert result.fidelity > MAX_FIDELITY
    # hardening the same outputs to the top-1 label costs the thief fidelity
    assert result.hardened_fidelity["top1"] < result.fidelity


def test_top1_endpoint_resists_at_the_same_budget(poison_script, clean_cnn, poison_fixtures, thief):
    f = poison_fixtures
    result = assert_extraction_resistant(
        poison_script.label_api(clean_cnn),
        query_budget=BUDGET,
        max_fidelity=MAX_FIDELITY,
        thief_data=thief,
        holdout_data=(f.x_test, f.y_test),
        nb_classes=10,
        hardening=(),
    )
    assert result.fidelity <= MAX_FIDELITY


@pytest.mark.slow
@pytest.mark.parametrize("surrogate", ["knockoff", "copycat"])
def test_art_surrogates(surrogate, poison_script, clean_cnn, poison_fixtures, thief):
    f = poison_fixtures
    result = evaluate_extraction(
        poison_script.probability_api(clean_cnn),
        thief_data=thief,
        holdout_data=(f.x_test, f.y_test),
        query_budget=BUDGET,
        surrogate=surrogate,
        hardening=(),
        epochs=30,
        nb_classes=10,
    )
    assert 0.5 < result.fidelity <= 1.0


def test_bad_input_is_an_error(poison_script, clean_cnn, poison_fixtures, thief):
    f = poison_fixtures
    api = poison_script.probability_api(clean_cnn)
    with pytest.raises(AispError, match="query_budget"):
        evaluate_extraction(api, thief_data=thief, holdout_data=(f.x_test, f.y_test), query_budget=10**6)
    with pytest.raises(AispError, match="shape"):
        evaluate_extraction(api, thief_data=thief[:, :, :4], holdout_data=(f.x_test, f.y_test))
    with pytest.raises(AispError, match="labels only"):
        outputs_to_proba(np.asarray(poison_script.label_api(clean_cnn)(thief[:4])), None, 4)
    with pytest.raises(AispError, match="surrogate must be"):
        evaluate_extraction(api, thief_data=thief, holdout_data=(f.x_test, f.y_test), surrogate="magic")
