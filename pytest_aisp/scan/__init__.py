"""Static model analysis: find unsafe code and payloads in serialized model files without running them.

``scan_artifact`` reads pickles (protocols 0-5) with a symbolic machine, PyTorch zip/legacy/TorchScript
archives, joblib (raw and compressed), numpy, Keras, TensorFlow SavedModel, ONNX, safetensors and GGUF,
and judges every imported global against an allowlist-first policy. Names load lazily.
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "scan_artifact": "engine",
    "assert_safe_artifact": "engine",
    "scan_bytes": "engine",
    "ScanResult": "engine",
    "FileResult": "engine",
    "ScanPolicy": "policy",
    "ScanLimits": "policy",
    "load_policy_file": "policy",
    "default_policy": "policy",
    "policy_from_settings": "policy",
    "load_model_safely": "loader",
    "LoadedModel": "loader",
    "model_from_settings": "loader",
    "RULES": "rules",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
