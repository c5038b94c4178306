"""Label-preserving text augmentation for adversarial training: typos, synonyms, homoglyphs and more."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from pytest_aisp.findings import AispError
from pytest_aisp.nlp import resources, transforms
from pytest_aisp.nlp.classifier import check_texts

AUGMENTATIONS = ("typos", "synonyms", "homoglyphs", "deepwordbug", "invisible")
DEFAULT_RECIPE = "typos,synonyms,homoglyphs"


def parse_recipe(recipe: str | Sequence[str]) -> tuple[str, ...]:
    """``"typos,synonyms"`` or a list of names -> validated tuple of augmentation names."""
    names = tuple(p.strip() for p in recipe.split(",")) if isinstance(recipe, str) else tuple(recipe)
    names = tuple(n for n in names if n)
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown or not names:
        raise AispError(
            f"unknown augmentation(s) {unknown or recipe!r}; use some of: {', '.join(AUGMENTATIONS)}"
        )
    return names


def _transform(name: str, wordnet_path: str | None) -> transforms.WordTransform:
    if name == "synonyms":
        return lambda word, rng: transforms.wordnet_synonyms(word, wordnet_path)
    return {
        "typos": transforms.keyboard_typos,
        "homoglyphs": transforms.homoglyph_swaps,
        "deepwordbug": transforms.deepwordbug_edits,
        "invisible": transforms.invisible_insertions,
    }[name]


def augment_one(
    text: str,
    *,
    recipe: Sequence[str],
    n: int,
    seed: int,
    words_fraction: float,
    wordnet_path: str | None = None,
) -> list[str]:
    """Up to ``n`` distinct augmented copies of ``text`` (fewer when the text allows fewer)."""
    rng = np.random.default_rng([seed, zlib.crc32(text.encode("utf-8"))])
    split = transforms.SplitText.of(text)
    stop = resources.stopwords()
    editable = [i for i, w in enumerate(split.words) if w.lower() not in stop]
    if not editable:
        return []
    per_copy = max(1, math.ceil(words_fraction * len(editable)))
    copies: list[str] = []
    for _ in range(3 * n):
        if len(copies) >= n:
            break
        name = recipe[int(rng.integers(0, len(recipe)))]
        transform = _transform(name, wordnet_path)
        words = list(split.words)
        for i in rng.permutation(editable)[:per_copy]:
            options = transform(words[i], rng)
            if options:
                words[i] = options[int(rng.integers(0, len(options)))]
        candidate = split.join(words)
        if candidate != text and candidate not in copies:
            copies.append(candidate)
    return copies


def iter_augmented(
    texts: Iterable[str],
    *,
    recipe: str | Sequence[str] = DEFAULT_RECIPE,
    n: int = 4,
    seed: int = 0,
    words_fraction: float = 0.15,
    wordnet_path: str | None = None,
) -> Iterator[list[str]]:
    """Stream :func:`augment_texts`: one list of copies per input text, in order."""
    names = _checked_options(recipe, n, words_fraction, wordnet_path)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise AispError(f"text {index} is {type(text).__name__}, not str")
        yield augment_one(
            text, recipe=names, n=n, seed=seed, words_fraction=words_fraction, wordnet_path=wordnet_path
        )


def _checked_options(
    recipe: str | Sequence[str], n: int, words_fraction: float, wordnet_path: str | None
) -> tuple[str, ...]:
    names = parse_recipe(recipe)
    if n < 1:
        raise AispError(f"n is the number of copies per text and must be >= 1, got {n}")
    if not 0.0 < words_fraction <= 1.0:
        raise AispError(f"words_fraction is a fraction in (0, 1], got {words_fraction}")
    if "synonyms" in names:
        resources.wordnet_reader(wordnet_path)  # BackendMissing with the install line when absent
    return names


def augment_texts(
    texts: Sequence[str],
    *,
    recipe: str | Sequence[str] = DEFAULT_RECIPE,
    n: int = 4,
    seed: int = 0,
    words_fraction: float = 0.15,
    wordnet_path: str | None = None,
) -> list[list[str]]:
    """``n`` label-preserving copies of each text, as a list per input text (aligned with ``texts``).

    Each copy applies one augmentation of ``recipe`` (``typos``, ``synonyms``, ``homoglyphs``,
    ``deepwordbug``, ``invisible``) to ``words_fraction`` of the text's non-stop words. Copies are
    deterministic for a given seed and text, whatever the order of the texts.
    """
    items = check_texts(texts)
    return list(
        iter_augmented(
            items, recipe=recipe, n=n, seed=seed, words_fraction=words_fraction, wordnet_path=wordnet_path
        )
    )
