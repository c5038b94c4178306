"""load_model_safely: scan first, then a loader that cannot run code; unsafe files are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_aisp.findings import AispError, UnsafeArtifact
from pytest_aisp.scan import load_model_safely


@pytest.mark.parametrize(("name", "loader"), [
    ("benign_mlp_state_dict.pt", "torch.load(weights_only=True)"),
    ("benign_checkpoint_adam.pt", "torch.load(weights_only=True)"),
    ("benign_legacy.pt", "torch.load(weights_only=True)"),
    ("benign_torchscript.pt", "torch.jit.load"),
    ("benign_model.safetensors", "safetensors.torch.load_file"),
    ("benign_model.onnx", "onnxruntime.InferenceSession"),
    ("benign_array.npy", "numpy.load(allow_pickle=False)"),
    ("benign_arrays.npz", "numpy.load(allow_pickle=False)"),
    ("benign_sklearn_logreg.joblib", "joblib.load (scan-gated)"),
    ("benign_sklearn_gzip.joblib", "joblib.load (scan-gated)"),
])
def test_benign_models_load(corpus_dir: Path, name: str, loader: str) -> None:
    loaded = load_model_safely(corpus_dir / "benign" / name)
    assert loaded.loader == loader
    assert loaded.model is not None and loaded.scan.ok


def test_loaded_models_work(corpus_dir: Path) -> None:
    model = load_model_safely(corpus_dir / "benign" / "benign_sklearn_logreg.joblib").model
    assert model.predict(np.zeros((2, 4))).shape == (2,)
    session = load_model_safely(corpus_dir / "benign" / "benign_model.onnx").model
    (out,) = session.run(None, {"X": np.ones((1, 4), dtype=np.float32)})
    assert out.shape == (1, 2)


@pytest.mark.parametrize("name", ["mal_torch_zip.pt", "mal_joblib_raw.joblib", "mal_object_array.npy",
                                  "mal_torch_legacy.pt", "mal_pickle_as.safetensors"])
def test_unsafe_models_are_refused_and_never_run(corpus_dir: Path, labels: list[dict], name: str) -> None:
    marker = next((Path(s["marker"]) for s in labels if s["name"] == f"malicious/{name}" and s["marker"]), None)
    if marker is not None:
        marker.unlink(missing_ok=True)
    with pytest.raises(UnsafeArtifact) as info:
        load_model_safely(corpus_dir / "malicious" / name)
    assert info.value.findings
    assert marker is None or not marker.exists()


def test_scan_gate_refuses_pickles_with_any_finding(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"w": 1}) + b"\xff trailing")  # only a low finding
    with pytest.raises(UnsafeArtifact, match="refusing to unpickle"):
        load_model_safely(path)


def test_whole_module_save_is_not_unpickled(corpus_dir: Path) -> None:
    with pytest.raises(AispError, match="weights_only"):
        load_model_safely(corpus_dir / "benign" / "benign_mlp_whole_module.pt")


def test_cli_end_to_end_in_a_subprocess(corpus_dir: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest_aisp.cli", "scan", "--format", "sarif",
                           str(corpus_dir / "malicious" / "mal_proto0_global_reduce.pkl")],
                          capture_output=True, text=True, timeout=120, cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr
    assert '"AISP-SCAN-PICKLE-DANGEROUS"' in done.stdout and '"version": "2.1.0"' in done.stdout
    bad = subprocess.run([sys.executable, "-m", "pytest_aisp.cli", "scan", "--fail-on", "severe", "x"],
                         capture_output=True, text=True, timeout=120, cwd=root, env={"PYTHONPATH": str(root)})
    assert bad.returncode == 2 and "severity" in bad.stderr


def test_model_from_settings_uses_the_scan_section(corpus_dir: Path) -> None:
    from pytest_aisp.config import Settings
    from pytest_aisp.scan import model_from_settings

    settings = Settings(rootdir=corpus_dir, model=Path("benign/benign_model.safetensors"),
                        tool={"scan": {"allow": ["mypkg.Model"]}})
    loaded = model_from_settings(settings)
    assert loaded.format == "safetensors" and set(loaded.model) == {"w", "b"}
    bad = Settings(rootdir=corpus_dir, model=Path("malicious/mal_torch_zip.pt"))
    with pytest.raises(UnsafeArtifact):
        model_from_settings(bad)
