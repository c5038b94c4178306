"""Is the robustness number believable? Checks for the usual ways an evaluation overstates robustness.

A gradient attack that finds nothing proves little when the model hides its gradients (gradient
masking): quantised inputs, saturated softmax, non-differentiable preprocessing. These checks
compare attacks with each other and with the clean run, and report what looks wrong as findings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_aisp.findings import Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.robust.evaluate import (
    FOOLED,
    RULE_NON_MONOTONE,
    evaluate_robustness,
    model_and_data,
    torch_scores,
)
from pytest_aisp.robust.model import ModelUnderTest, as_arrays, resolved
from pytest_aisp.verdict import enforce

RULE_GRADIENT_MASKING = "AISP-ROBUST-GRADIENT-MASKING"
RULE_EPS0_MISMATCH = "AISP-ROBUST-EPS0-MISMATCH"
RULE_ZERO_GRADIENT = "AISP-ROBUST-ZERO-GRADIENT"


@dataclass(frozen=True)
class SanityResult:
    """What the sanity checks measured and the findings they raised."""

    findings: tuple[Finding, ...]
    metrics: Mapping[str, float] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)


def zero_gradient_fraction(model: Any, data: Any = None, *, device: str | None = None,
                           max_samples: int | None = 512) -> float:
    """Fraction of correctly classified inputs whose loss gradient is exactly zero or not finite."""
    import torch

    classifier, data, _, device = model_and_data(model, data, device)
    x, y = as_arrays(data)
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    classifier, scores = resolved(classifier, x, y)
    keep = scores.argmax(axis=1) == y
    if not classifier.white_box or not keep.any():
        return 0.0
    probabilities = bool(np.all(scores >= 0) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))
    from pytest_aisp.robust.attacks import Goal, _gradient

    with torch_scores(classifier, device) as score_fn:
        x_t = torch.as_tensor(x[keep], device=device)
        _, _, gradient = _gradient(score_fn, Goal(probabilities=probabilities), x_t,
                                   torch.as_tensor(y[keep], device=device))
    flat = gradient.flatten(1)
    dead = (flat.abs().amax(dim=1) == 0) | ~torch.isfinite(flat).all(dim=1)
    return float(dead.float().mean())


def evaluate_gradient_masking(
    model: Any,
    data: Any = None,
    *,
    eps: float = 0.03,
    norm: Any = "inf",
    steps: int | None = None,
    square_steps: int = 300,
    seed: int = 0,
    device: str | None = None,
    max_samples: int | None = 512,
    tolerance: float = 0.01,
    zero_gradient_tolerance: float = 0.05,
) -> SanityResult:
    """Run the sanity checks at ``eps`` and return their findings; never raises on a finding.

    - eps=0 must give the clean accuracy (``AISP-ROBUST-EPS0-MISMATCH``);
    - square (Linf) or uniform noise must not beat pgd by more than ``tolerance``
      (``AISP-ROBUST-GRADIENT-MASKING``);
    - at most ``zero_gradient_tolerance`` of the inputs may have a zero gradient
      (``AISP-ROBUST-ZERO-GRADIENT``);
    - a point fooled at eps/2 must be fooled at eps (``AISP-ROBUST-NON-MONOTONE``).
    """
    started = time.perf_counter()
    common: dict[str, Any] = {"norm": norm, "seed": seed, "device": device, "max_samples": max_samples}
    location = model.location if isinstance(model, ModelUnderTest) else ""
    at_zero = evaluate_robustness(model, data, attack="pgd", eps=0.0, steps=2, **common)
    location = location or at_zero.location
    pgd = evaluate_robustness(model, data, attack="pgd", eps=eps, steps=steps, **common)
    half = evaluate_robustness(model, data, attack="pgd", eps=eps / 2, steps=steps, **common)
    black_box = [evaluate_robustness(model, data, attack="noise", eps=eps, **common)]
    if pgd.norm == "inf":
        black_box.append(evaluate_robustness(model, data, attack="square", eps=eps, steps=square_steps,
                                             **common))
    dead = zero_gradient_fraction(model, data, device=device, max_samples=max_samples)
    metrics = {"clean_acc": pgd.clean_acc, "eps0_acc": at_zero.robust_acc, "pgd_acc": pgd.robust_acc,
               "zero_gradient_fraction": dead}
    metrics.update({f"{r.attack}_acc": r.robust_acc for r in black_box})
    findings: list[Finding] = []
    settings = {"eps": pgd.eps, "norm": pgd.norm, "steps": pgd.steps, "seed": seed, "n": pgd.n}
    if abs(at_zero.robust_acc - at_zero.clean_acc) > 0:
        findings.append(Finding(
            RULE_EPS0_MISMATCH, Severity.HIGH,
            f"at eps=0 the accuracy is {at_zero.robust_acc:.3f}, not the clean accuracy "
            f"{at_zero.clean_acc:.3f}: "
            "the model is not deterministic in eval mode, or its inputs are changed before the attack",
            location, settings, {"eps0_acc": at_zero.robust_acc, "clean_acc": at_zero.clean_acc}))
    for other in black_box:
        gap = pgd.robust_acc - other.robust_acc
        if gap > tolerance:
            missed = int(np.sum((other.outcomes == FOOLED) & (pgd.outcomes != FOOLED)))
            findings.append(Finding(
                RULE_GRADIENT_MASKING, Severity.HIGH,
                f"{other.attack} (no gradients) brings accuracy to {other.robust_acc:.3f} where pgd only "
                f"reaches {pgd.robust_acc:.3f} at eps={pgd.eps:g}: the gradients mislead the attack "
                "(gradient masking), "
                "so gradient-based robust accuracy overstates robustness; evaluate with square/apgd-ce and "
                "remove non-differentiable or saturating layers from the attacked graph",
                location,
                {**settings, "black_box_attack": other.attack, "points_only_black_box_fooled": missed},
                {"pgd_acc": pgd.robust_acc, f"{other.attack}_acc": other.robust_acc, "gap": gap}))
    if dead > zero_gradient_tolerance:
        findings.append(Finding(
            RULE_ZERO_GRADIENT, Severity.MEDIUM,
            f"{dead:.1%} of correctly classified inputs have an exactly zero (or NaN) loss gradient: "
            "gradient "
            "attacks cannot move them; check for rounding, argmax or saturated outputs in the forward pass",
            location, settings, {"zero_gradient_fraction": dead}))
    regressed = int(np.sum((half.outcomes == FOOLED) & (pgd.outcomes != FOOLED)))
    if regressed:
        findings.append(Finding(
            RULE_NON_MONOTONE, Severity.LOW,
            f"{regressed} point(s) fooled at eps={half.eps:g} were not fooled at eps={pgd.eps:g}: the attack "
            "is not finding the worst case; add steps or restarts",
            location, settings, {"non_monotone_points": regressed}))
    record_findings(findings)
    for name, value in metrics.items():
        record_metric(f"sanity_{name}", value)
    return SanityResult(tuple(findings), metrics, {"total_s": time.perf_counter() - started})


def assert_no_gradient_masking(model: Any, data: Any = None, *, eps: float = 0.03,
                               fail_on: Severity | str | None = None, **options: Any) -> SanityResult:
    """Fail with ``RobustnessFailure`` when the sanity checks find that the robustness number cannot be
    trusted (gradient masking, eps=0 mismatch ...); return the result otherwise."""
    __tracebackhide__ = True
    result = evaluate_gradient_masking(model, data, eps=eps, **options)
    numbers = ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items())
    enforce(result.findings, RobustnessFailure, headline=f"robustness evaluation at eps={eps:g} is not sound",
            details=f"  {numbers}", result=result, fail_on=fail_on)
    return result
