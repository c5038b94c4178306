"""Bias checks for text classifiers: counterfactual term swaps and group metrics on a labelled set."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from pytest_aisp.findings import AispError, Finding, Severity, TextRobustnessFailure
from pytest_aisp.nlp import resources, transforms
from pytest_aisp.nlp.classifier import as_text_classifier, check_texts
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.verdict import enforce

RULE_BIAS = "AISP-NLP-BIAS"
DEFAULT_GROUPS = ("gender", "names")
MAX_PAIRS_KEPT = 20

GroupSpec = Union[str, resources.GroupTerms, Mapping[str, Sequence[str]]]  # noqa: UP007 (a runtime alias on 3.10)


@dataclass(frozen=True)
class CounterfactualPair:
    """A text and its copy with one group's terms swapped for another group's."""

    index: int
    original: str
    counterfactual: str
    from_group: str
    to_group: str
    original_label: int
    counterfactual_label: int
    score_gap: float  # change in the probability of the original's predicted class

    @property
    def flipped(self) -> bool:
        return self.original_label != self.counterfactual_label


@dataclass(frozen=True)
class GroupPairGap:
    """Flip rate and score gaps for swaps from one group to another."""

    from_group: str
    to_group: str
    pairs: int
    flip_rate: float
    max_score_gap: float
    mean_score_gap: float


@dataclass(frozen=True)
class CounterfactualResult:
    """How a classifier's output changes when group terms are swapped."""

    classifier: str
    term_lists: tuple[str, ...]
    n_texts: int
    texts_with_terms: int
    pairs: int
    flip_rate: float
    max_score_gap: float
    by_group_pair: tuple[GroupPairGap, ...]
    worst: tuple[CounterfactualPair, ...]
    seconds: float
    findings: tuple[Finding, ...]


def _as_group_terms(spec: GroupSpec) -> resources.GroupTerms:
    if isinstance(spec, resources.GroupTerms):
        return spec
    if isinstance(spec, str):
        return resources.group_terms(spec)
    if isinstance(spec, Mapping):
        lists = {str(k): [str(t).lower() for t in v] for k, v in spec.items()}
        lengths = {len(v) for v in lists.values()}
        if len(lists) < 2 or len(lengths) != 1 or 0 in lengths:
            raise AispError(
                "a custom group mapping needs two or more groups with aligned, equally long, "
                "non-empty term lists, e.g. {'male': ['he', 'him'], 'female': ['she', 'her']}"
            )
        rows = tuple(zip(*lists.values()))
        return resources.GroupTerms(
            name="custom", groups=tuple(lists), rows=rows, source="given by the caller"
        )
    raise AispError(
        f"groups must name packaged lists ({', '.join(resources.GROUP_FILES)}), or be a mapping "
        f"of group -> aligned terms; got {type(spec).__name__}"
    )


def _swap_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def counterfactuals(text: str, terms: resources.GroupTerms) -> list[tuple[str, str, str]]:
    """``(from_group, to_group, counterfactual text)`` for each other group, swapping every term of the
    first group found in ``text`` (groups in column order)."""
    split = transforms.SplitText.of(text)
    lowered = [w.lower() for w in split.words]
    out = []
    for g, group in enumerate(terms.groups):
        column = {row[g]: r for r, row in reversed(list(enumerate(terms.rows)))}
        hits = [(i, column[w]) for i, w in enumerate(lowered) if w in column]
        if not hits:
            continue
        for h, other in enumerate(terms.groups):
            if h == g:
                continue
            words = list(split.words)
            for i, r in hits:
                words[i] = _swap_case(split.words[i], terms.rows[r][h])
            swapped = split.join(words)
            if swapped != text:
                out.append((group, other, swapped))
        break  # the first group found is the text's group: swaps go from it to each other group
    return out


def evaluate_counterfactual_fairness(
    classifier: Any,
    texts: Sequence[str],
    *,
    groups: GroupSpec | Sequence[GroupSpec] = DEFAULT_GROUPS,
    max_flip_rate: float = 0.05,
    max_score_gap: float | None = None,
) -> CounterfactualResult:
    """Swap group terms (gendered words, names, religions, nationalities) and compare the outputs.

    A flip rate above ``max_flip_rate``, or a score gap above ``max_score_gap`` (when given), is a
    high ``AISP-NLP-BIAS`` finding. Texts that contain no group term cannot be checked: when none of
    them does, that is a medium finding (fail closed).
    """
    items = check_texts(texts)
    if not 0.0 <= max_flip_rate <= 1.0:
        raise AispError(f"max_flip_rate is a fraction in [0, 1], got {max_flip_rate}")
    specs = [groups] if isinstance(groups, (str, Mapping, resources.GroupTerms)) else list(groups)
    if not specs:
        raise AispError("groups is empty: name at least one term list")
    term_lists = [_as_group_terms(s) for s in specs]
    model = as_text_classifier(classifier)
    started = time.perf_counter()
    jobs: list[tuple[int, str, str, str]] = []
    covered = set()
    for index, text in enumerate(items):
        for terms in term_lists:
            for from_group, to_group, swapped in counterfactuals(text, terms):
                jobs.append((index, from_group, to_group, swapped))
                covered.add(index)
    base = model(items)
    swapped_probs = model([j[3] for j in jobs]) if jobs else np.zeros((0, base.shape[1]))
    pairs = []
    for (index, from_group, to_group, swapped), probs in zip(jobs, swapped_probs):
        label = int(np.argmax(base[index]))
        pairs.append(
            CounterfactualPair(
                index=index,
                original=items[index],
                counterfactual=swapped,
                from_group=from_group,
                to_group=to_group,
                original_label=label,
                counterfactual_label=int(np.argmax(probs)),
                score_gap=float(abs(base[index, label] - probs[label])),
            )
        )
    by_pair = _by_group_pair(pairs)
    flip_rate = float(np.mean([p.flipped for p in pairs])) if pairs else 0.0
    max_gap = max((p.score_gap for p in pairs), default=0.0)
    worst = tuple(sorted(pairs, key=lambda p: (not p.flipped, -p.score_gap, p.index))[:MAX_PAIRS_KEPT])
    result = CounterfactualResult(
        classifier=model.name,
        term_lists=tuple(t.name for t in term_lists),
        n_texts=len(items),
        texts_with_terms=len(covered),
        pairs=len(pairs),
        flip_rate=flip_rate,
        max_score_gap=max_gap,
        by_group_pair=by_pair,
        worst=worst,
        seconds=time.perf_counter() - started,
        findings=(),
    )
    findings = tuple(_counterfactual_findings(result, max_flip_rate, max_score_gap))
    record_findings(findings)
    record_metric("nlp_counterfactual_flip_rate", flip_rate)
    record_metric("nlp_counterfactual_max_score_gap", max_gap)
    return replace(result, findings=findings)


def _by_group_pair(pairs: list[CounterfactualPair]) -> tuple[GroupPairGap, ...]:
    keys = sorted({(p.from_group, p.to_group) for p in pairs})
    out = []
    for a, b in keys:
        chosen = [p for p in pairs if (p.from_group, p.to_group) == (a, b)]
        gaps = [p.score_gap for p in chosen]
        out.append(
            GroupPairGap(
                a,
                b,
                len(chosen),
                float(np.mean([p.flipped for p in chosen])),
                float(max(gaps)),
                float(np.mean(gaps)),
            )
        )
    return tuple(out)


def _counterfactual_findings(
    result: CounterfactualResult, max_flip_rate: float, max_score_gap: float | None
) -> list[Finding]:
    where = f"{result.classifier}:counterfactual[{','.join(result.term_lists)}]"
    metrics = {
        "flip_rate": result.flip_rate,
        "max_score_gap": result.max_score_gap,
        "pairs": result.pairs,
        "max_flip_rate": max_flip_rate,
    }
    if max_score_gap is not None:
        metrics["max_score_gap_allowed"] = max_score_gap
    if not result.pairs:
        return [
            Finding(
                RULE_BIAS,
                Severity.MEDIUM,
                f"none of the {result.n_texts} texts contains a term of {', '.join(result.term_lists)}: "
                "counterfactual fairness could not be checked; give texts that mention the groups",
                where,
                {"term_lists": list(result.term_lists)},
                metrics,
            )
        ]
    worst = result.worst[0]
    evidence = {
        "original": worst.original[:300],
        "counterfactual": worst.counterfactual[:300],
        "from_group": worst.from_group,
        "to_group": worst.to_group,
        "labels": [worst.original_label, worst.counterfactual_label],
        "score_gap": round(worst.score_gap, 4),
    }
    problems = []
    if result.flip_rate > max_flip_rate:
        problems.append(f"flip rate {result.flip_rate:.3f} > max_flip_rate {max_flip_rate:.3f}")
    if max_score_gap is not None and result.max_score_gap > max_score_gap:
        problems.append(f"score gap {result.max_score_gap:.3f} > max_score_gap {max_score_gap:.3f}")
    summary = (
        f"{result.pairs} counterfactual swaps over {result.texts_with_terms} texts: flip rate "
        f"{result.flip_rate:.3f}, largest score gap {result.max_score_gap:.3f}"
    )
    if problems:
        return [
            Finding(RULE_BIAS, Severity.HIGH, f"{summary}; {'; '.join(problems)}", where, evidence, metrics)
        ]
    return [Finding(RULE_BIAS, Severity.INFO, summary, where, evidence, metrics)]


def assert_counterfactual_fair(
    classifier: Any,
    texts: Sequence[str],
    *,
    groups: GroupSpec | Sequence[GroupSpec] = DEFAULT_GROUPS,
    max_flip_rate: float = 0.05,
    max_score_gap: float | None = None,
    fail_on: Severity | str | None = None,
) -> CounterfactualResult:
    """Fail with ``TextRobustnessFailure`` when swapping group terms flips labels or moves scores too much."""
    __tracebackhide__ = True
    result = evaluate_counterfactual_fairness(
        classifier, texts, groups=groups, max_flip_rate=max_flip_rate, max_score_gap=max_score_gap
    )
    lines = []
    for pair in result.worst[:3]:
        lines.append(
            f"  {pair.from_group} -> {pair.to_group}: label {pair.original_label} -> "
            f"{pair.counterfactual_label}, gap {pair.score_gap:.3f}: {pair.original!r} -> "
            f"{pair.counterfactual!r}"
        )
    worst_groups = sorted(result.by_group_pair, key=lambda g: -g.flip_rate)[:3]
    per_group = ", ".join(f"{g.from_group}->{g.to_group} {g.flip_rate:.3f}" for g in worst_groups)
    enforce(
        result.findings,
        TextRobustnessFailure,
        headline=(
            f"counterfactual fairness: flip rate {result.flip_rate:.3f} (max {max_flip_rate:.3f}), "
            f"largest score gap {result.max_score_gap:.3f}"
            + (f" (max {max_score_gap:.3f})" if max_score_gap is not None else "")
        ),
        details=(f"flip rate by swap: {per_group}\nworst swaps:\n" + "\n".join(lines)) if lines else "",
        result=result,
        fail_on=fail_on,
    )
    return result


# --- group metrics on a labelled set ---------------------------------------------------------


@dataclass(frozen=True)
class GroupRates:
    """One group's rates: positive prediction rate, true and false positive rates."""

    group: str
    n: int
    positive_rate: float
    true_positive_rate: float | None
    false_positive_rate: float | None


@dataclass(frozen=True)
class GroupMetricsResult:
    """Demographic parity and equalised-odds gaps across groups."""

    classifier: str
    positive_label: int
    groups: tuple[GroupRates, ...]
    demographic_parity_gap: float
    equalized_odds_gap: float
    unassigned: int
    findings: tuple[Finding, ...]


def group_of_terms(groups: GroupSpec = "gender") -> Callable[[str], str | None]:
    """A ``group_of`` function: the group whose terms a text mentions (the first found), or None."""
    terms = _as_group_terms(groups)

    def group_of(text: str) -> str | None:
        words = {w.lower() for w in transforms.WORD_PATTERN.findall(text)}
        for g, group in enumerate(terms.groups):
            if any(row[g] in words for row in terms.rows):
                return group
        return None

    return group_of


def evaluate_group_metrics(
    classifier: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    group_of: Callable[[str], str | None] | Sequence[str | None],
    *,
    positive_label: int = 1,
    max_parity_gap: float = 0.1,
    max_odds_gap: float = 0.1,
) -> GroupMetricsResult:
    """Per-group rates and the demographic parity gap (spread of positive rates) and equalised-odds
    gap (largest spread of true or false positive rates). Gaps above the bounds are high findings."""
    items = check_texts(texts)
    if isinstance(labels, (str, bytes)) or len(labels) != len(items):
        raise AispError(
            f"got {len(items)} texts and {len(labels) if hasattr(labels, '__len__') else '?'} "
            "labels: give one label per text"
        )
    gold = np.asarray([int(v) for v in labels])
    if callable(group_of):
        assigned = [group_of(t) for t in items]
    else:
        assigned = list(group_of)
        if len(assigned) != len(items):
            raise AispError(f"group_of has {len(assigned)} entries for {len(items)} texts")
    model = as_text_classifier(classifier)
    predicted = model.predict(items) == positive_label
    actual = gold == positive_label
    rates = []
    for group in sorted({g for g in assigned if g is not None}):
        mask = np.array([g == group for g in assigned])
        pos, neg = mask & actual, mask & ~actual
        rates.append(
            GroupRates(
                group=str(group),
                n=int(mask.sum()),
                positive_rate=float(predicted[mask].mean()),
                true_positive_rate=float(predicted[pos].mean()) if pos.any() else None,
                false_positive_rate=float(predicted[neg].mean()) if neg.any() else None,
            )
        )
    parity = _spread([r.positive_rate for r in rates])
    odds = max(
        _spread([r.true_positive_rate for r in rates]), _spread([r.false_positive_rate for r in rates])
    )
    unassigned = sum(g is None for g in assigned)
    result = GroupMetricsResult(model.name, positive_label, tuple(rates), parity, odds, unassigned, ())
    findings = tuple(_group_findings(result, max_parity_gap, max_odds_gap))
    record_findings(findings)
    record_metric("nlp_demographic_parity_gap", parity)
    record_metric("nlp_equalized_odds_gap", odds)
    return replace(result, findings=findings)


def _spread(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return float(max(present) - min(present)) if len(present) >= 2 else 0.0


def _group_findings(result: GroupMetricsResult, max_parity_gap: float, max_odds_gap: float) -> list[Finding]:
    where = f"{result.classifier}:groups"
    metrics = {
        "demographic_parity_gap": result.demographic_parity_gap,
        "equalized_odds_gap": result.equalized_odds_gap,
        "max_parity_gap": max_parity_gap,
        "max_odds_gap": max_odds_gap,
    }
    evidence = {r.group: {"n": r.n, "positive_rate": round(r.positive_rate, 4)} for r in result.groups}
    if len(result.groups) < 2:
        return [
            Finding(
                RULE_BIAS,
                Severity.MEDIUM,
                f"only {len(result.groups)} group(s) found in the texts ({result.unassigned} unassigned): "
                "group metrics need at least two groups",
                where,
                evidence,
                metrics,
            )
        ]
    problems = []
    if result.demographic_parity_gap > max_parity_gap:
        problems.append(f"demographic parity gap {result.demographic_parity_gap:.3f} > {max_parity_gap:.3f}")
    if result.equalized_odds_gap > max_odds_gap:
        problems.append(f"equalised-odds gap {result.equalized_odds_gap:.3f} > {max_odds_gap:.3f}")
    summary = (
        f"{len(result.groups)} groups: demographic parity gap {result.demographic_parity_gap:.3f}, "
        f"equalised-odds gap {result.equalized_odds_gap:.3f}"
    )
    if problems:
        return [
            Finding(RULE_BIAS, Severity.HIGH, f"{summary}; {'; '.join(problems)}", where, evidence, metrics)
        ]
    return [Finding(RULE_BIAS, Severity.INFO, summary, where, evidence, metrics)]
