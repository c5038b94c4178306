"""Keras models: the ``.keras`` zip's config.json and the ``model_config`` attribute of ``.h5`` files."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from pytest_aisp.findings import Severity
from pytest_aisp.scan import rules
from pytest_aisp.scan.context import ScanContext
from pytest_aisp.scan.policy import DANGEROUS_MODULES

KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")
MAX_DEPTH = 200


def _walk(node: Any, path: str, depth: int = 0) -> Iterator[tuple[dict[str, Any], str]]:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, dict):
        yield node, path
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}", depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}", depth + 1)


def _outside_keras(module: str) -> bool:
    return not any(module == m or module.startswith(m + ".") for m in KERAS_MODULES)


def is_keras_config(config: Any) -> bool:
    """True when a JSON document looks like a Keras model config."""
    return isinstance(config, dict) and "class_name" in config and "config" in config


def check_keras_config(ctx: ScanContext, config: Any, location: str) -> None:
    """Lambda layers at any depth, and modules or registered names that point outside keras."""
    lambda_paths: list[str] = []
    for node, path in _walk(config, ""):
        class_name = node.get("class_name")
        inside_reported = any(path.startswith(p + "/") for p in lambda_paths)
        if class_name in ("Lambda", "TFOpLambda") or (class_name == "__lambda__" and not inside_reported):
            lambda_paths.append(path)
            inner = node.get("config") if isinstance(node.get("config"), dict) else {}
            function = inner.get("function") if isinstance(inner, dict) else None
            ctx.add(rules.KERAS_LAMBDA, f"Lambda layer at {path or '/'} carries Python code", location,
                    {"path": path or "/", "layer": str(inner.get("name", "")) if isinstance(inner, dict) else "",
                     "function": str(function)[:120]})
        module = node.get("module")
        if isinstance(module, str) and module and class_name is not None and _outside_keras(module):
            top = module.split(".")[0]
            dangerous = top in DANGEROUS_MODULES or module in DANGEROUS_MODULES
            ctx.add(rules.KERAS_MODULE, f"config at {path or '/'} imports {module}.{class_name} from outside "
                    "keras", location, {"path": path or "/", "module": module, "class_name": str(class_name)},
                    severity=Severity.CRITICAL if dangerous else None)
        registered = node.get("registered_name")
        if isinstance(registered, str) and registered and class_name is not None and registered != class_name \
                and not registered.startswith(("keras", "tf_keras")):
            ctx.add(rules.KERAS_CUSTOM, f"custom object {registered!r} at {path or '/'}", location,
                    {"path": path or "/", "registered_name": registered})


def load_json(ctx: ScanContext, raw: bytes, location: str) -> Any | None:
    """Parse a JSON document within the size limit, or add an unscannable finding."""
    if len(raw) > ctx.limits.max_json_bytes:
        ctx.limit(location, f"JSON larger than {ctx.limits.max_json_bytes} bytes")
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        ctx.unscannable(location, f"JSON does not parse: {type(exc).__name__}")
        return None


def scan_hdf5(ctx: ScanContext, data: Any, location: str) -> None:
    """Read an HDF5 file's ``model_config`` (and ``training_config``) attributes with h5py."""
    try:
        import h5py
    except ImportError:
        ctx.unscannable(location, 'HDF5 needs h5py: pip install "pytest-aisp[scan]"')
        return
    buffer = io.BytesIO(bytes(data))
    ctx.bytes_read += len(data)
    try:
        with h5py.File(buffer, "r") as handle:
            attributes = {key: handle.attrs[key] for key in ("model_config", "training_config")
                          if key in handle.attrs}
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        ctx.unscannable(location, f"HDF5 file does not open: {exc}")
        return
    for key, value in attributes.items():
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        config = load_json(ctx, raw, f"{location}:{key}")
        if config is not None:
            check_keras_config(ctx, config, f"{location}:{key}")
