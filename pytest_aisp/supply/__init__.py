"""Supply-chain integrity: manifests, signatures, provenance and ML-BOMs for models, data and scripts.

Submodules are imported on first use of a public name, so ``import pytest_aisp.supply`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Manifest": "manifest",
    "ManifestEntry": "manifest",
    "ManifestError": "manifest",
    "create_manifest": "manifest",
    "load_manifest": "manifest",
    "save_manifest": "manifest",
    "IntegrityResult": "verify",
    "Change": "verify",
    "verify_manifest": "verify",
    "assert_manifest_intact": "verify",
    "manifest_from_settings": "verify",
    "sign_manifest": "signing",
    "check_manifest_signature": "signing",
    "generate_keypair": "signing",
    "sign_model_signing": "modelsig",
    "ProvenanceResult": "provenance",
    "record_provenance": "provenance",
    "verify_provenance": "provenance",
    "assert_provenance_intact": "provenance",
    "build_bom": "bom",
    "write_bom": "bom",
    "PinningResult": "pinning",
    "check_pinning": "pinning",
    "assert_dependencies_pinned": "pinning",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_aisp.supply' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_aisp.supply.{module}"), name)
    globals()[name] = value
    return value
