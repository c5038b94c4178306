"""The labelled corpus: every malicious sample flagged, every benign file clean (scan_artifact and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aisp.cli import main
from pytest_aisp.findings import Severity, UnsafeArtifact
from pytest_aisp.scan import assert_safe_artifact, scan_artifact


def test_every_malicious_sample_is_flagged(corpus_dir: Path, labels: list[dict]) -> None:
    malicious = [s for s in labels if s["label"] == "malicious"]
    assert len(malicious) >= 50
    missed = []
    for sample in malicious:
        result = scan_artifact(corpus_dir / sample["name"])
        if result.ok:
            missed.append(f"{sample['name']} ({sample['technique']}): {[f.one_line() for f in result.findings]}")
    assert not missed, "missed:\n" + "\n".join(missed)


def test_every_benign_file_is_clean(corpus_dir: Path, labels: list[dict]) -> None:
    benign = [s for s in labels if s["label"] == "benign"]
    assert len(benign) >= 40
    result = scan_artifact(corpus_dir / "benign")
    # an object .npy is always reported low (numpy.load needs allow_pickle=True); its pickle must be clean
    noisy = [f.one_line() for f in result.findings
             if f.severity > Severity.INFO and f.rule_id != "AISP-SCAN-NUMPY-OBJECT"]
    assert not noisy, "false positives:\n" + "\n".join(noisy)
    assert result.ok
    assert len(result.files) >= len(benign)


def test_pickle_payload_findings_name_the_global_and_offset(corpus_dir: Path) -> None:
    result = scan_artifact(corpus_dir / "malicious" / "mal_dotted_random_os.pkl")
    (finding,) = [f for f in result.findings if f.rule_id == "AISP-SCAN-PICKLE-DANGEROUS"]
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["global"] == "random._os.system"
    assert finding.evidence["opcode"] == "STACK_GLOBAL"
    assert isinstance(finding.evidence["offset"], int)


@pytest.mark.parametrize(("name", "rule_id"), [
    ("mal_dynamic_stack_global.pkl", "AISP-SCAN-PICKLE-DYNAMIC-GLOBAL"),
    ("mal_ext_opcode.pkl", "AISP-SCAN-PICKLE-EXT"),
    ("mal_frame_overrun.pkl", "AISP-SCAN-PICKLE-FRAME"),
    ("mal_frame_file_mode.pkl", "AISP-SCAN-PICKLE-DANGEROUS"),
    ("mal_payload_then_broken.pkl", "AISP-SCAN-PICKLE-BROKEN"),
    ("mal_zip_bad_crc.pt", "AISP-SCAN-ZIP-CRC"),
    ("mal_zip_duplicate.pt", "AISP-SCAN-ZIP-DUPLICATE"),
    ("mal_zip_name_mismatch.pt", "AISP-SCAN-ZIP-NAME-MISMATCH"),
    ("mal_zip_flag_bits.pt", "AISP-SCAN-ZIP-FLAGS"),
    ("mal_zip_flag_bits.pt", "AISP-SCAN-UNSCANNABLE"),
    ("mal_zip_hidden_member.pt", "AISP-SCAN-ZIP-PICKLE-MEMBER"),
    ("mal_polyglot.pkl", "AISP-SCAN-POLYGLOT"),
    ("mal_pickle_as.safetensors", "AISP-SCAN-FORMAT-MISMATCH"),
    ("mal_torchscript_custom_op.pt", "AISP-SCAN-TORCHSCRIPT-OP"),
    ("mal_keras_lambda.keras", "AISP-SCAN-KERAS-LAMBDA"),
    ("mal_keras_lambda.h5", "AISP-SCAN-KERAS-LAMBDA"),
    ("mal_keras_module.keras", "AISP-SCAN-KERAS-MODULE"),
    ("mal_tf_pyfunc/saved_model.pb", "AISP-SCAN-TF-OP"),
    ("mal_tf_readfile/saved_model.pb", "AISP-SCAN-TF-OP"),
    ("mal_onnx_traversal/model.onnx", "AISP-SCAN-ONNX-EXTERNAL-PATH"),
    ("mal_onnx_custom_domain.onnx", "AISP-SCAN-ONNX-DOMAIN"),
    ("mal_safetensors_overlap.safetensors", "AISP-SCAN-SAFETENSORS-HEADER"),
    ("mal_safetensors_hidden.safetensors", "AISP-SCAN-SAFETENSORS-HEADER"),
    ("mal_safetensors_length.safetensors", "AISP-SCAN-SAFETENSORS-HEADER"),
    ("mal_gguf_ssti.gguf", "AISP-SCAN-GGUF-TEMPLATE"),
    ("mal_gguf_billion.gguf", "AISP-SCAN-LIMIT"),
    ("mal_torch_tar_storage.pt", "AISP-SCAN-PICKLE-DANGEROUS"),
    ("mal_torch_tar_pickle.pt", "AISP-SCAN-PICKLE-DANGEROUS"),
    ("mal_data_raw_bytes.pkl", "AISP-SCAN-DATA-PICKLE"),
    ("mal_data_hex.pkl", "AISP-SCAN-DATA-PICKLE"),
    ("mal_data_base64.pkl", "AISP-SCAN-DATA-PICKLE"),
    ("mal_data_multistage.pkl", "AISP-SCAN-DATA-PICKLE"),
    ("mal_data_code_exec.pkl", "AISP-SCAN-DATA-CODE"),
    ("mal_safetensors_code_meta.safetensors", "AISP-SCAN-DATA-CODE"),
])
def test_technique_fires_its_rule(corpus_dir: Path, name: str, rule_id: str) -> None:
    result = scan_artifact(corpus_dir / "malicious" / name)
    assert rule_id in {f.rule_id for f in result.findings}, [f.one_line() for f in result.findings]


def test_embedded_pickle_is_scanned_recursively(corpus_dir: Path) -> None:
    result = scan_artifact(corpus_dir / "malicious" / "mal_embedded_pickle_loads.pkl")
    inner = [f for f in result.findings if "#embedded@" in f.location]
    assert inner and inner[0].evidence["global"] == "os.system"


def test_nested_container_location_names_each_level(corpus_dir: Path) -> None:
    result = scan_artifact(corpus_dir / "malicious" / "mal_nested.zip")
    (finding,) = [f for f in result.findings if f.rule_id == "AISP-SCAN-PICKLE-DANGEROUS"]
    assert finding.location.endswith("mal_nested.zip:bundle.tar:inner/model.pkl.gz")


def test_checkpoint_scan_reads_only_pickle_and_directory(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(1024, 1024), "b": torch.zeros(1024)}, path)
    file = scan_artifact(path).files[0]
    assert file.format == "zip" and file.findings == ()
    assert file.bytes_read < 10_000 < 4 * 2**20 < file.size


def test_assert_safe_artifact_raises_with_the_findings(corpus_dir: Path) -> None:
    with pytest.raises(UnsafeArtifact) as info:
        assert_safe_artifact(corpus_dir / "malicious" / "mal_torch_zip.pt")
    message = str(info.value)
    assert "posix.system" in message and "offset" in message and "mal_torch_zip.pt:" in message
    assert info.value.findings and info.value.result is not None
    assert assert_safe_artifact(corpus_dir / "benign" / "benign_checkpoint_adam.pt").ok


def test_assert_safe_artifact_fail_on_threshold(corpus_dir: Path) -> None:
    # the custom-domain ONNX model is medium: it passes when only high and above fail
    path = corpus_dir / "malicious" / "mal_onnx_custom_domain.onnx"
    assert assert_safe_artifact(path, fail_on="high").findings
    with pytest.raises(UnsafeArtifact):
        assert_safe_artifact(path, fail_on="medium")


def test_cli_exit_codes_and_json_shape(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(corpus_dir / "benign")]) == 0
    capsys.readouterr()
    assert main(["scan", "--format", "json", str(corpus_dir / "malicious" / "mal_torch_zip.pt")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"files", "summary"}
    assert {"files", "findings", "max_severity", "duration_s"} <= set(report["summary"])
    assert report["summary"]["max_severity"] == "critical"
    (file,) = report["files"]
    assert {"path", "format", "findings"} <= set(file)
    finding = file["findings"][0]
    assert set(finding) == {"rule_id", "severity", "message", "location", "evidence"}
    assert finding["location"].startswith(file["path"] + ":")


def test_findings_are_recorded_on_the_running_test(corpus_dir: Path) -> None:
    from pytest_aisp.recorder import recording

    with recording("tests/x.py::test_model") as record:
        result = scan_artifact(corpus_dir / "malicious" / "mal_obj_opcode.pkl")
    assert record.findings == list(result.findings)
    assert record.metrics["scan_files"] == 1


def test_multi_stage_payload_names_every_stage(corpus_dir: Path) -> None:
    result = scan_artifact(corpus_dir / "malicious" / "mal_data_multistage.pkl")
    (finding,) = result.findings
    assert finding.severity is Severity.HIGH and finding.evidence["global"].endswith(".system")
    assert finding.evidence["path"].count("|") == 2 and "base64" in finding.evidence["path"]


@pytest.mark.parametrize("name", ["benign_safe_builtins.pkl", "benign_safe_builtins_proto0.pkl",
                                  "benign_future_feature.pkl", "benign_future_by_name.pkl",
                                  "benign_numpy_old_names.pkl", "benign_py2_header.npy",
                                  "benign_data_strings.pkl", "benign_safetensors_metadata.safetensors"])
def test_once_flagged_benign_files_are_clean(corpus_dir: Path, name: str) -> None:
    assert scan_artifact(corpus_dir / "benign" / name).findings == ()


def test_old_numpy_object_array_is_only_the_object_array_note(corpus_dir: Path) -> None:
    result = scan_artifact(corpus_dir / "benign" / "benign_numpy_old_object_array.npy")
    assert [f.rule_id for f in result.findings] == ["AISP-SCAN-NUMPY-OBJECT"] and result.ok


def test_benign_corpus_files_really_load(corpus_dir: Path) -> None:
    """The once-flagged benign files are what their loaders accept (not hand-made oddities)."""
    import pickle
    import warnings

    import numpy as np

    benign = corpus_dir / "benign"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns that a Python 2 header needed extra parsing
        assert np.load(benign / "benign_py2_header.npy").shape == (2, 3)
        assert np.load(benign / "benign_numpy_old_object_array.npy", allow_pickle=True)[0] == {"label": "cat"}
    for name in ("benign_safe_builtins.pkl", "benign_safe_builtins_proto0.pkl", "benign_future_feature.pkl",
                 "benign_future_by_name.pkl", "benign_numpy_old_names.pkl"):
        assert pickle.loads((benign / name).read_bytes())
