"""Word transformations, packaged resources and the text_edits strategy."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from pytest_aisp.findings import AispError
from pytest_aisp.nlp import resources, transforms
from pytest_aisp.nlp.strategies import text_edits
from tests.fixture_scripts import load_fixture_script


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


def test_a_wrong_wordnet_folder_names_what_is_missing_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(AispError, match=r"missing data\.noun.*apt-get install -y wordnet-base"):
        resources.wordnet_source(tmp_path)
    monkeypatch.setenv("AISP_WORDNET_DIR", str(tmp_path))
    with pytest.raises(AispError, match="AISP_WORDNET_DIR"):
        resources.wordnet_source()
    with pytest.raises(AispError) as raised:
        resources.wordnet_source()
    assert "pip install wordnet" not in str(raised.value)


def test_packaged_wordnet_needs_no_system_package(tmp_path, monkeypatch):
    """Built from the table in the wheel into an empty cache: NLTK's reader sees WordNet 3.0's senses."""
    monkeypatch.delenv("AISP_WORDNET_DIR", raising=False)
    monkeypatch.setenv("AISP_CACHE_DIR", str(tmp_path))
    folder = resources.wordnet_source()
    assert folder.parent == tmp_path and (folder / "LICENSE").read_text().count("Princeton") >= 2
    reader = resources.wordnet_reader.__wrapped__(None)
    assert reader.synsets("geese")[0].lemma_names() == ["goose"]  # morphology from noun.exc
    assert len(reader.synsets("run")) == 57  # 16 noun + 41 verb senses in WordNet 3.0
    assert reader.synsets("fast", pos="s")[0].lemmas()[0].key() == "fast%5:00:00:smooth:00"  # as in the full database


def test_packaged_wordnet_matches_the_full_database():
    """The database rebuilt from the packaged table gives NLTK's reader the senses of the full WordNet 3.0:
    the digest below was computed over Debian's files by fixtures/nlp/make_wordnet_table.py."""
    make_table = load_fixture_script("nlp/make_wordnet_table.py", "aisp_make_wordnet_table")
    expected = make_table.SENSES_DIGEST.read_text().strip()
    assert make_table.senses_digest(resources.wordnet_reader(None)) == expected



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
