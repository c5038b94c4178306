"""The registry of named perturbations and the one function that applies them.

A perturbation is named ``<modality>:<name>`` (``image:blur``, ``audio:white_noise``) and takes a
severity in [0, 1]; severity 0 is the identity, 1 the strongest setting. ``parameters`` maps a
severity (and a seeded generator, for random choices such as a direction) to the concrete
parameters, so the same seed gives the same output on every backend call.

The operations modules (``image_ops`` ...) build ``Perturbation``s from ``perturbation.py`` and the
input helpers of ``inputs.py``; this module loads them by name and never the other way round. Its
``Context``, ``Perturbation``, ``import_augly`` and ``augly_available`` are those modules' names.
"""

from __future__ import annotations

import difflib
import importlib
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError
from pytest_aisp.multimodal import inputs as checks
from pytest_aisp.multimodal.inputs import Context as Context
from pytest_aisp.multimodal.perturbation import Perturbation as Perturbation
from pytest_aisp.multimodal.perturbation import augly_available as augly_available
from pytest_aisp.multimodal.perturbation import import_augly as import_augly

MODALITIES: tuple[str, ...] = ("image", "audio", "video", "text")
# "native" is the default everywhere: the same inputs, seed and severity give the same output on every
# machine. "augly" runs AugLy's function where it has a working one (and requires AugLy); "auto" uses
# AugLy when it imports and the native code otherwise, so its results depend on what is installed.
BACKENDS: tuple[str, ...] = ("native", "augly", "auto")


_OPS_MODULES = {
    "image": "pytest_aisp.multimodal.image_ops",
    "audio": "pytest_aisp.multimodal.audio_ops",
    "video": "pytest_aisp.multimodal.video_ops",
    "text": "pytest_aisp.multimodal.text_ops",
}
_registry: dict[str, Perturbation] = {}


def registry() -> dict[str, Perturbation]:
    """Every registered perturbation by full name (``image:blur`` ...), in registration order."""
    if not _registry:
        for modality, module_name in _OPS_MODULES.items():
            module = importlib.import_module(module_name)
            for perturbation in module.PERTURBATIONS:
                if perturbation.modality != modality:
                    raise RuntimeError(f"{perturbation.name} registered by {module_name}")
                _registry[perturbation.name] = perturbation
    return _registry


def default_names(modality: str) -> tuple[str, ...]:
    """The perturbations ``<modality>:default`` expands to."""
    module = importlib.import_module(_OPS_MODULES[modality])
    return tuple(f"{modality}:{name}" for name in module.DEFAULT)


def get_perturbation(name: str) -> Perturbation:
    """The perturbation called ``name``; an ``AispError`` listing the known names otherwise."""
    table = registry()
    if name in table:
        return table[name]
    modality = name.split(":", 1)[0] if ":" in name else ""
    known = [n for n in table if n.startswith(modality + ":")] if modality in MODALITIES else list(table)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close[:3])}?" if close else ""
    raise AispError(
        f"unknown perturbation {name!r}.{hint} Use one of: {', '.join(known)} "
        f"(or '<modality>:default' / '<modality>:all'; list them with `aisp multimodal list`)"
    )


def resolve_perturbations(
    spec: str | Perturbation | Iterable[str | Perturbation],
) -> tuple[Perturbation, ...]:
    """Expand ``"image:default"``, ``"audio:all"``, one name or a list of names into perturbations."""
    items: list[str | Perturbation] = [spec] if isinstance(spec, (str, Perturbation)) else list(spec)
    if not items:
        raise AispError("no perturbations given; pass a name such as 'image:blur' or 'image:default'")
    resolved: list[Perturbation] = []
    for item in items:
        if isinstance(item, Perturbation):
            resolved.append(item)
            continue
        if not isinstance(item, str):
            raise AispError(f"a perturbation is named by a string such as 'image:blur', got {item!r}")
        modality, _, rest = item.partition(":")
        if rest in ("default", "all") and modality in MODALITIES:
            names = (
                default_names(modality)
                if rest == "default"
                else tuple(n for n in registry() if n.startswith(modality + ":"))
            )
            resolved.extend(get_perturbation(n) for n in names)
        else:
            resolved.append(get_perturbation(item))
    unique = {p.name: p for p in resolved}
    modalities = {p.modality for p in unique.values()}
    if len(modalities) > 1:
        raise AispError(
            f"perturbations of several modalities ({', '.join(sorted(modalities))}) given for one input; "
            "use assert_cross_modal_consistent for models that take several modalities"
        )
    return tuple(unique.values())


def check_severity(severity: float) -> float:
    """``severity`` as a float in [0, 1], or an ``AispError``."""
    try:
        value = float(severity)
    except (TypeError, ValueError):
        raise AispError(f"severity must be a number in [0, 1], got {severity!r}") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise AispError(f"severity must be in [0, 1] (0 = unchanged, 1 = strongest), got {value}")
    return value


def choose_backend(perturbation: Perturbation, backend: str) -> str:
    """``native`` or ``augly`` for this perturbation under the requested ``backend``.

    ``native`` (the default of every entry point) always gives ``native``; ``augly`` gives ``augly`` where
    AugLy has the function and raises ``BackendMissing`` when AugLy does not import; ``auto`` gives
    ``augly`` only when AugLy imports.
    """
    if backend not in BACKENDS:
        raise AispError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if perturbation.augly is None or backend == "native":
        return "native"
    if backend == "augly":
        if not augly_available():
            from pytest_aisp.backends import require

            require("augly.image", "augly", "the extra brings libmagic too, in the pylibmagic wheel")
        return "augly"
    return "augly" if augly_available() else "native"


def apply_perturbation(
    perturbation: str | Perturbation,
    inputs: Any,
    severity: float,
    *,
    seed: int = 0,
    backend: str = "native",
    sample_rate: int | None = None,
    fps: float | None = None,
) -> Any:
    """Return ``inputs`` perturbed by ``perturbation`` at ``severity``, deterministically for ``seed``.

    Images are arrays (N, H, W, C) of uint8 or floats in [0, 1]; audio (N, T) floats with
    ``sample_rate``; video (N, F, H, W, C) with ``fps``; text a list of strings. The output has
    the same type, dtype and shape (video temporal operations keep the frame count). ``backend`` is
    ``"native"`` by default, so a result does not depend on whether AugLy is installed; pass
    ``"augly"`` to run AugLy's function where it has one.
    """
    spec = get_perturbation(perturbation) if isinstance(perturbation, str) else perturbation
    severity = check_severity(severity)
    context = Context(sample_rate=sample_rate, fps=fps)
    batch = checks.check_inputs(spec.modality, inputs, context)
    if severity == 0.0:
        return checks.copy_batch(batch)
    rng = _generator(spec.name, seed)
    params = spec.parameters(severity, rng, checks.batch_size(batch))
    if choose_backend(spec, backend) == "augly":
        return spec.augly(batch, params, int(seed), context)  # type: ignore[misc]
    return spec.native(batch, params, rng, context)


def perturbation_parameters(
    perturbation: str | Perturbation, severity: float, *, seed: int = 0, n: int = 1
) -> dict[str, Any]:
    """The concrete parameters ``apply_perturbation`` uses for ``severity`` and ``seed`` (n examples)."""
    spec = get_perturbation(perturbation) if isinstance(perturbation, str) else perturbation
    return spec.parameters(check_severity(severity), _generator(spec.name, seed), n)


def _generator(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _name_key(name)])


def _name_key(name: str) -> int:
    """A stable integer per name, so different perturbations draw different random streams."""
    return zlib.crc32(name.encode())


def severity_table(perturbations: Sequence[Perturbation] | None = None) -> list[tuple[str, str, str]]:
    """(name, backend note, severity mapping) rows, for docs and ``aisp multimodal list``."""
    rows = []
    for p in perturbations or tuple(registry().values()):
        if p.augly is None:
            note = "native" + (f" ({p.augly_note})" if p.augly_note else "")
        else:
            note = "native; augly on request"
        rows.append((p.name, note, p.mapping))
    return rows
