"""Invariance checks: does the model keep its prediction under named perturbations?

``evaluate_invariance`` measures agreement with the unperturbed prediction (and accuracy, given
labels) for each perturbation at each severity; ``assert_invariant`` fails when agreement drops
below the bound. ``find_breaking_severity`` lets Hypothesis search for the smallest severity
that flips one example's prediction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError, Finding, InvarianceFailure, Severity
from pytest_aisp.multimodal import inputs as checks
from pytest_aisp.multimodal.registry import (
    Context,
    Perturbation,
    apply_perturbation,
    check_severity,
    choose_backend,
    get_perturbation,
    perturbation_parameters,
    resolve_perturbations,
)
from pytest_aisp.recorder import current_record, record_findings, record_metric
from pytest_aisp.robust.model import as_score_function
from pytest_aisp.verdict import enforce

RULE_INVARIANCE = "AISP-MM-INVARIANCE"
RULE_ACCURACY = "AISP-MM-ACCURACY"
RULE_BREAKING = "AISP-MM-BREAKING-SEVERITY"
RULE_UNCHECKED = "AISP-MM-UNCHECKED"
DEFAULT_SEVERITIES: tuple[float, ...] = (0.25, 0.5, 1.0)
EXAMPLES_PER_CELL = 5

Model = Callable[[Any], Any]


# --- predictions ------------------------------------------------------------------------------


def predict_labels(model: Model, batch: Any) -> np.ndarray:
    """The model's labels for ``batch``: its output as labels (N,), or the argmax of scores (N, K)."""
    output = model(batch)
    if hasattr(output, "detach"):  # a torch tensor
        output = output.detach().cpu().numpy()
    output = np.asarray(output)
    size = checks.batch_size(batch)
    if output.ndim == 2 and output.shape[0] == size:
        return output.argmax(axis=1)
    if output.ndim == 1 and output.shape[0] == size:
        return output
    raise AispError(
        f"the model returned shape {output.shape} for {size} inputs; it must return labels (N,) "
        "or scores (N, K) for a batch"
    )


def model_name(model: Any) -> str:
    """A name for the model in finding locations: its ``name`` attribute, or its type."""
    name = getattr(model, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(model, "__name__", type(model).__name__)


def _modality_of(perturbations: Sequence[Perturbation]) -> str:
    return perturbations[0].modality


# --- result objects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FailingExample:
    """One example whose prediction changed under a perturbation."""

    index: int
    perturbation: str
    severity: float
    clean_prediction: Any
    perturbed_prediction: Any
    label: Any = None


@dataclass(frozen=True)
class InvarianceCell:
    """Agreement (and accuracy) for one perturbation at one severity."""

    perturbation: str
    severity: float
    agreement: float
    accuracy: float | None
    changed: tuple[int, ...]
    backend: str
    error: str = ""


@dataclass(frozen=True)
class InvarianceResult:
    """What ``evaluate_invariance`` measured; ``findings`` are what fails a test."""

    cells: tuple[InvarianceCell, ...]
    failing_examples: tuple[FailingExample, ...]
    findings: tuple[Finding, ...]
    metrics: Mapping[str, float]
    n_examples: int
    clean_accuracy: float | None
    min_agreement: float
    seconds: float
    location: str = ""

    @property
    def ok(self) -> bool:
        return not self.findings

    def agreement(self, perturbation: str, severity: float) -> float:
        """Agreement for ``perturbation`` at ``severity`` (KeyError when not measured)."""
        for cell in self.cells:
            if cell.perturbation == perturbation and abs(cell.severity - severity) < 1e-9:
                return cell.agreement
        raise KeyError(f"{perturbation} at severity {severity} was not measured")

    @property
    def worst(self) -> InvarianceCell:
        """The measured cell with the lowest agreement (the first cell when none was measured)."""
        measured = [c for c in self.cells if not c.error]
        return min(measured, key=lambda c: (c.agreement, -c.severity)) if measured else self.cells[0]

    def table(self) -> str:
        """A plain-text table: perturbation, severity, agreement, accuracy."""
        lines = [f"{'perturbation':<26} {'severity':>8} {'agreement':>9} {'accuracy':>8}"]
        for c in self.cells:
            acc = "-" if c.accuracy is None else f"{c.accuracy:.3f}"
            note = f"  ({c.error})" if c.error else ""
            lines.append(f"{c.perturbation:<26} {c.severity:>8.2f} {c.agreement:>9.3f} {acc:>8}{note}")
        return "\n".join(lines)


# --- evaluate / assert ------------------------------------------------------------------------


def evaluate_invariance(
    model: Model,
    inputs: Any,
    *,
    perturbations: str | Perturbation | Iterable[str | Perturbation] = "image:default",
    severities: Sequence[float] = DEFAULT_SEVERITIES,
    labels: Sequence[Any] | np.ndarray | None = None,
    seed: int = 0,
    min_agreement: float = 0.9,
    min_accuracy: float | None = None,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
    location: str | None = None,
) -> InvarianceResult:
    """Measure how often ``model`` keeps its prediction under each perturbation and severity.

    ``model`` maps a batch to labels (N,) or scores (N, K). A perturbation whose agreement falls
    below ``min_agreement`` at any severity gives one ``AISP-MM-INVARIANCE`` finding (at its
    lowest failing severity); with ``labels`` and ``min_accuracy``, low accuracy gives
    ``AISP-MM-ACCURACY``. A perturbation that could not be applied, or that crashed the model,
    gives ``AISP-MM-UNCHECKED`` (fail closed). The perturbations run on the native backend unless
    ``backend`` asks for AugLy (``"augly"``, or ``"auto"`` where it imports); each cell records which ran.
    """
    started = time.perf_counter()
    specs = resolve_perturbations(perturbations)
    levels = _check_severities(severities)
    if not 0.0 <= float(min_agreement) <= 1.0:
        raise AispError(f"min_agreement must be in [0, 1], got {min_agreement}")
    modality = _modality_of(specs)
    context = Context(sample_rate=sample_rate, fps=fps)
    batch = checks.check_inputs(modality, inputs, context)
    n = checks.batch_size(batch)
    label_array = _check_labels(labels, n)
    model = as_score_function(model)  # an ONNX session or file, a model path: read like every other check
    where = location if location is not None else model_name(model)
    try:
        clean = predict_labels(model, batch)
    except AispError:
        raise
    except Exception as exc:
        raise AispError(f"the model failed on the unperturbed inputs: {type(exc).__name__}: {exc}") from exc
    clean_accuracy = None if label_array is None else float(np.mean(clean == label_array))

    cells: list[InvarianceCell] = []
    examples: list[FailingExample] = []
    findings: list[Finding] = []
    pictures: dict[str, tuple[float, Any]] = {}
    for spec in specs:
        chosen = choose_backend(spec, backend)
        for severity in levels:
            try:
                perturbed = apply_perturbation(
                    spec, batch, severity, seed=seed, backend=chosen, sample_rate=sample_rate, fps=fps
                )
            except AispError:
                raise
            except Exception as exc:
                cells.append(_unchecked_cell(spec.name, severity, chosen, f"perturbation failed: {exc}", n))
                continue
            try:
                predicted = predict_labels(model, perturbed)
            except AispError:
                raise
            except Exception as exc:
                cells.append(_unchecked_cell(spec.name, severity, chosen, f"model failed: {exc}", n))
                continue
            changed = np.flatnonzero(predicted != clean)
            accuracy = None if label_array is None else float(np.mean(predicted == label_array))
            cells.append(
                InvarianceCell(
                    spec.name,
                    severity,
                    1.0 - len(changed) / n,
                    accuracy,
                    tuple(int(i) for i in changed),
                    chosen,
                )
            )
            for i in changed[:EXAMPLES_PER_CELL]:
                examples.append(
                    FailingExample(
                        int(i),
                        spec.name,
                        severity,
                        _scalar(clean[i]),
                        _scalar(predicted[i]),
                        None if label_array is None else _scalar(label_array[i]),
                    )
                )
            if len(changed) and (spec.name not in pictures or severity < pictures[spec.name][0]):
                pictures[spec.name] = (severity, (changed, perturbed))

    findings.extend(_invariance_findings(cells, min_agreement, where, seed))
    if min_accuracy is not None:
        findings.extend(_accuracy_findings(cells, float(min_accuracy), where))
    findings.extend(_unchecked_findings(cells, where))
    metrics = _metrics(cells, clean_accuracy)
    result = InvarianceResult(
        cells=tuple(cells),
        failing_examples=tuple(examples),
        findings=tuple(findings),
        metrics=metrics,
        n_examples=n,
        clean_accuracy=clean_accuracy,
        min_agreement=float(min_agreement),
        seconds=time.perf_counter() - started,
        location=where,
    )
    record_findings(result.findings)
    for name, value in metrics.items():
        record_metric(name, value)
    _attach_pictures(modality, batch, pictures, context)
    return result


def assert_invariant(
    model: Model,
    inputs: Any,
    *,
    perturbations: str | Perturbation | Iterable[str | Perturbation] = "image:default",
    min_agreement: float = 0.9,
    severities: Sequence[float] = DEFAULT_SEVERITIES,
    labels: Sequence[Any] | np.ndarray | None = None,
    seed: int = 0,
    min_accuracy: float | None = None,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
    location: str | None = None,
    fail_on: Severity | str | None = None,
    search_smallest: bool = True,
) -> InvarianceResult:
    """Fail with ``InvarianceFailure`` when agreement under any perturbation is below ``min_agreement``.

    The message names the perturbation, severity, agreement and failing examples, and (with
    ``search_smallest``) the smallest severity that flips the first failing example.
    """
    __tracebackhide__ = True
    result = evaluate_invariance(
        model,
        inputs,
        perturbations=perturbations,
        severities=severities,
        labels=labels,
        seed=seed,
        min_agreement=min_agreement,
        min_accuracy=min_accuracy,
        backend=backend,
        sample_rate=sample_rate,
        fps=fps,
        location=location,
    )
    failing = [f for f in result.findings if f.rule_id == RULE_INVARIANCE]
    details = [result.table()]
    if failing and search_smallest:
        details.append(
            _smallest_counterexample(
                model,
                inputs,
                result,
                failing[0],
                seed=seed,
                backend=backend,
                sample_rate=sample_rate,
                fps=fps,
            )
        )
    worst = result.worst
    headline = (
        f"prediction changed under {worst.perturbation} at severity {worst.severity:g}: agreement "
        f"{worst.agreement:.3f} < {min_agreement} on {result.n_examples} examples"
        if failing
        else f"invariance check on {result.n_examples} examples found problems"
    )
    enforce(
        result.findings,
        InvarianceFailure,
        headline=headline,
        details="\n".join(details),
        result=result,
        fail_on=fail_on,
    )
    return result


def _smallest_counterexample(
    model: Model,
    inputs: Any,
    result: InvarianceResult,
    finding: Finding,
    *,
    seed: int,
    backend: str,
    sample_rate: int | None,
    fps: float | None,
) -> str:
    name = str(finding.evidence["perturbation"])
    index = int(finding.evidence["examples"][0])
    spec = get_perturbation(name)
    one = checks.take(inputs, [index])
    try:
        found = find_breaking_severity(
            model,
            one,
            spec,
            seed=seed,
            backend=backend,
            sample_rate=sample_rate,
            fps=fps,
            max_examples=25,
            record=False,
        )
    except AispError as exc:
        return f"smallest counterexample: search failed ({exc})"
    if found.severity is None:
        return f"smallest counterexample: example #{index} did not flip in the Hypothesis search"
    return (
        f"smallest counterexample: example #{index} flips {found.clean_prediction!r} -> "
        f"{found.perturbed_prediction!r} at {name} severity {found.severity:.3f} "
        f"(seed {found.seed}, parameters {found.parameters})"
    )


def _check_severities(severities: Sequence[float]) -> tuple[float, ...]:
    if isinstance(severities, (int, float)):
        severities = (severities,)
    levels = tuple(sorted({check_severity(s) for s in severities}))
    if not levels:
        raise AispError("severities is empty; pass values in [0, 1] such as (0.25, 0.5, 1.0)")
    return levels


def _check_labels(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.shape != (n,):
        raise AispError(f"labels must have shape ({n},) to match the inputs, got {array.shape}")
    return array


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _unchecked_cell(name: str, severity: float, backend: str, error: str, n: int) -> InvarianceCell:
    return InvarianceCell(name, severity, float("nan"), None, (), backend, error=error[:300])


def _invariance_findings(cells: list[InvarianceCell], bound: float, where: str, seed: int) -> list[Finding]:
    findings = []
    for name in dict.fromkeys(c.perturbation for c in cells):
        failing = [c for c in cells if c.perturbation == name and not c.error and c.agreement < bound]
        if not failing:
            continue
        first = min(failing, key=lambda c: c.severity)
        worst = min(failing, key=lambda c: c.agreement)
        severity = Severity.HIGH if first.severity <= 0.5 else Severity.MEDIUM
        params = perturbation_parameters(name, first.severity, seed=seed, n=1)
        findings.append(
            Finding(
                rule_id=RULE_INVARIANCE,
                severity=severity,
                message=(
                    f"{name}: agreement {first.agreement:.3f} < {bound} from severity {first.severity:g} "
                    f"(worst {worst.agreement:.3f} at {worst.severity:g}); "
                    f"{len(first.changed)} predictions changed"
                ),
                location=f"{where}:{name}",
                evidence={
                    "perturbation": name,
                    "severity": first.severity,
                    "examples": list(first.changed[:10]),
                    "parameters": _small(params),
                    "backend": first.backend,
                },
                metrics={"agreement": first.agreement, "severity": first.severity, "min_agreement": bound},
            )
        )
    return findings


def _accuracy_findings(cells: list[InvarianceCell], bound: float, where: str) -> list[Finding]:
    findings = []
    for name in dict.fromkeys(c.perturbation for c in cells):
        low = [c for c in cells if c.perturbation == name and c.accuracy is not None and c.accuracy < bound]
        if low:
            first = min(low, key=lambda c: c.severity)
            findings.append(
                Finding(
                    rule_id=RULE_ACCURACY,
                    severity=Severity.MEDIUM,
                    message=f"{name}: accuracy {first.accuracy:.3f} < {bound} at severity {first.severity:g}",
                    location=f"{where}:{name}",
                    evidence={"perturbation": name, "severity": first.severity},
                    metrics={"accuracy": float(first.accuracy or 0.0), "min_accuracy": bound},
                )
            )
    return findings


def _unchecked_findings(cells: list[InvarianceCell], where: str) -> list[Finding]:
    return [
        Finding(
            rule_id=RULE_UNCHECKED,
            severity=Severity.MEDIUM,
            message=f"{c.perturbation} at severity {c.severity:g} could not be checked: {c.error}",
            location=f"{where}:{c.perturbation}",
            evidence={"perturbation": c.perturbation, "severity": c.severity},
        )
        for c in cells
        if c.error
    ]


def _small(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters rounded and shortened for evidence and messages."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        array = np.asarray(value)
        if array.dtype.kind in "fc":
            array = np.round(array.astype(float), 4)
        out[key] = array.tolist()[:8] if array.ndim else array.item()
    return out


def _metrics(cells: list[InvarianceCell], clean_accuracy: float | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    measured = [c for c in cells if not c.error]
    for c in measured:
        metrics[f"mm.agreement.{c.perturbation}@{c.severity:g}"] = c.agreement
        if c.accuracy is not None:
            metrics[f"mm.accuracy.{c.perturbation}@{c.severity:g}"] = c.accuracy
    if measured:
        metrics["mm.min_agreement"] = min(c.agreement for c in measured)
    if clean_accuracy is not None:
        metrics["mm.clean_accuracy"] = clean_accuracy
    return metrics


def _attach_pictures(
    modality: str, batch: Any, pictures: Mapping[str, tuple[float, Any]], context: Context
) -> None:
    """Original vs perturbed pictures of the first changed examples, when a test is recording."""
    if current_record() is None or modality == "text":
        return
    from pytest_aisp.multimodal import report
    from pytest_aisp.recorder import attach

    for name, (severity, (changed, perturbed)) in list(pictures.items())[:4]:
        index = [int(i) for i in changed[:4]]
        png = report.comparison_png(
            modality,
            checks.take(batch, index),
            checks.take(perturbed, index),
            sample_rate=context.sample_rate,
        )
        attach(f"{name} at severity {severity:g}: original (top) vs perturbed (bottom)", png)


# --- smallest breaking severity (Hypothesis) ---------------------------------------------------


@dataclass(frozen=True)
class BreakingSeverity:
    """The smallest severity found that flips one example's prediction (``severity`` None: none found)."""

    perturbation: str
    severity: float | None
    seed: int
    parameters: Mapping[str, Any]
    clean_prediction: Any
    perturbed_prediction: Any
    evaluations: int
    seconds: float
    findings: tuple[Finding, ...] = field(default=())


def find_breaking_severity(
    model: Model,
    x: Any,
    perturbation: str | Perturbation,
    *,
    seed: int = 0,
    max_examples: int = 60,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
    at_least: float | None = None,
    location: str | None = None,
    record: bool = True,
) -> BreakingSeverity:
    """Search with Hypothesis for the smallest severity (and seed) that flips ``model``'s prediction on ``x``.

    ``x`` is one example (or a batch of one). Hypothesis draws a severity and a seed, keeps those
    that flip the prediction and shrinks them; a bisection on the severity then tightens the bound
    for the seed it found. With ``at_least``, a flip below that severity gives an
    ``AISP-MM-BREAKING-SEVERITY`` finding.
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    started = time.perf_counter()
    spec = get_perturbation(perturbation) if isinstance(perturbation, str) else perturbation
    one = _as_single(spec.modality, x)
    context = Context(sample_rate=sample_rate, fps=fps)
    checks.check_inputs(spec.modality, one, context)
    model = as_score_function(model)
    clean = predict_labels(model, one)[0]
    calls = 0

    def flipped(severity: float, draw_seed: int) -> Any:
        nonlocal calls
        calls += 1
        out = apply_perturbation(
            spec, one, severity, seed=draw_seed, backend=backend, sample_rate=sample_rate, fps=fps
        )
        label = predict_labels(model, out)[0]
        return label if label != clean else None

    strategy = st.tuples(
        st.floats(0.0, 1.0, allow_nan=False), st.integers(0, 2**16 - 1).map(lambda s: s + seed)
    )
    config = settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    try:
        best_severity, best_seed = find(strategy, lambda pair: flipped(*pair) is not None, settings=config)
    except NoSuchExample:
        best = None
    else:
        best = _bisect(flipped, float(best_severity), int(best_seed))
    where = location if location is not None else model_name(model)
    if best is None:
        result = BreakingSeverity(
            spec.name, None, seed, {}, _scalar(clean), None, calls, time.perf_counter() - started
        )
    else:
        severity, draw_seed = best
        label = flipped(severity, draw_seed)
        params = _small(perturbation_parameters(spec, severity, seed=draw_seed, n=1))
        findings: tuple[Finding, ...] = ()
        if at_least is not None and severity < at_least:
            findings = (
                Finding(
                    rule_id=RULE_BREAKING,
                    severity=Severity.MEDIUM,
                    message=(
                        f"{spec.name} flips the prediction {_scalar(clean)!r} -> {_scalar(label)!r} "
                        "at severity "
                        f"{severity:.3f} < {at_least}"
                    ),
                    location=f"{where}:{spec.name}",
                    evidence={
                        "perturbation": spec.name,
                        "severity": round(severity, 4),
                        "seed": draw_seed,
                        "parameters": params,
                    },
                    metrics={"breaking_severity": severity},
                ),
            )
        result = BreakingSeverity(
            spec.name,
            severity,
            draw_seed,
            params,
            _scalar(clean),
            _scalar(label),
            calls,
            time.perf_counter() - started,
            findings,
        )
    if record:
        record_findings(result.findings)
        if result.severity is not None:
            record_metric(f"mm.breaking_severity.{spec.name}", result.severity)
    return result


def assert_breaking_severity(
    model: Model,
    x: Any,
    perturbation: str | Perturbation,
    *,
    at_least: float = 0.5,
    seed: int = 0,
    max_examples: int = 60,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
    location: str | None = None,
    fail_on: Severity | str | None = None,
) -> BreakingSeverity:
    """Fail with ``InvarianceFailure`` when a severity below ``at_least`` flips the prediction on ``x``."""
    __tracebackhide__ = True
    result = find_breaking_severity(
        model,
        x,
        perturbation,
        seed=seed,
        max_examples=max_examples,
        backend=backend,
        sample_rate=sample_rate,
        fps=fps,
        at_least=at_least,
        location=location,
    )
    headline = (
        f"{result.perturbation} flips the prediction at severity {result.severity:.3f} < {at_least}"
        if result.severity is not None
        else f"{result.perturbation}: no flip found"
    )
    details = (
        f"smallest counterexample: {result.clean_prediction!r} -> {result.perturbed_prediction!r} "
        f"(seed {result.seed}, parameters {dict(result.parameters)})"
    )
    enforce(
        result.findings, InvarianceFailure, headline=headline, details=details, result=result, fail_on=fail_on
    )
    return result


def _bisect(
    flipped: Callable[[float, int], Any], high: float, draw_seed: int, steps: int = 10
) -> tuple[float, int]:
    """Tighten the breaking severity for ``draw_seed``: ``high`` flips; find the lowest flipping level."""
    low = 0.0
    for _ in range(steps):
        if high - low < 1e-3:
            break
        middle = (low + high) / 2
        if flipped(middle, draw_seed) is not None:
            high = middle
        else:
            low = middle
    return high, draw_seed


def _as_single(modality: str, x: Any) -> Any:
    if modality == "text":
        if isinstance(x, str):
            return [x]
        texts = checks.check_texts(x)
        if len(texts) != 1:
            raise AispError(f"find_breaking_severity takes one example, got {len(texts)}; pass x[i:i+1]")
        return texts
    array = np.asarray(x) if not isinstance(x, np.ndarray) else x
    ndim = {"image": 4, "audio": 2, "video": 5}[modality]
    if array.ndim == ndim - 1:
        array = array[None]
    if array.ndim == ndim and array.shape[0] != 1:
        raise AispError(
            f"find_breaking_severity takes one example, got a batch of {array.shape[0]}; pass x[i:i+1]"
        )
    return array
