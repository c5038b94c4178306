"""The artifact_manifest fixture and assert_manifest_intact inside pytest (pytester)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_aisp.supply.manifest import create_manifest, save_manifest
from pytest_aisp.supply.signing import sign_manifest

TEST_FILE = """
import pytest
from pytest_aisp import assert_manifest_intact

@pytest.mark.aisp_supply
def test_artifacts(artifact_manifest):
    assert_manifest_intact(artifact_manifest)

def test_verified_once(artifact_manifest):
    assert artifact_manifest.metrics["files_checked"] == 3
"""


@pytest.fixture
def repo(pytester: pytest.Pytester, generated_project: Path, keys) -> Path:
    """A repository with artifacts, a manifest signed by the release key, and that key configured."""
    root = pytester.path
    shutil.copytree(generated_project / "model", root / "artifacts")
    path = root / "aisp-manifest.json"
    save_manifest(create_manifest(root / "artifacts", manifest_path=path), path)
    sign_manifest(path, keys["ed25519"][0])
    pytester.makepyprojecttoml(f"""
[tool.aisp.supply]
pubkey = "{keys["ed25519"][1]}"
""")
    pytester.makepyfile(test_supply=TEST_FILE)
    return root


def test_intact_artifacts_pass(pytester: pytest.Pytester, repo: Path) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_tampered_artifacts_fail_with_integrity_failure(pytester: pytest.Pytester, repo: Path) -> None:
    (repo / "artifacts" / "config.json").write_text("{}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "aisp")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*IntegrityFailure*1 modified*", "*AISP-SUPPLY-MODIFIED*config.json*"])


def test_manifest_option_and_signature_config(pytester: pytest.Pytester, repo: Path, keys) -> None:
    moved = repo / "build" / "m.json"
    moved.parent.mkdir()
    save_manifest(create_manifest(repo / "artifacts", manifest_path=moved), moved)
    (repo / "aisp-manifest.json").unlink()
    sign_manifest(moved, keys["ed25519"][0])
    pytester.makepyprojecttoml(f"""
[tool.aisp.supply]
pubkey = "{keys["other_ed25519"][1]}"
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "--aisp-manifest", "build/m.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AISP-SUPPLY-SIGNATURE*not by the given key*"])


def test_unconfigured_fixture_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_supply=TEST_FILE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*artifact_manifest needs --aisp-manifest*"])


def test_malformed_manifest_errors_the_test(pytester: pytest.Pytester, repo: Path) -> None:
    (repo / "aisp-manifest.json").write_text('{"format": "aisp-manifest"}')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*schema_version*"])


def test_under_xdist(pytester: pytest.Pytester, repo: Path) -> None:
    pytest.importorskip("xdist")
    (repo / "artifacts" / "config.json").write_text("{}\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=1, failed=1)


def test_regenerated_manifest_fails_the_signature_check(pytester: pytest.Pytester, repo: Path) -> None:
    """An attacker swaps the model and writes a fresh manifest for it: the digests all match, but the
    manifest is not signed by the release key, so the test fails."""
    (repo / "artifacts" / "model.safetensors").write_bytes(b"a substituted model")
    path = repo / "aisp-manifest.json"
    save_manifest(create_manifest(repo / "artifacts", manifest_path=path), path)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*IntegrityFailure*", "*AISP-SUPPLY-SIGNATURE*changed after it was signed*"])


def test_without_a_key_the_fixture_errors_naming_the_settings(pytester: pytest.Pytester, repo: Path) -> None:
    (repo / "pyproject.toml").unlink()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*AispError: artifact_manifest*no public key*AISP_PUBKEY*[[]tool.aisp.supply[]] pubkey*allow_unsigned*"]
    )


def test_allow_unsigned_is_an_explicit_opt_out(pytester: pytest.Pytester, repo: Path) -> None:
    (repo / "aisp-manifest.json.sig").unlink()
    pytester.makepyprojecttoml("""
[tool.aisp.supply]
allow_unsigned = true
""")
    pytester.makepyfile(
        test_unsigned="""
def test_not_authenticated(artifact_manifest):
    assert artifact_manifest.ok and not artifact_manifest.authenticated
    assert "integrity not authenticated" in artifact_manifest.summary()
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    pytester.makepyprojecttoml("""
[tool.aisp.supply]
require_signature = false
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "test_unsigned.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*require_signature = false*set allow_unsigned = true*"])


def test_python_api_scans_under_the_project_scan_configuration(pytester: pytest.Pytester) -> None:
    """create_manifest(scan=True) inside pytest reads [tool.aisp.scan] like aisp scan and the fixtures."""
    (pytester.path / "models").mkdir()
    (pytester.path / "models" / "cnn_full.pt").write_bytes(b"\x80\x02cmypkg.models\nDigitsCNN\n)\x81.")
    pytester.makepyprojecttoml('[tool.aisp.scan]\nallow = ["mypkg.models.DigitsCNN"]\n')
    pytester.makepyfile(
        test_scan="""
from pytest_aisp.supply import create_manifest, save_manifest, verify_manifest

def test_scan_verdict(tmp_path):
    manifest = create_manifest("models", scan=True)
    (entry,) = manifest.entries
    assert entry.scan["ok"] is True, entry.scan
    path = save_manifest(manifest, tmp_path / "m.json")
    assert verify_manifest(path, allow_unsigned=True).ok
"""
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
