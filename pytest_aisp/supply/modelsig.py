"""OpenSSF model-signing bundles (``model-signing`` on PyPI), both ways, through that package.

:func:`sign_model_signing` turns an aisp manifest into a model-signing key bundle (the digests are
already computed, so nothing is hashed again); ``model_signing verify key`` accepts it.
:func:`read_bundle` checks a bundle made by ``model_signing sign key`` and turns its resources into
manifest entries, so ``aisp manifest verify`` prints the same change table as for its own manifests.
Only the ``files`` serialization and ECDSA keys (what model-signing's key mode supports) apply.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.supply.manifest import (
    Manifest,
    ManifestEntry,
    ManifestError,
    check_entry_path,
    classify,
    compute_root_digest,
    default_root,
    load_manifest,
)
from pytest_aisp.supply.signing import RULE_SIGNATURE

# What ``model_signing`` leaves out of a model by default (its --ignore-git-paths).
GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
_ALGORITHMS = {"sha256": "sha256", "blake3": "blake3"}
BUNDLE_NAME = "model.sig"  # where `aisp manifest sign --format model-signing` writes by default


@dataclass(frozen=True)
class Bundle:
    """A model-signing bundle read back: its entries as a manifest, the paths it ignores, and the
    signature finding (None when the signature verified with the given key)."""

    manifest: Manifest
    ignores: tuple[str, ...]
    finding: Finding | None


def _backend() -> Any:
    require("OpenSSL", "sign", "model-signing 1.1 needs pyopenssl")
    return require("model_signing", "sign")


def sign_model_signing(
    manifest_path: Path | str,
    key_path: Path | str,
    *,
    output: Path | str | None = None,
    root: Path | str | None = None,
    password: str | None = None,
) -> Path:
    """Write a model-signing bundle (default ``ROOT/model.sig``) for the files in the manifest."""
    _backend()
    from model_signing import manifest as ms_manifest
    from model_signing._hashing import hashing as ms_hashing
    from model_signing._signing import sign_ec_key
    from model_signing._signing import signing as ms_signing

    manifest_path = Path(manifest_path)
    manifest = load_manifest(manifest_path)
    root_path = Path(root) if root else default_root(manifest_path, manifest)
    out = Path(output) if output else root_path / BUNDLE_NAME
    if any(e.type != "file" for e in manifest.entries):
        raise AispError(
            "model-signing key bundles cannot record symbolic links; recreate the manifest "
            "without --allow-symlinks or sign it in the aisp format"
        )
    ignores = _literal_ignores(manifest, manifest_path, out, root_path)
    serialization = ms_manifest._FileSerialization(
        manifest.algorithm, False, [PurePosixPath(p) for p in ignores]
    )
    items = [
        ms_manifest.FileManifestItem(
            path=PurePosixPath(e.path), digest=ms_hashing.Digest(manifest.algorithm, bytes.fromhex(e.digest))
        )
        for e in manifest.entries
    ]
    name = root_path.resolve().name or "model"
    payload = ms_signing.Payload(ms_manifest.Manifest(name, items, serialization))
    try:
        signer = sign_ec_key.Signer(Path(key_path), password.encode() if password else None)
    except Exception as exc:  # a non-EC key fails inside the package with AttributeError
        raise AispError(
            f"{key_path}: model-signing key bundles need an ECDSA P-256/P-384/P-521 private key "
            f"in PEM ({exc})"
        ) from None
    signer.sign(payload).write(out)
    return out


def _literal_ignores(manifest: Manifest, manifest_path: Path, out: Path, root: Path) -> list[str]:
    """The paths model-signing must leave out: our manifest, its signature, the bundle, and the plain
    (glob-free) ignore patterns."""
    paths = []
    for candidate in (manifest_path, manifest_path.with_name(manifest_path.name + ".sig"), out):
        try:
            paths.append(candidate.resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            continue
    for pattern in manifest.ignore:
        literal = pattern.rstrip("/")
        if literal and not any(ch in literal for ch in "*?[") and (root / literal).exists():
            paths.append(literal)
    return sorted(set(paths))


def read_bundle(path: Path | str, pubkey: Path | str) -> Bundle:
    """Check a model-signing key bundle with ``pubkey`` and return its entries as a :class:`Manifest`.

    A bad signature or a foreign key is a finding, not an error: the entries are still read from the
    (unverified) payload so the table shows what changed. A bundle that is not a model-signing
    bundle at all, or whose entries leave the root, raises ``ManifestError``.
    """
    _backend()
    from model_signing._signing import sign_ec_key, sign_sigstore_pb
    from model_signing._signing import signing as ms_signing

    path = Path(path)
    try:
        signature = sign_sigstore_pb.Signature.read(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path} is not a readable model-signing bundle: {exc}") from None
    try:
        verifier = sign_ec_key.Verifier(Path(pubkey))
    except Exception as exc:  # a non-EC key fails inside the package with AttributeError
        raise AispError(
            f"{pubkey}: model-signing bundles are checked with an ECDSA public key in PEM ({exc})"
        ) from None
    finding = None
    try:
        their_manifest = verifier.verify(signature)
    except Exception as exc:  # the package raises ValueError or cryptography errors, with raw bytes
        finding = Finding(
            RULE_SIGNATURE,
            Severity.CRITICAL,
            f"model-signing bundle signature does not verify with {pubkey}: "
            f"{type(exc).__name__}: {str(exc)[:200]}",
            str(path),
            {"bundle": str(path)},
        )
        their_manifest = ms_signing.dsse_payload_to_manifest(_unverified_payload(path))
    return Bundle(*_to_manifest(their_manifest, path), finding)


def _unverified_payload(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{path}: the bundle payload cannot be read: {exc}") from None


def _to_manifest(their_manifest: Any, bundle_path: Path) -> tuple[Manifest, tuple[str, ...]]:
    params = their_manifest.serialization_type
    if params.get("method") != "files":
        raise ManifestError(
            f"{bundle_path} uses model-signing {params.get('method')!r} serialization; "
            "only 'files' is supported (verify it with model_signing itself)"
        )
    algorithm = _ALGORITHMS.get(str(params.get("hash_type")))
    if algorithm is None:
        raise ManifestError(
            f"{bundle_path}: hash type {params.get('hash_type')!r} is not supported "
            f"(use {', '.join(_ALGORITHMS)})"
        )
    entries = []
    seen = set()
    for rd in their_manifest.resource_descriptors():
        name = check_entry_path(str(rd.identifier))
        if name in seen:
            raise ManifestError(f"{bundle_path}: resource {name!r} appears twice")
        seen.add(name)
        entries.append(ManifestEntry(name, classify(name), None, rd.digest.digest_hex))
    ignores = []
    for raw in [*params.get("ignore_paths", []), *GIT_PATHS, bundle_path.name]:
        literal = PurePosixPath(str(raw)).as_posix().strip("/")
        if literal and ".." not in literal.split("/"):
            ignores.extend(["/" + literal, "/" + literal + "/"])
    manifest = Manifest(
        algorithm=algorithm,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
        ignore=(),
        allow_symlinks=bool(params.get("allow_symlinks", False)),
        root_digest=compute_root_digest(entries, algorithm),
        source="model-signing",
    )
    return manifest, tuple(ignores)


def is_model_signing_bundle(path: Path) -> bool:
    """Whether ``path`` is a Sigstore bundle (what model-signing writes), judged by its media type."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if b"mediaType" not in head or b"sigstore" not in head:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "sigstore.bundle" in str(data.get("mediaType", ""))
