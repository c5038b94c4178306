"""Counterfactual fairness and group metrics on a name-biased classifier and its unbiased twin."""

from __future__ import annotations

import pytest

from pytest_aisp.findings import AispError, Severity, TextRobustnessFailure
from pytest_aisp.nlp import (
    assert_counterfactual_fair,
    evaluate_counterfactual_fairness,
    evaluate_group_metrics,
    group_of_terms,
)
from pytest_aisp.nlp.bias import counterfactuals
from pytest_aisp.nlp.resources import group_terms


def test_counterfactuals_swap_aligned_terms_and_keep_case():
    swaps = counterfactuals("He said his Dad was right", group_terms("gender"))
    assert swaps == [("male", "female", "She said her Mom was right")]
    assert counterfactuals("nothing to swap here", group_terms("gender")) == []
    nationality = counterfactuals("the Indian team won", group_terms("nationality"))
    assert len(nationality) == len(group_terms("nationality").groups) - 1


def test_the_biased_model_fails_counterfactual_fairness(models):
    texts, _ = models.fairness_probe_set()
    with pytest.raises(TextRobustnessFailure) as info:
        assert_counterfactual_fair(models.biased_name_model(), texts, groups="names", max_flip_rate=0.05)
    result = info.value.result
    assert result.flip_rate > 0.2
    assert {(g.from_group, g.to_group) for g in result.by_group_pair} == {
        ("male_names", "female_names"),
        ("female_names", "male_names"),
    }
    assert "flip rate" in str(info.value) and "->" in str(info.value)
    assert info.value.findings[0].rule_id == "AISP-NLP-BIAS"


def test_the_unbiased_twin_passes(models):
    texts, _ = models.fairness_probe_set()
    result = assert_counterfactual_fair(
        models.unbiased_name_model(), texts, groups="names", max_flip_rate=0.05, max_score_gap=0.25
    )
    assert result.flip_rate <= 0.05
    assert result.pairs == len(texts)
    assert result.findings[0].severity is Severity.INFO


def test_score_gap_bound_fails_even_without_flips(models):
    texts, _ = models.fairness_probe_set()
    result = evaluate_counterfactual_fairness(
        models.unbiased_name_model(), texts, groups="names", max_flip_rate=1.0, max_score_gap=0.0
    )
    assert result.findings[0].severity is Severity.HIGH
    assert "max_score_gap" in result.findings[0].message


def test_texts_without_group_terms_are_a_finding_not_a_pass(sentiment_model):
    result = evaluate_counterfactual_fairness(sentiment_model, ["the meal was lovely"], groups="religion")
    assert result.pairs == 0
    assert result.findings[0].severity is Severity.MEDIUM
    with pytest.raises(TextRobustnessFailure, match="could not be checked"):
        assert_counterfactual_fair(sentiment_model, ["the meal was lovely"], groups="religion")


def test_custom_group_mapping(models):
    groups = {"a": ["john", "james"], "b": ["mary", "linda"]}
    result = evaluate_counterfactual_fairness(
        models.biased_name_model(), ["John said the film was okay"], groups=groups
    )
    assert result.pairs == 1 and result.worst[0].counterfactual == "Mary said the film was okay"
    with pytest.raises(AispError, match="aligned"):
        evaluate_counterfactual_fairness(models.biased_name_model(), ["x"], groups={"a": ["he"], "b": []})
    with pytest.raises(AispError, match="groups must"):
        evaluate_counterfactual_fairness(models.biased_name_model(), ["x"], groups=[3])


def test_group_metrics_show_the_biased_model_gap(models):
    texts, labels = models.fairness_probe_set()
    group_of = group_of_terms("names")
    biased = evaluate_group_metrics(models.biased_name_model(), texts, labels, group_of)
    # Base rates differ a little between the groups of this small probe set: parity allows for it.
    fair = evaluate_group_metrics(models.unbiased_name_model(), texts, labels, group_of, max_parity_gap=0.3)
    assert {g.group for g in biased.groups} == {"male_names", "female_names"}
    assert biased.demographic_parity_gap > 0.5 and biased.equalized_odds_gap > 0.5
    assert biased.findings[0].severity is Severity.HIGH
    assert fair.equalized_odds_gap < biased.equalized_odds_gap
    assert fair.findings[0].severity is Severity.INFO


def test_group_metrics_bad_input(models):
    model = models.unbiased_name_model()
    with pytest.raises(AispError):
        evaluate_group_metrics(model, ["a", "b"], [1], group_of_terms())
    with pytest.raises(AispError):
        evaluate_group_metrics(model, ["a", "b"], [1, 0], ["x"])
    one_group = evaluate_group_metrics(model, ["he is fine", "he is bad"], [1, 0], group_of_terms("gender"))
    assert one_group.findings[0].severity is Severity.MEDIUM
