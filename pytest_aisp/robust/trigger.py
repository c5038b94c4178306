"""Trigger tests (rule ``AISP-ROBUST-TRIGGER``): does a given trigger flip the model, and is there a
small universal trigger for some class?

The search is Neural Cleanse (Wang et al., 2019): for every target class it optimises a mask and a
pattern so that stamping them on clean inputs makes the model predict that class, with an L1 cost on
the mask whose weight follows the paper's schedule (zero until the attack works, then raised by 1.5
while it keeps working and lowered by 1.5^1.5 while it does not). The smallest mask that reached 99%
attack success is kept per class, and it must also work on held-out clean inputs (at least
``min_trigger_success`` of them) for the class to count. A backdoored class needs a far smaller
mask than the others; the anomaly index (distance of a mask norm below the median, in units of
1.4826 x the median absolute deviation, as in the paper) measures how far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import attach, record_findings, record_metric
from pytest_aisp.robust._access import check_data, model_access, predict_proba, torch_logits, torch_parts
from pytest_aisp.robust._common import check_fraction, rounded, thumbnails_png
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-TRIGGER"
MAD_SCALE = 1.4826  # makes the median absolute deviation estimate a normal standard deviation
# Neural Cleanse's optimisation settings (the paper's code): Adam, and the cost schedule.
LEARNING_RATE = 0.1
ADAM_BETAS = (0.5, 0.9)
INIT_COST = 1e-3
ATTACK_SUCCESS = 0.99  # a mask counts once it sends this share of the optimisation inputs to the class
PATIENCE = 5  # epochs of success (failure) before the cost is raised (lowered)
COST_UP = 1.5
COST_DOWN = 1.5**1.5
EARLY_STOP_PATIENCE = 5 * PATIENCE
EARLY_STOP_GAIN = 0.99  # the best mask must shrink below this share of its size to count as progress
BATCH_SIZE = 32


@dataclass(frozen=True)
class Trigger:
    """A stamp: ``x' = (1 - mask) * x + mask * pattern``; both broadcast against one input."""

    mask: np.ndarray
    pattern: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        mask = np.asarray(self.mask, np.float32)
        return ((1.0 - mask) * x + mask * np.asarray(self.pattern, np.float32)).astype(np.float32)


TriggerLike = Trigger | tuple[np.ndarray, np.ndarray] | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ClassTrigger:
    """The smallest trigger the search found for one target class: its mask norm, whether it reached
    the attack success on the optimisation inputs, its success on held-out clean inputs of other
    classes, and its anomaly index (how far its norm lies below the median of all classes)."""

    target: int
    mask_l1: float
    reached: bool
    success_rate: float
    anomaly_index: float

    def works(self, min_success: float) -> bool:
        return self.reached and self.success_rate >= min_success


@dataclass(frozen=True)
class TriggerResult:
    """What :func:`evaluate_trigger` found."""

    findings: tuple[Finding, ...]
    success_rate: float | None
    target: int | None
    anomaly_index: float | None
    suspect_class: int | None
    per_class: Mapping[int, ClassTrigger]
    seconds: float
    epochs: int = 0

    @property
    def passed(self) -> bool:
        return not self.findings


def evaluate_trigger(
    model: Any,
    data: Any,
    *,
    trigger: TriggerLike | None = None,
    target: int | None = None,
    max_success: float = 0.2,
    search: bool = True,
    max_anomaly_index: float = 2.0,
    min_trigger_success: float = 0.9,
    epochs: int = 100,
    max_samples: int = 100,
    nb_classes: int | None = None,
    seed: int = 0,
    location: str = "model",
) -> TriggerResult:
    """Measure the attack success rate of ``trigger`` on clean ``data`` ``(x, y)`` and, with ``search``
    (torch models only), look for a small universal trigger per class.

    The success rate counts inputs whose label is not ``target`` that the triggered input sends to
    ``target`` (the class the trigger sends most inputs to when ``target`` is None). It fails above
    ``max_success``. The search optimises on ``max_samples`` rows of ``data`` for at most ``epochs``
    passes in mini-batches of 32 (it stops early once the smallest masks stop shrinking) and
    checks each reversed trigger on up to ``max_samples`` other rows; it fails when a class whose
    trigger works on at least ``min_trigger_success`` of those has an anomaly index above
    ``max_anomaly_index`` (2 is the Neural Cleanse cut).
    """
    started = time.perf_counter()
    check_fraction(max_success, "max_success")
    check_fraction(min_trigger_success, "min_trigger_success")
    x, y = check_data(data, "data")
    if trigger is None and not search:
        raise AispError("give a trigger to test, or search=True to look for one")
    findings: list[Finding] = []
    success = chosen = None
    if trigger is not None:
        success, chosen = _success_rate(model, x, y, trigger, target, nb_classes)
        record_metric("trigger_success_rate", success)
        if success > max_success:
            findings.append(
                Finding(
                    RULE,
                    Severity.HIGH,
                    f"the trigger sends {success:.1%} of inputs to class {chosen} (bound {max_success:.1%})",
                    location,
                    evidence={
                        "target": chosen,
                        "samples": len(x),
                        "recommendation": "retrain on screened data; see assert_no_backdoor",
                    },
                    metrics={"trigger_success_rate": rounded(success)},
                )
            )
    searched = _Searched({}, None, None, 0)
    if search:
        parts = torch_parts(model)
        if parts is None:
            raise AispError("the trigger search needs gradients: pass a torch nn.Module (or search=False)")
        if epochs < 1 or max_samples < 1:
            raise AispError("epochs and max_samples must be at least 1")
        if len(x) < 4:
            raise AispError(f"the trigger search needs at least 4 clean inputs, got {len(x)}")
        searched = _searched(
            parts, x, y, epochs, max_samples, max_anomaly_index, min_trigger_success, seed, location, findings
        )
    result = TriggerResult(
        tuple(findings),
        success,
        chosen,
        searched.anomaly_index,
        searched.suspect_class,
        searched.per_class,
        time.perf_counter() - started,
        searched.epochs,
    )
    record_findings(result.findings)
    return result


def assert_trigger_free(
    model: Any,
    data: Any,
    *,
    trigger: TriggerLike | None = None,
    max_success: float = 0.2,
    search: bool | None = None,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> TriggerResult:
    """Fail with ``RobustnessFailure`` when ``trigger`` flips more than ``max_success`` of the inputs
    (or, with ``search``, when a class has an anomalously small trigger). ``search`` defaults to True
    when no trigger is given."""
    __tracebackhide__ = True
    search = trigger is None if search is None else search
    result = evaluate_trigger(model, data, trigger=trigger, max_success=max_success, search=search, **kwargs)
    parts = []
    if result.success_rate is not None:
        parts.append(
            f"trigger success {result.success_rate:.1%} into class {result.target} (bound {max_success:.1%})"
        )
    if result.anomaly_index is not None:
        parts.append(
            f"smallest working universal trigger: class {result.suspect_class}, anomaly index "
            f"{result.anomaly_index:.2f}"
        )
    elif result.per_class:
        parts.append("no reversed trigger worked on the held-out inputs")
    enforce(
        result.findings,
        RobustnessFailure,
        headline="the model reacts to a trigger",
        details="; ".join(parts),
        result=result,
        fail_on=fail_on,
    )
    return result


@dataclass(frozen=True)
class _Searched:
    per_class: Mapping[int, ClassTrigger]
    anomaly_index: float | None
    suspect_class: int | None
    epochs: int


def _searched(
    parts: tuple[Any, Callable[[Any], Any] | None],
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    max_samples: int,
    max_anomaly_index: float,
    min_trigger_success: float,
    seed: int,
    location: str,
    findings: list[Finding],
) -> _Searched:
    """Run the search on one part of ``x``, check the reversed triggers on another, and append the
    findings."""
    rows = np.random.default_rng(seed).permutation(len(x))
    split = min(max_samples, len(x) // 2)
    fit_rows, check_rows = rows[:split], rows[split : split + max_samples]
    found = _search(*parts, x[fit_rows], y[fit_rows], epochs, seed)
    per_class = _judge(*parts, found, x[check_rows], y[check_rows])
    suspect = _most_anomalous(per_class, min_trigger_success)
    if suspect is None:
        # fail closed: without a working reversed trigger no class could be compared
        findings.append(
            Finding(
                RULE,
                Severity.MEDIUM,
                f"the search found no trigger that sends {min_trigger_success:.0%} of held-out inputs to "
                f"any class in {found.epochs} epochs; nothing could be compared",
                location,
                evidence={
                    "success_by_class": {str(k): rounded(c.success_rate, 3) for k, c in per_class.items()},
                    "recommendation": "raise epochs or max_samples",
                },
            )
        )
        return _Searched(per_class, None, None, found.epochs)
    smallest = per_class[suspect]
    record_metric("trigger_anomaly_index", smallest.anomaly_index)
    if smallest.anomaly_index > max_anomaly_index:
        flagged = sorted(
            c for c, t in per_class.items() if t.works(min_trigger_success) and t.anomaly_index > max_anomaly_index
        )
        findings.append(
            Finding(
                RULE,
                Severity.HIGH,
                f"class {suspect} is reached by a trigger of mask norm {smallest.mask_l1:.1f} that sends "
                f"{smallest.success_rate:.0%} of held-out inputs there; anomaly index "
                f"{smallest.anomaly_index:.2f} > {max_anomaly_index}",
                location,
                evidence={
                    "suspect_class": suspect,
                    "flagged_classes": flagged,
                    "mask_l1_by_class": {str(k): rounded(c.mask_l1, 2) for k, c in per_class.items()},
                    "success_by_class": {str(k): rounded(c.success_rate, 3) for k, c in per_class.items()},
                    "recommendation": "screen the training data of that class (assert_no_backdoor) and retrain",
                },
                metrics={
                    "trigger_anomaly_index": rounded(smallest.anomaly_index),
                    "trigger_mask_l1": rounded(smallest.mask_l1),
                },
            )
        )
        png = thumbnails_png([found.masks[suspect]]) if x.ndim in (3, 4) else None
        if png:
            attach(f"reverse-engineered trigger mask, class {suspect}", png)
    return _Searched(per_class, smallest.anomaly_index, suspect, found.epochs)


def stamp_function(trigger: TriggerLike) -> Callable[[np.ndarray], np.ndarray]:
    """``trigger`` as a function that stamps a batch, checked: a trigger that raises or changes the
    batch's shape is an ``AispError`` that says so."""
    if isinstance(trigger, Trigger):
        apply = trigger.apply
    elif isinstance(trigger, tuple) and len(trigger) == 2:
        apply = Trigger(np.asarray(trigger[0]), np.asarray(trigger[1])).apply
    elif callable(trigger):
        apply = trigger
    else:
        raise AispError("trigger must be a Trigger, a (mask, pattern) pair, or a callable that stamps a batch")

    def stamp(x: np.ndarray) -> np.ndarray:
        try:
            stamped = np.asarray(apply(x), np.float32)
        except AispError:
            raise
        except Exception as exc:
            raise AispError(f"the trigger failed on a batch of shape {x.shape}: {exc}") from exc
        if stamped.shape != x.shape:
            raise AispError(
                f"the trigger turned inputs of shape {x.shape} into {stamped.shape}; it must keep the shape"
            )
        return stamped

    return stamp


def _success_rate(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    trigger: TriggerLike,
    target: int | None,
    nb_classes: int | None,
) -> tuple[float, int]:
    access = model_access(model, nb_classes=nb_classes or int(y.max()) + 1)
    stamped = stamp_function(trigger)(x)
    predicted = predict_proba(access, stamped).argmax(axis=1)
    if target is None:
        target = (
            int(np.bincount(predicted[predicted != y], minlength=1).argmax()) if np.any(predicted != y) else 0
        )
    others = y != target
    if not others.any():
        raise AispError(f"every input is labelled {target}: the success rate needs inputs of other classes")
    return float(np.mean(predicted[others] == target)), int(target)


@dataclass(frozen=True)
class _Search:
    """Per class: the smallest mask (and its pattern) that reached ``ATTACK_SUCCESS``, or the last one."""

    masks: Mapping[int, np.ndarray]
    patterns: Mapping[int, np.ndarray]
    norms: Mapping[int, float]
    reached: Mapping[int, bool]
    epochs: int


class _CostSchedule:
    """Neural Cleanse's cost schedule, one state per class (the paper's ``visualize`` loop)."""

    def __init__(self, nb_classes: int) -> None:
        self.cost = np.zeros(nb_classes)
        self.set_counter = np.zeros(nb_classes, int)
        self.up_counter = np.zeros(nb_classes, int)
        self.down_counter = np.zeros(nb_classes, int)
        self.raised = np.zeros(nb_classes, bool)
        self.lowered = np.zeros(nb_classes, bool)
        self.best = np.full(nb_classes, np.inf)
        self.stop_best = np.full(nb_classes, np.inf)
        self.stop_counter = np.zeros(nb_classes, int)
        self.done = np.zeros(nb_classes, bool)

    def update(self, success: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """Take one epoch's attack success and mask norms; return the classes whose mask is a new best."""
        live = ~self.done
        improved = live & (success >= ATTACK_SUCCESS) & (norms < self.best)
        self.best = np.where(improved, norms, self.best)
        # early stop: the best mask has not shrunk by more than 1% for EARLY_STOP_PATIENCE epochs,
        # after the cost has been both raised and lowered
        found = live & np.isfinite(self.best)
        stalled = found & (self.best >= EARLY_STOP_GAIN * self.stop_best)
        self.stop_counter = np.where(stalled, self.stop_counter + 1, np.where(found, 0, self.stop_counter))
        self.stop_best = np.where(found, np.minimum(self.best, self.stop_best), self.stop_best)
        self.done |= live & self.raised & self.lowered & (self.stop_counter >= EARLY_STOP_PATIENCE)
        live = ~self.done
        works = success >= ATTACK_SUCCESS
        # no cost yet: switch it on once the attack has worked for PATIENCE epochs
        unset = live & (self.cost == 0)
        self.set_counter = np.where(unset & works, self.set_counter + 1, np.where(unset, 0, self.set_counter))
        switch_on = unset & (self.set_counter >= PATIENCE)
        self.cost = np.where(switch_on, INIT_COST, self.cost)
        adjusting = live & (self.cost > 0) & ~switch_on
        self.up_counter = np.where(adjusting & works, self.up_counter + 1, np.where(adjusting, 0, self.up_counter))
        self.down_counter = np.where(
            adjusting & ~works, self.down_counter + 1, np.where(adjusting, 0, self.down_counter)
        )
        raise_now = adjusting & (self.up_counter >= PATIENCE)
        lower_now = adjusting & (self.down_counter >= PATIENCE)
        self.cost = np.where(raise_now, self.cost * COST_UP, np.where(lower_now, self.cost / COST_DOWN, self.cost))
        self.up_counter = np.where(raise_now, 0, self.up_counter)
        self.down_counter = np.where(lower_now, 0, self.down_counter)
        self.raised |= raise_now
        self.lowered |= lower_now
        return improved


def _search(
    model: Any,
    preprocess: Callable[[Any], Any] | None,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    seed: int,
) -> _Search:
    """Optimise one mask and pattern per target class, all classes in one batch (Adam works per
    element and the loss is a sum over classes, so this equals separate searches, only faster). An
    epoch is one pass over ``x`` in shuffled mini-batches; its attack success and mask norm are the
    means over its mini-batches, as in the paper."""
    torch = require("torch", "torch")
    from pytest_aisp.robust.model import attack_mode, module_device

    device = module_device(model)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, device=device)
    lo, hi = float(x.min()), float(x.max())
    mask_shape = (1, *x.shape[2:]) if x.ndim == 4 else x.shape[1:]
    with attack_mode(model):
        with torch.no_grad():
            nb_classes = int(model(preprocess(xt[:1]) if preprocess else xt[:1]).shape[1])
        generator = torch.Generator(device="cpu").manual_seed(seed)
        targets = torch.arange(nb_classes, device=device)
        mask_raw = (0.1 * torch.randn((nb_classes, *mask_shape), generator=generator)).to(device)
        pattern_raw = (0.1 * torch.randn((nb_classes, *x.shape[1:]), generator=generator)).to(device)
        mask_raw.requires_grad_(True)
        pattern_raw.requires_grad_(True)
        opt = torch.optim.Adam([mask_raw, pattern_raw], lr=LEARNING_RATE, betas=ADAM_BETAS)
        schedule = _CostSchedule(nb_classes)
        best_masks = np.zeros((nb_classes, *mask_shape), np.float32)
        best_patterns = np.zeros((nb_classes, *x.shape[1:]), np.float32)
        epoch = 0
        for epoch in range(1, epochs + 1):  # noqa: B007 (the count is reported)
            live = torch.as_tensor(~schedule.done, device=device).float()
            cost = torch.as_tensor(schedule.cost, dtype=torch.float32, device=device)
            success, norms = np.zeros(nb_classes), np.zeros(nb_classes)
            order = torch.randperm(len(xt), generator=generator).to(device)
            batches = order.split(BATCH_SIZE)
            for rows in batches:
                mask = (torch.tanh(mask_raw) + 1) / 2
                pattern = lo + (hi - lo) * (torch.tanh(pattern_raw) + 1) / 2
                batch = ((1 - mask[:, None]) * xt[rows][None] + (mask * pattern)[:, None]).reshape(-1, *x.shape[1:])
                logits = model(preprocess(batch) if preprocess else batch)
                labels = targets.repeat_interleave(len(rows))
                # only inputs of other classes count towards class c's attack
                weight = (yt[rows][None, :] != targets[:, None]).float()
                weight = weight / weight.sum(dim=1, keepdim=True).clamp(min=1.0)
                ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none").reshape(nb_classes, -1)
                l1 = mask.reshape(nb_classes, -1).sum(dim=1)
                loss = (live * ((ce * weight).sum(dim=1) + cost * l1)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    hits = (logits.argmax(1) == labels).float().reshape(nb_classes, -1)
                    success += (hits * weight).sum(dim=1).cpu().numpy() / len(batches)
                    norms += l1.cpu().numpy() / len(batches)
            improved = schedule.update(success, norms)
            with torch.no_grad():
                best_masks[improved] = ((torch.tanh(mask_raw) + 1) / 2).cpu().numpy()[improved]
                best_patterns[improved] = (lo + (hi - lo) * (torch.tanh(pattern_raw) + 1) / 2).cpu().numpy()[
                    improved
                ]
            if schedule.done.all():
                break
        reached = np.isfinite(schedule.best)
        with torch.no_grad():
            # a class that never reached the attack success keeps its last mask
            best_masks[~reached] = ((torch.tanh(mask_raw) + 1) / 2).cpu().numpy()[~reached]
            best_patterns[~reached] = (lo + (hi - lo) * (torch.tanh(pattern_raw) + 1) / 2).cpu().numpy()[~reached]
    return _Search(
        {c: best_masks[c] for c in range(nb_classes)},
        {c: best_patterns[c] for c in range(nb_classes)},
        {c: float(best_masks[c].sum()) for c in range(nb_classes)},
        {c: bool(reached[c]) for c in range(nb_classes)},
        epoch,
    )


def _judge(
    model: Any,
    preprocess: Callable[[Any], Any] | None,
    found: _Search,
    x: np.ndarray,
    y: np.ndarray,
) -> dict[int, ClassTrigger]:
    """Each class's reversed trigger checked on held-out clean inputs of other classes, and the anomaly
    index of its mask norm."""
    indices = _anomaly_indices(found.norms)
    per_class: dict[int, ClassTrigger] = {}
    for c in found.norms:
        others = y != c
        if others.any():
            stamped = Trigger(found.masks[c], found.patterns[c]).apply(x[others])
            predicted = torch_logits(model, stamped, preprocess=preprocess).argmax(dim=1).numpy()
            success = float(np.mean(predicted == c))
        else:
            success = 0.0
        per_class[c] = ClassTrigger(c, found.norms[c], found.reached[c], success, indices[c])
    return per_class


def _most_anomalous(per_class: Mapping[int, ClassTrigger], min_success: float) -> int | None:
    """The class with the largest anomaly index among those whose reversed trigger works; None if none
    works. A small mask that does not flip held-out inputs is no evidence of a backdoor."""
    working = [c for c, t in per_class.items() if t.works(min_success)]
    return max(working, key=lambda c: per_class[c].anomaly_index) if working else None


def _anomaly_indices(norms: Mapping[int, float]) -> dict[int, float]:
    """Neural Cleanse's anomaly index of every class: (median - norm) / (1.4826 * MAD); positive below
    the median."""
    if len(norms) < 3:
        raise AispError("the trigger search needs at least three classes to compare mask norms")
    values = np.array(list(norms.values()))
    median = float(np.median(values))
    mad = MAD_SCALE * float(np.median(np.abs(values - median)))
    return {c: (median - n) / max(mad, 1e-12) for c, n in norms.items()}
