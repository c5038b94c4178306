"""Dependency pinning: requirements, pyproject and lock files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aisp.findings import IntegrityFailure, Severity
from pytest_aisp.supply.pinning import assert_dependencies_pinned, check_pinning


def test_project_requirements(project: Path) -> None:
    result = check_pinning(project)
    messages = {f.evidence.get("package"): f.message for f in result.findings}
    assert set(messages) == {"safetensors", "scikit-learn"}
    assert "has no --hash" in messages["safetensors"]
    assert "is not pinned (`>=1.3`)" in messages["scikit-learn"]
    assert all(f.severity is Severity.LOW and f.rule_id == "AISP-SUPPLY-UNPINNED" for f in result.findings)
    assert result.findings[0].location.endswith("requirements.txt:3")
    assert {f.evidence["package"] for f in check_pinning(project, require_hashes=False).findings} == {
        "scikit-learn"
    }


def test_requirement_forms(tmp_path: Path) -> None:
    (tmp_path / "requirements-dev.txt").write_text(
        "-r requirements.txt\n"
        "# a comment\n"
        "pytest==9.0.0 --hash=sha256:abc\n"
        "torch[cpu]==2.13.0 \\\n    --hash=sha256:def\n"
        "requests\n"
        "numpy==2.*  --hash=sha256:1\n"
        "-e git+https://example.com/x.git#egg=x\n"
        "pkg @ https://example.com/pkg-1.0.tar.gz\n"
        "--trusted-host example.com\n"
    )
    findings = check_pinning(tmp_path).findings
    text = " | ".join(f.message for f in findings)
    assert "requests is not pinned" in text and "numpy is not pinned" in text
    assert "not pinned to a commit" in text and "turns off TLS" in text
    assert "pytest" not in text and "torch" not in text
    assert len(findings) == 5  # the direct URL without a hash is not pinned either


def test_pyproject_needs_a_lock(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\ndependencies=["numpy>=2", "attrs==23.1.0"]\n'
    )
    assert [f.evidence["package"] for f in check_pinning(tmp_path).findings] == ["numpy"]
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "numpy"\nversion = "2.0"\n'
        'sdist = { url = "https://x", hash = "sha256:00" }\n'
        '[[package]]\nname = "loose"\nversion = "1.0"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    assert [f.evidence["package"] for f in check_pinning(tmp_path).findings] == ["loose"]


def test_assert_dependencies_pinned(project: Path, tmp_path: Path) -> None:
    with pytest.raises(IntegrityFailure, match="2 unpinned or unhashed"):
        assert_dependencies_pinned(project)
    (tmp_path / "requirements.txt").write_text("numpy==2.4.6 --hash=sha256:00\n")
    assert assert_dependencies_pinned(tmp_path).ok
