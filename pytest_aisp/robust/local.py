"""Local robustness of one input, searched with Hypothesis.

``assert_locally_robust(model, x, y, eps)`` lets Hypothesis look for a perturbation in the eps ball
around ``x`` that changes the prediction, steered by ``hypothesis.target`` towards a higher loss.
A failure is shrunk towards the smallest perturbation, and the report carries its norm and the
``@reproduce_failure`` blob. Under the ``aisp-ci`` profile (derandomized) runs repeat exactly.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import record_findings
from pytest_aisp.robust.evaluate import normalise_norm
from pytest_aisp.robust.model import ModelUnderTest, as_classifier, checked_scores
from pytest_aisp.verdict import enforce

RULE_LOCAL = "AISP-ROBUST-LOCAL"
_BLOB = re.compile(r"@reproduce_failure\([^)]*\)")


class _Fooled(Exception):
    """Raised inside the search when a perturbation changes the prediction."""


@dataclass(frozen=True)
class LocalRobustnessResult:
    """The search's outcome: the counterexample (None when none was found), its norm, its class."""

    eps: float
    norm: str
    label: int
    examples: int
    findings: tuple[Finding, ...] = ()
    perturbation: np.ndarray | None = field(default=None, repr=False)
    distance: float | None = None
    adversarial_label: int | None = None
    reproduce: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def robust(self) -> bool:
        return self.perturbation is None


def evaluate_local_robustness(model: Any, x: Any, y: int, eps: float, *, norm: Any = "inf",
                              grid: int | tuple[int, ...] = 4, max_examples: int = 200, seed: int = 0,
                              location: str = "") -> LocalRobustnessResult:
    """Search the eps ball around one input ``x`` (label ``y``) for a perturbation that changes the
    prediction; never raises on a finding."""
    import hypothesis
    from hypothesis import HealthCheck

    from pytest_aisp.strategies import l2_perturbations, linf_perturbations

    started = time.perf_counter()
    norm = normalise_norm(norm)
    classifier = as_classifier(model)
    location = location or (model.location if isinstance(model, ModelUnderTest) else "") or classifier.name
    point = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    if classifier.input_shape is not None and point.shape != tuple(classifier.input_shape):
        if point.shape[1:] == tuple(classifier.input_shape) and len(point) == 1:
            point = point[0]
        else:
            raise AispError(f"x has shape {point.shape} but the model expects one input of shape "
                            f"{tuple(classifier.input_shape)}")
    lower, upper = classifier.bounds_for(point.shape)
    lower, upper = np.minimum(lower, point), np.maximum(upper, point)
    label = int(y)

    def margin_and_class(candidate: np.ndarray) -> tuple[float, int]:
        scores = checked_scores(classifier.predict(candidate[None]), 1, location)[0]
        if label >= len(scores):
            raise AispError(f"label {label} is out of range for a model with {len(scores)} classes")
        others = np.delete(scores, label)
        return float(scores[label] - others.max()), int(scores.argmax())

    found: list[tuple[np.ndarray, int]] = []
    tried = [0]
    strategy = (linf_perturbations if norm == "inf" else l2_perturbations)(point.shape, eps, grid=grid)

    @hypothesis.settings(hypothesis.settings.default, max_examples=max_examples, deadline=None, database=None,
                         print_blob=True, suppress_health_check=list(HealthCheck))
    @hypothesis.seed(seed)
    @hypothesis.given(delta=strategy)
    def search(delta: np.ndarray) -> None:
        tried[0] += 1
        candidate = np.clip(point + delta, lower, upper).astype(np.float32)
        margin, predicted = margin_and_class(candidate)
        hypothesis.target(-margin, label="loss margin")
        if predicted != label:
            found.append((candidate - point, predicted))
            raise _Fooled(f"prediction {label} -> {predicted}")

    reproduce = ""
    clean_margin, clean_class = margin_and_class(point)
    if clean_class != label:
        found.append((np.zeros_like(point), clean_class))
    else:
        try:
            search()
        except _Fooled as exc:
            notes = "\n".join(getattr(exc, "__notes__", []))
            blob = _BLOB.search(notes)
            reproduce = blob.group(0) if blob else ""
    findings: tuple[Finding, ...] = ()
    perturbation = distance = adversarial_label = None
    if found:
        perturbation, adversarial_label = found[-1]  # the last failing example is the shrunk one
        flat = perturbation.reshape(-1).astype(np.float64)
        distance = float(np.abs(flat).max() if norm == "inf" else np.linalg.norm(flat))
        norm_name = "Linf" if norm == "inf" else "L2"
        findings = (Finding(
            RULE_LOCAL, Severity.HIGH,
            f"a perturbation of {norm_name} norm {distance:.4g} (eps={eps:g}) changes the prediction "
            f"{label} -> {adversarial_label}",
            location, {"eps": eps, "norm": norm, "label": label, "adversarial_label": adversarial_label,
                       "seed": seed, "reproduce": reproduce},
            {"distance": distance, "clean_margin": clean_margin}),)
    record_findings(findings)
    return LocalRobustnessResult(eps=float(eps), norm=norm, label=label, examples=tried[0], findings=findings,
                                 perturbation=perturbation, distance=distance,
                                 adversarial_label=adversarial_label,
                                 reproduce=reproduce, timings={"total_s": time.perf_counter() - started})


def assert_locally_robust(model: Any, x: Any, y: int, eps: float, *, fail_on: Severity | str | None = None,
                          **options: Any) -> LocalRobustnessResult:
    """Fail with ``RobustnessFailure`` when Hypothesis finds a perturbation within ``eps`` of ``x``
    that changes the prediction; the message gives the shrunk perturbation's norm and the blob."""
    __tracebackhide__ = True
    result = evaluate_local_robustness(model, x, y, eps, **options)
    details = ""
    if result.perturbation is not None:
        details = (f"  smallest perturbation found: {'Linf' if result.norm == 'inf' else 'L2'} norm "
                   f"{result.distance:.4g}, label {result.label} -> {result.adversarial_label}, after "
                   f"{result.examples} examples")
        if result.reproduce:
            details += f"\n  reproduce with: {result.reproduce}"
    enforce(result.findings, RobustnessFailure,
            headline=f"input is not locally robust at eps={result.eps:g}", details=details, result=result,
            fail_on=fail_on)
    return result
