"""as_text_classifier: adapters, batching, caching and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_aisp.findings import AispError
from pytest_aisp.nlp import TextClassifier, as_text_classifier


def test_sklearn_pipeline_probabilities_match_predict_proba(sentiment_model):
    texts = ["the movie was wonderful", "the meal was horrible"]
    clf = as_text_classifier(sentiment_model)
    probs = clf(texts)
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs, sentiment_model.predict_proba(texts))
    assert list(clf.predict(texts)) == [1, 0]
    assert clf.labels == ("0", "1")


def test_vader_is_adapted_to_two_classes(vader):
    clf = as_text_classifier(vader)
    probs = clf(["I love this wonderful film", "this is a terrible, awful mess"])
    assert probs.shape == (2, 2)
    assert probs[0, 1] > 0.5 > probs[1, 1]
    assert clf.labels == ("negative", "positive")


def test_queries_are_cached_per_string_and_batched():
    calls: list[int] = []

    def model(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        p = np.array([[0.3, 0.7] if "good" in t else [0.8, 0.2] for t in texts])
        return p

    clf = as_text_classifier(model, batch_size=3)
    clf(["good a", "bad b", "good c", "bad d", "good a"])
    assert calls == [3, 1]  # four distinct strings, in batches of three
    assert clf.queries == 4
    clf(["good a", "bad d"])
    assert clf.queries == 4 and calls == [3, 1]


def test_an_existing_text_classifier_is_returned_as_is(sentiment_model):
    clf = as_text_classifier(sentiment_model)
    assert as_text_classifier(clf) is clf
    assert isinstance(clf, TextClassifier)


@pytest.mark.parametrize("bad", [[], "a single string", ["ok", 3], None])
def test_bad_texts_raise_aisp_error(sentiment_model, bad):
    with pytest.raises(AispError):
        as_text_classifier(sentiment_model)(bad)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda texts: np.ones(len(texts)), "shape"),
        (lambda texts: np.ones((len(texts) + 1, 2)) / 2, "shape"),
        (lambda texts: np.ones((len(texts), 1)), "column"),
        (lambda texts: np.full((len(texts), 2), 3.0), "softmax"),
        (lambda texts: np.full((len(texts), 2), np.nan), "NaN"),
        (lambda texts: "not numbers", "probabilities"),
    ],
)
def test_wrong_output_shapes_raise_aisp_error(output, message):
    clf = as_text_classifier(output, name="broken")
    with pytest.raises(AispError, match=message):
        clf(["some text", "another"])


def test_unusable_model_raises_aisp_error():
    with pytest.raises(AispError, match="cannot use"):
        as_text_classifier(42)
