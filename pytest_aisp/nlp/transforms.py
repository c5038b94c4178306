"""Word transformations: each maps one word to candidate replacements, never returning the word itself.

Character-level: DeepWordBug's four edits, keyboard-neighbour typos, homoglyphs, invisible characters.
Word-level: WordNet synonyms (local WordNet files; inflection kept where ``lemminflect`` is installed).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pytest_aisp.nlp import resources

# A word: letters or digits, with inner apostrophes ("don't").
WORD_PATTERN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")

WordTransform = Callable[[str, np.random.Generator], list[str]]

ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
BIDI_OVERRIDE_RTL, BIDI_POP = "\u202e", "\u202c"
TAG_BASE = 0xE0000  # Unicode tags block: U+E0020..U+E007E mirror printable ASCII, and render as nothing

_QWERTY_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


@dataclass(frozen=True)
class SplitText:
    """A text cut into words and the gaps around them: ``gaps[0] words[0] gaps[1] ... words[-1] gaps[-1]``."""

    words: tuple[str, ...]
    gaps: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> SplitText:
        words, gaps, last = [], [], 0
        for match in WORD_PATTERN.finditer(text):
            gaps.append(text[last : match.start()])
            words.append(match.group())
            last = match.end()
        gaps.append(text[last:])
        return cls(tuple(words), tuple(gaps))

    def join(self, words: tuple[str, ...] | list[str] | None = None) -> str:
        words = self.words if words is None else words
        parts = [self.gaps[0]]
        for word, gap in zip(words, self.gaps[1:]):
            parts.append(word)
            parts.append(gap)
        return "".join(parts)

    def replaced(self, index: int, word: str) -> str:
        words = list(self.words)
        words[index] = word
        return self.join(words)


def _keyboard_neighbours() -> dict[str, str]:
    position = {ch: (r, c) for r, row in enumerate(_QWERTY_ROWS) for c, ch in enumerate(row)}
    neighbours: dict[str, str] = {}
    for ch, (r, c) in position.items():
        near = [
            other
            for other, (r2, c2) in position.items()
            if other != ch and abs(r - r2) <= 1 and abs(c - c2) <= 1
        ]
        neighbours[ch] = "".join(sorted(near))
    return neighbours


KEYBOARD_NEIGHBOURS: dict[str, str] = _keyboard_neighbours()


def _match_case(template: str, char: str) -> str:
    return char.upper() if template.isupper() else char


def _distinct(word: str, candidates: list[str]) -> list[str]:
    return [c for c in dict.fromkeys(candidates) if c != word]


def deepwordbug_edits(word: str, rng: np.random.Generator, per_edit: int = 1) -> list[str]:
    """DeepWordBug's edits (Gao et al. 2018): swap two neighbouring letters, substitute, delete, insert.

    ``per_edit`` random candidates of each kind.
    """
    letters = string.ascii_lowercase
    out: list[str] = []
    n = len(word)
    for _ in range(per_edit):
        if n >= 2:
            i = int(rng.integers(0, n - 1))
            out.append(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
        i = int(rng.integers(0, n))
        out.append(word[:i] + _match_case(word[i], letters[int(rng.integers(0, 26))]) + word[i + 1 :])
        if n >= 2:
            i = int(rng.integers(0, n))
            out.append(word[:i] + word[i + 1 :])
        i = int(rng.integers(0, n + 1))
        out.append(word[:i] + letters[int(rng.integers(0, 26))] + word[i:])
    return _distinct(word, out)


def keyboard_typos(word: str, rng: np.random.Generator, count: int = 4) -> list[str]:
    """Substitute one letter by a neighbouring QWERTY key, at ``count`` random positions."""
    positions = [i for i, ch in enumerate(word) if ch.lower() in KEYBOARD_NEIGHBOURS]
    if not positions:
        return []
    out = []
    for i in rng.permutation(positions)[:count]:
        near = KEYBOARD_NEIGHBOURS[word[i].lower()]
        out.append(word[:i] + _match_case(word[i], near[int(rng.integers(0, len(near)))]) + word[i + 1 :])
    return _distinct(word, out)


def homoglyph_swaps(word: str, rng: np.random.Generator, count: int = 4) -> list[str]:
    """Replace one character by a look-alike from the Unicode confusables table, at ``count`` positions."""
    table = resources.confusables()
    positions = [i for i, ch in enumerate(word) if ch in table]
    out = []
    for i in rng.permutation(positions)[:count] if positions else []:
        glyphs = table[word[i]]
        out.append(word[:i] + glyphs[int(rng.integers(0, len(glyphs)))] + word[i + 1 :])
    return _distinct(word, out)


def invisible_insertions(word: str, rng: np.random.Generator) -> list[str]:
    """Invisible variants: a zero-width character inside, a bidi override that displays the word
    unchanged from reversed storage, and a Unicode tag character inside."""
    i = int(rng.integers(1, len(word))) if len(word) > 1 else 1
    zero_width = ZERO_WIDTH[int(rng.integers(0, len(ZERO_WIDTH)))]
    tag = chr(TAG_BASE + ord(string.ascii_lowercase[int(rng.integers(0, 26))]))
    return _distinct(
        word,
        [
            word[:i] + zero_width + word[i:],
            BIDI_OVERRIDE_RTL + word[::-1] + BIDI_POP,
            word[:i] + tag + word[i:],
        ],
    )


@functools.lru_cache(maxsize=50_000)
def _synonyms_lower(word: str, wordnet_path: str | None) -> tuple[str, ...]:
    reader = resources.wordnet_reader(wordnet_path)
    found: list[str] = []
    for synset in reader.synsets(word):
        for lemma in synset.lemmas():
            name = lemma.name()
            if "_" in name or "-" in name or not name.isalpha() or name.lower() == word:
                continue
            found.append(_inflect_like(word, name.lower(), synset.pos()))
    return tuple(s for s in dict.fromkeys(found) if s != word)


def _inflect_like(original: str, synonym: str, pos: str) -> str:
    """``synonym`` in the inflection of ``original`` (nouns and verbs) where lemminflect is installed."""
    if pos not in ("n", "v"):
        return synonym
    try:
        import lemminflect
    except ImportError:
        return synonym
    upos = "NOUN" if pos == "n" else "VERB"
    lemmas = lemminflect.getLemma(original, upos=upos)
    if not lemmas or lemmas[0] == original:
        return synonym
    for tag, forms in lemminflect.getAllInflections(lemmas[0], upos=upos).items():
        if original in forms:
            inflected = lemminflect.getInflection(synonym, tag=tag)
            return inflected[0] if inflected else synonym
    return synonym


def wordnet_synonyms(word: str, wordnet_path: str | None = None) -> list[str]:
    """WordNet synonyms of ``word`` (single words, all parts of speech), in the word's case."""
    synonyms = _synonyms_lower(word.lower(), wordnet_path)
    if word[:1].isupper():
        synonyms = tuple(s.capitalize() for s in synonyms)
    return list(synonyms)


def character_edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between ``a`` and ``b`` (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
