"""Model-file security tests as an ML team writes them: scan before anything loads a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aisp import UnsafeArtifact, assert_safe_artifact, load_model_safely, scan_artifact


@pytest.mark.aisp
def test_release_checkpoint_is_safe(scan_release_dir: Path) -> None:
    assert_safe_artifact(scan_release_dir / "checkpoint.pt")


@pytest.mark.aisp
def test_whole_release_folder_is_clean(scan_release_dir: Path) -> None:
    result = scan_artifact(scan_release_dir)
    assert result.ok, "\n".join(f.one_line() for f in result.findings)
    # only the zip directory and the pickles were read, not the weights
    assert result.bytes_read < sum(f.size for f in result.files)


@pytest.mark.aisp
def test_checkpoint_loads_without_running_code(scan_release_dir: Path) -> None:
    loaded = load_model_safely(scan_release_dir / "checkpoint.pt")
    assert loaded.loader == "torch.load(weights_only=True)"
    assert set(loaded.model) == {"model", "epoch"}


@pytest.mark.aisp
def test_untrusted_download_is_refused(scan_untrusted_download: Path) -> None:
    with pytest.raises(UnsafeArtifact, match=r"random\._os\.system"):
        assert_safe_artifact(scan_untrusted_download)
    assert not list(scan_untrusted_download.parent.glob("*.marker"))
