"""Text classifiers as the attacks see them: ``list[str] -> (n, k)`` probabilities, batched and cached."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError

ProbabilityFn = Callable[[list[str]], Any]
DEFAULT_BATCH_SIZE = 256
HF_BATCH_SIZE = 32


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """``texts`` as a non-empty list of strings, or ``AispError`` saying what is wrong."""
    if isinstance(texts, str) or (not isinstance(texts, Sequence) and not hasattr(texts, "__iter__")):
        raise AispError(f"{what} must be a list of strings, got {type(texts).__name__}")
    items = list(texts)
    if not items:
        raise AispError(f"{what} is empty: give at least one text")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise AispError(f"{what}[{index}] is {type(item).__name__}, not str: pass texts as strings")
    return items


class TextClassifier:
    """A text classifier with the query accounting the attacks need.

    Calling it with a list of strings returns an ``(n, k)`` array of class probabilities. Each
    distinct string is sent to the model once (results are cached), in batches of ``batch_size``;
    ``queries`` counts the strings the model actually saw.
    """

    def __init__(
        self,
        predict_proba: ProbabilityFn,
        *,
        name: str = "classifier",
        batch_size: int = 256,
        labels: Sequence[str] | None = None,
        cache_size: int = 200_000,
    ) -> None:
        if batch_size < 1:
            raise AispError(f"batch_size must be at least 1, got {batch_size}")
        self._predict_proba = predict_proba
        self.name = name
        self.batch_size = batch_size
        self.labels = tuple(labels) if labels is not None else None
        self.cache_size = cache_size
        self.queries = 0
        self.n_classes: int | None = len(self.labels) if self.labels else None
        self._cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"TextClassifier({self.name!r}, queries={self.queries})"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        missing = list(dict.fromkeys(t for t in items if t not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            probs = self._checked(self._predict_proba(batch), len(batch))
            self.queries += len(batch)
            if len(self._cache) + len(batch) > self.cache_size:
                self._cache.clear()  # bounded memory; a cold cache only costs queries
            self._cache.update(zip(batch, probs))
        return np.stack([self._cache[t] for t in items])

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The predicted class index of each text."""
        return self(texts).argmax(axis=1)

    def _checked(self, output: Any, n: int) -> np.ndarray:
        try:
            probs = np.asarray(output, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise AispError(
                f"{self.name} returned {type(output).__name__}, not an array of probabilities"
            ) from exc
        if probs.ndim != 2 or probs.shape[0] != n:
            raise AispError(
                f"{self.name} returned shape {probs.shape} for {n} texts; a classifier must return "
                f"({n}, n_classes) probabilities"
            )
        if probs.shape[1] < 2:
            raise AispError(
                f"{self.name} returned {probs.shape[1]} column(s); give one probability per class "
                "(two columns for a binary classifier)"
            )
        if not np.all(np.isfinite(probs)):
            raise AispError(f"{self.name} returned NaN or infinite scores")
        if probs.min() < -1e-6 or np.abs(probs.sum(axis=1) - 1.0).max() > 1e-3:
            raise AispError(
                f"{self.name} returned scores that are not probabilities (rows must be >= 0 and "
                "sum to 1); apply a softmax to logits first"
            )
        if self.n_classes is None:
            self.n_classes = probs.shape[1]
        elif probs.shape[1] != self.n_classes:
            raise AispError(f"{self.name} returned {probs.shape[1]} classes, earlier {self.n_classes}")
        return probs


def as_text_classifier(
    model: Any, *, batch_size: int | None = None, labels: Sequence[str] | None = None, name: str | None = None
) -> TextClassifier:
    """Adapt ``model`` to a :class:`TextClassifier`.

    Accepted: a ``TextClassifier``; a scikit-learn estimator or pipeline with ``predict_proba`` on raw
    strings; VADER's ``SentimentIntensityAnalyzer`` (two classes: negative, positive); a local Hugging
    Face ``pipeline("text-classification")`` or a ``(model, tokenizer)`` pair; any callable
    ``list[str] -> (n, k)`` probabilities. Nothing is downloaded: Hugging Face models must be local.
    ``batch_size`` (strings per model call) defaults to 32 for Hugging Face models and 256 otherwise.
    """
    if isinstance(model, TextClassifier):
        return model
    label = name or type(model).__name__
    hf = _is_hf_pipeline(model) or (
        isinstance(model, tuple) and len(model) == 2 and hasattr(model[0], "config")
    )
    batch_size = batch_size or (HF_BATCH_SIZE if hf else DEFAULT_BATCH_SIZE)
    if hasattr(model, "predict_proba"):
        classes = getattr(model, "classes_", None)
        return TextClassifier(
            lambda texts: model.predict_proba(texts),
            name=name or _sklearn_name(model),
            batch_size=batch_size,
            labels=labels or ([str(c) for c in classes] if classes is not None else None),
        )
    if hasattr(model, "polarity_scores"):
        return TextClassifier(
            _vader_fn(model),
            name=name or "vader",
            batch_size=batch_size,
            labels=labels or ("negative", "positive"),
        )
    if _is_hf_pipeline(model):
        fn, hf_labels = _hf_pipeline_fn(model)
        return TextClassifier(
            fn, name=name or _hf_name(model.model), batch_size=batch_size, labels=labels or hf_labels
        )
    if isinstance(model, tuple) and len(model) == 2 and callable(model[1]) and hasattr(model[0], "config"):
        fn, hf_labels = _hf_model_fn(*model)
        return TextClassifier(
            fn, name=name or _hf_name(model[0]), batch_size=batch_size, labels=labels or hf_labels
        )
    if callable(model):
        return TextClassifier(
            model, name=name or getattr(model, "__name__", label), batch_size=batch_size, labels=labels
        )
    raise AispError(
        f"cannot use {type(model).__name__} as a text classifier: give a callable list[str] -> "
        "probabilities, a scikit-learn pipeline with predict_proba, VADER, or a local Hugging Face "
        "pipeline/(model, tokenizer)"
    )


def _sklearn_name(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if steps:
        return "sklearn:" + "+".join(str(step_name) for step_name, _ in steps)
    return "sklearn:" + type(model).__name__


def _vader_fn(analyzer: Any) -> ProbabilityFn:
    def vader_probabilities(texts: list[str]) -> np.ndarray:
        # compound is in [-1, 1]; mapped linearly to P(positive).
        positive = np.array([(analyzer.polarity_scores(t)["compound"] + 1.0) / 2.0 for t in texts])
        return np.stack([1.0 - positive, positive], axis=1)

    return vader_probabilities


def _is_hf_pipeline(model: Any) -> bool:
    return (
        type(model).__name__.endswith("Pipeline") and hasattr(model, "model") and hasattr(model, "tokenizer")
    )


def _hf_name(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)


def _hf_labels(model: Any) -> tuple[str, ...]:
    id2label = getattr(model.config, "id2label", None) or {}
    return tuple(str(id2label[i]) for i in sorted(id2label))


def _hf_pipeline_fn(pipe: Any) -> tuple[ProbabilityFn, tuple[str, ...]]:
    labels = _hf_labels(pipe.model)

    def pipeline_probabilities(texts: list[str]) -> np.ndarray:
        outputs = pipe(texts, top_k=None, truncation=True)
        rows = []
        for scores in outputs:
            by_label = {d["label"]: d["score"] for d in scores}
            rows.append([by_label.get(label, 0.0) for label in labels])
        return np.asarray(rows, dtype=np.float64)

    return pipeline_probabilities, labels


def _hf_model_fn(model: Any, tokenizer: Any) -> tuple[ProbabilityFn, tuple[str, ...]]:
    from pytest_aisp.backends import require

    torch = require("torch", "torch")
    labels = _hf_labels(model)
    model.eval()

    def model_probabilities(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            encoded = {k: v.to(model.device) for k, v in encoded.items()}
            logits = model(**encoded).logits
            return torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)

    return model_probabilities, labels
