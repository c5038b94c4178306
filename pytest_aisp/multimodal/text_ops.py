"""Text perturbations on lists of strings: AugLy's text functions where installed, native ones otherwise.

AugLy (through nlpaug) draws from Python's and numpy's global random generators; calls through it
seed both from the perturbation's seed and restore their state afterwards, so runs repeat.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pytest_aisp.multimodal.inputs import Context
from pytest_aisp.multimodal.perturbation import Perturbation, import_augly

DEFAULT = ("typos", "similar_chars", "zero_width", "bidi", "contractions")

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {
    ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
    for row in _KEYBOARD_ROWS
    for i, ch in enumerate(row)
}
SIMILAR = {
    "a": "@",
    "e": "3",
    "i": "1",
    "l": "1",
    "o": "0",
    "s": "$",
    "t": "7",
    "b": "8",
    "g": "9",
    "z": "2",
    "A": "4",
    "E": "3",
    "I": "!",
    "O": "0",
    "S": "5",
    "B": "8",
}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060")
CONTRACTIONS = {
    "do not": "don't",
    "does not": "doesn't",
    "did not": "didn't",
    "is not": "isn't",
    "are not": "aren't",
    "was not": "wasn't",
    "were not": "weren't",
    "can not": "can't",
    "cannot": "can't",
    "will not": "won't",
    "would not": "wouldn't",
    "should not": "shouldn't",
    "could not": "couldn't",
    "have not": "haven't",
    "has not": "hasn't",
    "i am": "i'm",
    "you are": "you're",
    "we are": "we're",
    "they are": "they're",
    "it is": "it's",
    "that is": "that's",
    "there is": "there's",
    "i will": "i'll",
    "you will": "you'll",
    "i have": "i've",
    "we have": "we've",
    "let us": "let's",
    "what is": "what's",
}
_WORD = re.compile(r"\S+")


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 2:
        return word
    i = int(rng.integers(0, len(word) - 1))
    kind = int(rng.integers(0, 3))
    if kind == 0:  # swap two neighbouring letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    near = _NEIGHBOURS.get(word[i].lower())
    if not near:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + near[int(rng.integers(0, len(near)))] + word[i + 1 :]


def _map_words(text: str, p_word: float, rng: np.random.Generator, edit: Any) -> str:
    return _WORD.sub(lambda m: edit(m.group(0)) if rng.random() < p_word else m.group(0), text)


def _typos(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    return [_map_words(t, p["word_p"], rng, lambda w: _typo(w, rng)) for t in texts]


def _similar_chars(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    def swap(word: str) -> str:
        return "".join(SIMILAR.get(ch, ch) if rng.random() < p["char_p"] else ch for ch in word)

    return [_map_words(t, p["word_p"], rng, swap) for t in texts]


def _zero_width(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    def insert(text: str) -> str:
        out = []
        for ch in text:
            out.append(ch)
            if rng.random() < p["char_p"]:
                out.append(ZERO_WIDTH[int(rng.integers(0, len(ZERO_WIDTH)))])
        return "".join(out)

    return [insert(t) for t in texts]


def _bidi(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    # right-to-left override around the reversed word: it renders as before, but the code points differ
    return [_map_words(t, p["word_p"], rng, lambda w: "\u202e" + w[::-1] + "\u202c") for t in texts]


def _contractions(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(k) for k in sorted(CONTRACTIONS, key=len, reverse=True)) + r")\b",
        re.IGNORECASE,
    )

    def contract(match: re.Match[str]) -> str:
        phrase = match.group(0)
        if rng.random() >= p["aug_p"]:
            return phrase
        short = CONTRACTIONS[phrase.lower()]
        return short[0].upper() + short[1:] if phrase[0].isupper() else short

    return [pattern.sub(contract, t) for t in texts]


def _case(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    return ["".join(ch.swapcase() if rng.random() < p["char_p"] else ch for ch in t) for t in texts]


def _punctuation(texts: list[str], p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> list[str]:
    marks = ".,;:!?-"

    def insert(text: str) -> str:
        return "".join(
            ch
            + (marks[int(rng.integers(0, len(marks)))] if ch.isalpha() and rng.random() < p["char_p"] else "")
            for ch in text
        )

    return [insert(t) for t in texts]


@contextlib.contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Seed Python's and numpy's global generators for a call, then put their state back."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _augly(call: Any) -> Any:
    def run(texts: list[str], params: Mapping[str, Any], seed: int, context: Context) -> list[str]:
        txtaugs = import_augly("augly.text")
        with seeded_globals(seed):
            out = call(txtaugs, list(texts), params, seed)
        return [out] if isinstance(out, str) else list(out)

    return run


def _a_typos(m: Any, texts: list[str], p: Mapping[str, Any], seed: int) -> Any:
    return m.simulate_typos(texts, aug_word_p=p["word_p"], aug_char_p=p["char_p"], typo_type="all")


def _a_similar(m: Any, texts: list[str], p: Mapping[str, Any], seed: int) -> Any:
    return m.replace_similar_chars(texts, aug_word_p=p["word_p"], aug_char_p=p["char_p"])


def _a_zero_width(m: Any, texts: list[str], p: Mapping[str, Any], seed: int) -> Any:
    return m.insert_zero_width_chars(
        texts, granularity="all", cadence=1.0 / max(p["char_p"], 1e-3), vary_chars=True
    )


def _a_bidi(m: Any, texts: list[str], p: Mapping[str, Any], seed: int) -> Any:
    return m.replace_bidirectional(texts, granularity="word")


def _a_contractions(m: Any, texts: list[str], p: Mapping[str, Any], seed: int) -> Any:
    return m.contractions(texts, aug_p=p["aug_p"], seed=seed)


def _a_punctuation(m: Any, texts: list[str], p: Mapping[str, Any], seed: int) -> Any:
    return m.insert_punctuation_chars(texts, granularity="all", cadence=1.0 / max(p["char_p"], 1e-3))


def _text(name: str, mapping: str, params: Any, native: Any, augly: Any = None, **kw: Any) -> Perturbation:
    return Perturbation(
        name=f"text:{name}",
        mapping=mapping,
        parameters=lambda s, rng, n: params(s),
        native=native,
        augly=_augly(augly) if augly else None,
        batched=False,
        **kw,
    )


PERTURBATIONS: tuple[Perturbation, ...] = (
    _text(
        "typos",
        "typos (swap, drop, keyboard neighbour) in a fraction 0.6·s of words",
        lambda s: {"word_p": 0.6 * s, "char_p": 0.3 * s},
        _typos,
        _a_typos,
    ),
    _text(
        "similar_chars",
        "look-alike characters (o→0, a→@) in 0.6·s of words, 0.5·s of their letters",
        lambda s: {"word_p": 0.6 * s, "char_p": 0.5 * s},
        _similar_chars,
        _a_similar,
    ),
    _text(
        "zero_width",
        "zero-width characters after a fraction s of characters",
        lambda s: {"char_p": s},
        _zero_width,
        _a_zero_width,
    ),
    _text(
        "bidi",
        "right-to-left override around a fraction s of words (AugLy: every word when s > 0)",
        lambda s: {"word_p": s},
        _bidi,
        _a_bidi,
    ),
    _text(
        "contractions",
        "contract a fraction s of contractible phrases (do not → don't)",
        lambda s: {"aug_p": s},
        _contractions,
        _a_contractions,
    ),
    _text(
        "punctuation",
        "a punctuation mark after a fraction 0.5·s of letters",
        lambda s: {"char_p": 0.5 * s},
        _punctuation,
        _a_punctuation,
    ),
    _text(
        "case",
        "swap the case of a fraction 0.5·s of characters",
        lambda s: {"char_p": 0.5 * s},
        _case,
    ),
)
