"""Truncated, mutated and random files never crash the scanner: each yields a result, bounded in time."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_aisp.scan.engine import FileResult, scan_bytes

SUFFIXES = ["", ".pt", ".pkl", ".joblib", ".npy", ".npz", ".safetensors", ".gguf", ".onnx", ".h5", ".keras",
            ".pb", ".bin", ".json"]
MAGICS = [b"", b"PK\x03\x04", b"\x80\x04\x95", b"\x93NUMPY\x01\x00", b"GGUF\x03\x00\x00\x00", b"\x1f\x8b",
          b"BZh9", b"\xfd7zXZ\x00", b"\x89HDF\r\n\x1a\n", b"\x78\x9c", b"(cos\nsystem\n"]
SEEDS = ["benign/benign_checkpoint_adam.pt", "benign/benign_legacy.pt", "benign/benign_sklearn_forest.joblib",
         "benign/benign_sklearn_zlib.joblib", "benign/benign_arrays.npz", "benign/benign_model.safetensors",
         "benign/benign_model.gguf", "benign/benign_model.onnx", "benign/benign_model.keras",
         "benign/benign_model.h5", "benign/benign_torchscript.pt", "malicious/mal_object_array.npy",
         "malicious/mal_nested.zip", "benign/benign_saved_model/saved_model.pb"]


def _check(result: FileResult, started: float) -> None:
    assert isinstance(result, FileResult)
    assert time.perf_counter() - started < 20


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_never_crash(magic: bytes, body: bytes, suffix: str) -> None:
    started = time.perf_counter()
    data = magic + body
    result = scan_bytes(data, f"fuzz{suffix}")
    _check(result, started)
    if data and result.format == "unknown":
        assert any(f.rule_id == "AISP-SCAN-UNSCANNABLE" for f in result.findings)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), cut=st.floats(0.0, 1.0), flips=st.lists(
    st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8))
def test_truncated_and_mutated_real_files_never_crash(corpus_dir: Path, seed: str, cut: float,
                                                     flips: list[tuple[float, int]]) -> None:
    original = (corpus_dir / seed).read_bytes()
    data = bytearray(original[: max(1, int(len(original) * cut))] if cut < 0.999 else original)
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    started = time.perf_counter()
    result = scan_bytes(bytes(data), Path(seed).name)
    _check(result, started)


def test_truncated_pickle_is_unscannable_not_clean(corpus_dir: Path) -> None:
    data = (corpus_dir / "benign" / "benign_sklearn_forest.pkl").read_bytes()
    result = scan_bytes(data[: len(data) // 2], "model.pkl")
    assert result.findings != ()
    assert {"AISP-SCAN-PICKLE-BROKEN"} <= {f.rule_id for f in result.findings}


def test_truncated_zip_is_unscannable_not_clean(corpus_dir: Path) -> None:
    data = (corpus_dir / "benign" / "benign_checkpoint_adam.pt").read_bytes()
    result = scan_bytes(data[: len(data) - 30], "model.pt")
    assert any(f.rule_id == "AISP-SCAN-UNSCANNABLE" for f in result.findings)
