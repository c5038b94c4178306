"""Manifest signatures: Ed25519 and ECDSA P-256, bad signature, wrong key, missing signature."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pytest_aisp.findings import AispError
from pytest_aisp.supply.manifest import create_manifest, save_manifest
from pytest_aisp.supply.signing import check_manifest_signature, sign_manifest
from pytest_aisp.supply.verify import verify_manifest


@pytest.fixture
def manifest_path(project: Path) -> Path:
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path), path)
    return path


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_signed_manifest_verifies_with_its_key(manifest_path: Path, keys, kind: str) -> None:
    private, public = keys[kind]
    sig = sign_manifest(manifest_path, private)
    assert sig == manifest_path.with_name("aisp-manifest.json.sig")
    document = json.loads(sig.read_text())
    assert document["algorithm"] == ("ed25519" if kind == "ed25519" else "ecdsa-p256-sha256")
    result = verify_manifest(manifest_path, pubkey=public)
    assert result.ok and result.signature == "valid"


@pytest.mark.parametrize(
    ("kind", "other"), [("ed25519", "other_ed25519"), ("ecdsa", "other_ecdsa"), ("ed25519", "ecdsa")]
)
def test_wrong_key_is_a_signature_finding(manifest_path: Path, keys, kind: str, other: str) -> None:
    sign_manifest(manifest_path, keys[kind][0])
    result = verify_manifest(manifest_path, pubkey=keys[other][1])
    assert result.signature == "invalid"
    (finding,) = result.findings
    assert finding.rule_id == "AISP-SUPPLY-SIGNATURE"
    assert "not by the given key" in finding.message


def test_manifest_edited_after_signing(manifest_path: Path, keys) -> None:
    sign_manifest(manifest_path, keys["ed25519"][0])
    data = json.loads(manifest_path.read_text())
    data["ignore"].append("model/")  # hide the model from verification: consistent, but not what was signed
    manifest_path.write_text(json.dumps(data, indent=2))
    result = verify_manifest(manifest_path, pubkey=keys["ed25519"][1])
    assert result.signature == "invalid"
    assert "changed after it was signed" in result.findings[0].message


def test_bad_signature_bytes(manifest_path: Path, keys) -> None:
    sig = sign_manifest(manifest_path, keys["ecdsa"][0])
    document = json.loads(sig.read_text())
    raw = bytearray(base64.b64decode(document["signature"]))
    raw[-1] ^= 0xFF
    document["signature"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(document))
    check = check_manifest_signature(manifest_path, keys["ecdsa"][1])
    assert not check.ok and "invalid" in check.finding.message
    document["signature"] = "!!!not base64"
    sig.write_text(json.dumps(document))
    assert "malformed" in check_manifest_signature(manifest_path, keys["ecdsa"][1]).finding.message


def test_missing_signature_is_a_finding_when_a_key_is_given(manifest_path: Path, keys) -> None:
    result = verify_manifest(manifest_path, pubkey=keys["ed25519"][1])
    assert [f.rule_id for f in result.findings] == ["AISP-SUPPLY-SIGNATURE"]
    assert "not signed" in result.findings[0].message
    with pytest.raises(AispError, match="no public key"):
        verify_manifest(manifest_path)


def test_unsupported_keys_are_errors(manifest_path: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(AispError, match="only Ed25519 and ECDSA P-256"):
        sign_manifest(manifest_path, pem)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(AispError, match="not a PEM"):
        sign_manifest(manifest_path, tmp_path / "junk.pem")


def test_private_key_file_is_private(keys) -> None:
    assert keys["ed25519"][0].stat().st_mode & 0o077 == 0


def test_a_swapped_model_with_a_regenerated_manifest_never_passes(manifest_path: Path, keys) -> None:
    """The attack: replace the model and write a fresh manifest for it. With the release key it is a
    signature finding; without any key it is an error, never a pass."""
    from pytest_aisp.findings import IntegrityFailure
    from pytest_aisp.supply.verify import assert_manifest_intact

    sign_manifest(manifest_path, keys["ed25519"][0])
    project = manifest_path.parent
    (project / "model" / "model.safetensors").write_bytes(b"substituted weights")
    save_manifest(create_manifest(project, manifest_path=manifest_path), manifest_path)
    with pytest.raises(IntegrityFailure, match="signature invalid"):
        assert_manifest_intact(manifest_path, pubkey=keys["ed25519"][1])
    with pytest.raises(AispError, match="no public key"):
        assert_manifest_intact(manifest_path)
    # The attacker's own key signs the new manifest: it is not the trusted one.
    sign_manifest(manifest_path, keys["other_ed25519"][0])
    with pytest.raises(IntegrityFailure, match="signature invalid"):
        assert_manifest_intact(manifest_path, pubkey=keys["ed25519"][1])


def test_allow_unsigned_compares_digests_and_says_not_authenticated(
    manifest_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_aisp.cli import main

    result = verify_manifest(manifest_path, allow_unsigned=True)
    assert result.ok and not result.authenticated and result.signature == "not checked"
    assert "integrity not authenticated" in result.summary()
    assert main(["manifest", "verify", str(manifest_path)]) == 2
    err = capsys.readouterr().err
    assert "no public key" in err and "--pubkey" in err and "--allow-unsigned" in err
    assert main(["manifest", "verify", str(manifest_path), "--allow-unsigned"]) == 0
    assert "integrity not authenticated" in capsys.readouterr().out
