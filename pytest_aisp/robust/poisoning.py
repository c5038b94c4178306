"""Poisoning resistance of a training pipeline (rule ``AISP-ROBUST-POISONING``).

The team's own ``train_fn(x, y) -> model`` is called twice: on its clean training data and on a
poisoned copy. The check reports the drop in clean test accuracy and, for trigger attacks, the share
of test inputs the trigger sends to the target class.

Attacks: ``label_flip`` (labels of ``rate`` of the rows moved to another class), ``backdoor`` (BadNets:
``rate`` of the rows, taken from other classes, stamped with a trigger and relabelled to the target,
through ART's ``PoisoningAttackBackdoor``) and ``clean_label`` (``rate`` of the rows, taken from the
target class, stamped with the trigger; labels untouched).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, AispFailure, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import current_nodeid, record_findings, record_metric, recording
from pytest_aisp.robust._access import check_data, model_access, predict_proba
from pytest_aisp.robust._common import check_fraction, rounded
from pytest_aisp.robust.trigger import Trigger, TriggerLike, stamp_function
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-POISONING"
ATTACKS = ("label_flip", "backdoor", "clean_label")
RECOMMENDATIONS = (
    "sanitise the training data before training (scan_dataset: nearest-neighbour label check)",
    "filter suspects with spectral signatures or activation clustering (assert_no_backdoor) and retrain",
    "use robust training: loss truncation, label smoothing, or training on a trusted subset first",
)


@dataclass(frozen=True)
class PoisoningResult:
    """What :func:`evaluate_poisoning` measured."""

    attack: str
    rate: float
    poisoned_rows: int
    clean_accuracy: float
    poisoned_accuracy: float
    backdoor_success: float | None
    findings: tuple[Finding, ...]
    seconds: float

    @property
    def accuracy_drop(self) -> float:
        return self.clean_accuracy - self.poisoned_accuracy

    @property
    def passed(self) -> bool:
        return not self.findings


def default_trigger(sample: np.ndarray, value: float) -> Trigger:
    """A 3x3 square of ``value`` in the bottom-right corner of an image, or on the last three
    features of a flat input."""
    mask = np.zeros(sample.shape, np.float32)
    if sample.ndim >= 2:
        mask[..., -3:, -3:] = 1.0
    else:
        mask[-3:] = 1.0
    return Trigger(mask, np.full(sample.shape, value, np.float32))


def evaluate_poisoning(
    train_fn: Callable[[np.ndarray, np.ndarray], Any],
    data: Any,
    *,
    attack: str = "label_flip",
    rate: float = 0.05,
    seed: int = 0,
    target: int = 0,
    trigger: TriggerLike | None = None,
    max_acc_drop: float = 0.05,
    max_backdoor_success: float = 0.2,
    nb_classes: int | None = None,
    location: str = "train_fn",
) -> PoisoningResult:
    """Train with ``train_fn`` on clean and on poisoned copies of ``data`` and compare.

    ``data`` is ``((x_train, y_train), (x_test, y_test))`` or a mapping with ``train`` and ``test``.
    ``trigger`` is what ``backdoor`` and ``clean_label`` stamp: a :class:`Trigger`, a ``(mask, pattern)``
    pair or any callable that stamps a batch (a blend, a warp); a 3x3 square of the largest input value
    in the bottom-right corner by default.
    Findings: accuracy drop above ``max_acc_drop``; trigger success above ``max_backdoor_success``
    (``backdoor`` and ``clean_label`` only).
    """
    started = time.perf_counter()
    if attack not in ATTACKS:
        raise AispError(f"attack must be one of {', '.join(ATTACKS)}, got {attack!r}")
    check_fraction(rate, "rate")
    if not callable(train_fn):
        raise AispError("train_fn must be a callable train_fn(x, y) -> model")
    (x_tr, y_tr), (x_te, y_te) = _split(data)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise AispError(f"train inputs have shape {x_tr.shape[1:]} but test inputs {x_te.shape[1:]}")
    classes = nb_classes or int(max(y_tr.max(), y_te.max())) + 1
    rng = np.random.default_rng(seed)
    stamp = stamp_function(trigger if trigger is not None else default_trigger(x_tr[0], float(x_tr.max())))
    x_p, y_p, rows = _poison(attack, x_tr, y_tr, rate, target, stamp, classes, rng)
    clean_model = _train(train_fn, x_tr, y_tr, "clean")
    poisoned_model = _train(train_fn, x_p, y_p, "poisoned")
    clean_acc = _accuracy(clean_model, x_te, y_te, classes)
    poisoned_acc = _accuracy(poisoned_model, x_te, y_te, classes)
    success = None
    if attack != "label_flip":
        others = y_te != target
        predicted = predict_proba(model_access(poisoned_model, classes), stamp(x_te[others])).argmax(
            axis=1
        )
        success = float(np.mean(predicted == target))
    findings = _findings(
        attack, rate, clean_acc, poisoned_acc, success, max_acc_drop, max_backdoor_success, target, location
    )
    result = PoisoningResult(
        attack, rate, rows, clean_acc, poisoned_acc, success, tuple(findings), time.perf_counter() - started
    )
    record_findings(result.findings)
    record_metric(f"poisoning_{attack}_acc_drop", result.accuracy_drop)
    if success is not None:
        record_metric(f"poisoning_{attack}_backdoor_success", success)
    return result


def assert_poisoning_resistant(
    train_fn: Callable[[np.ndarray, np.ndarray], Any],
    data: Any,
    *,
    attack: str = "label_flip",
    rate: float = 0.05,
    max_acc_drop: float = 0.05,
    max_backdoor_success: float = 0.2,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> PoisoningResult:
    """Fail with ``RobustnessFailure`` when poisoning ``rate`` of the training data costs more than
    ``max_acc_drop`` clean accuracy or plants a trigger that works on more than ``max_backdoor_success``
    of test inputs; return the result otherwise."""
    __tracebackhide__ = True
    result = evaluate_poisoning(
        train_fn,
        data,
        attack=attack,
        rate=rate,
        max_acc_drop=max_acc_drop,
        max_backdoor_success=max_backdoor_success,
        **kwargs,
    )
    details = (
        f"{result.poisoned_rows} poisoned rows ({rate:.1%}): clean accuracy {result.clean_accuracy:.1%} -> "
        f"{result.poisoned_accuracy:.1%} (drop {result.accuracy_drop:.1%}, bound {max_acc_drop:.1%})"
    )
    if result.backdoor_success is not None:
        details += f"; trigger success {result.backdoor_success:.1%} (bound {max_backdoor_success:.1%})"
    enforce(
        result.findings,
        RobustnessFailure,
        headline=f"training is not resistant to {attack} poisoning",
        details=details,
        result=result,
        fail_on=fail_on,
    )
    return result


def _split(data: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    if isinstance(data, Mapping):
        if "train" not in data or "test" not in data:
            raise AispError("data must map 'train' and 'test' to (x, y) pairs")
        train, test = data["train"], data["test"]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        train, test = data
    else:
        raise AispError("data must be ((x_train, y_train), (x_test, y_test)) or {'train': ..., 'test': ...}")
    return check_data(train, "training data"), check_data(test, "test data")


def _poison(
    attack: str,
    x: np.ndarray,
    y: np.ndarray,
    rate: float,
    target: int,
    stamp: Callable[[np.ndarray], np.ndarray],
    classes: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    count = round(rate * len(y))
    x_p, y_p = x.copy(), y.copy()
    if attack == "label_flip":
        rows = rng.choice(len(y), size=count, replace=False)
        y_p[rows] = (y[rows] + rng.integers(1, classes, size=count)) % classes
        return x_p, y_p, count
    pool = np.flatnonzero(y != target) if attack == "backdoor" else np.flatnonzero(y == target)
    if len(pool) == 0:
        raise AispError(f"no training rows to poison for the {attack} attack with target {target}")
    rows = rng.choice(pool, size=min(count, len(pool)), replace=False)
    if attack == "backdoor":
        poisoning = require("art.attacks.poisoning", "art")
        art_attack = poisoning.PoisoningAttackBackdoor(stamp)
        stamped, labels = art_attack.poison(x[rows], y=np.eye(classes)[np.full(len(rows), target)])
        x_p[rows], y_p[rows] = stamped, np.asarray(labels).argmax(axis=1)
    else:
        x_p[rows] = stamp(x[rows])
    return x_p, y_p, len(rows)


def _train(
    train_fn: Callable[[np.ndarray, np.ndarray], Any], x: np.ndarray, y: np.ndarray, which: str
) -> Any:
    try:
        # Checks the pipeline runs on its own (poisoned) copies are not findings about the artifact
        # under test: they go to a record that is dropped.
        with recording(current_nodeid() or "train_fn"):
            model = train_fn(x, y)
    except (AispError, AispFailure):
        raise
    except Exception as exc:
        raise AispError(f"train_fn raised on the {which} training data: {type(exc).__name__}: {exc}") from exc
    if model is None:
        raise AispError("train_fn returned None; it must return the trained model")
    return model


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray, classes: int) -> float:
    return float(np.mean(predict_proba(model_access(model, classes), x).argmax(axis=1) == y))


def _findings(
    attack: str,
    rate: float,
    clean_acc: float,
    poisoned_acc: float,
    success: float | None,
    max_drop: float,
    max_success: float,
    target: int,
    location: str,
) -> list[Finding]:
    findings = []
    evidence = {"attack": attack, "rate": rate, "recommendations": list(RECOMMENDATIONS)}
    drop = clean_acc - poisoned_acc
    if drop > max_drop:
        findings.append(
            Finding(
                RULE,
                Severity.MEDIUM,
                f"{attack} poisoning of {rate:.1%} of the training data costs {drop:.1%} clean accuracy "
                f"({clean_acc:.1%} -> {poisoned_acc:.1%}, bound {max_drop:.1%})",
                location,
                evidence=evidence,
                metrics={"poisoning_acc_drop": rounded(drop), "poisoning_clean_accuracy": rounded(clean_acc)},
            )
        )
    if success is not None and success > max_success:
        findings.append(
            Finding(
                RULE,
                Severity.HIGH,
                f"{attack} poisoning of {rate:.1%} of the training data plants a trigger "
                f"that sends {success:.1%} "
                f"of test inputs to class {target} (bound {max_success:.1%})",
                location,
                evidence={**evidence, "target": target},
                metrics={"poisoning_backdoor_success": rounded(success)},
            )
        )
    return findings
