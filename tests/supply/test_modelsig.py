"""OpenSSF model-signing interoperability, both directions, through their API and their CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_aisp.findings import AispError
from pytest_aisp.supply.manifest import create_manifest, save_manifest
from pytest_aisp.supply.modelsig import sign_model_signing
from pytest_aisp.supply.signing import sign_manifest
from pytest_aisp.supply.verify import verify_manifest

model_signing = pytest.importorskip("model_signing", reason="pip install 'pytest-aisp[sign]'")

CLI = [sys.executable, "-c", "from model_signing._cli import main; main()"]


@pytest.fixture
def model_dir(project: Path) -> Path:
    return project / "model"


def _our_manifest(model_dir: Path) -> Path:
    path = model_dir.parent / "model-manifest.json"
    save_manifest(create_manifest(model_dir, manifest_path=path), path)
    return path


def test_ours_verifies_with_their_api_and_cli(model_dir: Path, keys) -> None:
    private, public = keys["ecdsa"]
    bundle = sign_model_signing(_our_manifest(model_dir), private)
    assert bundle == model_dir / "model.sig"
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model_dir, bundle)
    done = subprocess.run(
        [*CLI, "verify", "key", str(model_dir), "--signature", str(bundle), "--public_key", str(public)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (model_dir / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ValueError):
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
            model_dir, bundle
        )


def test_theirs_verifies_with_ours(model_dir: Path, keys) -> None:
    private, public = keys["ecdsa"]
    bundle = model_dir.parent / "theirs.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private).sign(model_dir, bundle)
    result = verify_manifest(bundle, model_dir, pubkey=public)
    assert result.ok and result.signature == "valid"
    assert result.manifest.source == "model-signing" and len(result.manifest.entries) == 3


def test_theirs_from_their_cli_with_every_tamper_case(model_dir: Path, keys, tmp_path: Path) -> None:
    private, public = keys["ecdsa"]
    bundle = model_dir / "model.sig"
    done = subprocess.run(
        [*CLI, "sign", "key", str(model_dir), "--private_key", str(private), "--signature", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert verify_manifest(bundle, pubkey=public).ok
    pristine = tmp_path / "pristine"
    shutil.copytree(model_dir, pristine)

    def reset() -> None:
        shutil.rmtree(model_dir)
        shutil.copytree(pristine, model_dir)

    def kinds() -> list[tuple[str, str]]:
        return [(c.change, c.path) for c in verify_manifest(bundle, pubkey=public).changes]

    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    assert kinds() == [("modified", "model.safetensors")]
    reset()
    weights.write_bytes(weights.read_bytes()[:-5])
    assert kinds() == [("modified", "model.safetensors")]
    reset()
    (model_dir / "extra.bin").write_bytes(b"x")
    assert kinds() == [("added", "extra.bin")]
    reset()
    (model_dir / "config.json").unlink()
    assert kinds() == [("missing", "config.json")]
    reset()
    (model_dir / "config.json").rename(model_dir / "cfg.json")
    assert kinds() == [("renamed", "cfg.json")]
    reset()
    weights.unlink()
    weights.symlink_to(pristine / "model.safetensors")
    assert kinds() == [("type-changed", "model.safetensors")]


def test_their_bundle_with_wrong_or_unsupported_key(model_dir: Path, keys) -> None:
    bundle = model_dir.parent / "theirs.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=keys["ecdsa"][0]).sign(
        model_dir, bundle
    )
    result = verify_manifest(bundle, model_dir, pubkey=keys["other_ecdsa"][1])
    assert result.signature == "invalid"
    assert [f.rule_id for f in result.findings] == ["AISP-SUPPLY-SIGNATURE"]
    with pytest.raises(AispError, match="ECDSA"):
        verify_manifest(bundle, model_dir, pubkey=keys["ed25519"][1])
    with pytest.raises(AispError, match="--pubkey"):
        verify_manifest(bundle, model_dir)
    with pytest.raises(AispError, match="ECDSA"):
        sign_model_signing(_our_manifest(model_dir), keys["ed25519"][0])


def test_aisp_manifest_still_verifies_after_a_bundle_is_written_into_the_root(model_dir: Path, keys) -> None:
    manifest = model_dir / "aisp-manifest.json"
    save_manifest(create_manifest(model_dir, manifest_path=manifest), manifest)
    sign_model_signing(manifest, keys["ecdsa"][0])
    sign_manifest(manifest, keys["ecdsa"][0])
    assert (model_dir / "model.sig").is_file()
    assert verify_manifest(manifest, pubkey=keys["ecdsa"][1]).ok
    assert verify_manifest(model_dir / "model.sig", pubkey=keys["ecdsa"][1]).ok
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / "aisp-manifest.json").write_text("{}")  # the name is ignored only at the root
    changes = verify_manifest(manifest, pubkey=keys["ecdsa"][1]).changes
    assert [c.path for c in changes] == ["sub/aisp-manifest.json"]
