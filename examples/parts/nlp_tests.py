# --- NLP: adversarial text, augmentation and bias checks ---
import pytest
from hypothesis import given, settings

import pytest_aisp
from pytest_aisp.nlp.strategies import text_edits


@pytest.mark.aisp_nlp
def test_sentiment_model_survives_keyboard_typos(sentiment_classifier, sentiment_eval_set):
    texts, labels = sentiment_eval_set
    pytest_aisp.assert_text_robust(sentiment_classifier, texts, labels, attack="typos", min_acc=0.5)


@pytest.mark.aisp_nlp
@pytest.mark.xfail(
    strict=True,
    raises=pytest_aisp.TextRobustnessFailure,
    reason="known weakness: a TF-IDF model drops words it has never seen",
)
def test_sentiment_model_under_deepwordbug(sentiment_classifier, sentiment_eval_set):
    texts, labels = sentiment_eval_set
    pytest_aisp.assert_text_robust(sentiment_classifier, texts, labels, attack="deepwordbug", min_acc=0.9)


@pytest.mark.aisp_nlp
def test_invisible_characters_are_measured(sentiment_classifier, sentiment_eval_set):
    texts, labels = sentiment_eval_set
    result = pytest_aisp.evaluate_text_robustness(sentiment_classifier, texts, labels, attack="invisible")
    assert result.clean_accuracy > 0.9


@pytest.mark.aisp_nlp
@given(text_edits("what a wonderful, delightful and charming film", max_edits=1))
@settings(max_examples=25, deadline=None)
def test_one_typo_does_not_flip_a_strongly_positive_review(nlp_models, edited):
    vader = pytest_aisp.as_text_classifier(nlp_models.vader_model())
    assert vader.predict([edited])[0] == 1


@pytest.mark.aisp_nlp
def test_gendered_names_do_not_change_the_verdict(nlp_models):
    texts, _ = nlp_models.fairness_probe_set()
    pytest_aisp.assert_counterfactual_fair(
        nlp_models.unbiased_name_model(), texts, groups="names", max_flip_rate=0.05
    )


@pytest.mark.aisp_nlp
@pytest.mark.xfail(
    strict=True,
    raises=pytest_aisp.TextRobustnessFailure,
    reason="the biased twin keys on gendered first names",
)
def test_the_biased_model_is_caught(nlp_models):
    texts, _ = nlp_models.fairness_probe_set()
    pytest_aisp.assert_counterfactual_fair(nlp_models.biased_name_model(), texts, groups="names")


@pytest.mark.aisp_nlp
def test_augmented_training_copies(sentiment_eval_set):
    texts, _ = sentiment_eval_set
    copies = pytest_aisp.augment_texts(texts[:5], recipe="typos,homoglyphs", n=2)
    assert all(len(c) == 2 for c in copies)
