"""Timings of the poisoning, backdoor, extraction and membership checks on their fixtures, and the
native surrogate trainer against ART's KnockoffNets at the same query budget.

    python benchmarks/bench_poison.py --quick     # small sizes, under two minutes
    python benchmarks/bench_poison.py             # full sizes
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_poison_fixtures", ROOT / "fixtures/robust/make_poison_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_poison_fixtures"] = module
    spec.loader.exec_module(module)
    return module


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from pytest_aisp.robust import (
        evaluate_backdoor,
        evaluate_extraction,
        evaluate_membership,
        evaluate_poisoning,
        evaluate_trigger,
        scan_dataset,
    )

    m = _script()
    f = m.make_all()
    backdoor, clean = m.load_cnn(f.backdoor_cnn), m.load_cnn(f.clean_cnn)
    thief = m.thief_blends(f.x_train)
    holdout = (f.x_test, f.y_test)
    budget = 100 if args.quick else 400
    epochs = 30 if args.quick else 100
    checks: list[tuple[str, Callable[[], Any]]] = [
        ("backdoor activation_clustering", lambda: evaluate_backdoor(backdoor, (f.x_poisoned, f.y_poisoned))),
        (
            "backdoor spectral_signature",
            lambda: evaluate_backdoor(backdoor, (f.x_poisoned, f.y_poisoned), method="spectral_signature"),
        ),
        (
            "trigger search (10 classes)",
            lambda: evaluate_trigger(backdoor, holdout, steps=40 if args.quick else 80),
        ),
        ("scan_dataset (flipped labels)", lambda: scan_dataset(f.x_train, f.y_flipped)),
        (
            "membership (3 attacks)",
            lambda: evaluate_membership(m.load_mlp(f.member_overfit), *f.member_split("overfit")),
        ),
        (
            "poisoning backdoor (2 trainings)",
            lambda: evaluate_poisoning(m.train_mlp, ((f.x_train, f.y_train), holdout), attack="backdoor"),
        ),
    ]
    print(f"{'check':40s} {'seconds':>8s}")
    for name, fn in checks:
        seconds, _ = _timed(fn)
        print(f"{name:40s} {seconds:8.2f}")
    victim = m.probability_api(clean)
    ours_s, ours = _timed(
        lambda: evaluate_extraction(
            victim,
            thief_data=thief,
            holdout_data=holdout,
            query_budget=budget,
            epochs=epochs,
            hardening=(),
            nb_classes=10,
        )
    )
    art_s, art = _timed(
        lambda: evaluate_extraction(
            victim,
            thief_data=thief,
            holdout_data=holdout,
            query_budget=budget,
            epochs=epochs,
            hardening=(),
            surrogate="knockoff",
            nb_classes=10,
        )
    )
    print()
    print(
        f"extraction, {budget} queries, {epochs} epochs   ours (native)   anchor (ART KnockoffNets)   ratio"
    )
    print(f"{'seconds':40s} {ours_s:13.2f}   {art_s:24.2f}   {ours_s / art_s:5.2f}")
    print(
        f"{'fidelity':40s} {ours.fidelity:13.3f}   {art.fidelity:24.3f}   {ours.fidelity / art.fidelity:5.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
