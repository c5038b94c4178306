"""Benchmark of the native evasion attacks against ART and against a bare torch loop.

    python benchmarks/bench_robust.py --quick      # small sizes, well under 2 minutes on CPU
    python benchmarks/bench_robust.py              # all 1797 digits, 40 PGD steps

Rows, on the digits MLP and CNN from fixtures/robust/make_models.py:
- native PGD vs ART's ProjectedGradientDescent, same eps, step size, steps, no random start, same
  model and data (ART at its default batch of 32, and at our batch size); robust accuracy of both;
- native PGD vs a bare torch loop of the same steps on the same batch (the floor for any PGD);
- samples per second of fgsm, pgd, apgd-ce and square.
Every number is measured in the same run; ratio = anchor time / our time (above 1: we are faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _make_models() -> Any:
    script = ROOT / "fixtures" / "robust" / "make_models.py"
    spec = importlib.util.spec_from_file_location("robust_make_models", script)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _data(name: str, quick: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    if name == "digits_cnn":
        x = x.reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return (x[:300], y[:300]) if quick else (x, y)


def _timed(function: Any, repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls (the first call warms up), and the last result."""
    function()
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def bare_pgd(module: Any, x: np.ndarray, y: np.ndarray, eps: float, step: float, steps: int,
             batch: int) -> float:
    """The plainest PGD a person writes in torch; returns robust accuracy."""
    import torch

    robust = 0
    for start in range(0, len(x), batch):
        xb, yb = torch.from_numpy(x[start:start + batch]), torch.from_numpy(y[start:start + batch])
        adv = xb.clone()
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(module(adv), yb)
            (grad,) = torch.autograd.grad(loss, adv)
            adv = torch.min(torch.max(adv.detach() + step * grad.sign(), xb - eps), xb + eps).clamp(0, 1)
        with torch.no_grad():
            robust += int((module(adv).argmax(1) == yb).sum())
    return robust / len(x)


def art_pgd(module: Any, x: np.ndarray, y: np.ndarray, eps: float, step: float, steps: int,
            batch: int) -> float:
    import torch
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    classifier = PyTorchClassifier(model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                      num_random_init=0, batch_size=batch, verbose=False)
    adv = attack.generate(x=x, y=y)
    return float((classifier.predict(adv).argmax(1) == y).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (300 samples, 10 steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from pytest_aisp.robust import evaluate_robustness

    make_models = _make_models()
    steps = 10 if args.quick else 40
    eps, batch = 0.1, 256
    step = 2.5 * eps / steps
    rows: list[tuple[str, str, float, str, float, str]] = []
    print(f"device=cpu threads={args.threads} steps={steps} eps={eps} step={step:g} batch={batch}")
    for name in ("digits_mlp", "digits_cnn"):
        module = make_models.load_module(name)
        x, y = _data(name, args.quick)
        ours_s, ours = _timed(lambda m=module, xx=x, yy=y: evaluate_robustness(
            m, (xx, yy), attack="pgd", eps=eps, steps=steps, step_size=step, random_start=False,
            batch_size=batch), args.repeats)
        acc = ours.robust_acc
        for art_batch in (32, batch) if importlib.util.find_spec("art") else ():
            art_s, art_acc = _timed(
                lambda m=module, xx=x, yy=y, b=art_batch: art_pgd(m, xx, yy, eps, step, steps, b),
                1 if not args.quick else args.repeats)
            rows.append((f"{name} pgd vs ART PGD (ART batch {art_batch})", f"{ours_s:.3f}s acc {acc:.4f}",
                         ours_s, f"{art_s:.3f}s acc {art_acc:.4f}", art_s, f"{art_s / ours_s:.1f}x faster"))
        if not importlib.util.find_spec("art"):
            rows.append((f"{name} pgd vs ART PGD", f"{ours_s:.3f}s acc {acc:.4f}", ours_s,
                         "ART not installed", float("nan"), "pip install 'pytest-aisp[art]'"))
        bare_s, bare_acc = _timed(lambda m=module, xx=x, yy=y: bare_pgd(m, xx, yy, eps, step, steps, batch),
                                  args.repeats)
        rows.append((f"{name} pgd vs bare torch loop", f"{ours_s:.3f}s acc {acc:.4f}", ours_s,
                     f"{bare_s:.3f}s acc {bare_acc:.4f}", bare_s, f"ours/bare = {ours_s / bare_s:.2f}"))
        for attack, options in (("fgsm", {}), ("pgd", {"steps": steps}), ("apgd-ce", {"steps": steps}),
                                ("square", {"steps": 100 if args.quick else 500})):
            seconds, result = _timed(lambda m=module, xx=x, yy=y, a=attack, o=options: evaluate_robustness(
                m, (xx, yy), attack=a, eps=eps, batch_size=batch, **o), 1)
            rows.append((f"{name} {attack} ({options.get('steps', 1)} steps)",
                         f"{result.samples_per_s:,.0f} samples/s", seconds, f"acc {result.robust_acc:.4f}",
                         float("nan"), ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'ours':<24}  {'anchor':<24}  ratio")
    for label, ours_text, _, anchor_text, _, ratio in rows:
        print(f"{label:<{width}}  {ours_text:<24}  {anchor_text:<24}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
