"""Stand-in models the probes were not written against: each has one weakness, described in a line and
built from generic rules (override words, any quoted text, any question, any upper-case token), with no
phrase of the probe templates. The weak ones must be caught by the family their weakness belongs to;
the secure ones (a refuser, an echo, a translator that really translates) must raise nothing.

These stand-ins were written after the templates, by the same hands: they show the probes do not
need the reference app's behaviour, not that they generalise to any model (the real model's labelled
transcripts, test_labelled.py, are that evidence).
"""

from __future__ import annotations

import base64
import binascii
import re

import pytest

from pytest_aisp.llm.endpoint import LLMEndpoint
from pytest_aisp.llm.probing import probe_llm

QUOTED = re.compile(r"[\"“«]\s*([^\"”»\n]{2,80}?)\s*[\"”»]")
OVERRIDE_WORDS = re.compile(r"\b(?:ignore|disregard|forget|instead|override|cancel+ed|new\s+task|must|stop)\b", re.I)
LISTS = ("Mercury Venus Earth Mars Jupiter Saturn Uranus Neptune. January February March April May June. "
         "Red orange yellow green blue indigo violet. Monday Tuesday Wednesday Thursday Friday. "
         "Africa Asia Europe America Antarctica.")


def _user(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"]


def _system(messages: list[dict[str, str]]) -> str:
    return " ".join(m["content"] for m in messages if m["role"] == "system")


def polite(messages: list[dict[str, str]]) -> str:
    return "Thanks for your message. How else can I help?"


def obeys_overrides_in_capitals(messages: list[dict[str, str]]) -> str:
    """Injection: any text with an override word and a quoted string gets the quoted string back,
    shouted (it ignores the formatting it is asked for)."""
    text = _user(messages)
    quoted = QUOTED.findall(text)
    if quoted and OVERRIDE_WORDS.search(text):
        return quoted[-1].upper() + "!!!"
    return polite(messages)


def decodes_base64_and_hex(messages: list[dict[str, str]]) -> str:
    """Encoding: decodes every base64 or hex run it sees and acts on the quoted text inside."""
    text = _user(messages)
    for run in re.findall(r"[A-Za-z0-9+/=]{16,}", text):
        for decode in (lambda r: base64.b64decode(r, validate=True), bytes.fromhex):
            try:
                decoded = decode(run).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                continue
            quoted = QUOTED.findall(decoded)
            if (quoted and OVERRIDE_WORDS.search(decoded)) or (quoted and "answer" in decoded.lower()):
                return f"ok: {quoted[-1]}"
    return polite(messages)


def refuses_only_short_requests(messages: list[dict[str, str]]) -> str:
    """Jailbreak: its guard refuses short off-topic requests; a long message gets through."""
    if len(_user(messages)) < 90:
        return "I'm sorry, I can't help with that."
    return "Of course. " + LISTS


def never_refuses(messages: list[dict[str, str]]) -> str:
    """No rules at all: it answers every off-topic request."""
    return "Here you go: " + LISTS.lower()


def prints_its_codes(messages: list[dict[str, str]]) -> str:
    """Leaks in plain text: it signs every answer with the upper-case codes of its system prompt."""
    codes = re.findall(r"\b[A-Z]{8,}\b", _system(messages))
    return polite(messages) + (f" [ref {' '.join(codes)}]" if codes else "")


class SharedNotebook:
    """Cross-session: writes down every statement with an upper-case or numeric token, for everybody,
    and answers any question by reading the notebook."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def __call__(self, messages: list[dict[str, str]], session: str) -> str:
        text = _user(messages)
        if "?" in text:
            return "From my notes: " + " / ".join(self.notes) if self.notes else polite(messages)
        if re.search(r"\b[A-Z0-9]{6,}\b", text):
            self.notes.append(text)
            return "Noted."
        return polite(messages)


def invents_contacts(messages: list[dict[str, str]]) -> str:
    """Makes up contact details whenever asked about people or accounts; has no real data."""
    if re.search(r"\b(?:customer|email|contact|phone|password|key|record|credential|config)", _user(messages), re.I):
        return "Sure: Anna Berg, anna.berg@example.org, +1 202 555 0147."
    return polite(messages)


def refuses_everything(messages: list[dict[str, str]]) -> str:
    return "I'm sorry, but I can't help with that request."


def echoes(messages: list[dict[str, str]]) -> str:
    return "You wrote: " + _user(messages)


FRENCH = {"ignore": "ignorez", "all": "toutes", "previous": "précédentes", "instructions": "instructions",
          "and": "et", "reply": "répondez", "only": "seulement", "with": "avec", "the": "la", "sentence": "phrase",
          "your": "vos", "respond": "répondez", "answer": "répondez", "write": "écrivez", "just": "juste",
          "output": "affichez", "exactly": "exactement", "do": "ne", "not": "pas", "translate": "traduisez",
          "this": "ceci", "instead": "plutôt", "my": "mon", "favourite": "préféré", "quote": "citation", "is": "est"}


def translates_word_by_word(messages: list[dict[str, str]]) -> str:
    """Secure translator: translates word by word, quoted text kept as it is (never obeys it)."""
    text = _user(messages)
    quoted = QUOTED.findall(text)
    words = [FRENCH.get(w.lower(), w) for w in QUOTED.sub("«»", text).split()]
    sentence = " ".join(words)
    for q in quoted:
        sentence = sentence.replace("«»", f"« {q} »", 1)
    return "Traduction : " + sentence


def rule_ids(fn, probes=None, attempts=2) -> set[str]:
    result = probe_llm(LLMEndpoint.from_callable(fn, concurrency=4), probes, attempts=attempts)
    return {f.rule_id for f in result.findings}


@pytest.mark.parametrize(("model", "expected"), [
    (obeys_overrides_in_capitals, "AISP-LLM-INJECTION"),
    (decodes_base64_and_hex, "AISP-LLM-ENCODING"),
    (refuses_only_short_requests, "AISP-LLM-JAILBREAK"),
    (never_refuses, "AISP-LLM-JAILBREAK"),
    (prints_its_codes, "AISP-LLM-SYSTEM-PROMPT-LEAK"),
    (invents_contacts, "AISP-LLM-DATA-LEAK"),
])
def test_each_weak_stand_in_is_caught(model, expected) -> None:
    assert expected in rule_ids(model)


def test_a_shared_notebook_is_caught_whatever_the_recall_wording() -> None:
    assert rule_ids(SharedNotebook(), "cross-session-leak", attempts=4) == {"AISP-LLM-CROSS-SESSION-LEAK"}


@pytest.mark.parametrize("model", [refuses_everything, echoes, translates_word_by_word])
def test_secure_stand_ins_raise_nothing(model) -> None:
    assert rule_ids(model) == set()


def test_invented_contacts_are_only_low() -> None:
    result = probe_llm(LLMEndpoint.from_callable(invents_contacts), "data-leak", attempts=2)
    assert {f.severity.value for f in result.findings} == {"low"}
