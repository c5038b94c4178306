"""Every tamper case against a real trained project: what changed is found, named and costed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_aisp.findings import IntegrityFailure, Severity
from pytest_aisp.supply.manifest import ManifestError, create_manifest, save_manifest
from pytest_aisp.supply.signing import sign_manifest
from pytest_aisp.supply.verify import assert_manifest_intact, verify_manifest

MODEL = "model/model.safetensors"


@pytest.fixture(autouse=True)
def release_key(keys, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The private release key; its public key is the trusted one (AISP_PUBKEY), as in a CI job."""
    monkeypatch.setenv("AISP_PUBKEY", str(keys["ed25519"][1]))
    return keys["ed25519"][0]


@pytest.fixture
def manifest_path(project: Path, release_key: Path) -> Path:
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path), path)
    sign_manifest(path, release_key)
    return path


def changes(result) -> list[tuple[str, str]]:
    return [(c.change, c.path) for c in result.changes]


def test_intact_project_verifies(manifest_path: Path) -> None:
    result = verify_manifest(manifest_path)
    assert result.ok and result.findings == () and result.summary() == "intact"
    assert result.authenticated and result.signature == "valid"
    assert result.metrics["files_checked"] == 8 and result.metrics["files_hashed"] == 8
    assert assert_manifest_intact(manifest_path).ok


def test_byte_flip_is_found_by_hashing(project: Path, manifest_path: Path) -> None:
    model = project / MODEL
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    result = verify_manifest(manifest_path)
    assert changes(result) == [("modified", MODEL)]
    finding = result.findings[0]
    assert finding.rule_id == "AISP-SUPPLY-MODIFIED" and finding.severity is Severity.CRITICAL
    assert finding.location.endswith(MODEL)
    assert "same size" in finding.message
    assert len(finding.evidence["actual_digest"]) == 64  # digests as hex


@pytest.mark.parametrize(("edit", "hint"), [("truncate", "truncated by 10"), ("append", "grew by 1")])
def test_size_changes_are_found_without_hashing(
    project: Path, manifest_path: Path, edit: str, hint: str
) -> None:
    model = project / MODEL
    size = model.stat().st_size
    if edit == "truncate":
        os.truncate(model, size - 10)
    else:
        with model.open("ab") as fh:
            fh.write(b"\0")
    result = verify_manifest(manifest_path)
    assert changes(result) == [("modified", MODEL)]
    assert hint in result.findings[0].message
    # The modified file was not read: only the 7 unchanged files were hashed.
    assert result.metrics["files_hashed"] == 7
    assert result.metrics["bytes_hashed"] == sum(
        (project / e.path).stat().st_size for e in result.manifest.entries if e.path != MODEL
    )


def test_every_size_changed_means_no_hashing_at_all(project: Path, manifest_path: Path) -> None:
    for entry in json.loads(manifest_path.read_text())["entries"]:
        with (project / entry["path"]).open("ab") as fh:
            fh.write(b"#tampered\n")
    result = verify_manifest(manifest_path)
    assert len(result.changes) == 8 and {c.change for c in result.changes} == {"modified"}
    assert result.metrics["files_hashed"] == 0 and result.metrics["bytes_hashed"] == 0


def test_added_and_deleted_files(project: Path, manifest_path: Path) -> None:
    (project / "model" / "backdoor.pkl").write_bytes(b"\x80\x04payload")
    (project / "data" / "train.csv").unlink()
    result = verify_manifest(manifest_path)
    assert changes(result) == [("missing", "data/train.csv"), ("added", "model/backdoor.pkl")]
    rules = {f.rule_id: f.severity for f in result.findings}
    assert rules == {"AISP-SUPPLY-MISSING": Severity.HIGH, "AISP-SUPPLY-ADDED": Severity.HIGH}


def test_renamed_file(project: Path, manifest_path: Path) -> None:
    (project / "train.py").rename(project / "train_v2.py")
    result = verify_manifest(manifest_path)
    assert changes(result) == [("renamed", "train_v2.py")]
    assert "train.py was renamed to train_v2.py" in result.findings[0].message
    assert result.findings[0].rule_id == "AISP-SUPPLY-RENAMED"


def test_swapped_names(project: Path, manifest_path: Path) -> None:
    a, b = project / "model" / "config.json", project / "model" / "MODEL_CARD.md"
    tmp = project / "swap.tmp"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    result = verify_manifest(manifest_path)
    assert changes(result) == [("swapped", "model/MODEL_CARD.md"), ("swapped", "model/config.json")]
    assert "holds the content recorded for model/config.json" in result.changes[0].detail
    assert {f.rule_id for f in result.findings} == {"AISP-SUPPLY-RENAMED"}


def test_model_substituted_by_another_recorded_file(project: Path, manifest_path: Path) -> None:
    (project / MODEL).write_bytes((project / "model" / "config.json").read_bytes())
    result = verify_manifest(manifest_path)
    assert changes(result) == [("swapped", MODEL)]


def test_file_replaced_by_symlink_is_a_type_change(
    project: Path, manifest_path: Path, tmp_path: Path
) -> None:
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes((project / MODEL).read_bytes())  # same bytes: only the type betrays it
    (project / MODEL).unlink()
    (project / MODEL).symlink_to(evil)
    result = verify_manifest(manifest_path)
    assert changes(result) == [("type-changed", MODEL)]
    assert result.findings[0].rule_id == "AISP-SUPPLY-TYPE-CHANGED"
    assert result.metrics["files_hashed"] == 7  # the link was never followed


def test_new_symlink_out_of_root_is_reported(project: Path, manifest_path: Path) -> None:
    (project / "model" / "passwd").symlink_to("/etc/passwd")
    result = verify_manifest(manifest_path, allow_symlinks=True)
    assert changes(result) == [("symlink", "model/passwd")]
    assert "outside the root" in result.changes[0].detail
    assert result.findings[0].rule_id == "AISP-SUPPLY-SYMLINK"


def test_directory_swapped_for_symlink_is_not_followed(
    project: Path, manifest_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model_copy"
    (project / "model").rename(copy)
    (project / "model").symlink_to(copy, target_is_directory=True)
    result = verify_manifest(manifest_path)
    kinds = changes(result)
    assert ("symlink", "model") in kinds
    assert {c for c, _ in kinds} == {"missing", "symlink"}


def test_pipeline_edit_is_caught(project: Path, manifest_path: Path) -> None:
    workflow = project / ".github" / "workflows" / "ci.yml"
    workflow.write_text(workflow.read_text().replace("pytest -m aisp", "pytest -m 'not aisp'"))
    result = verify_manifest(manifest_path)
    assert changes(result) == [("modified", ".github/workflows/ci.yml")]


def test_traversal_manifest_cannot_make_the_verifier_read_outside(project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    manifest = create_manifest(project)
    data = manifest.to_dict()
    data["entries"].append(
        {"path": "../secret.txt", "kind": "other", "type": "file", "size": 11, "digest": "0" * 64}
    )
    path = project / "evil-manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="leaves the root"):
        verify_manifest(path)


def test_ignored_patterns_stay_ignored(release_key: Path, project: Path) -> None:
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path, ignore=["logs/"]), path)
    sign_manifest(path, release_key)
    (project / "logs").mkdir()
    (project / "logs" / "x.log").write_text("noise")
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")
    assert verify_manifest(path).ok


def test_manifest_outside_root_and_explicit_root(release_key: Path, project: Path, tmp_path: Path) -> None:
    path = tmp_path / "build" / "aisp-manifest.json"
    path.parent.mkdir()
    save_manifest(create_manifest(project / "model", manifest_path=path), path)
    sign_manifest(path, release_key)
    assert json.loads(path.read_text())["root"] == "../project/model"
    assert verify_manifest(path).ok
    assert verify_manifest(path, root=project / "model").ok
    assert not verify_manifest(path, root=project / "data").ok


def test_assert_manifest_intact_fails_with_the_change(project: Path, manifest_path: Path) -> None:
    (project / "data" / "train.csv").write_text("f0,f1,f2,f3,label\n9,9,9,9,1\n")
    with pytest.raises(IntegrityFailure) as info:
        assert_manifest_intact(manifest_path)
    message = str(info.value)
    assert "do not match" in message and "1 modified" in message and "data/train.csv" in message
    assert info.value.result.changes[0].path == "data/train.csv"
    assert [f.rule_id for f in info.value.findings] == ["AISP-SUPPLY-MODIFIED"]


def test_added_file_below_threshold_passes_with_fail_on_critical(project: Path, manifest_path: Path) -> None:
    (project / "notes.txt").write_text("x")
    result = assert_manifest_intact(manifest_path, fail_on="critical")
    assert [c.change for c in result.changes] == ["added"]


def test_blake3_manifest_verifies_and_detects(release_key: Path, project: Path) -> None:
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path, algorithm="blake3"), path)
    sign_manifest(path, release_key)
    assert verify_manifest(path).ok
    (project / "train.py").write_text((project / "train.py").read_text().replace("0.5", "0.6"))
    assert changes(verify_manifest(path)) == [("modified", "train.py")]


def test_allowed_symlink_retargeted_is_modified(release_key: Path, project: Path) -> None:
    (project / "model" / "current").symlink_to("model.safetensors")
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path, allow_symlinks=True), path)
    sign_manifest(path, release_key)
    assert verify_manifest(path).ok
    (project / "model" / "current").unlink()
    (project / "model" / "current").symlink_to("config.json")
    result = verify_manifest(path)
    assert changes(result) == [("modified", "model/current")]
    assert "'model.safetensors' -> 'config.json'" in result.changes[0].detail


def test_reads_never_pass_through_a_linked_directory(project: Path, tmp_path: Path) -> None:
    from pytest_aisp.supply.hashing import NotARegularFile, digest_file

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.safetensors").write_bytes(b"secret")
    (project / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(NotARegularFile, match="symbolic link"):
        digest_file("linked/model.safetensors", root=project)
    assert (
        digest_file("model/config.json", root=project).size
        == (project / "model" / "config.json").stat().st_size
    )


def test_model_recorded_unsafe_by_the_scan_is_reported(release_key: Path, project: Path) -> None:
    from dataclasses import replace

    from pytest_aisp.scan import default_policy
    from pytest_aisp.supply.settings import policy_fingerprint

    manifest = create_manifest(project, manifest_path=project / "aisp-manifest.json")
    verdict = {
        "ok": False,
        "findings": ["AISP-SCAN-PICKLE-GLOBAL"],
        "max_severity": "critical",
        "policy": policy_fingerprint(default_policy()),  # made under the policy in force: it stands
    }
    entries = tuple(replace(e, scan=verdict) if e.kind == "model" else e for e in manifest.entries)
    path = save_manifest(replace(manifest, entries=entries), project / "aisp-manifest.json")
    sign_manifest(path, release_key)
    result = verify_manifest(path)
    assert result.changes == ()  # an unsafe model is not a change
    (finding,) = result.findings
    assert finding.rule_id == "AISP-SUPPLY-SCAN" and "when the manifest was made" in finding.message
    assert "AISP-SCAN-PICKLE-GLOBAL" in finding.message and "1 unsafe model" in result.summary()
