"""``aisp dataset-screen`` and ``aisp membership``: the model-free data screen and the membership
test from the command line.

Exit codes: 0 nothing at or above ``--fail-on``; 1 findings; the core turns ``AispError`` into 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytest_aisp.findings import SEVERITY_NAMES, AispError, Finding
from pytest_aisp.reporters.cli_output import FAIL_ON_HELP

FORMATS = ("text", "json", "sarif")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dataset-screen`` and ``membership`` to the ``aisp`` command."""
    screen = subparsers.add_parser(
        "dataset-screen", help="screen a labelled dataset (.npz) for flipped labels, conflicts and outliers"
    )
    screen.add_argument("data", type=Path, help=".npz file holding inputs and labels")
    screen.add_argument("--x-key", default="x", help="array name of the inputs (default: x)")
    screen.add_argument("--y-key", default="y", help="array name of the labels (default: y)")
    screen.add_argument("--k", type=int, default=10, help="neighbours per sample (default: 10)")
    screen.add_argument(
        "--max-outlier-fraction", type=float, default=0.02, help="share of label outliers tolerated (default: 0.02)"
    )
    _common(screen)
    screen.set_defaults(func=dataset_screen)

    member = subparsers.add_parser("membership", help="membership-inference attacks on a model file or endpoint")
    member.add_argument("model", help="model file (.onnx, TorchScript .pt) or http(s) endpoint")
    member.add_argument("--members", type=Path, required=True, help=".npz of training samples (x, y)")
    member.add_argument("--holdout", type=Path, required=True, help=".npz of samples not trained on (x, y)")
    member.add_argument("--max-auc", type=float, default=0.6, help="highest attack AUC tolerated (default: 0.6)")
    member.add_argument("--seed", type=int, default=0)
    _common(member)
    member.set_defaults(func=membership)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fail-on", choices=SEVERITY_NAMES, default=None, help=FAIL_ON_HELP.format("medium"))
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")


def dataset_screen(args: argparse.Namespace) -> int:
    """Run :func:`scan_dataset` on an .npz file."""
    from pytest_aisp.robust.dataset_screen import scan_dataset

    x, y = _load_npz(args.data, args.x_key, args.y_key)
    result = scan_dataset(x, y, k=args.k, max_outlier_fraction=args.max_outlier_fraction, location=str(args.data))
    summary = (
        f"{result.size} rows: {len(result.label_outliers)} label outliers, "
        f"{len(result.conflicting_duplicates)} conflicting duplicate pairs, "
        f"{len(result.spectral_outliers)} spectral outliers"
    )
    return _emit(result.findings, summary, args)


def membership(args: argparse.Namespace) -> int:
    """Run :func:`evaluate_membership` on a model file or endpoint."""
    from pytest_aisp.robust.membership import evaluate_membership

    members = _load_npz(args.members, "x", "y")
    holdout = _load_npz(args.holdout, "x", "y")
    result = evaluate_membership(
        args.model, members, holdout, max_auc=args.max_auc, seed=args.seed, location=str(args.model)
    )
    summary = ", ".join(f"{a.name} AUC {a.auc:.3f} ({a.auc_low:.3f}-{a.auc_high:.3f})" for a in result.attacks.values())
    return _emit(result.findings, summary, args)


def _load_npz(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (x_key, y_key) if k not in archive.files]
            if missing:
                raise AispError(f"{path} has no array {missing[0]!r}; it holds {sorted(archive.files)}")
            return archive[x_key], archive[y_key]
    except FileNotFoundError:
        raise AispError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise AispError(f"{path} is not a readable .npz file: {exc}") from None


def _emit(findings: Sequence[Finding], summary: str, args: argparse.Namespace) -> int:
    from pytest_aisp.reporters.cli_output import emit, exit_code, render

    def as_text() -> str:
        return "\n".join([*(f.one_line() for f in findings), summary])

    def as_json() -> dict:
        return {"summary": summary, "findings": [f.to_dict() for f in findings]}

    emit(render(args.format, findings, json_body=as_json, text=as_text))
    return exit_code(findings, args.fail_on)
