"""Build provenance around a real training run: products, materials, signatures, stale provenance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_aisp.findings import AispError, IntegrityFailure, Severity
from pytest_aisp.supply.manifest import ManifestError
from pytest_aisp.supply.provenance import (
    SLSA_PREDICATE,
    STATEMENT_TYPE,
    assert_provenance_intact,
    record_provenance,
    verify_provenance,
)

TRAIN = [sys.executable, "train.py"]


@pytest.fixture
def trained(project: Path, keys, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project as the working directory, with the release public key trusted (AISP_PUBKEY)."""
    monkeypatch.chdir(project)
    monkeypatch.setenv("AISP_PUBKEY", str(keys["ed25519"][1]))
    return project


@pytest.fixture
def release_key(keys) -> Path:
    return keys["ed25519"][0]


def _record(key: Path | None = None, output: str = "provenance.json") -> Path:
    return record_provenance(
        TRAIN,
        materials=["data", "train.py"],
        products=["model/model.safetensors", "model/config.json"],
        output=output,
        key=key,
    )


def test_statement_is_in_toto_v1_with_slsa_v1_predicate(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AISP_PUBKEY")  # a configured key would make the unsigned statement a finding
    statement = json.loads(_record().read_text())  # unsigned: the statement itself, readable
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == SLSA_PREDICATE
    names = [s["name"] for s in statement["subject"]]
    assert names == ["model/config.json", "model/model.safetensors"]
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"]["command"] == TRAIN
    assert [d["name"] for d in build["resolvedDependencies"]] == ["data/train.csv", "train.py"]
    assert all(len(d["digest"]["sha256"]) == 64 for d in build["resolvedDependencies"])
    assert statement["predicate"]["runDetails"]["builder"]["id"].startswith("https://")
    result = verify_provenance("provenance.json", allow_unsigned=True)
    assert result.ok and not result.authenticated and result.signature == "not checked"


def test_stale_provenance_after_dataset_swap(trained: Path, release_key: Path, make_artifacts) -> None:
    _record(release_key)
    make_artifacts.write_dataset(trained / "data" / "train.csv", seed=1)  # same shape, other rows
    result = verify_provenance("provenance.json")
    (finding,) = result.findings
    assert finding.rule_id == "AISP-SUPPLY-PROVENANCE" and finding.severity is Severity.HIGH
    assert "material data/train.csv changed since the build" in finding.message
    with pytest.raises(IntegrityFailure, match="dataset or script swapped"):
        assert_provenance_intact("provenance.json")


def test_replaced_model_is_caught(trained: Path, release_key: Path) -> None:
    _record(release_key)
    (trained / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    (trained / "model" / "config.json").unlink()
    result = verify_provenance("provenance.json")
    assert [f.severity for f in result.findings] == [Severity.CRITICAL, Severity.CRITICAL]
    messages = " ".join(f.message for f in result.findings)
    assert "product model/config.json is missing" in messages
    assert "product model/model.safetensors changed since the build (size" in messages


def test_signed_provenance_and_wrong_key(trained: Path, keys) -> None:
    envelope = json.loads(_record(key=keys["ed25519"][0]).read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert verify_provenance("provenance.json", pubkey=keys["ed25519"][1]).signature == "valid"
    result = verify_provenance("provenance.json", pubkey=keys["other_ed25519"][1])
    assert result.signature == "invalid" and result.findings[0].rule_id == "AISP-SUPPLY-SIGNATURE"


def test_unsigned_statement_with_a_key_is_a_finding(trained: Path, keys) -> None:
    _record()
    result = verify_provenance("provenance.json", pubkey=keys["ecdsa"][1])
    assert "not signed" in result.findings[0].message


def test_failed_build_writes_no_provenance(trained: Path) -> None:
    with pytest.raises(AispError, match="exited 3"):
        record_provenance(
            [sys.executable, "-c", "raise SystemExit(3)"],
            materials=["data"],
            products=["model"],
            output="p.json",
        )
    assert not (trained / "p.json").exists()
    with pytest.raises(AispError, match="outside the provenance root"):
        record_provenance(TRAIN, materials=["/etc/hostname"], products=["model"], output="p.json")


def test_traversal_in_statement_is_rejected(trained: Path) -> None:
    statement = json.loads(_record().read_text())
    statement["subject"][0]["name"] = "../../etc/passwd"
    Path("evil.json").write_text(json.dumps(statement))
    with pytest.raises(ManifestError, match="leaves the root"):
        verify_provenance("evil.json", allow_unsigned=True)


def test_a_signed_envelope_is_never_read_unchecked(trained: Path, release_key: Path, monkeypatch) -> None:
    """Without a key the envelope used to be decoded and its signature never checked."""
    _record(release_key)
    monkeypatch.delenv("AISP_PUBKEY")
    with pytest.raises(AispError, match="no public key"):
        verify_provenance("provenance.json")
    with pytest.raises(AispError, match="no public key"):
        assert_provenance_intact("provenance.json")
    result = verify_provenance("provenance.json", allow_unsigned=True)
    assert result.ok and result.signature == "not checked" and not result.authenticated


def test_a_statement_without_subjects_vouches_for_nothing(trained: Path, release_key: Path) -> None:
    from pytest_aisp.supply.provenance import PAYLOAD_TYPE
    from pytest_aisp.supply.signing import dsse_sign

    statement = json.loads(_record().read_text())
    statement["subject"] = []
    envelope = dsse_sign(PAYLOAD_TYPE, json.dumps(statement).encode(), release_key)
    Path("empty.json").write_text(json.dumps(envelope))
    result = verify_provenance("empty.json")
    assert result.authenticated
    (finding,) = result.findings
    assert finding.rule_id == "AISP-SUPPLY-PROVENANCE" and finding.severity is Severity.CRITICAL
    assert "names no subject" in finding.message
    with pytest.raises(IntegrityFailure, match="no subject"):
        assert_provenance_intact("empty.json")


def test_provenance_of_another_build_is_a_finding(trained: Path, release_key: Path) -> None:
    """A validly signed statement about other products is not provenance for the model in use."""
    record_provenance(
        TRAIN, materials=["data"], products=["model/config.json"], output="config.json.intoto", key=release_key
    )
    assert verify_provenance("config.json.intoto").ok
    result = verify_provenance("config.json.intoto", products=["model/model.safetensors"])
    (finding,) = result.findings
    assert "product model/model.safetensors is not a subject" in finding.message
    assert verify_provenance("config.json.intoto", products=[trained / "model" / "config.json"]).ok
