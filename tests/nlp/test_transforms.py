"""Word transformations, packaged resources and the text_edits strategy."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from pytest_aisp.findings import AispError, BackendMissing
from pytest_aisp.nlp import resources, transforms
from pytest_aisp.nlp.strategies import text_edits


@given(st.text(alphabet=st.sampled_from("ab c'.,\n-é"), max_size=40))
@settings(max_examples=60, deadline=None)
def test_split_text_round_trips(text):
    split = transforms.SplitText.of(text)
    assert split.join() == text
    assert len(split.gaps) == len(split.words) + 1


@pytest.mark.parametrize("word", ["terrible", "ok", "Wonderful"])
def test_deepwordbug_edits_are_within_two_character_edits(word):
    rng = np.random.default_rng(0)
    for _ in range(20):
        for candidate in transforms.deepwordbug_edits(word, rng):
            assert candidate != word
            assert transforms.character_edit_distance(word, candidate) <= 2


def test_keyboard_typos_use_neighbouring_keys():
    rng = np.random.default_rng(1)
    for candidate in transforms.keyboard_typos("great", rng):
        (i,) = [k for k, (a, b) in enumerate(zip("great", candidate)) if a != b]
        assert candidate[i] in transforms.KEYBOARD_NEIGHBOURS["great"[i]]
    assert set("qswz") <= set(transforms.KEYBOARD_NEIGHBOURS["a"])


def test_homoglyphs_look_alike_but_differ():
    rng = np.random.default_rng(2)
    table = resources.confusables()
    candidates = transforms.homoglyph_swaps("paypal", rng)
    assert candidates
    for candidate in candidates:
        assert candidate != "paypal" and len(candidate) == len("paypal")
        (i,) = [k for k, (a, b) in enumerate(zip("paypal", candidate)) if a != b]
        assert candidate[i] in table["paypal"[i]] and not candidate[i].isascii()


def test_invisible_insertions_render_as_the_same_word():
    rng = np.random.default_rng(3)
    candidates = transforms.invisible_insertions("refund", rng)
    assert len(candidates) == 3
    for candidate in candidates:
        assert candidate != "refund"
        visible = "".join(ch for ch in candidate if unicodedata.category(ch) != "Cf")
        assert visible in ("refund", "refund"[::-1])  # the bidi variant stores the word reversed
    assert any(transforms.BIDI_OVERRIDE_RTL in c for c in candidates)
    assert any(0xE0000 <= ord(ch) <= 0xE007F for c in candidates for ch in c)


def test_wordnet_synonyms_from_local_files(wordnet_installed):
    synonyms = transforms.wordnet_synonyms("good")
    assert "beneficial" in synonyms or "full" in synonyms
    assert "good" not in synonyms
    assert all(s.isalpha() for s in synonyms)
    assert transforms.wordnet_synonyms("Happy")[0][0].isupper()


def test_missing_wordnet_raises_backend_missing_with_install_line(tmp_path):
    with pytest.raises(BackendMissing, match="apt-get install -y wordnet-base"):
        resources.wordnet_source(tmp_path)


def test_packaged_lists_name_their_sources():
    assert len(resources.stopwords()) == 179 and "not" in resources.stopwords()
    for name in resources.GROUP_FILES:
        terms = resources.group_terms(name)
        assert terms.source and len(terms.groups) >= 2 and terms.rows
        assert all(len(row) == len(terms.groups) for row in terms.rows)
    with pytest.raises(AispError, match="unknown group list"):
        resources.group_terms("height")


@given(text_edits("the film was wonderful and moving", max_edits=2))
@settings(max_examples=40, deadline=None)
def test_text_edits_keep_the_word_count(edited):
    assert len(transforms.SplitText.of(edited).words) == 6
    assert transforms.character_edit_distance(edited, "the film was wonderful and moving") <= 4


def test_text_edits_shrink_to_the_smallest_edit_set():
    original = "the film was wonderful"
    smallest = find(
        text_edits(original, max_edits=3),
        lambda t: t != original,
        settings=settings(max_examples=200, database=None),
    )
    assert transforms.character_edit_distance(smallest, original) <= 2  # one edit: a swap is two


def test_text_edits_rejects_bad_arguments():
    with pytest.raises(AispError):
        text_edits("", max_edits=1)
    with pytest.raises(AispError):
        text_edits("text", kinds=("explode",))
