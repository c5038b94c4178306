"""Any evasion attack of IBM's Adversarial Robustness Toolbox (ART), by name: ``attack="art:DeepFool"``.

The model is wrapped in the ART estimator that fits it (``PyTorchClassifier`` for torch modules,
ART's scikit-learn wrappers where they give gradients, a black-box classifier otherwise), the
attack is built with the evaluation's eps/norm/steps where its constructor takes them and the
caller's options on top, and its output is returned as numpy. ART and its numpy-2 breakages are
turned into ``AispError`` messages that say what to do.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError
from pytest_aisp.robust.model import Classifier, attack_mode, call_module, module_device


def evasion_attack_class(name: str) -> type:
    """The ART evasion attack class called ``name`` (or ``module.Class`` below ``art.attacks.evasion``);
    ``AispError`` naming close matches otherwise."""
    require("art", "art", "attack='art:...' runs IBM's Adversarial Robustness Toolbox")
    import art.attacks.evasion as evasion
    from art.attacks.attack import EvasionAttack

    found = getattr(evasion, name, None)
    if "." in name:  # an attack ART does not export at the top: "laser_attack.laser_attack.LaserBeamAttack"
        module_name, _, class_name = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(f"art.attacks.evasion.{module_name}"), class_name, None)
        except ImportError:
            found = None
    if not (isinstance(found, type) and issubclass(found, EvasionAttack)):
        known = sorted(n for n in dir(evasion) if isinstance(getattr(evasion, n), type)
                       and issubclass(getattr(evasion, n), EvasionAttack))
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"ART has: {', '.join(known[:12])} ..."
        raise AispError(f"art:{name} is not an ART evasion attack; {hint}")
    return found


def _clip_values(classifier: Classifier, shape: tuple[int, ...]) -> tuple[Any, Any] | None:
    lower, upper = classifier.bounds_for(shape)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        return None
    if np.all(lower == lower.flat[0]) and np.all(upper == upper.flat[0]):
        return float(lower.flat[0]), float(upper.flat[0])
    return lower, upper


@contextlib.contextmanager
def art_estimator(classifier: Classifier, shape: tuple[int, ...], device: str,
                  extra: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """The ART estimator for ``classifier`` (``extra``: more constructor arguments, such as
    ``channels_first``); a torch module is restored (mode, requires_grad) afterwards."""
    extra = dict(extra or {})
    clip = _clip_values(classifier, shape)
    nb_classes = int(classifier.nb_classes or 0)
    if classifier.white_box:
        import torch
        from art.estimators.classification import PyTorchClassifier

        module = classifier.module
        if module_device(module) != torch.device(device):
            module = copy.deepcopy(module).to(device)
        preprocess = classifier.preprocess

        class _Scores(torch.nn.Module):
            """The model with its preprocessing, as one module for ART."""

            def __init__(self) -> None:
                super().__init__()
                self.inner = module

            def forward(self, batch: Any) -> Any:
                return call_module(self.inner, preprocess(batch) if preprocess is not None else batch)

        with attack_mode(module):
            yield PyTorchClassifier(model=_Scores(), loss=torch.nn.CrossEntropyLoss(), input_shape=shape,
                                    nb_classes=nb_classes, clip_values=clip,
                                    device_type="gpu" if str(device).startswith("cuda") else "cpu", **extra)
        return
    if classifier.kind == "sklearn" and classifier.source is not None:
        from art.estimators.classification.scikitlearn import SklearnClassifier

        try:
            yield SklearnClassifier(model=classifier.source, clip_values=clip, **extra)
            return
        except (TypeError, ValueError):
            pass  # an estimator ART does not wrap: fall through to black-box
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(classifier.predict(np.asarray(batch, dtype=np.float32).reshape((-1, *shape))))

    yield BlackBoxClassifierNeuralNetwork(predict, input_shape=shape, nb_classes=nb_classes, clip_values=clip,
                                          **extra)


def attack_arguments(cls: type, *, eps: float, norm: str, steps: int, step_size: float | None, targeted: bool,
                     batch_size: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor arguments: the evaluation's settings where ``cls`` takes them, ``options`` on top."""
    accepted = inspect.signature(cls.__init__).parameters
    wanted: dict[str, Any] = {
        "eps": eps,
        "norm": np.inf if norm == "inf" else 2,
        "max_iter": steps,
        "eps_step": step_size if step_size is not None else 2.5 * eps / max(steps, 1),
        "targeted": targeted,
        "batch_size": batch_size,
        "verbose": False,
    }
    arguments = {k: v for k, v in wanted.items() if k in accepted}
    unknown = sorted(set(options) - set(accepted))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise AispError(f"art:{cls.__name__} takes no argument(s) {', '.join(unknown)}; it takes "
                        f"{', '.join(p for p in accepted if p not in ('self', 'estimator', 'classifier'))}")
    arguments.update(options)
    return arguments


def _numpy2_breakage(exc: BaseException) -> bool:
    text = str(exc)
    return "NumPy 2" in text or "removed in the NumPy" in text or "np.asfarray" in text


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """ART draws from numpy's and torch's global generators: seed them, and put numpy's back."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
    try:
        yield
    finally:
        np.random.set_state(state)


def art_adversarial(name: str, classifier: Classifier, x: np.ndarray, labels: np.ndarray, *, eps: float,
                    norm: str, steps: int, step_size: float | None, targeted: bool, seed: int,
                    batch_size: int, device: str, options: Mapping[str, Any]) -> np.ndarray:
    """Adversarial versions of ``x`` from ART's attack ``name`` (``labels``: true or target classes).

    ``options`` go to the attack's constructor, except ``estimator_options``, which go to the ART
    estimator that wraps the model (``{"channels_first": False}`` for NHWC images)."""
    cls = evasion_attack_class(name)
    options = dict(options)
    estimator_options = options.pop("estimator_options", None)
    shape = tuple(x.shape[1:])
    arguments = attack_arguments(cls, eps=eps, norm=norm, steps=steps, step_size=step_size, targeted=targeted,
                                 batch_size=batch_size, options=options)
    with art_estimator(classifier, shape, device, estimator_options) as estimator, _seeded(seed):
        try:
            attack = cls(estimator, **arguments)
            x_adv = attack.generate(x=x.copy(), y=np.asarray(labels, dtype=np.int64))
        except AispError:
            raise
        except Exception as exc:  # ART raises anything from ValueError to numpy's AttributeError
            if _numpy2_breakage(exc):
                raise AispError(
                    f"ART's {name} does not run with NumPy {np.__version__}: {exc} Use a native attack "
                    "(fgsm, pgd, apgd-ce, square) or another ART attack, or run this one where numpy<2 is "
                    "installed") from None
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise AispError(f"ART's {name} failed: {type(exc).__name__}: {first}") from None
    return np.asarray(x_adv, dtype=np.float32).reshape(x.shape)
