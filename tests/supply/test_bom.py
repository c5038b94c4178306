"""CycloneDX 1.6 ML-BOM: validated with the library's own JSON validator."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from pytest_aisp.findings import AispError
from pytest_aisp.supply.bom import bom_json, build_bom, validate_bom_json, write_bom
from pytest_aisp.supply.manifest import create_manifest, save_manifest
from pytest_aisp.supply.provenance import PAYLOAD_TYPE, record_provenance
from pytest_aisp.supply.signing import dsse_sign, sign_manifest

pytest.importorskip("cyclonedx", reason="pip install 'pytest-aisp[sign]'")


@pytest.fixture
def release(project: Path, keys, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project after a signed build: provenance.json (DSSE) and a signed aisp-manifest.json."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("AISP_PUBKEY", str(keys["ed25519"][1]))
    record_provenance(
        [sys.executable, "train.py"],
        materials=["data", "train.py"],
        products=["model"],
        output="provenance.json",
        key=keys["ed25519"][0],
    )
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path, ignore=["provenance.json"]), path)
    sign_manifest(path, keys["ed25519"][0])
    return path


def test_bom_validates_and_describes_models_and_data(project: Path, release: Path) -> None:
    path = release
    out = write_bom(path, project / "bom.json", provenance="provenance.json", version="1.0")
    text = out.read_text()
    assert validate_bom_json(text) == []
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    by_name = {c["name"]: c for c in bom["components"]}
    model = by_name["model/model.safetensors"]
    assert model["type"] == "machine-learning-model"
    assert model["hashes"][0]["alg"] == "SHA-256" and len(model["hashes"][0]["content"]) == 64
    props = {p["name"]: p["value"] for p in model["properties"]}
    assert props["aisp:model-card"] == "model/MODEL_CARD.md"
    assert by_name["data/train.csv"]["type"] == "data"
    assert by_name["Jenkinsfile"]["type"] == "file"
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert deps["file:model/model.safetensors"] == {"file:data/train.csv", "file:train.py"}
    meta = {p["name"]: p["value"] for p in bom["metadata"]["properties"]}
    assert meta["aisp:manifest:authenticated"] == "true" and meta["aisp:provenance:authenticated"] == "true"


def test_bom_verifies_what_it_reads(project: Path, release: Path, keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """The BOM took its dependencies from a statement it never verified: now each input is checked."""
    out = project / "bom.json"
    monkeypatch.delenv("AISP_PUBKEY")
    with pytest.raises(AispError, match="no public key"):
        write_bom(release, out, provenance="provenance.json")
    with pytest.raises(AispError, match="not by the given key"):
        write_bom(release, out, provenance="provenance.json", pubkey=keys["other_ed25519"][1])
    monkeypatch.setenv("AISP_PUBKEY", str(keys["ed25519"][1]))
    # A statement edited after signing: its signature fails.
    envelope = json.loads(Path("provenance.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["resolvedDependencies"] = []
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    Path("edited.json").write_text(json.dumps(envelope))
    with pytest.raises(AispError, match="provenance signature does not verify"):
        write_bom(release, out, provenance="edited.json")
    # A correctly signed statement about other bytes than the manifest records.
    statement["subject"][0]["digest"] = {"sha256": "0" * 64}
    sign = lambda name: Path(name).write_text(  # noqa: E731
        json.dumps(dsse_sign(PAYLOAD_TYPE, json.dumps(statement).encode(), keys["ed25519"][0]))
    )
    sign("other.json")
    with pytest.raises(AispError, match="describe different files"):
        write_bom(release, out, provenance="other.json")
    statement["subject"] = []
    sign("empty.json")
    with pytest.raises(AispError, match="names no subject"):
        write_bom(release, out, provenance="empty.json")
    assert not out.exists()
    # Unsigned input, explicitly allowed: written, and marked as not authenticated.
    unsigned = write_bom(release, out, provenance="provenance.json", allow_unsigned=True, pubkey=None)
    assert json.loads(unsigned.read_text())["metadata"]["properties"]


def test_validator_rejects_a_broken_bom(project: Path) -> None:
    bom = json.loads(bom_json(build_bom(create_manifest(project), name="demo")))
    bom["components"][0]["type"] = "not-a-type"
    assert validate_bom_json(json.dumps(bom))
