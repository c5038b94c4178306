"""``load_model_safely``: scan a model file first, then load it with a loader that cannot run code.

Weights-only formats go to loaders that refuse code (``torch.load(weights_only=True)``, TorchScript,
safetensors, ONNX Runtime, ``numpy.load(allow_pickle=False)``). Pickle and joblib files can only be
loaded by unpickling, so they are loaded only when the scan found nothing at all (scan-gated).
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Severity, UnsafeArtifact
from pytest_aisp.scan.context import printable
from pytest_aisp.scan.engine import PolicyLike, ScanResult, scan_artifact
from pytest_aisp.scan.policy import coerce_policy, policy_from_settings

PICKLE_FORMATS = frozenset({"pickle", "gzip", "bz2", "xz", "lzma", "zlib"})

# The supported ways to give a torch model's architecture to a loader that runs no code from the file.
# Other modules name them in their own messages (a state_dict holds weights only, for instance).
TORCH_STATE_DICT_ROUTE = ('save the weights (torch.save(model.state_dict(), path), or safetensors) and '
                          'configure model_class (model_class = "pkg.models:Net") so the architecture is '
                          'built from your code and the weights are loaded with weights_only=True')
TORCH_EXPORT_ROUTE = "export the model itself: torch.jit.script(model).save(path), or torch.onnx.export to ONNX"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded without running code from its file: the object, how it was loaded, and the scan."""

    model: Any
    path: str
    format: str
    loader: str
    scan: ScanResult


def _zip_kind(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torchscript" if any("/code/" in f"/{n}" for n in names) else "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if "config.json" in names:
        return "keras"
    return "zip"


def load_model_safely(path: str | os.PathLike[str], *, device: str = "cpu", policy: PolicyLike = None,
                      fail_on: Severity | str | None = None) -> LoadedModel:
    """Scan ``path``; raise :class:`UnsafeArtifact` with the findings when unsafe; else load it safely."""
    __tracebackhide__ = True
    from pytest_aisp.verdict import enforce

    the_policy = coerce_policy(policy)  # default: the project's [tool.aisp.scan], as scan_artifact uses
    model_path = Path(path)
    if not model_path.is_file():
        raise AispError(f"model file {model_path} does not exist or is not a file")
    result = scan_artifact(model_path, policy=the_policy, fail_on=fail_on)
    threshold = Severity.parse(fail_on) if fail_on is not None else the_policy.fail_on
    enforce(result.findings, UnsafeArtifact, result=result, fail_on=threshold,
            headline=f"refusing to load {model_path}: the scan found unsafe content")
    fmt = result.files[0].format
    kind = _zip_kind(model_path) if fmt == "zip" else fmt
    if kind in PICKLE_FORMATS:
        # Unpickling runs whatever the file says: only a scan with no finding at all lets it through.
        residual = [f for f in result.findings if f.severity > Severity.INFO]
        if residual:
            raise UnsafeArtifact(
                f"refusing to unpickle {model_path}: {len(residual)} finding(s) below the fail-on threshold "
                "remain, and a pickle can only be loaded by running it\n"
                + "\n".join("  " + f.one_line() for f in residual[:10]), result=result, findings=tuple(residual))
    model, loader = _load(model_path, kind, device)
    return LoadedModel(model=model, path=str(model_path), format=kind, loader=loader, scan=result)


def _load(path: Path, kind: str, device: str) -> tuple[Any, str]:
    if kind in ("torch", "torch-legacy"):
        torch = require("torch", "torch")
        try:
            return torch.load(path, map_location=device, weights_only=True), "torch.load(weights_only=True)"
        except Exception as exc:  # the weights-only unpickler refuses classes: say which ways fit this file
            raise AispError(torch_refusal_message(path, exc)) from None
    if kind == "torchscript":
        torch = require("torch", "torch")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # newer torch nudges towards torch.export
            return torch.jit.load(str(path), map_location=device), "torch.jit.load"
    if kind == "safetensors":
        try:
            from safetensors.torch import load_file

            return load_file(str(path), device=device), "safetensors.torch.load_file"
        except ImportError:
            from safetensors.numpy import load_file as load_numpy

            return load_numpy(str(path)), "safetensors.numpy.load_file"
    if kind == "onnx":
        ort = require("onnxruntime", "scan")
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), "onnxruntime.InferenceSession"
    if kind in ("npy", "npz"):
        import numpy as np

        loaded = np.load(path, allow_pickle=False)
        return (dict(loaded) if kind == "npz" else loaded), "numpy.load(allow_pickle=False)"
    if kind == "keras":
        keras = require("keras", "scan", "Keras models load through keras.saving.load_model(safe_mode=True).")
        return keras.saving.load_model(str(path), safe_mode=True), "keras.saving.load_model(safe_mode=True)"
    if kind in PICKLE_FORMATS:
        try:
            joblib = require("joblib", "scan")
            return joblib.load(path), "joblib.load (scan-gated)"
        except AispError:
            import pickle

            with path.open("rb") as handle:
                return pickle.load(handle), "pickle.load (scan-gated)"
    raise AispError(f"{path} is {kind}: there is no loader for it that cannot run code; "
                    "use a torch, safetensors, ONNX, numpy, Keras or joblib file")


def torch_refusal_message(path: Path, error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a torch file, and the supported ways that fit it.

    Such a file pickles objects of classes (a whole ``nn.Module`` from ``torch.save(model)``), and only
    unpickling them, which runs code from the file, could rebuild them. torch's own text is not repeated
    (it carries terminal escape codes and advice to turn the check off); the class it refused is named.
    """
    refused = _REFUSED_GLOBAL.search(_ANSI.sub("", str(error)))
    what = f" (it refused {printable(refused.group(1))})" if refused else ""
    return (f"{path} pickles whole objects, not only tensors: torch.load(weights_only=True) cannot rebuild "
            f"them{what}, and unpickling them would run code from the file. Either {TORCH_STATE_DICT_ROUTE}; "
            f"or {TORCH_EXPORT_ROUTE}")


def model_from_settings(settings: Any, *, device: str = "cpu") -> LoadedModel:
    """``load_model_safely`` for the ``aisp_model`` fixture: ``--aisp-model`` with the project's policy
    (``[tool.aisp.scan]``, threshold from its ``fail_on`` or ``--aisp-fail-on``)."""
    path = settings.resolve(settings.model)
    if path is None:
        raise AispError("no model configured: set --aisp-model or [tool.aisp] model")
    policy = policy_from_settings(settings)
    return load_model_safely(path, device=device, policy=policy, fail_on=policy.fail_on)
