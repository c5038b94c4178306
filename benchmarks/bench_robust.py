"""Benchmark of the native PGD against a bare torch loop and ART's PGD, with equal work stated.

    python benchmarks/bench_robust.py --quick      # 300 digits, 10 steps, ART at batch 512 only
    python benchmarks/bench_robust.py              # all 1797 digits, 40 steps, ART at batch 32 and 512

Set-up (issue: PGD against the bare loop): the digits MLP (64-128-10) and the small digits CNN of
fixtures/robust/make_models.py; every digit; Linf eps 0.1, 40 steps of eps/4, one uniform random start,
untargeted cross-entropy, inputs clipped to [0, 1]; CPU, one torch thread.

What each side does:
- ours: ``evaluate_robustness(model, data, attack="pgd", ...)`` at its defaults: one clean pass, then
  PGD on the correctly classified points only, a point leaving the batch once it is fooled (it keeps
  the adversarial input that fooled it); the verdict is robust accuracy.
- bare loop: the plainest full-batch PGD (random start, sign step, project, clamp; no checks, no early
  stop): every step on every point, robust accuracy of the last iterate.
- ART: ``ProjectedGradientDescent`` (num_random_init=1) through ``PyTorchClassifier``: every step on
  every point, in batches of 32 (its default) and 512 (tuned), then ``predict``.

Our attack does less work by design, so each row prints two ratios (anchor / ours, above 1 = we are
faster): time to verdict (each side's whole call) and same work (time per gradient row: one forward
and backward pass of one point, counted by a forward hook in a separate untimed run; our forward-only
rows, the clean pass and the final checks, are in our time but not in our row count, which counts
against us). Robust accuracies are printed side by side: the verdicts must agree within the spread of
random starts. Each time is the best of ``--repeats`` runs, ours and the anchor alternating, in the same
process.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _data(name: str, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    if name == "digits_cnn":
        x = x.reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return (x[:300], y[:300]) if quick else (x, y)


@dataclass(frozen=True)
class Setting:
    eps: float
    steps: int

    @property
    def step(self) -> float:
        return self.eps / 4


def bare_pgd(module: Any, x: np.ndarray, y: np.ndarray, s: Setting, seed: int = 0) -> float:
    """The plainest full-batch PGD a person writes in torch; returns the robust accuracy."""
    import torch

    xb, yb = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    adv = (xb + (torch.rand(xb.shape, generator=generator) * 2 - 1) * s.eps).clamp(0, 1)
    for _ in range(s.steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(module(adv), yb)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = torch.min(torch.max(adv.detach() + s.step * grad.sign(), xb - s.eps), xb + s.eps).clamp(0, 1)
    with torch.no_grad():
        return float((module(adv).argmax(1) == yb).float().mean())


def art_pgd(module: Any, x: np.ndarray, y: np.ndarray, s: Setting, batch: int) -> float:
    """ART's PGD at ``batch``; returns the robust accuracy."""
    import torch
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=s.eps, eps_step=s.step, max_iter=s.steps,
                                      num_random_init=1, batch_size=batch, verbose=False)
    adv = attack.generate(x=x, y=y)
    return float((classifier.predict(adv, batch_size=batch).argmax(1) == y).mean())


def ours_pgd(module: Any, x: np.ndarray, y: np.ndarray, s: Setting) -> float:
    from pytest_aisp.robust import evaluate_robustness

    return evaluate_robustness(module, (x, y), attack="pgd", eps=s.eps, steps=s.steps,
                               step_size=s.step).robust_acc


def gradient_rows(module: Any, run: Callable[[], Any]) -> tuple[int, int]:
    """(rows through a forward pass with gradients, forward-only rows) during ``run()``."""
    import torch

    counts = [0, 0]

    def hook(_module: Any, inputs: Any, _output: Any) -> None:
        counts[0 if torch.is_grad_enabled() else 1] += int(inputs[0].shape[0])

    # On the first layer: ART runs an nn.Sequential layer by layer, never calling the container itself.
    first = next(iter(module.children()), module)
    handle = first.register_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return counts[0], counts[1]


def best_of(functions: dict[str, Callable[[], float]], repeats: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Best wall time and the verdict of each function; warm-up once, then the functions alternate."""
    for function in functions.values():
        function()
    best = {name: (float("inf"), float("nan")) for name in functions}
    for round_number in range(max(repeats.values())):
        for name, function in functions.items():
            if round_number >= repeats[name]:
                continue
            started = time.perf_counter()
            verdict = function()
            elapsed = time.perf_counter() - started
            if elapsed < best[name][0]:
                best[name] = (elapsed, verdict)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 digits, 10 steps, ART at batch 512 only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (ART at batch 32: 1)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from pytest_aisp.robust import evaluate_robustness
    from tests.fixture_scripts import load_fixture_script  # the scripts the tests use

    make_models = load_fixture_script("robust/make_models.py", "robust_make_models")
    setting = Setting(eps=0.1, steps=10 if args.quick else 40)
    has_art = importlib.util.find_spec("art") is not None
    art_batches = ((512,) if args.quick else (32, 512)) if has_art else ()
    print(f"cpu, {args.threads} torch thread(s); Linf eps={setting.eps} steps={setting.steps} "
          f"step=eps/4={setting.step:g}, one random start; ratio = anchor / ours (above 1: ours faster)")
    if not has_art:
        print("ART rows skipped: pip install 'pytest-aisp[art]'")
    header = f"{'model':<10} {'anchor':<16} {'ours s':>7} {'anchor s':>8} {'to verdict':>10} {'same work':>9}  " \
             f"{'robust acc ours / anchor':<26} gradient rows ours / anchor"
    print(header)
    for name in ("digits_mlp", "digits_cnn"):
        module = make_models.load_module(name)
        x, y = _data(name, args.quick)
        functions: dict[str, Callable[[], float]] = {
            "ours": lambda m=module, xx=x, yy=y: ours_pgd(m, xx, yy, setting),
            "bare loop": lambda m=module, xx=x, yy=y: bare_pgd(m, xx, yy, setting),
        }
        for batch in art_batches:
            functions[f"ART batch {batch}"] = lambda m=module, xx=x, yy=y, b=batch: art_pgd(m, xx, yy, setting, b)
        repeats = {key: (1 if key == "ART batch 32" else args.repeats) for key in functions}
        rows = {key: gradient_rows(module, function)[0] for key, function in functions.items()}
        timed = best_of(functions, repeats)
        ours_s, ours_acc = timed["ours"]
        for key in functions:
            if key == "ours":
                continue
            anchor_s, anchor_acc = timed[key]
            same_work = (anchor_s / rows[key]) / (ours_s / rows["ours"])
            print(f"{name:<10} {key:<16} {ours_s:>7.3f} {anchor_s:>8.3f} {anchor_s / ours_s:>9.2f}x "
                  f"{same_work:>8.2f}x  {ours_acc:.4f} / {anchor_acc:.4f}{'':<9} {rows['ours']:,} / {rows[key]:,}")
        # Throughput of the other attacks, ours only (no anchor: a baseline for later runs).
        for attack, options in (("fgsm", {}), ("apgd-ce", {"steps": setting.steps}),
                                ("square", {"steps": 100 if args.quick else 500})):
            started = time.perf_counter()
            result = evaluate_robustness(module, (x, y), attack=attack, eps=setting.eps, **options)
            seconds = time.perf_counter() - started
            print(f"{name:<10} baseline: {attack} ({options.get('steps', 1)} steps) {seconds:.3f}s, "
                  f"{result.samples_per_s:,.0f} attacked points/s, robust acc {result.robust_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
