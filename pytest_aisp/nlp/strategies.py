"""Hypothesis strategies for text: small edit sets applied to a given text, shrinking to fewer edits."""

from __future__ import annotations

from typing import Any

from pytest_aisp.findings import AispError

EDIT_KINDS = ("swap", "substitute", "delete", "insert", "typo")


def _apply(text: str, edits: list[tuple[str, int, int]]) -> str:
    from pytest_aisp.nlp.transforms import KEYBOARD_NEIGHBOURS, WORD_PATTERN, SplitText

    split = SplitText.of(text)
    words = list(split.words)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for kind, word_pick, char_pick in edits:
        if not words:
            break
        w = word_pick % len(words)
        word = words[w]
        i = char_pick % max(len(word), 1)
        if kind == "swap" and len(word) >= 2:
            i = min(i, len(word) - 2)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "substitute":
            word = word[:i] + letters[char_pick % 26] + word[i + 1 :]
        elif kind == "delete" and len(word) >= 2:
            word = word[:i] + word[i + 1 :]
        elif kind == "insert":
            word = word[:i] + letters[char_pick % 26] + word[i:]
        elif kind == "typo" and word[i].lower() in KEYBOARD_NEIGHBOURS:
            near = KEYBOARD_NEIGHBOURS[word[i].lower()]
            word = word[:i] + near[char_pick % len(near)] + word[i + 1 :]
        words[w] = word if WORD_PATTERN.fullmatch(word) else words[w]
    return split.join(words)


def text_edits(text: str, *, max_edits: int = 2, kinds: tuple[str, ...] = EDIT_KINDS) -> Any:
    """A strategy of copies of ``text`` with at most ``max_edits`` character edits inside words.

    Each edit is drawn as (kind, word, position), so Hypothesis shrinks towards fewer edits, earlier
    edit kinds and the first words: a failing example shrinks to the smallest edit set.
    """
    from hypothesis import strategies as st

    if not isinstance(text, str) or not text.strip():
        raise AispError("text_edits needs a non-empty text")
    if max_edits < 0:
        raise AispError(f"max_edits must be >= 0, got {max_edits}")
    unknown = set(kinds) - set(EDIT_KINDS)
    if unknown or not kinds:
        raise AispError(f"unknown edit kinds {sorted(unknown)}; use some of: {', '.join(EDIT_KINDS)}")
    edit = st.tuples(st.sampled_from(kinds), st.integers(0, 10_000), st.integers(0, 10_000))
    return st.lists(edit, max_size=max_edits).map(lambda edits: _apply(text, edits))
