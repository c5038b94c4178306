"""CycloneDX 1.6 ML-BOM: validated with the library's own JSON validator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_aisp.supply.bom import bom_json, build_bom, validate_bom_json, write_bom
from pytest_aisp.supply.manifest import create_manifest, save_manifest
from pytest_aisp.supply.provenance import record_provenance

pytest.importorskip("cyclonedx", reason="pip install 'pytest-aisp[sign]'")


def test_bom_validates_and_describes_models_and_data(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    record_provenance(
        [sys.executable, "train.py"],
        materials=["data", "train.py"],
        products=["model"],
        output="provenance.json",
    )
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path, ignore=["provenance.json"]), path)
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


def test_validator_rejects_a_broken_bom(project: Path) -> None:
    bom = json.loads(bom_json(build_bom(create_manifest(project), name="demo")))
    bom["components"][0]["type"] = "not-a-type"
    assert validate_bom_json(json.dumps(bom))
