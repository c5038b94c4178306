# --- supply-chain integrity (pytest_aisp.supply) ------------------------------------------------
import shutil

import pytest

from pytest_aisp import IntegrityFailure
from pytest_aisp.supply import (
    assert_dependencies_pinned,
    assert_manifest_intact,
    assert_provenance_intact,
    verify_manifest,
)


@pytest.mark.aisp_supply
def test_model_data_and_pipeline_match_the_signed_manifest(artifact_manifest):
    result = assert_manifest_intact(artifact_manifest)
    assert result.signature == "valid"


@pytest.mark.aisp_supply
def test_model_was_built_from_the_recorded_data(supply_project):
    assert_provenance_intact(supply_project["provenance"], root=supply_project["root"],
                             pubkey=supply_project["pubkey"])


@pytest.mark.aisp_supply
def test_a_swapped_model_is_caught(supply_project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(supply_project["root"], copy)
    (copy / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    result = verify_manifest(supply_project["manifest"], root=copy, pubkey=supply_project["pubkey"])
    assert [c.change for c in result.changes] == ["modified"]
    with pytest.raises(IntegrityFailure, match=r"model/model\.safetensors"):
        assert_manifest_intact(result)


@pytest.mark.aisp_supply
@pytest.mark.xfail(strict=True, raises=IntegrityFailure, reason="requirements.txt has a range, no hashes")
def test_dependencies_are_pinned_and_hashed(supply_project):
    assert_dependencies_pinned(supply_project["root"])
