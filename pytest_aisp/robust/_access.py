"""How the poisoning, backdoor, extraction and membership checks reach a model and its data.

A model is a torch ``nn.Module`` (returning logits), a scikit-learn estimator with ``predict_proba``,
or a callable that maps a batch to probabilities, logits or labels. Data is ``(x, y)`` with integer
(or one-hot) labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError

BATCH = 256


@dataclass(frozen=True)
class ModelAccess:
    """A model seen through its probabilities; ``module`` is the torch module when there is one."""

    predict_proba: Callable[[np.ndarray], np.ndarray]
    kind: str
    module: Any = None
    preprocess: Callable[[Any], Any] | None = None


def is_torch_module(model: Any) -> bool:
    """True for a torch ``nn.Module``, without importing torch when it is not loaded."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def model_access(model: Any, nb_classes: int | None = None) -> ModelAccess:
    """Wrap ``model`` (anything :func:`pytest_aisp.robust.as_classifier` takes) so that
    ``predict_proba(x)`` returns an (N, C) probability array; label-only models need ``nb_classes``."""
    if isinstance(model, ModelAccess):
        return model
    from pytest_aisp.robust.model import as_classifier

    classifier = as_classifier(model, nb_classes=nb_classes)

    def predict(x: np.ndarray) -> np.ndarray:
        try:
            out = np.asarray(classifier.predict(np.asarray(x, np.float32)))
        except AispError:
            raise
        except Exception as exc:
            raise AispError(
                f"the model failed on a batch of shape {x.shape}: {type(exc).__name__}: {exc}"
            ) from exc
        return outputs_to_proba(out, nb_classes or classifier.nb_classes, len(x))

    return ModelAccess(predict, classifier.kind, classifier.module, classifier.preprocess)


def torch_logits(module: Any, x: np.ndarray, *, preprocess: Callable[[Any], Any] | None = None) -> Any:
    """``module``'s logits for ``x`` (batched, eval mode, on the module's device), as a CPU tensor."""
    torch = require("torch", "torch")
    from pytest_aisp.robust.model import module_device

    module.eval()
    device = module_device(module)
    out = []
    with torch.no_grad():
        for start in range(0, len(x), BATCH):
            batch = torch.as_tensor(np.asarray(x[start : start + BATCH]), dtype=torch.float32, device=device)
            out.append(module(preprocess(batch) if preprocess else batch).cpu())
    logits = torch.cat(out) if out else torch.zeros((0, 0))
    if logits.ndim != 2:
        raise AispError(
            f"the model returned outputs of shape {tuple(logits.shape)}; expected (batch, classes)"
        )
    return logits


def torch_parts(model: Any) -> tuple[Any, Callable[[Any], Any] | None] | None:
    """``(module, preprocess)`` of a torch model (a module, a Classifier or a ModelUnderTest), else None."""
    if is_torch_module(model):
        return model, None
    inner = getattr(model, "classifier", model)
    if getattr(inner, "module", None) is not None:
        return inner.module, getattr(inner, "preprocess", None)
    return None


def outputs_to_proba(out: np.ndarray, nb_classes: int | None, n: int) -> np.ndarray:
    """Probabilities from what a model returned: labels become one-hot rows, logits go through softmax."""
    if out.shape[:1] != (n,):
        raise AispError(
            f"the model returned {out.shape[0] if out.ndim else 'a scalar'} outputs for {n} inputs"
        )
    if out.ndim == 1:
        if nb_classes is None:
            raise AispError("the model returns labels only: pass nb_classes so they can be one-hot encoded")
        labels = out.astype(np.int64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= nb_classes:
            raise AispError(f"the model returned labels outside 0..{nb_classes - 1}")
        return np.eye(nb_classes)[labels]
    if out.ndim != 2:
        raise AispError(
            f"the model returned outputs of shape {out.shape}; expected (N,) labels or (N, C) scores"
        )
    out = out.astype(float)
    if out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict_proba(access: ModelAccess, x: np.ndarray) -> np.ndarray:
    """``access``'s probabilities for ``x`` in batches, checked for shape."""
    parts = [access.predict_proba(x[start : start + BATCH]) for start in range(0, len(x), BATCH)]
    if not parts:
        raise AispError("no inputs to query the model with")
    proba = np.concatenate(parts)
    if proba.ndim != 2 or len(proba) != len(x):
        raise AispError(f"the model returned probabilities of shape {proba.shape} for {len(x)} inputs")
    return proba


def check_data(data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as arrays with integer labels; raise ``AispError`` saying what is wrong."""
    if isinstance(data, dict):
        data = (data.get("x"), data.get("y"))
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise AispError(f"{name} must be a pair (x, y) of inputs and labels, got {type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim < 2:
        raise AispError(f"{name}: x must be a batch (N, features...) of inputs, got shape {x.shape}")
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.ndim != 1 or len(y) != len(x):
        raise AispError(f"{name}: {len(x)} inputs but labels of shape {y.shape}; they must match one to one")
    if len(x) == 0:
        raise AispError(f"{name} is empty")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise AispError(f"{name}: labels must be integer class ids or one-hot rows")
        y = y.astype(np.int64)
    if y.min() < 0:
        raise AispError(f"{name}: labels must be non-negative class ids")
    return x.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


def penultimate_activations(model: Any, x: np.ndarray) -> np.ndarray:
    """The activations feeding the model's last linear layer, flattened to (N, features).

    Works for torch modules (a forward hook on the last ``nn.Linear``) and scikit-learn
    ``MLPClassifier`` (its last hidden layer); anything else raises ``AispError``.
    """
    parts = torch_parts(model)
    if parts is not None:
        return _torch_penultimate(parts[0], x, parts[1])
    inner = getattr(getattr(model, "classifier", model), "source", None) or model
    if hasattr(inner, "coefs_") and hasattr(inner, "intercepts_"):
        return _sklearn_mlp_hidden(inner, x)
    raise AispError(
        f"a {type(model).__name__} exposes no activations: activation-based methods need a torch "
        "nn.Module (with a final nn.Linear) or a scikit-learn MLPClassifier"
    )


def _torch_penultimate(module: Any, x: np.ndarray, preprocess: Callable[[Any], Any] | None) -> np.ndarray:
    torch = require("torch", "torch")
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise AispError("the torch model has no nn.Linear layer whose input could serve as its activations")
    captured: list[Any] = []
    handle = linears[-1].register_forward_hook(
        lambda _m, inputs, _out: captured.append(inputs[0].detach().cpu())
    )
    try:
        torch_logits(module, x, preprocess=preprocess)
    finally:
        handle.remove()
    acts = torch.cat(captured).numpy()
    return acts.reshape(len(acts), -1).astype(np.float64)


def _sklearn_mlp_hidden(model: Any, x: np.ndarray) -> np.ndarray:
    act = np.asarray(x, float).reshape(len(x), -1)
    for weights, bias in zip(model.coefs_[:-1], model.intercepts_[:-1]):
        act = act @ weights + bias
        act = np.maximum(act, 0) if model.activation == "relu" else np.tanh(act)
    return act
