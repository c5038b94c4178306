"""Robust accuracy under an evasion attack, as a result object and as an assertion.

``evaluate_robustness`` attacks the points the model gets right, batch by batch on the test's
device, and returns a :class:`RobustnessResult`; ``assert_robust`` raises ``RobustnessFailure``
when the robust accuracy is below ``min_acc``. ``robustness_curve`` sweeps eps.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import attach, current_record, record_findings, record_metric
from pytest_aisp.robust.attacks import ATTACKS, DEFAULT_STEPS, GRADIENT_ATTACKS, Ball, Goal, run_attack
from pytest_aisp.robust.model import (
    Classifier,
    ModelUnderTest,
    as_arrays,
    as_classifier,
    attack_mode,
    call_module,
    module_device,
    resolved,
)
from pytest_aisp.stats import wilson_interval
from pytest_aisp.verdict import enforce

RULE_EVASION = "AISP-ROBUST-EVASION"
RULE_NOT_EVALUATED = "AISP-ROBUST-NOT-EVALUATED"
RULE_NON_MONOTONE = "AISP-ROBUST-NON-MONOTONE"

# Per-sample outcomes.
CLEAN_WRONG, FOOLED, ROBUST, NOT_ATTACKED = -1, 0, 1, 2
WORST_KEPT = 5
DEFAULT_BATCH = 256  # ART's batch size unless one is given
# Native attacks run the attacked points in batches of about this many input elements (4 MiB of float32):
# small inputs go in one batch, because per-step Python and dispatch overhead, not arithmetic, dominates.
AUTO_BATCH_ELEMENTS = 1 << 20
AUTO_BATCH_MAX = 8192


def auto_batch_size(input_shape: Sequence[int]) -> int:
    """Points per batch of a native attack when none is given: never fewer than 256, up to 8192 for
    inputs small enough that a batch holds at most ``AUTO_BATCH_ELEMENTS`` numbers."""
    features = max(1, int(np.prod(tuple(input_shape))))
    return max(DEFAULT_BATCH, min(AUTO_BATCH_MAX, AUTO_BATCH_ELEMENTS // features))



def normalise_norm(norm: Any) -> str:
    """``"inf"`` or ``"2"`` from the usual spellings (inf, np.inf, "linf", 2, "l2")."""
    text = str(norm).strip().lower().lstrip("l")
    if text in {"inf", "infinity"}:
        return "inf"
    if text in {"2", "2.0"}:
        return "2"
    raise AispError(f"norm {norm!r} is not supported; use 'inf' (Linf) or '2' (L2)")


@dataclass(frozen=True)
class AdversarialExample:
    """One fooled point: where it is in the data, its label, what the model said, how far it moved."""

    index: int
    label: int
    adversarial_label: int
    distance: float


@dataclass(frozen=True)
class RobustnessResult:
    """The outcome of one attack on one model and data set.

    ``outcomes`` holds one code per sample: -1 misclassified before the attack, 0 fooled, 1 robust,
    2 not attacked (the run stopped once ``min_acc`` was decided; ``stopped_early`` says which way,
    and ``robust_acc`` is then the bound that decided it: ``robust_acc_bound`` is "at most" when the
    run stopped failing, "at least" when it stopped passing, "exact" when every point was attacked).
    ``attack_success_rate`` is fooled / attacked over the points actually attacked. ``adversarial``
    holds the attacked inputs (clean inputs where nothing was found).
    """

    attack: str
    eps: float
    norm: str
    steps: int
    restarts: int
    seed: int
    targeted: bool
    n: int
    clean_correct: int
    robust_correct: int
    clean_acc: float
    robust_acc: float
    ci_low: float
    ci_high: float
    attack_success_rate: float
    outcomes: np.ndarray = field(repr=False)
    adversarial: np.ndarray = field(repr=False)
    adversarial_labels: np.ndarray = field(repr=False)
    worst: tuple[AdversarialExample, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    min_acc: float | None = None
    stopped_early: str | None = None
    location: str = ""
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fooled(self) -> np.ndarray:
        """Bool per sample: the attack changed a correct prediction."""
        return self.outcomes == FOOLED

    @property
    def samples_per_s(self) -> float:
        """Attacked points per second of attack time."""
        attacked = int(np.sum((self.outcomes == FOOLED) | (self.outcomes == ROBUST)))
        return attacked / max(self.timings.get("attack_s", 0.0), 1e-9)

    @property
    def attacked(self) -> int:
        """Points the attack ran on (fooled or robust)."""
        return int(np.sum((self.outcomes == FOOLED) | (self.outcomes == ROBUST)))

    @property
    def not_attacked(self) -> int:
        """Correctly classified points left unattacked because the verdict was already decided."""
        return int(np.sum(self.outcomes == NOT_ATTACKED))

    @property
    def robust_acc_bound(self) -> str:
        """What ``robust_acc`` is: "exact" (every point attacked), "at most" (stopped once failing: the
        unattacked points count as robust) or "at least" (stopped once passing: they count as fooled)."""
        if not self.stopped_early:
            return "exact"
        return "at most" if self.stopped_early.endswith("failed") else "at least"

    @property
    def metrics(self) -> dict[str, float]:
        """Named numbers for the reports; each name has one meaning (see docs/robust.md, Metrics).

        ``robust_acc`` (with its Wilson interval ``ci_low``/``ci_high``) is only reported when every
        point was attacked; a run that stopped early reports ``robust_acc_at_most`` or
        ``robust_acc_at_least`` instead, and ``stopped_early`` 1."""
        accuracy: dict[str, float]
        if self.robust_acc_bound == "exact":
            accuracy = {"robust_acc": self.robust_acc, "ci_low": self.ci_low, "ci_high": self.ci_high}
        else:
            accuracy = {f"robust_acc_{self.robust_acc_bound.replace(' ', '_')}": self.robust_acc}
        return {"clean_acc": self.clean_acc, **accuracy, "attack_success_rate": self.attack_success_rate,
                "attacked": float(self.attacked), "not_attacked": float(self.not_attacked),
                "stopped_early": float(bool(self.stopped_early)), "eps": self.eps, "n": float(self.n)}

    def settings_text(self) -> str:
        """The attack settings, as a reader needs them to reproduce the run."""
        norm = "Linf" if self.norm == "inf" else "L2"
        goal = ", targeted" if self.targeted else ""
        return (f"attack={self.attack!r} norm={norm} eps={self.eps:g} steps={self.steps} "
                f"restarts={self.restarts} seed={self.seed}{goal}")

    def accuracy_text(self) -> str:
        """Robust accuracy with what it means: exact with its interval, or the bound an early stop gives."""
        if self.robust_acc_bound == "exact":
            return (f"robust accuracy {self.robust_acc:.3f} [95% CI {self.ci_low:.3f}-{self.ci_high:.3f}], "
                    f"attack success {self.attack_success_rate:.3f} of {self.attacked} attacked")
        return (f"robust accuracy {self.robust_acc_bound} {self.robust_acc:.3f} ({self.stopped_early} once "
                f"the verdict was decided; {self.not_attacked} correct points not attacked), attack success "
                f"{self.attack_success_rate:.3f} of the {self.attacked} attacked")

    def summary(self) -> str:
        """One line: robust and clean accuracy, the interval or bound, the settings."""
        return (f"{self.accuracy_text()}, clean accuracy {self.clean_acc:.3f}, n={self.n}; "
                f"{self.settings_text()}")


# --- running the attack -------------------------------------------------------------------------


def model_and_data(model: Any, data: Any, device: str | None) -> tuple[Classifier, Any, str, str]:
    """Classifier, data, location and device from whatever the caller passed."""
    location, chosen = "", device
    if isinstance(model, ModelUnderTest):
        location = model.location
        chosen = device or model.device
        if data is None:
            if model.data is None:
                raise AispError("the model under test has no evaluation data: set --aisp-data (a .npz with x "
                                "and y) or pass data=(x, y)")
            data = model.data
        classifier = model.classifier
    else:
        classifier = as_classifier(model)
    if chosen is None:
        chosen = str(module_device(classifier.module)) if classifier.white_box else "cpu"
    return classifier, data, location or classifier.name or classifier.kind, chosen


@contextlib.contextmanager
def torch_scores(classifier: Classifier, device: str) -> Iterator[Any]:
    """A function from a torch batch on ``device`` to class scores, differentiable for torch models.

    A torch model runs in eval mode with frozen parameters (restored afterwards); one on another
    device is copied there, so the caller's module is never moved."""
    torch = require("torch", "torch", "the native attacks run in torch")
    if not classifier.white_box:
        def black_box(batch: Any) -> Any:
            scores = classifier.predict(batch.detach().cpu().numpy())
            return torch.as_tensor(np.asarray(scores), dtype=torch.float32, device=batch.device)

        yield black_box
        return
    module = classifier.module
    if module_device(module) != torch.device(device):
        module = copy.deepcopy(module).to(device)
    preprocess = classifier.preprocess

    def white_box(batch: Any) -> Any:
        return call_module(module, preprocess(batch) if preprocess is not None else batch).float()

    with attack_mode(module):
        yield white_box


def _targets(target: Any, y: np.ndarray, nb_classes: int) -> np.ndarray:
    if target is None:
        return (y + 1) % nb_classes
    targets = np.broadcast_to(np.asarray(target, dtype=np.int64), y.shape).copy()
    if targets.min() < 0 or targets.max() >= nb_classes:
        raise AispError(f"target classes must be in 0..{nb_classes - 1}")
    return targets


def _distance(delta: np.ndarray, norm: str) -> np.ndarray:
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    return np.abs(flat).max(axis=1) if norm == "inf" else np.linalg.norm(flat, axis=1)


def _decided(robust: int, pending: int, n: int, min_acc: float) -> str | None:
    """'passed' or 'failed' once the remaining points cannot change the verdict, else None."""
    if robust >= min_acc * n:
        return "passed"
    if robust + pending < min_acc * n:
        return "failed"
    return None


def evaluate_robustness(
    model: Any,
    data: Any = None,
    *,
    attack: str = "pgd",
    eps: float = 0.03,
    norm: Any = "inf",
    steps: int | None = None,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    schedule: str = "constant",
    targeted: bool = False,
    target: Any = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | None = None,
    min_acc: float | None = None,
    max_samples: int | None = None,
    attack_options: Mapping[str, Any] | None = None,
) -> RobustnessResult:
    """Attack ``model`` on ``data`` and measure its robust accuracy; never raises on a weak model.

    ``model`` is anything :func:`as_classifier` accepts, or a ``ModelUnderTest`` (then ``data``
    defaults to its own). ``attack`` is one of fgsm, pgd, apgd-ce, square, noise, or
    ``"art:<ART attack class>"`` (``attack_options`` go to its constructor). With ``min_acc``
    the run stops between batches as soon as the verdict is decided. ``batch_size`` caps the points
    a native attack holds at once (default: :func:`auto_batch_size` of the input shape; ART: 256).
    """
    started = time.perf_counter()
    norm = normalise_norm(norm)
    if eps is None or not (eps >= 0) or not math.isfinite(eps):
        raise AispError(f"eps must be a finite number >= 0, got {eps!r}")
    if min_acc is not None and not 0.0 <= min_acc <= 1.0:
        raise AispError(f"min_acc must be between 0 and 1, got {min_acc!r}")
    attack = attack.strip()
    is_art = attack.lower().startswith("art:")
    if not is_art and attack.lower() not in ATTACKS:
        raise AispError(f"unknown attack {attack!r}; use one of {', '.join(ATTACKS)} "
                        "or 'art:<ART attack class>'")
    attack = attack if is_art else attack.lower()
    steps = int(steps if steps is not None else DEFAULT_STEPS.get(attack, 20))
    if steps < 1 or restarts < 1 or (batch_size is not None and batch_size < 1):
        raise AispError("steps, restarts and batch_size must be at least 1")
    classifier, data, location, device = model_and_data(model, data, device)
    x, y = as_arrays(data)
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    classifier, clean_scores = resolved(classifier, x, y)
    if attack in GRADIENT_ATTACKS and not classifier.white_box:
        raise AispError(f"{attack} needs gradients but {location} is a black-box {classifier.kind} model; "
                        "use attack='square' or 'noise', or an ART black-box attack such as "
                        "'art:HopSkipJump'")
    probabilities = bool(np.all(clean_scores >= 0) and np.allclose(clean_scores.sum(axis=1), 1.0, atol=1e-3))
    nb_classes = int(classifier.nb_classes or clean_scores.shape[1])
    labels = _targets(target, y, nb_classes) if targeted else y
    clean_pred = clean_scores.argmax(axis=1)
    correct = clean_pred == y
    # A targeted attack cannot push a point to its own class: such points count as robust, unattacked.
    attackable = correct & (clean_pred != labels) if targeted else correct
    lower, upper = classifier.bounds_for(x.shape[1:])
    n = len(x)
    outcomes = np.where(correct, NOT_ATTACKED, CLEAN_WRONG).astype(np.int8)
    outcomes[correct & ~attackable] = ROBUST
    adversarial = x.copy()
    adversarial_labels = clean_pred.copy()
    clean_s = time.perf_counter() - started
    attack_started = time.perf_counter()
    order = np.flatnonzero(attackable)
    stopped: str | None = None
    options = dict(attack_options or {})
    size = batch_size or (DEFAULT_BATCH if is_art else auto_batch_size(x.shape[1:]))
    if is_art:
        from pytest_aisp.robust.art_bridge import art_adversarial

        chunks = [order]
    else:
        chunks = [order[i:i + size] for i in range(0, len(order), size)]
    with torch_scores(classifier, device) if not is_art else contextlib.nullcontext() as scores:
        for number, index in enumerate(chunks):
            if min_acc is not None:
                robust = int(np.sum(outcomes == ROBUST))
                stopped = _decided(robust, int(np.sum(outcomes == NOT_ATTACKED)), n, min_acc)
                if stopped:
                    break
            if len(index) == 0:
                continue
            if is_art:
                x_adv = art_adversarial(attack[4:], classifier, x[index], labels[index], eps=eps, norm=norm,
                                        steps=steps, step_size=step_size, targeted=targeted, seed=seed,
                                        batch_size=size, device=device, options=options)
                x_adv = _project_numpy(x_adv, x[index], eps, norm, lower, upper)
                predicted = checked_predict(classifier, x_adv)
            else:
                x_adv, predicted = _native_batch(attack, scores, x[index], labels[index], lower, upper,
                                                 eps=eps, norm=norm, steps=steps, step_size=step_size,
                                                 restarts=restarts, random_start=random_start,
                                                 schedule=schedule, targeted=targeted,
                                                 probabilities=probabilities, seed=seed * 1_000_003 + number,
                                                 device=device, options=options)
            won = predicted == labels[index] if targeted else predicted != y[index]
            outcomes[index] = np.where(won, FOOLED, ROBUST)
            adversarial[index] = np.where(won.reshape((-1,) + (1,) * (x.ndim - 1)), x_adv, x[index])
            adversarial_labels[index] = np.where(won, predicted, clean_pred[index])
    attack_s = time.perf_counter() - attack_started
    return _result(
        attack=attack, eps=eps, norm=norm, steps=steps, restarts=restarts, seed=seed, targeted=targeted,
        x=x, y=y, outcomes=outcomes, adversarial=adversarial, adversarial_labels=adversarial_labels,
        min_acc=min_acc, stopped=stopped, location=location, device=device,
        timings={"clean_s": clean_s, "attack_s": attack_s, "total_s": time.perf_counter() - started},
        options={"step_size": step_size, "random_start": random_start, "schedule": schedule, "batch_size": size,
                 "target": None if target is None else np.asarray(target).tolist(), **options},
    )


def checked_predict(classifier: Classifier, x: np.ndarray) -> np.ndarray:
    """Predicted classes of ``x``; NaN scores raise ``AispError``."""
    scores = np.asarray(classifier.predict(x), dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise AispError(f"{classifier.name or classifier.kind} returned NaN or infinite scores on "
                        "attacked inputs")
    return scores.argmax(axis=1)


def _native_batch(attack: str, scores: Any, x: np.ndarray, labels: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, *, eps: float, norm: str, steps: int, step_size: float | None,
                  restarts: int, random_start: bool, schedule: str, targeted: bool, probabilities: bool,
                  seed: int, device: str, options: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x_t = torch.as_tensor(x, device=device)
    lower_t = torch.as_tensor(lower, device=device)[None]
    upper_t = torch.as_tensor(upper, device=device)[None]
    if bool((x_t < lower_t).any() or (x_t > upper_t).any()):
        # A clean input outside the bounds stays where it is: the attack never moves it further out.
        lower_t, upper_t = torch.minimum(lower_t, x_t), torch.maximum(upper_t, x_t)
    ball = Ball(x_t, float(eps), norm, lower_t, upper_t)
    labels_t = torch.as_tensor(labels, device=device)
    generator = torch.Generator(device=device).manual_seed(int(seed) % (2**63))
    x_adv = run_attack(attack, scores, ball, labels_t, Goal(targeted=targeted, probabilities=probabilities),
                       steps=steps, step_size=step_size, restarts=restarts, random_start=random_start,
                       schedule=schedule, generator=generator, **options)
    with torch.no_grad():
        out = scores(x_adv)
    if not bool(torch.isfinite(out).all()):
        raise AispError("the model returned NaN or infinite scores on attacked inputs")
    return x_adv.cpu().numpy(), out.argmax(dim=1).cpu().numpy()


def _project_numpy(x_adv: np.ndarray, x: np.ndarray, eps: float, norm: str, lower: np.ndarray,
                   upper: np.ndarray) -> np.ndarray:
    """``x_adv`` moved into the eps ball around ``x`` and the bounds (for attacks that ignore eps)."""
    x_adv = np.asarray(x_adv, dtype=np.float32).reshape(x.shape)
    delta = x_adv.astype(np.float64) - x
    if norm == "inf":
        delta = np.clip(delta, -eps, eps)
    else:
        norms = np.linalg.norm(delta.reshape(len(delta), -1), axis=1)
        scale = np.minimum(1.0, eps / np.maximum(norms, 1e-12)) * (1 - 1e-7)
        delta = delta * scale.reshape((-1,) + (1,) * (x.ndim - 1))
    low, high = np.minimum(lower, x), np.maximum(upper, x)
    out = np.clip(x + delta, low, high).astype(np.float32)
    if norm == "inf":
        over = np.abs(out.astype(np.float64) - x) > eps
        out = np.where(over, np.nextafter(out, x), out)
    return out


def _result(*, attack: str, eps: float, norm: str, steps: int, restarts: int, seed: int, targeted: bool,
            x: np.ndarray, y: np.ndarray, outcomes: np.ndarray, adversarial: np.ndarray,
            adversarial_labels: np.ndarray, min_acc: float | None, stopped: str | None, location: str,
            device: str, timings: Mapping[str, float], options: Mapping[str, Any]) -> RobustnessResult:
    n = len(x)
    clean_correct = int(np.sum(outcomes != CLEAN_WRONG))
    robust_correct = int(np.sum(outcomes == ROBUST))
    if stopped == "failed":
        robust_correct += int(np.sum(outcomes == NOT_ATTACKED))  # the upper bound that still fails
    fooled = int(np.sum(outcomes == FOOLED))
    attacked = fooled + int(np.sum(outcomes == ROBUST))
    distances = _distance(adversarial - x, norm)
    worst_index = np.flatnonzero(outcomes == FOOLED)
    worst_index = worst_index[np.argsort(distances[worst_index], kind="stable")][:WORST_KEPT]
    worst = tuple(AdversarialExample(int(i), int(y[i]), int(adversarial_labels[i]), float(distances[i]))
                  for i in worst_index)
    low, high = wilson_interval(robust_correct, n)
    result = RobustnessResult(
        attack=attack, eps=float(eps), norm=norm, steps=steps, restarts=restarts, seed=seed,
        targeted=targeted, n=n, clean_correct=clean_correct, robust_correct=robust_correct,
        clean_acc=clean_correct / n, robust_acc=robust_correct / n, ci_low=low, ci_high=high,
        attack_success_rate=fooled / attacked if attacked else 0.0, outcomes=outcomes,
        adversarial=adversarial, adversarial_labels=adversarial_labels, worst=worst, timings=dict(timings),
        min_acc=min_acc, stopped_early=None if stopped is None else f"stopped early: {stopped}",
        location=location, device=device, options=dict(options),
    )
    result = replace(result, findings=tuple(_findings(result)))
    record_findings(result.findings)
    for name, value in result.metrics.items():
        record_metric(name, value)
    if current_record() is not None and result.worst:
        _attach_examples(result, x)
    return result


def _findings(result: RobustnessResult) -> list[Finding]:
    findings = []
    evidence = {"attack": result.attack, "norm": result.norm, "eps": result.eps, "steps": result.steps,
                "restarts": result.restarts, "seed": result.seed, "targeted": result.targeted, "n": result.n}
    if result.clean_correct == 0:
        findings.append(Finding(
            RULE_NOT_EVALUATED, Severity.MEDIUM,
            "no input is classified correctly, so robustness could not be measured; check the data, its "
            "labels and preprocessing", result.location, evidence, {"clean_acc": 0.0}))
    if result.min_acc is not None and result.robust_acc < result.min_acc:
        smallest = result.worst[0] if result.worst else None
        if smallest is not None:
            evidence = {**evidence, "counterexample": {"index": smallest.index, "label": smallest.label,
                                                       "adversarial_label": smallest.adversarial_label,
                                                       "distance": smallest.distance}}
        findings.append(Finding(
            RULE_EVASION, Severity.HIGH,
            f"robust accuracy {'' if result.robust_acc_bound == 'exact' else result.robust_acc_bound + ' '}"
            f"{result.robust_acc:.3f} is below "
            f"min_acc {result.min_acc:.3f} under "
            f"{result.attack} ({'Linf' if result.norm == 'inf' else 'L2'} eps={result.eps:g}); "
            f"clean accuracy {result.clean_acc:.3f}",
            result.location, evidence, {**result.metrics, "min_acc": result.min_acc}))
    return findings


def _attach_examples(result: RobustnessResult, x: np.ndarray) -> None:
    """Clean / adversarial / difference thumbnails of the worst cases, for image inputs."""
    shape = x.shape[1:]
    is_image = len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))
    if not is_image:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    cases = result.worst[:3]
    figure, axes = plt.subplots(len(cases), 3, figsize=(4.5, 1.6 * len(cases)), squeeze=False)
    for row, case in enumerate(cases):
        clean, adv = x[case.index], result.adversarial[case.index]
        panels = (("clean", clean), ("adversarial", adv), ("difference", adv - clean))
        for column, (title, image) in enumerate(panels):
            picture = image[0] if image.ndim == 3 and image.shape[0] == 1 else image
            picture = np.moveaxis(picture, 0, -1) if picture.ndim == 3 else picture
            if title == "difference":
                picture = (picture - picture.min()) / max(float(np.ptp(picture)), 1e-12)
            axes[row][column].imshow(picture, cmap="gray" if picture.ndim == 2 else None)
            axes[row][column].set_title(f"{title} ({case.label}->{case.adversarial_label})" if column == 1
                                        else title, fontsize=7)
            axes[row][column].axis("off")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    attach(f"worst adversarial examples ({result.attack}, eps={result.eps:g})", buffer.getvalue())


# --- the assertion ------------------------------------------------------------------------------


def assert_robust(model: Any, data: Any = None, *, attack: str = "pgd", eps: float = 0.03, min_acc: float,
                  fail_on: Severity | str | None = None, **options: Any) -> RobustnessResult:
    """Fail the test with ``RobustnessFailure`` when the robust accuracy under ``attack`` at ``eps``
    is below ``min_acc``; return the result otherwise. Takes :func:`evaluate_robustness`'s options."""
    __tracebackhide__ = True
    result = evaluate_robustness(model, data, attack=attack, eps=eps, min_acc=min_acc, **options)
    # After an early stop robust_acc is the bound that decided the verdict, so say which bound it is.
    bound = "" if result.robust_acc_bound == "exact" else f"{result.robust_acc_bound} "
    headline = (f"robust accuracy {bound}{result.robust_acc:.3f} < min_acc {min_acc:.3f} under "
                f"{result.attack} ({'Linf' if result.norm == 'inf' else 'L2'} eps={result.eps:g})")
    details = [f"  clean accuracy {result.clean_acc:.3f}, {result.accuracy_text()}, n={result.n}",
               f"  settings: {result.settings_text()}"]
    if result.worst:
        case = result.worst[0]
        details.append(f"  smallest counterexample: sample {case.index}, label {case.label} -> "
                       f"{case.adversarial_label} at {'Linf' if result.norm == 'inf' else 'L2'} distance "
                       f"{case.distance:.4g}")
    enforce(result.findings, RobustnessFailure, headline=headline, details="\n".join(details), result=result,
            fail_on=fail_on)
    return result


# --- robustness curves --------------------------------------------------------------------------


@dataclass(frozen=True)
class RobustnessCurve:
    """Robust accuracy per eps. ``accuracy`` is monotone per sample (a point fooled at a small eps
    counts as fooled at every larger one); ``raw_accuracy`` is what each run found on its own."""

    eps: tuple[float, ...]
    accuracy: tuple[float, ...]
    raw_accuracy: tuple[float, ...]
    clean_acc: float
    results: tuple[RobustnessResult, ...] = field(repr=False)
    findings: tuple[Finding, ...] = ()
    png: bytes = field(default=b"", repr=False)


def robustness_curve(model: Any, data: Any = None, *, eps: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1),
                     attack: str = "pgd", **options: Any) -> RobustnessCurve:
    """Robust accuracy of ``model`` at each eps (sorted), with a PNG plot attached to the report."""
    levels = sorted(float(e) for e in eps)
    if not levels:
        raise AispError("robustness_curve needs at least one eps")
    results = tuple(evaluate_robustness(model, data, attack=attack, eps=level, **options) for level in levels)
    fooled = np.stack([r.outcomes != ROBUST for r in results])
    raw = tuple(r.robust_acc for r in results)
    cumulative = np.logical_or.accumulate(fooled, axis=0)
    accuracy = tuple(float(1.0 - row.mean()) for row in cumulative)
    findings = []
    regressions = int(np.sum(cumulative & ~fooled))
    if regressions:
        findings.append(Finding(
            RULE_NON_MONOTONE, Severity.LOW,
            f"{regressions} point(s) fooled at a smaller eps were not fooled at a larger one: the attack is "
            f"not finding the worst case; add steps or restarts", results[0].location,
            {"attack": attack, "eps": levels, "raw_accuracy": list(raw)},
            {"non_monotone_points": regressions}))
    record_findings(findings)
    png = _curve_png(levels, accuracy, attack, results[0].location) if current_record() is not None else b""
    if png:
        attach(f"robustness curve ({attack})", png)
    return RobustnessCurve(tuple(levels), accuracy, raw, results[0].clean_acc, results, tuple(findings), png)


def _curve_png(levels: Sequence[float], accuracy: Sequence[float], attack: str, location: str) -> bytes:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return b""
    figure, axis = plt.subplots(figsize=(4, 3))
    axis.plot(levels, accuracy, marker="o")
    axis.set_xlabel("eps")
    axis.set_ylabel("robust accuracy")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"{attack} on {location.split('/')[-1]}"[:60], fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
