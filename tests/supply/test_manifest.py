"""Creating and loading manifests: contents, kinds, digests, provenance block and malformed input."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_aisp.findings import AispError
from pytest_aisp.supply.manifest import (
    ManifestError,
    check_entry_path,
    classify,
    compute_root_digest,
    create_manifest,
    load_manifest,
    matches,
    save_manifest,
)


def test_create_records_every_file_with_kind_size_and_digest(project: Path) -> None:
    manifest = create_manifest(project, manifest_path=project / "aisp-manifest.json")
    entries = manifest.by_path()
    assert set(entries) == {
        ".github/workflows/ci.yml",
        "Jenkinsfile",
        "data/train.csv",
        "model/MODEL_CARD.md",
        "model/config.json",
        "model/model.safetensors",
        "requirements.txt",
        "train.py",
    }
    model = entries["model/model.safetensors"]
    data = (project / "model" / "model.safetensors").read_bytes()
    assert model.kind == "model" and model.size == len(data)
    assert model.digest == hashlib.sha256(data).hexdigest()
    assert entries["data/train.csv"].kind == "dataset"
    assert entries["train.py"].kind == "script"
    assert entries["Jenkinsfile"].kind == "pipeline"
    assert entries[".github/workflows/ci.yml"].kind == "pipeline"
    assert entries["requirements.txt"].kind == "config"
    assert manifest.root_digest == compute_root_digest(manifest.entries, "sha256")


def test_manifest_json_round_trips_and_is_deterministic(project: Path) -> None:
    path = project / "aisp-manifest.json"
    first = create_manifest(project, manifest_path=path)
    save_manifest(first, path)
    loaded = load_manifest(path)
    assert loaded.entries == first.entries
    assert loaded.root == "." and loaded.algorithm == "sha256"
    data = json.loads(path.read_text())
    assert {
        "format",
        "schema_version",
        "algorithm",
        "tool",
        "created",
        "root_digest",
        "entries",
        "provenance",
        "ignore",
    } <= set(data)
    again = create_manifest(project, manifest_path=path)  # the manifest itself is left out
    assert again.root_digest == first.root_digest


def test_blake3_digests_match_the_blake3_library(project: Path) -> None:
    import blake3

    manifest = create_manifest(project, algorithm="blake3")
    data = (project / "data" / "train.csv").read_bytes()
    assert manifest.by_path()["data/train.csv"].digest == blake3.blake3(data).hexdigest()


def test_kind_and_ignore_globs(project: Path) -> None:
    (project / "logs").mkdir()
    (project / "logs" / "run.log").write_text("x")
    (project / "model" / "tmp.partial").write_text("x")
    manifest = create_manifest(project, kinds=["dataset=model/*.json"], ignore=["logs/", "*.partial"])
    entries = manifest.by_path()
    assert entries["model/config.json"].kind == "dataset"
    assert "logs/run.log" not in entries and "model/tmp.partial" not in entries
    assert "logs/" in manifest.ignore
    with pytest.raises(AispError, match="KIND=GLOB"):
        create_manifest(project, kinds=["weights=*.bin"])


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_provenance_block_records_git_and_ci_builder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=n", "add", "-A")
    git("-c", "user.email=a@b", "-c", "user.name=n", "commit", "-qm", "init")
    git("remote", "add", "origin", "https://user:s3cret@example.com/team/repo.git")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/repo")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    manifest = create_manifest(project, argv=["aisp", "manifest", "create", "."])
    block = manifest.provenance
    assert len(block["git"]["commit"]) == 40
    assert block["git"]["remote"] == "https://example.com/team/repo.git"  # credentials stripped
    assert block["builder"] == {
        "ci": "github-actions",
        "GITHUB_REPOSITORY": "team/repo",
        "GITHUB_RUN_ID": "42",
    }
    assert block["command"] == ["aisp", "manifest", "create", "."]
    assert ".git/config" not in manifest.by_path()


def test_symlinks_are_refused_unless_allowed_and_never_out_of_root(project: Path, tmp_path: Path) -> None:
    (project / "model" / "alias.safetensors").symlink_to("model.safetensors")
    with pytest.raises(AispError, match="symbolic link"):
        create_manifest(project)
    manifest = create_manifest(project, allow_symlinks=True)
    alias = manifest.by_path()["model/alias.safetensors"]
    assert alias.type == "symlink" and alias.target == "model.safetensors"
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    (project / "model" / "leak.bin").symlink_to(outside)
    with pytest.raises(AispError, match="outside"):
        create_manifest(project, allow_symlinks=True)


def test_symlinked_directory_is_not_descended(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "big.bin").write_bytes(b"x" * 10)
    (project / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(AispError, match="outside"):
        create_manifest(project, allow_symlinks=True)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../etc/passwd", "leaves the root"),
        ("model/../../x", "leaves the root"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/x", "absolute"),
        ("a\x00b", "NUL"),
        ("a\\..\\b", "backslash"),
        ("./a", "not normalised"),
        ("a//b", "not normalised"),
        ("", "non-empty"),
    ],
)
def test_unsafe_entry_paths_are_rejected(path: str, why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        check_entry_path(path)


@settings(max_examples=60)
@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "x.bin"]), min_size=1, max_size=5))
def test_accepted_paths_never_leave_the_root(parts: list[str]) -> None:
    path = "/".join(parts)
    try:
        check_entry_path(path)
    except ManifestError:
        return
    resolved = (Path("/root_dir") / path).resolve()
    assert str(resolved).startswith("/root_dir/")


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_malformed_manifests_are_errors_not_findings(project: Path, tmp_path: Path) -> None:
    path = project / "aisp-manifest.json"
    save_manifest(create_manifest(project, manifest_path=path), path)
    good = json.loads(path.read_text())

    traversal = json.loads(json.dumps(good))
    traversal["entries"][0]["path"] = "../../etc/passwd"
    with pytest.raises(ManifestError, match="leaves the root"):
        load_manifest(_write(tmp_path / "t.json", traversal))

    duplicate = json.loads(json.dumps(good))
    duplicate["entries"].append(dict(duplicate["entries"][0]))
    with pytest.raises(ManifestError, match="appears twice"):
        load_manifest(_write(tmp_path / "d.json", duplicate))

    edited = json.loads(json.dumps(good))
    edited["entries"][0]["digest"] = "0" * 64
    with pytest.raises(ManifestError, match="root_digest"):
        load_manifest(_write(tmp_path / "e.json", edited))

    for field, value, message in [
        ("algorithm", "md5", "unknown digest"),
        ("format", "x", "not an"),
        ("entries", {}, "must be a list"),
        ("root", "/abs", "relative"),
    ]:
        broken = dict(good, **{field: value})
        with pytest.raises(ManifestError, match=message):
            load_manifest(_write(tmp_path / "b.json", broken))
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not JSON"):
        load_manifest(tmp_path / "garbage.json")
    with pytest.raises(AispError, match="does not exist"):
        load_manifest(tmp_path / "absent.json")


def test_glob_matching_rules() -> None:
    assert matches("a/b/c.pt", "*.pt")
    assert matches("logs", "logs/", is_dir=True) and not matches("logs", "logs/")
    assert matches("x/logs", "logs/", is_dir=True)
    assert matches("data/raw/x.csv", "data/**/*.csv")
    assert matches("data/x.csv", "data/**/*.csv")
    assert not matches("model/x.csv", "data/*.csv")
    assert classify("ci/Jenkinsfile") == "pipeline"
    assert classify("requirements-dev.txt") == "config"
    assert classify("weights/model.gguf") == "model"
    assert classify("data/shard-0001") == "dataset"


def test_anchored_patterns_match_only_at_the_root() -> None:
    assert matches("aisp-manifest.json", "/aisp-manifest.json")
    assert not matches("model/aisp-manifest.json", "/aisp-manifest.json")
    assert matches(".git", "/.git/", is_dir=True) and not matches("sub/.git", "/.git/", is_dir=True)
    assert matches("a/b", "/a/*") and not matches("x/a/b", "/a/*")


def test_manifest_saved_elsewhere_records_where_its_root_is(project: Path, tmp_path: Path) -> None:
    """create_manifest(dir) then save_manifest anywhere: the root is recorded relative to the file."""
    from pytest_aisp.supply.verify import verify_manifest

    elsewhere = tmp_path / "build" / "release.json"
    elsewhere.parent.mkdir()
    save_manifest(create_manifest(project), elsewhere)
    assert json.loads(elsewhere.read_text())["root"] == "../project"
    result = verify_manifest(elsewhere, allow_unsigned=True)
    assert result.ok and result.changes == () and result.root.resolve() == project.resolve()
    # Saved inside the root without manifest_path: its own file is left out, as the CLI does.
    inside = project / "aisp-manifest.json"
    save_manifest(create_manifest(project), inside)
    save_manifest(create_manifest(project), inside)  # a second run must not record the first manifest
    assert "aisp-manifest.json" not in load_manifest(inside).by_path()
    assert verify_manifest(inside, allow_unsigned=True).ok
    # A loaded manifest saved elsewhere keeps pointing at the same directory.
    moved = tmp_path / "moved.json"
    save_manifest(load_manifest(elsewhere), moved)
    assert json.loads(moved.read_text())["root"] == "project"


def test_a_failed_save_leaves_no_temporary_file(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(AispError, match="is a directory"):
        save_manifest(create_manifest(project), out)
    with pytest.raises(AispError, match="does not exist"):
        save_manifest(create_manifest(project), tmp_path / "missing" / "m.json")
    assert [p.name for p in tmp_path.iterdir()] == ["out", "project"]
    assert list(out.iterdir()) == []


@settings(max_examples=300, deadline=None)
@given(
    path=st.lists(st.sampled_from(["a", "b", "data", "logs", ".git", "x.pt", "m.csv", "__pycache__"]),
                  min_size=1, max_size=4).map("/".join),
    patterns=st.lists(
        st.sampled_from(
            ["*.pt", "logs/", "/logs/", "/a/*", "data/**/*.csv", "**/x.pt", "a/b", "/.git/", ".git/", "b",
             "*", "/m.csv", "data/*", "**/logs/"]
        ),
        max_size=5,
    ),
    is_dir=st.booleans(),
)
def test_compiled_ignore_matcher_agrees_with_matches(path: str, patterns: list[str], is_dir: bool) -> None:
    from pytest_aisp.supply.manifest import ignore_matcher

    expected = any(matches(path, p, is_dir=is_dir) for p in patterns)
    assert ignore_matcher(tuple(patterns))(path, is_dir) == expected


@pytest.mark.parametrize("name", ["a.pt", ".bashrc", "a.", "a.tar.gz", "..x", "noext", "x.PT", "a.b.c"])
def test_suffix_is_classified_as_pathlib_would(name: str) -> None:
    from pathlib import PurePosixPath

    from pytest_aisp.supply.manifest import MODEL_SUFFIXES

    assert (classify(name) == "model") == (PurePosixPath(name.lower()).suffix in MODEL_SUFFIXES)
