"""Cross-modal checks for models that take several modalities (image + caption, audio + transcript ...).

``evaluate_cross_modal`` perturbs each modality alone and every combination together, and reports
examples that only break when modalities are perturbed together (a coordinated, cross-modal
attack); ``evaluate_mismatch`` pairs inputs with contradicting partners (an image with another
class's caption) and checks that the model's match score notices.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError, Finding, InvarianceFailure, Severity
from pytest_aisp.multimodal import inputs as checks
from pytest_aisp.multimodal.invariance import _check_labels, _check_severities, model_name
from pytest_aisp.multimodal.registry import (
    MODALITIES,
    Context,
    Perturbation,
    apply_perturbation,
    resolve_perturbations,
)
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.verdict import enforce

RULE_CROSS_MODAL = "AISP-MM-CROSS-MODAL"
RULE_JOINT_AGREEMENT = "AISP-MM-CROSS-MODAL-AGREEMENT"
# the agreement every modality subset must keep, as for assert_invariant: a model that each perturbation
# alone breaks is not consistent just because the joint perturbation breaks nothing more
DEFAULT_MIN_AGREEMENT = 0.9
RULE_MISMATCH = "AISP-MM-MISMATCH"

MultiModel = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class CrossModalCell:
    """One combination of perturbations at one severity: agreement per modality subset."""

    combination: tuple[str, ...]
    severity: float
    agreement: Mapping[str, float]
    joint_only: tuple[int, ...]
    joint_only_subsets: Mapping[int, tuple[str, ...]]


@dataclass(frozen=True)
class CrossModalResult:
    """What ``evaluate_cross_modal`` measured; ``findings`` are what fails a test."""

    cells: tuple[CrossModalCell, ...]
    findings: tuple[Finding, ...]
    metrics: Mapping[str, float]
    n_examples: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def joint_only_rate(self) -> float:
        """The largest fraction of examples broken only by a coordinated perturbation, over all cells."""
        return max((len(c.joint_only) / self.n_examples for c in self.cells), default=0.0)

    def table(self) -> str:
        lines = []
        for c in self.cells:
            parts = ", ".join(f"{k}: {v:.3f}" for k, v in c.agreement.items())
            lines.append(
                f"{' + '.join(c.combination)} @ {c.severity:g}: agreement {parts}; "
                f"broken only together: {len(c.joint_only)}/{self.n_examples}"
            )
        return "\n".join(lines)


def _predict(model: MultiModel, samples: Mapping[str, Any]) -> np.ndarray:
    output = model(samples)
    if hasattr(output, "detach"):
        output = output.detach().cpu().numpy()
    output = np.asarray(output)
    return output.argmax(axis=1) if output.ndim == 2 else output


def _check_samples(samples: Mapping[str, Any], context: Context) -> tuple[dict[str, Any], int]:
    if not isinstance(samples, Mapping) or not samples:
        raise AispError(
            "samples must be a dict of modality -> batch, e.g. {'image': images, 'text': captions}"
        )
    checked = {}
    for modality, batch in samples.items():
        if modality not in MODALITIES:
            checked[modality] = batch  # passed through unperturbed (ids, metadata ...)
            continue
        checked[modality] = checks.check_inputs(modality, batch, context)
    sizes = {m: checks.batch_size(b) for m, b in checked.items() if m in MODALITIES}
    if len(set(sizes.values())) != 1:
        raise AispError(f"every modality needs the same number of examples, got {sizes}")
    return checked, next(iter(sizes.values()))


def _plan(perturb: Mapping[str, Any], samples: Mapping[str, Any]) -> dict[str, tuple[Perturbation, ...]]:
    if not isinstance(perturb, Mapping) or len(perturb) < 2:
        raise AispError(
            "perturb must map at least two modalities to perturbations, e.g. "
            "{'image': 'image:blur', 'text': 'text:typos'}"
        )
    plan = {}
    for modality, spec in perturb.items():
        if modality not in samples:
            raise AispError(
                f"perturb names {modality!r}, which samples do not have (have: {', '.join(samples)})"
            )
        specs = resolve_perturbations(spec)
        if specs[0].modality != modality:
            raise AispError(
                f"perturb[{modality!r}] names {specs[0].name}, a {specs[0].modality} perturbation"
            )
        plan[modality] = specs
    return plan


def evaluate_cross_modal(
    model: MultiModel,
    samples: Mapping[str, Any],
    *,
    perturb: Mapping[str, str | Perturbation | Iterable[str | Perturbation]],
    severities: Sequence[float] = (0.5, 1.0),
    seed: int = 0,
    max_joint_only: float = 0.0,
    min_agreement: float | None = DEFAULT_MIN_AGREEMENT,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
    location: str | None = None,
) -> CrossModalResult:
    """Perturb each modality alone and every subset together; find examples broken only together.

    An example is *broken only together* by a subset of modalities when perturbing that subset
    changes the prediction but perturbing any smaller part of it does not. A cell where more
    than ``max_joint_only`` of the examples are such gives ``AISP-MM-CROSS-MODAL``. Agreement with
    the clean prediction below ``min_agreement`` (default 0.9) under any perturbed subset, a single
    modality alone included, gives ``AISP-MM-CROSS-MODAL-AGREEMENT``; ``min_agreement=None`` turns
    that check off.
    """
    started = time.perf_counter()
    context = Context(sample_rate=sample_rate, fps=fps)
    batch, n = _check_samples(samples, context)
    plan = _plan(perturb, batch)
    levels = _check_severities(severities)
    where = location if location is not None else model_name(model)
    clean = _predict(model, batch)
    if clean.shape != (n,):
        raise AispError(
            f"the model returned shape {clean.shape} for {n} samples; return labels (N,) or scores (N, K)"
        )
    modalities = list(plan)
    subsets = [s for r in range(1, len(modalities) + 1) for s in itertools.combinations(modalities, r)]
    cells: list[CrossModalCell] = []
    for combination in itertools.product(*plan.values()):
        for severity in levels:
            perturbed = {
                spec.modality: apply_perturbation(
                    spec,
                    batch[spec.modality],
                    severity,
                    seed=seed,
                    backend=backend,
                    sample_rate=sample_rate,
                    fps=fps,
                )
                for spec in combination
            }
            broken: dict[tuple[str, ...], np.ndarray] = {}
            for subset in subsets:
                mixed = {m: (perturbed[m] if m in subset else b) for m, b in batch.items()}
                broken[subset] = _predict(model, mixed) != clean
            cells.append(_cell(combination, severity, broken, n))
    findings = _findings(cells, n, max_joint_only, min_agreement, where)
    metrics = {"mm.cross_modal.joint_only_rate": max((len(c.joint_only) / n for c in cells), default=0.0)}
    for c in cells:
        key = "+".join(c.combination)
        metrics[f"mm.cross_modal.agreement.{key}@{c.severity:g}"] = c.agreement["+".join(modalities)]
    result = CrossModalResult(tuple(cells), tuple(findings), metrics, n, time.perf_counter() - started)
    record_findings(result.findings)
    for name, value in metrics.items():
        record_metric(name, value)
    return result


def _cell(
    combination: tuple[Perturbation, ...],
    severity: float,
    broken: Mapping[tuple[str, ...], np.ndarray],
    n: int,
) -> CrossModalCell:
    joint_only: list[int] = []
    joint_subsets: dict[int, tuple[str, ...]] = {}
    for i in range(n):
        for subset, flags in broken.items():
            if len(subset) < 2 or not flags[i]:
                continue
            smaller = [s for s in broken if len(s) < len(subset) and set(s) <= set(subset)]
            if not any(broken[s][i] for s in smaller):
                joint_only.append(i)
                joint_subsets[i] = subset
                break
    agreement = {"+".join(s): 1.0 - float(np.mean(flags)) for s, flags in broken.items()}
    return CrossModalCell(
        tuple(p.name for p in combination), severity, agreement, tuple(joint_only), joint_subsets
    )


def _findings(
    cells: list[CrossModalCell], n: int, max_joint_only: float, min_agreement: float | None, where: str
) -> list[Finding]:
    findings = []
    for c in cells:
        rate = len(c.joint_only) / n
        combo = " + ".join(c.combination)
        if rate > max_joint_only:
            findings.append(
                Finding(
                    rule_id=RULE_CROSS_MODAL,
                    severity=Severity.HIGH,
                    message=(
                        f"{combo} at severity {c.severity:g} breaks {len(c.joint_only)}/{n} predictions "
                        "only when "
                        f"applied together (each alone keeps them); allowed {max_joint_only:.0%}"
                    ),
                    location=f"{where}:{'+'.join(c.combination)}",
                    evidence={
                        "combination": list(c.combination),
                        "severity": c.severity,
                        "examples": list(c.joint_only[:10]),
                        "agreement": {k: round(v, 4) for k, v in c.agreement.items()},
                    },
                    metrics={"joint_only_rate": rate, "severity": c.severity},
                )
            )
        if min_agreement is None:
            continue
        for subset, agreement in c.agreement.items():
            if agreement >= min_agreement:
                continue
            what = "together" if "+" in subset else "alone"
            findings.append(
                Finding(
                    rule_id=RULE_JOINT_AGREEMENT,
                    severity=Severity.MEDIUM,
                    message=(
                        f"{combo} at severity {c.severity:g}: perturbing {subset.replace('+', ' + ')} {what} "
                        f"keeps {agreement:.3f} of the predictions < {min_agreement}"
                    ),
                    location=f"{where}:{'+'.join(c.combination)}:{subset}",
                    evidence={"combination": list(c.combination), "severity": c.severity, "perturbed": subset},
                    metrics={"agreement": agreement, "min_agreement": float(min_agreement)},
                )
            )
    return findings


def assert_cross_modal_consistent(
    model: MultiModel,
    samples: Mapping[str, Any],
    *,
    perturb: Mapping[str, str | Perturbation | Iterable[str | Perturbation]],
    severities: Sequence[float] = (0.5, 1.0),
    seed: int = 0,
    max_joint_only: float = 0.0,
    min_agreement: float | None = DEFAULT_MIN_AGREEMENT,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
    location: str | None = None,
    fail_on: Severity | str | None = None,
) -> CrossModalResult:
    """Fail with ``InvarianceFailure`` when coordinated perturbations break predictions single ones keep, or
    when any perturbed modality subset (one alone included) keeps fewer than ``min_agreement`` of them."""
    __tracebackhide__ = True
    result = evaluate_cross_modal(
        model,
        samples,
        perturb=perturb,
        severities=severities,
        seed=seed,
        max_joint_only=max_joint_only,
        min_agreement=min_agreement,
        backend=backend,
        sample_rate=sample_rate,
        fps=fps,
        location=location,
    )
    worst = max(result.cells, key=lambda c: len(c.joint_only))
    if worst.joint_only:
        headline = (
            f"{' + '.join(worst.combination)} at severity {worst.severity:g} breaks "
            f"{len(worst.joint_only)}/{result.n_examples} predictions only when the modalities are "
            f"perturbed together"
        )
    else:
        low = min(((a, s, c) for c in result.cells for s, a in c.agreement.items()), key=lambda t: t[0])
        headline = (
            f"perturbing {low[1].replace('+', ' + ')} ({' + '.join(low[2].combination)} at severity "
            f"{low[2].severity:g}) keeps only {low[0]:.3f} of the predictions"
        )
    details = result.table()
    if worst.joint_only:
        i = worst.joint_only[0]
        details += (
            f"\nsmallest counterexample: sample #{i}, broken by {' + '.join(worst.joint_only_subsets[i])} "
            f"together, kept under each alone"
        )
    enforce(
        result.findings, InvarianceFailure, headline=headline, details=details, result=result, fail_on=fail_on
    )
    return result


# --- mismatch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MismatchResult:
    """How well a match score separates true pairs from contradicting ones."""

    detection_rate: float
    false_alarm_rate: float
    swapped: str
    partners: tuple[int, ...]
    missed: tuple[int, ...]
    findings: tuple[Finding, ...]
    metrics: Mapping[str, float]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.findings


def mismatched_samples(
    samples: Mapping[str, Any], swap: str, labels: Any = None, *, seed: int = 0
) -> tuple[dict[str, Any], np.ndarray]:
    """``samples`` with modality ``swap`` taken from a partner of another label (seeded); and the partners."""
    if swap not in samples:
        raise AispError(f"swap={swap!r} is not one of the sample modalities ({', '.join(samples)})")
    n = checks.batch_size(samples[swap])
    if n < 2:
        raise AispError("a mismatch test needs at least two samples to swap between")
    rng = np.random.default_rng(seed)
    label_array = _check_labels(labels, n)
    partners = np.empty(n, dtype=int)
    for i in range(n):
        others = (
            np.flatnonzero(label_array != label_array[i])
            if label_array is not None
            else np.delete(np.arange(n), i)
        )
        if len(others) == 0:
            raise AispError("every sample has the same label: nothing contradicts it; pass varied samples")
        partners[i] = int(rng.choice(others))
    mixed = dict(samples)
    mixed[swap] = checks.take(samples[swap], partners)
    return mixed, partners


def evaluate_mismatch(
    match_score: Callable[[Mapping[str, Any]], Any],
    samples: Mapping[str, Any],
    *,
    swap: str = "text",
    labels: Sequence[Any] | np.ndarray | None = None,
    threshold: float = 0.5,
    min_detection: float = 0.9,
    max_false_alarm: float = 0.1,
    seed: int = 0,
    location: str | None = None,
) -> MismatchResult:
    """Pair each sample with a contradicting ``swap`` modality; the match score must drop below ``threshold``.

    ``match_score(samples)`` returns one score per sample, higher meaning the modalities agree.
    Detection below ``min_detection`` or false alarms on the true pairs above ``max_false_alarm``
    give ``AISP-MM-MISMATCH``.
    """
    started = time.perf_counter()
    if not isinstance(samples, Mapping) or len(samples) < 2:
        raise AispError(
            "samples must be a dict of at least two modalities, e.g. {'image': x, 'text': captions}"
        )
    sizes = {m: checks.batch_size(b) for m, b in samples.items()}
    if len(set(sizes.values())) != 1:
        raise AispError(f"every modality needs the same number of examples, got {sizes}")
    mixed, partners = mismatched_samples(samples, swap, labels, seed=seed)
    true_scores = _scores(match_score, samples)
    mixed_scores = _scores(match_score, mixed)
    detected = mixed_scores < threshold
    false_alarms = true_scores < threshold
    detection, false_alarm = float(np.mean(detected)), float(np.mean(false_alarms))
    where = location if location is not None else model_name(match_score)
    missed = tuple(int(i) for i in np.flatnonzero(~detected))
    findings = []
    if detection < min_detection or false_alarm > max_false_alarm:
        findings.append(
            Finding(
                rule_id=RULE_MISMATCH,
                severity=Severity.MEDIUM,
                message=(
                    f"contradicting {swap} detected in {detection:.3f} of pairs (need {min_detection}), "
                    f"false alarms on true pairs {false_alarm:.3f} (allowed {max_false_alarm})"
                ),
                location=f"{where}:{swap}",
                evidence={
                    "swap": swap,
                    "missed": list(missed[:10]),
                    "partners": [int(partners[i]) for i in missed[:10]],
                    "threshold": threshold,
                },
                metrics={"detection_rate": detection, "false_alarm_rate": false_alarm},
            )
        )
    metrics = {"mm.mismatch.detection_rate": detection, "mm.mismatch.false_alarm_rate": false_alarm}
    result = MismatchResult(
        detection,
        false_alarm,
        swap,
        tuple(int(p) for p in partners),
        missed,
        tuple(findings),
        metrics,
        time.perf_counter() - started,
    )
    record_findings(result.findings)
    for name, value in metrics.items():
        record_metric(name, value)
    return result


def assert_mismatch_detected(
    match_score: Callable[[Mapping[str, Any]], Any],
    samples: Mapping[str, Any],
    *,
    swap: str = "text",
    labels: Sequence[Any] | np.ndarray | None = None,
    threshold: float = 0.5,
    min_detection: float = 0.9,
    max_false_alarm: float = 0.1,
    seed: int = 0,
    location: str | None = None,
    fail_on: Severity | str | None = None,
) -> MismatchResult:
    """Fail with ``InvarianceFailure`` when the match score misses contradicting pairs."""
    __tracebackhide__ = True
    result = evaluate_mismatch(
        match_score,
        samples,
        swap=swap,
        labels=labels,
        threshold=threshold,
        min_detection=min_detection,
        max_false_alarm=max_false_alarm,
        seed=seed,
        location=location,
    )
    headline = (
        f"mismatch detection {result.detection_rate:.3f} < {min_detection} or false alarms "
        f"{result.false_alarm_rate:.3f} > {max_false_alarm}"
    )
    details = ""
    if result.missed:
        i = result.missed[0]
        details = (
            f"smallest counterexample: sample #{i} with the {swap} of sample "
            f"#{result.partners[i]} was accepted"
        )
    enforce(
        result.findings, InvarianceFailure, headline=headline, details=details, result=result, fail_on=fail_on
    )
    return result


def _scores(match_score: Callable[[Mapping[str, Any]], Any], samples: Mapping[str, Any]) -> np.ndarray:
    output = match_score(samples)
    if hasattr(output, "detach"):
        output = output.detach().cpu().numpy()
    scores = np.asarray(output, dtype=np.float64).reshape(-1)
    n = checks.batch_size(next(iter(samples.values())))
    if scores.shape != (n,):
        raise AispError(f"match_score must return one score per sample ({n}), got shape {scores.shape}")
    return scores
