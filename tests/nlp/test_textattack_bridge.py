"""TextAttack behind the same API, offline; the cross-check against the native DeepWordBug."""

from __future__ import annotations

import pytest

from pytest_aisp.findings import AispError
from pytest_aisp.nlp import TextConstraints, evaluate_text_robustness
from pytest_aisp.nlp.textattack_bridge import offline_bootstrap

# TextAttack lives in its own environment (tox -e textattack, where these run and must not skip); the main
# environment deselects them with -m "not textattack".
pytestmark = pytest.mark.textattack


@pytest.fixture(scope="module", autouse=True)
def textattack_offline(wordnet_installed):
    """Bootstrap the offline NLTK data, then import TextAttack (it reads stop words at import)."""
    offline_bootstrap()
    import textattack.attack_recipes

    return textattack.attack_recipes


@pytest.fixture(scope="module")
def cross_check_set(models):
    return models.sentiment_test_set(60)


def test_offline_bootstrap_lays_out_nltk_data(tmp_path, wordnet_installed):
    root = offline_bootstrap(tmp_path / "nltk")
    assert (root / "corpora" / "stopwords" / "english").read_text().count("\n") == 179
    assert (root / "corpora" / "wordnet" / "lexnames").is_file()
    assert (root / "corpora" / "wordnet" / "data.noun").is_file()
    assert (root / "corpora" / "wordnet" / "index.sense").is_file()  # NLTK's reader maps versions through it
    import nltk

    assert nltk.download("omw-1.4") is False  # refused: nothing is fetched at run time
    import textattack

    homoglyphs = textattack.__path__[0] + "/shared/intentional_homoglyphs.txt"
    with open(homoglyphs, encoding="utf-8") as handle:
        assert "→" in handle.read()


def test_deepwordbug_recipe_returns_the_same_result_type(sentiment_model, sentiment_test, wordnet_installed):
    texts, labels = sentiment_test
    result = evaluate_text_robustness(
        sentiment_model, texts, labels, attack="textattack:DeepWordBugGao2018", budget=500
    )
    assert result.attack == "textattack:DeepWordBugGao2018"
    assert result.attack_success_rate > 0.3
    assert result.findings[0].rule_id == "AISP-NLP-ADVERSARIAL"
    example = result.best_examples(1)[0]
    assert sentiment_model.predict([example.adversarial])[0] != example.label


def test_native_deepwordbug_matches_textattack_within_10_points(
    sentiment_model, cross_check_set, wordnet_installed
):
    texts, labels = cross_check_set
    # TextAttack's recipe has no cap on the fraction of words changed: lift ours to match.
    native = evaluate_text_robustness(
        sentiment_model,
        texts,
        labels,
        attack="deepwordbug",
        budget=1000,
        constraints=TextConstraints(max_words_changed=1.0),
    )
    theirs = evaluate_text_robustness(
        sentiment_model, texts, labels, attack="textattack:DeepWordBugGao2018", budget=1000
    )
    assert native.clean_accuracy == theirs.clean_accuracy
    assert abs(native.attack_success_rate - theirs.attack_success_rate) <= 0.10, (
        native.attack_success_rate,
        theirs.attack_success_rate,
    )


@pytest.mark.parametrize("recipe", ["Pruthi2019", "PWWSRen2019"])
def test_other_offline_recipes_run(sentiment_model, sentiment_test, wordnet_installed, recipe):
    texts, labels = sentiment_test
    result = evaluate_text_robustness(
        sentiment_model, texts[:8], labels[:8], attack=f"textattack:{recipe}", budget=300
    )
    assert result.n_texts == 8 and 0.0 <= result.attack_success_rate <= 1.0


def test_unknown_recipe_names_the_offline_ones(sentiment_model):
    with pytest.raises(AispError, match="DeepWordBugGao2018"):
        evaluate_text_robustness(sentiment_model, ["a fine film"], [1], attack="textattack:NoSuchRecipe")


@pytest.mark.parametrize("recipe", ["InputReductionFeng2018", "BadCharacters2021"])
def test_recipes_without_a_label_flip_goal_are_refused(sentiment_model, recipe):
    with pytest.raises(AispError, match="not supported"):
        evaluate_text_robustness(sentiment_model, ["a fine film"], [1], attack=f"textattack:{recipe}")


def test_synonyms_keep_the_inflection_with_lemminflect(wordnet_installed):
    import lemminflect  # noqa: F401  - the textattack environment installs the nlp-encoder extra

    from pytest_aisp.nlp.transforms import wordnet_synonyms

    assert "films" in wordnet_synonyms("movies") and "movies" not in wordnet_synonyms("movies")
    assert "enjoyed" in wordnet_synonyms("loved")


def test_recipe_that_needs_downloads_fails_with_a_clear_error(sentiment_model, wordnet_installed):
    with pytest.raises(AispError, match="offline"):
        evaluate_text_robustness(sentiment_model, ["a fine film"], [1], attack="textattack:TextFoolerJin2019")
