"""What a text attack produces, shared by the native engine and the TextAttack bridge: the adversarial texts,
the result over a labelled set, and the character diff that shows each edit."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from pytest_aisp.findings import AispError, Finding
from pytest_aisp.nlp import transforms
from pytest_aisp.nlp.classifier import TextClassifier

MAX_EXAMPLES_KEPT = 50


@dataclass(frozen=True)
class AdversarialText:
    """One successful attack: the original, the adversarial text, and what changed."""

    index: int
    original: str
    adversarial: str
    label: int
    adversarial_label: int
    words_changed: int
    queries: int
    diff: str

    @property
    def characters_changed(self) -> int:
        return transforms.character_edit_distance(self.original, self.adversarial)


@dataclass(frozen=True)
class TextRobustnessResult:
    """The outcome of one attack over a labelled set of texts."""

    attack: str
    classifier: str
    n_texts: int
    clean_accuracy: float
    attacked_accuracy: float
    attack_success_rate: float  # successes / texts the classifier got right
    mean_words_changed: float  # over successful attacks
    queries_per_example: float  # over attacked texts
    budget: int
    seconds: float
    examples: tuple[AdversarialText, ...]  # the smallest 50 counterexamples
    findings: tuple[Finding, ...]
    n_correct: int = 0  # texts the classifier got right: the ones attacked
    successes: int = 0  # successful attacks (examples keeps at most 50 of them)
    unattackable: int = 0  # correct texts that offered no edit (only stop words, no candidates)

    def best_examples(self, k: int = 3) -> tuple[AdversarialText, ...]:
        """The ``k`` smallest counterexamples: fewest words changed, then fewest characters."""
        return tuple(
            sorted(self.examples, key=lambda e: (e.words_changed, e.characters_changed, e.index))[:k]
        )


def character_diff(original: str, adversarial: str) -> str:
    """``original`` with ``[-removed-]{+added+}`` marks; invisible and non-ASCII characters escaped."""
    matcher = difflib.SequenceMatcher(a=original, b=adversarial, autojunk=False)
    parts = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            parts.append(original[a0:a1])
            continue
        if a1 > a0:
            parts.append(f"[-{_visible(original[a0:a1])}-]")
        if b1 > b0:
            parts.append(f"{{+{_visible(adversarial[b0:b1])}+}}")
    return "".join(parts)


def _visible(text: str) -> str:
    return "".join(
        ch
        if ch.isascii() and ch.isprintable()
        else f"\\u{ord(ch):04x}"
        if ord(ch) <= 0xFFFF
        else f"\\U{ord(ch):08x}"
        for ch in text
    )


def check_classes(model: TextClassifier, gold: list[int]) -> None:
    n_classes = model.n_classes or 0
    bad = [g for g in gold if not 0 <= g < n_classes]
    if bad:
        raise AispError(
            f"label {bad[0]} is out of range: {model.name} has {n_classes} classes (0..{n_classes - 1})"
        )


def build_result(
    *,
    attack: str,
    classifier: str,
    n_texts: int,
    n_correct: int,
    examples: list[AdversarialText],
    query_counts: list[int],
    budget: int,
    seconds: float,
    unattackable: int = 0,
) -> TextRobustnessResult:
    """A result without findings from raw counts (used by the native engine and the TextAttack bridge)."""
    successes = len(examples)
    return TextRobustnessResult(
        attack=attack,
        classifier=classifier,
        n_texts=n_texts,
        clean_accuracy=n_correct / n_texts,
        attacked_accuracy=(n_correct - successes) / n_texts,
        attack_success_rate=successes / n_correct if n_correct else 0.0,
        mean_words_changed=float(np.mean([e.words_changed for e in examples])) if examples else 0.0,
        queries_per_example=float(np.mean(query_counts)) if query_counts else 0.0,
        budget=budget,
        seconds=seconds,
        examples=tuple(
            sorted(examples, key=lambda e: (e.words_changed, e.characters_changed, e.index))[
                :MAX_EXAMPLES_KEPT
            ]
        ),
        findings=(),
        n_correct=n_correct,
        successes=successes,
        unattackable=unattackable,
    )
