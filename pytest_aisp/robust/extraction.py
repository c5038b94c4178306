"""Model extraction (rule ``AISP-ROBUST-EXTRACTION``): how well can a thief copy the model from its
outputs within a query budget?

A surrogate is trained on ``query_budget`` of the thief's inputs labelled by the victim: the native
trainer (a torch MLP fitted to the victim's full output vectors, for any victim that answers queries),
or ART's ``KnockoffNets`` / ``CopycatCNN``. Fidelity is the surrogate's agreement with the victim on
held-out inputs; accuracy its agreement with the true labels. The same theft is repeated against
hardened outputs (top-1 label only; probabilities rounded to one decimal) to show what hardening buys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, RobustnessFailure, Severity
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.robust._access import check_data, model_access, predict_proba
from pytest_aisp.robust._common import check_fraction, rounded
from pytest_aisp.verdict import enforce

RULE = "AISP-ROBUST-EXTRACTION"
SURROGATES = ("native", "knockoff", "copycat")
HARDENINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "top1": lambda p: np.eye(p.shape[1])[p.argmax(axis=1)],
    "round1": lambda p: _renormalise(np.round(p, 1)),
}


def _renormalise(p: np.ndarray) -> np.ndarray:
    total = p.sum(axis=1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])


@dataclass(frozen=True)
class ExtractionResult:
    """What :func:`evaluate_extraction` measured."""

    surrogate: str
    query_budget: int
    fidelity: float
    accuracy: float
    victim_accuracy: float
    hardened_fidelity: Mapping[str, float]
    findings: tuple[Finding, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.findings


def evaluate_extraction(
    model: Any,
    *,
    thief_data: Any,
    holdout_data: Any,
    query_budget: int = 200,
    max_fidelity: float = 0.9,
    surrogate: str = "native",
    hardening: tuple[str, ...] = ("top1", "round1"),
    epochs: int = 100,
    nb_classes: int | None = None,
    seed: int = 0,
    location: str = "model",
) -> ExtractionResult:
    """Steal ``model`` with ``query_budget`` queries drawn from ``thief_data`` (inputs, or ``(x, y)``
    whose labels are ignored) and measure the copy on ``holdout_data`` ``(x, y)``.

    A finding when the surrogate agrees with the victim on more than ``max_fidelity`` of the
    held-out inputs.
    """
    started = time.perf_counter()
    if surrogate not in SURROGATES:
        raise AispError(f"surrogate must be one of {', '.join(SURROGATES)}, got {surrogate!r}")
    unknown = set(hardening) - set(HARDENINGS)
    if unknown:
        raise AispError(f"unknown hardening {sorted(unknown)}; use any of {', '.join(HARDENINGS)}")
    check_fraction(max_fidelity, "max_fidelity")
    x_hold, y_hold = check_data(holdout_data, "holdout_data")
    x_thief = _thief_inputs(thief_data)
    if x_thief.shape[1:] != x_hold.shape[1:]:
        raise AispError(f"thief inputs have shape {x_thief.shape[1:]} but held-out inputs {x_hold.shape[1:]}")
    if not 1 <= query_budget <= len(x_thief):
        raise AispError(
            f"query_budget must be between 1 and the {len(x_thief)} thief inputs, got {query_budget}"
        )
    classes = nb_classes or int(y_hold.max()) + 1
    victim = model_access(model, classes)
    rng = np.random.default_rng(seed)
    queries = x_thief[rng.permutation(len(x_thief))[:query_budget]]
    answers = predict_proba(victim, queries)
    victim_hold = predict_proba(victim, x_hold).argmax(axis=1)
    if surrogate == "native":
        stolen = train_surrogate(queries, answers, epochs=epochs, seed=seed)
    else:
        stolen = _art_surrogate(surrogate, victim.predict_proba, queries, classes, epochs, seed)
    predicted = stolen(x_hold).argmax(axis=1)
    fidelity = float(np.mean(predicted == victim_hold))
    accuracy = float(np.mean(predicted == y_hold))
    hardened = {}
    for name in hardening:
        copy = train_surrogate(queries, HARDENINGS[name](answers), epochs=epochs, seed=seed)
        hardened[name] = float(np.mean(copy(x_hold).argmax(axis=1) == victim_hold))
    findings = []
    if fidelity > max_fidelity:
        findings.append(
            Finding(
                RULE,
                Severity.HIGH,
                f"a {surrogate} surrogate trained on {query_budget} queries agrees with the model "
                f"on {fidelity:.1%} "
                f"of held-out inputs (bound {max_fidelity:.1%}); its accuracy {accuracy:.1%}",
                location,
                evidence={
                    "surrogate": surrogate,
                    "query_budget": query_budget,
                    "hardened_fidelity": {k: rounded(v) for k, v in hardened.items()},
                    "recommendation": "return the top-1 label or rounded scores, "
                    "rate-limit and monitor queries",
                },
                metrics={"extraction_fidelity": rounded(fidelity), "extraction_accuracy": rounded(accuracy)},
            )
        )
    result = ExtractionResult(
        surrogate,
        query_budget,
        fidelity,
        accuracy,
        float(np.mean(victim_hold == y_hold)),
        hardened,
        tuple(findings),
        time.perf_counter() - started,
    )
    record_findings(result.findings)
    record_metric("extraction_fidelity", fidelity)
    for name, value in hardened.items():
        record_metric(f"extraction_fidelity_{name}", value)
    return result


def assert_extraction_resistant(
    model: Any,
    *,
    query_budget: int = 200,
    max_fidelity: float = 0.9,
    thief_data: Any,
    holdout_data: Any,
    fail_on: Severity | str | None = None,
    **kwargs: Any,
) -> ExtractionResult:
    """Fail with ``RobustnessFailure`` when a surrogate stolen with ``query_budget`` queries agrees with
    the model on more than ``max_fidelity`` of held-out inputs; return the result otherwise."""
    __tracebackhide__ = True
    result = evaluate_extraction(
        model,
        thief_data=thief_data,
        holdout_data=holdout_data,
        query_budget=query_budget,
        max_fidelity=max_fidelity,
        **kwargs,
    )
    hardened = ", ".join(f"{k} {v:.1%}" for k, v in result.hardened_fidelity.items())
    details = (
        f"fidelity {result.fidelity:.1%} (bound {max_fidelity:.1%}) after {query_budget} queries; surrogate "
        f"accuracy {result.accuracy:.1%} vs the model's {result.victim_accuracy:.1%}"
        + (f"; with hardened outputs: {hardened}" if hardened else "")
    )
    enforce(
        result.findings,
        RobustnessFailure,
        headline="the model can be extracted from its outputs",
        details=details,
        result=result,
        fail_on=fail_on,
    )
    return result


def _thief_inputs(thief_data: Any) -> np.ndarray:
    if isinstance(thief_data, (tuple, list)) and len(thief_data) == 2:
        return check_data(thief_data, "thief_data")[0]
    x = np.asarray(thief_data, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise AispError(f"thief_data must be a batch of inputs (N, ...), got shape {x.shape}")
    return x


def train_surrogate(
    x: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int = 100,
    hidden: int = 128,
    seed: int = 0,
) -> Callable[[np.ndarray], np.ndarray]:
    """Fit a torch MLP to the victim's output vectors (soft cross-entropy); return its predict_proba."""
    torch = require("torch", "torch")
    torch.manual_seed(seed)
    features = int(np.prod(x.shape[1:]))
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, targets.shape[1]),
    )
    xt = torch.as_tensor(x, dtype=torch.float32)
    tt = torch.as_tensor(targets, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            loss = -(tt[idx] * torch.log_softmax(net(xt[idx]), dim=1)).sum(dim=1).mean()
            loss.backward()
            opt.step()
    net.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(torch.as_tensor(batch, dtype=torch.float32)), dim=1).numpy()

    return predict


def _art_surrogate(
    kind: str,
    victim_proba: Callable[[np.ndarray], np.ndarray],
    queries: np.ndarray,
    classes: int,
    epochs: int,
    seed: int,
) -> Callable[[np.ndarray], np.ndarray]:
    """Steal with ART's KnockoffNets (random sampling) or CopycatCNN into the same MLP architecture."""
    torch = require("torch", "torch")
    require("art", "art")
    from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier

    torch.manual_seed(seed)
    features = int(np.prod(queries.shape[1:]))
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(features, 128), torch.nn.ReLU(), torch.nn.Linear(128, classes)
    )
    thief = PyTorchClassifier(
        net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=queries.shape[1:],
        nb_classes=classes,
        optimizer=torch.optim.Adam(net.parameters(), lr=3e-3),
    )
    victim = BlackBoxClassifier(victim_proba, queries.shape[1:], classes)
    budget = len(queries)
    if kind == "knockoff":
        from art.attacks.extraction import KnockoffNets

        attack = KnockoffNets(
            victim,
            batch_size_fit=64,
            batch_size_query=64,
            nb_epochs=epochs,
            nb_stolen=budget,
            sampling_strategy="random",
            verbose=False,
        )
    else:
        from art.attacks.extraction import CopycatCNN

        attack = CopycatCNN(
            victim, batch_size_fit=64, batch_size_query=64, nb_epochs=epochs, nb_stolen=budget
        )
    state = np.random.get_state()
    np.random.seed(seed)  # KnockoffNets draws its random sample from numpy's global generator
    try:
        stolen = attack.extract(queries, thieved_classifier=thief)
    finally:
        np.random.set_state(state)
    return lambda batch: np.asarray(stolen.predict(batch.astype(np.float32)))
