"""Supply-chain integrity: manifests, signatures, provenance and ML-BOMs for models, data and scripts.

Submodules are imported on first use of a public name, so ``import pytest_aisp.supply`` stays light.
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
