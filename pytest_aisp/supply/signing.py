"""Offline signatures over manifests and provenance: Ed25519 or ECDSA P-256 keys in PEM files.

A manifest signature is a small JSON file beside the manifest (``aisp-manifest.json.sig``) over the
manifest's exact bytes. Provenance statements are signed as DSSE envelopes (the in-toto way).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.supply.manifest import SIGNATURE_SUFFIX, load_manifest, write_atomic

SIGNATURE_FORMAT = "aisp-signature"
RULE_SIGNATURE = "AISP-SUPPLY-SIGNATURE"
ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256-sha256"
KEY_TYPES: tuple[str, ...] = (ED25519, ECDSA_P256)


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of checking one signature: ``ok`` and, when not, the finding saying why."""

    ok: bool
    key_id: str = ""
    finding: Finding | None = None


def _crypto() -> Any:
    from pytest_aisp.backends import require

    require("cryptography", "sign")
    from cryptography.hazmat.primitives import serialization

    return serialization


def load_private_key(path: Path | str, password: str | None = None) -> Any:
    """An Ed25519 or ECDSA P-256 private key from a PEM file; ``AispError`` for anything else."""
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AispError(f"cannot read private key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise AispError(f"{path} is not a PEM private key (or the password is wrong): {exc}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return key
    raise AispError(f"{path}: only Ed25519 and ECDSA P-256 keys are supported, got {type(key).__name__}")


def load_public_key(path: Path | str) -> Any:
    """An Ed25519 or ECDSA P-256 public key from a PEM file; ``AispError`` for anything else."""
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AispError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise AispError(f"{path} is not a PEM public key: {exc}") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key
    raise AispError(f"{path}: only Ed25519 and ECDSA P-256 keys are supported, got {type(key).__name__}")


def key_type(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ED25519 if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)) else ECDSA_P256


def key_id(public_key: Any) -> str:
    """The sha256 of the DER SubjectPublicKeyInfo: names a key without revealing anything secret."""
    serialization = _crypto()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign_bytes(private_key: Any, data: bytes) -> bytes:
    if key_type(private_key) == ED25519:
        return private_key.sign(data)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_bytes(public_key: Any, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        if key_type(public_key) == ED25519:
            public_key.verify(signature, data)
        else:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def generate_keypair(
    private_path: Path | str,
    public_path: Path | str,
    kind: str = ED25519,
    *,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write a new unencrypted key pair: the private key (mode 0600) and its public key, both PEM.

    For tests and first setups: production keys belong in a KMS or the CI secret store. Existing
    files are never overwritten unless ``force``: losing a release key is not undoable. The two
    paths must differ.
    """
    serialization = _crypto()
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if kind not in KEY_TYPES:
        raise AispError(f"key type {kind!r}: use one of {', '.join(KEY_TYPES)}")
    private_path, public_path = Path(private_path), Path(public_path)
    if _same_file(private_path, public_path):
        raise AispError(
            f"the private and the public key would both be written to {private_path}; give two paths"
        )
    if not force:
        existing = [str(p) for p in (private_path, public_path) if os.path.lexists(p)]
        if existing:
            raise AispError(
                f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                "refusing to overwrite a key (remove it first, or pass --force / force=True)"
            )
    for path in (private_path, public_path):
        if path.is_dir():
            raise AispError(f"{path} is a directory; give a file path for the key")
        if not path.parent.is_dir():
            raise AispError(f"cannot write {path}: directory {path.parent} does not exist")
    key = ed25519.Ed25519PrivateKey.generate() if kind == ED25519 else ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, 0o600, replace=force)
    _write_new(public_path, public_pem, 0o644, replace=force)
    return private_path, public_path


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links to one file
    except OSError:
        return False


def _write_new(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Create ``path`` with ``mode`` (exclusively, never through a link); with ``replace``, write a
    new file beside it and rename it over the old one, so the old file's mode is not inherited."""
    target = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp") if replace else path
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, mode)
    except FileExistsError:
        raise AispError(f"{path} already exists; refusing to overwrite a key (pass --force)") from None
    except OSError as exc:
        raise AispError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if replace:
            os.replace(target, path)
    except BaseException as exc:
        if replace:
            target.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AispError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


# --- manifest signatures ----------------------------------------------------------------------


def signature_path_for(manifest_path: Path | str) -> Path:
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(manifest_path.name + SIGNATURE_SUFFIX)


def sign_manifest(
    manifest_path: Path | str,
    key_path: Path | str,
    *,
    output: Path | str | None = None,
    password: str | None = None,
) -> Path:
    """Sign the manifest's exact bytes; write the signature JSON beside it (or to ``output``)."""
    manifest_path = Path(manifest_path)
    load_manifest(manifest_path)  # never sign a malformed manifest
    data = manifest_path.read_bytes()
    key = load_private_key(key_path, password)
    document = {
        "format": SIGNATURE_FORMAT,
        "version": 1,
        "algorithm": key_type(key),
        "keyid": key_id(key.public_key()),
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
        "signature": base64.b64encode(sign_bytes(key, data)).decode(),
    }
    out = Path(output) if output else signature_path_for(manifest_path)
    return write_atomic(out, (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def check_manifest_signature(
    manifest_path: Path | str, pubkey_path: Path | str, signature_path: Path | str | None = None
) -> SignatureCheck:
    """Check the manifest's signature with ``pubkey_path``; a missing, bad or foreign one is a finding."""
    manifest_path = Path(manifest_path)
    sig_path = Path(signature_path) if signature_path else signature_path_for(manifest_path)
    public_key = load_public_key(pubkey_path)
    expected_id = key_id(public_key)
    location = str(manifest_path)

    def fail(message: str, **evidence: Any) -> SignatureCheck:
        return SignatureCheck(
            False,
            expected_id,
            Finding(
                RULE_SIGNATURE, Severity.CRITICAL, message, location, {"signature": str(sig_path), **evidence}
            ),
        )

    if not sig_path.is_file():
        return fail(
            f"manifest is not signed: {sig_path} does not exist; sign it with "
            f"`aisp manifest sign {manifest_path} --key PRIVATE.pem`"
        )
    try:
        document = json.loads(sig_path.read_text(encoding="utf-8"))
        signature = base64.b64decode(document["signature"], validate=True)
        signed_id = str(document.get("keyid", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return fail(f"signature file {sig_path} is unreadable or malformed: {exc}")
    if not isinstance(document, Mapping) or document.get("format") != SIGNATURE_FORMAT:
        return fail(f"{sig_path} is not an {SIGNATURE_FORMAT} file")
    data = manifest_path.read_bytes()
    if verify_bytes(public_key, data, signature):
        return SignatureCheck(True, expected_id)
    if signed_id and signed_id != expected_id:
        return fail(
            f"manifest was signed by key {signed_id[:16]}..., not by the given key {expected_id[:16]}...",
            signed_keyid=signed_id,
            given_keyid=expected_id,
        )
    if document.get("manifest_sha256") != hashlib.sha256(data).hexdigest():
        return fail(
            "signature does not match: the manifest was changed after it was signed",
            signed_sha256=document.get("manifest_sha256"),
            actual_sha256=hashlib.sha256(data).hexdigest(),
        )
    return fail("signature is invalid for this manifest and key")


# --- DSSE envelopes (provenance) ---------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def dsse_sign(payload_type: str, payload: bytes, key_path: Path | str, password: str | None = None) -> dict:
    """A DSSE envelope over ``payload`` signed with the key at ``key_path``."""
    key = load_private_key(key_path, password)
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(sign_bytes(key, pae(payload_type, payload))).decode(),
            }
        ],
    }


def dsse_verify(envelope: Mapping[str, Any], pubkey_path: Path | str) -> tuple[bytes, bool]:
    """The envelope's payload and whether any of its signatures verifies with ``pubkey_path``."""
    public_key = load_public_key(pubkey_path)
    try:
        payload_type = str(envelope["payloadType"])
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise AispError(f"malformed DSSE envelope: {exc}") from None
    message = pae(payload_type, payload)
    return payload, any(verify_bytes(public_key, message, sig) for sig in signatures)
