"""The scan engine and its subcommand import neither numpy, torch nor pytest, at import time or while
scanning pickles, joblib files, PyTorch zips, npz archives, safetensors or GGUF: ``aisp scan`` stays quick."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY = ("numpy", "torch", "pytest", "_pytest", "scipy", "sklearn", "h5py", "onnx")
SCRIPT = textwrap.dedent("""
    import argparse, contextlib, io, json, sys
    sys.path.insert(0, sys.argv[1])
    heavy = json.loads(sys.argv[2])
    loaded = lambda: sorted(m for m in heavy if m in sys.modules)
    from pytest_aisp.scan import scan_artifact
    from pytest_aisp.scan import cli
    after_import = loaded()
    result = scan_artifact(sys.argv[3:])
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["scan", "--format", "sarif", *sys.argv[3:]])
    with contextlib.redirect_stdout(io.StringIO()):
        code = args.func(args)
    print(json.dumps({"after_import": after_import, "after_scan": loaded(), "files": len(result.files),
                      "formats": sorted({f.format for f in result.files}), "code": code}))
""")


def test_scanning_pickles_and_archives_imports_no_heavy_library(corpus_dir: Path) -> None:
    names = ["benign_checkpoint_adam.pt", "benign_sklearn_forest.pkl", "benign_sklearn_gzip.joblib",
             "benign_arrays.npz", "benign_structured.npy", "benign_legacy.pt", "benign_torchscript.pt",
             "benign_model.safetensors", "benign_model.gguf", "benign_data_strings.pkl"]
    paths = [str(corpus_dir / "benign" / name) for name in names]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root), json.dumps(HEAVY), *paths],
                          capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["files"] == len(names) and report["code"] == 0
    assert {"zip", "pickle", "gzip", "npy", "safetensors", "gguf"} <= set(report["formats"])
    assert report["after_import"] == [], report
    assert report["after_scan"] == [], report
