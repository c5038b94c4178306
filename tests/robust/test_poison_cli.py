"""``aisp dataset-screen`` and ``aisp membership``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_aisp.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, poison_fixtures):
    f = poison_fixtures
    root = tmp_path_factory.mktemp("screen")
    np.savez(root / "clean.npz", x=f.x_train, y=f.y_train)
    np.savez(root / "flipped.npz", x=f.x_train, y=f.y_flipped)
    return root


def test_flipped_labels_exit_1_with_findings(datasets, capsys):
    assert main(["dataset-screen", str(datasets / "flipped.npz")]) == 1
    out = capsys.readouterr().out
    assert "AISP-ROBUST-DATASET" in out and "label outliers" in out


def test_clean_data_exits_0_and_sarif_is_valid(datasets, capsys):
    assert main(["dataset-screen", str(datasets / "clean.npz"), "--format", "sarif"]) == 0
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"] == []


def test_missing_array_is_exit_2(datasets, capsys):
    assert main(["dataset-screen", str(datasets / "clean.npz"), "--y-key", "labels"]) == 2
    assert "has no array 'labels'" in capsys.readouterr().err


def test_membership_on_a_torchscript_file(tmp_path, poison_script, poison_fixtures, capsys):
    import torch

    f = poison_fixtures
    model = poison_script.load_mlp(f.member_overfit)
    path = tmp_path / "overfit.pt"
    torch.jit.trace(model, torch.from_numpy(f.x_test[:2])).save(str(path))
    (xm, ym), (xh, yh) = f.member_split("overfit")
    np.savez(tmp_path / "m.npz", x=xm, y=ym)
    np.savez(tmp_path / "h.npz", x=xh, y=yh)
    code = main(
        [
            "membership",
            str(path),
            "--members",
            str(tmp_path / "m.npz"),
            "--holdout",
            str(tmp_path / "h.npz"),
            "--format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["findings"][0]["rule_id"] == "AISP-ROBUST-MEMBERSHIP"


def test_end_to_end_subprocess(datasets):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_aisp.cli",
            "dataset-screen",
            str(datasets / "flipped.npz"),
            "--fail-on",
            "critical",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr  # the high finding is below --fail-on critical
    assert "AISP-ROBUST-DATASET" in run.stdout
