"""Fixtures for the model-scanning examples: a small release folder made by fixtures/scan/make_corpus.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCAN_FIXTURES = next(p / "fixtures" / "scan" for p in Path(__file__).resolve().parents
                     if (p / "fixtures" / "scan" / "make_corpus.py").is_file())


@pytest.fixture(scope="session")
def scan_release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model release as a team ships it: a torch checkpoint, safetensors weights and an ONNX export."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    sys.path.insert(0, str(SCAN_FIXTURES))
    import make_corpus

    folder = tmp_path_factory.mktemp("release")
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save({"model": model.state_dict(), "epoch": 1}, folder / "checkpoint.pt")
    save_file({"w": np.ones((4, 2), dtype=np.float32)}, str(folder / "weights.safetensors"))
    (folder / "model.onnx").write_bytes(make_corpus.onnx_model().SerializeToString())
    return folder


@pytest.fixture(scope="session")
def scan_untrusted_download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file from an untrusted hub: a pickle whose payload would only create a marker file."""
    sys.path.insert(0, str(SCAN_FIXTURES))
    import make_corpus

    folder = tmp_path_factory.mktemp("download")
    data, _ = make_corpus.pickle_techniques(lambda name: folder / f"{name}.marker")["dotted_random_os"]
    path = folder / "pytorch_model.bin"
    path.write_bytes(data)
    return path
