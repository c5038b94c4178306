"""Throughput of the multimodal perturbations: native batched vs AugLy one image at a time.

Images per second for each image perturbation (ours: native numpy/scipy on an (N, H, W, 3) batch;
anchor: AugLy 1.0 called on PIL images one by one, as its API takes them), and audio seconds
processed per second for each audio perturbation.

    python benchmarks/bench_multimodal.py --quick   # small sizes, well under 2 minutes
    python benchmarks/bench_multimodal.py           # full sizes
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pytest_aisp.multimodal.registry import (
    apply_perturbation,
    augly_available,
    perturbation_parameters,
    registry,
)

SEVERITY = 0.5


def _rate(work: Callable[[], Any], items: float, min_seconds: float) -> float:
    """Items per CPU second of ``work`` (each call handles ``items``), repeated for ``min_seconds`` of CPU.

    CPU time (``time.process_time``), not wall time: both sides run single-threaded, and on a shared
    machine wall time measures the neighbours.
    """
    work()  # warm up: imports, caches
    calls, started = 0, time.process_time()
    while True:
        work()
        calls += 1
        elapsed = time.process_time() - started
        if elapsed >= min_seconds:
            return calls * items / elapsed


def _photos(n: int, size: int) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    sources = [np.asarray(im) for im in load_sample_images().images]
    crops = []
    for i in range(n):
        image = sources[i % 2]
        y, x = rng.integers(0, image.shape[0] - size), rng.integers(0, image.shape[1] - size)
        crops.append(image[y : y + size, x : x + size])
    return np.stack(crops)


def _augly_call(name: str, batch_size: int) -> Callable[[Any, int], Any] | None:
    """AugLy's own function for ``name`` with our parameters at SEVERITY, taking (pil, index)."""
    spec = registry()[name]
    if spec.augly is None:
        return None
    import augly.image as imaugs

    from pytest_aisp.multimodal import image_ops

    params = perturbation_parameters(spec, SEVERITY, seed=0, n=batch_size)
    calls = {
        "image:blur": image_ops._a_blur,
        "image:gaussian_noise": image_ops._a_noise,
        "image:jpeg": image_ops._a_jpeg,
        "image:brightness": image_ops._a_factor("brightness"),
        "image:contrast": image_ops._a_factor("contrast"),
        "image:saturation": image_ops._a_factor("saturation"),
        "image:rotation": image_ops._a_rotation,
        "image:crop": image_ops._a_crop,
        "image:pad": image_ops._a_pad,
        "image:scale": image_ops._a_scale,
        "image:pixelation": image_ops._a_pixelation,
        "image:overlay_text": image_ops._a_overlay_text,
        "image:overlay_emoji": image_ops._a_overlay_emoji,
    }
    call = calls[name]

    def run(pil: Any, i: int) -> Any:
        out = call(imaugs, pil, params, i, 0)
        # a fixed-size model needs the original size back (AugLy's crop/pad/scale/rotate change it)
        return out if out.size == pil.size else out.resize(pil.size)

    return run


def bench_images(n: int, size: int, min_seconds: float) -> list[tuple[str, float, float | None]]:
    from PIL import Image

    batch = _photos(n, size)
    pils = [Image.fromarray(image) for image in batch]
    rows = []
    for name, spec in registry().items():
        if spec.modality != "image":
            continue
        ours = _rate(
            lambda name=name: apply_perturbation(name, batch, SEVERITY, backend="native"), n, min_seconds
        )
        anchor = None
        call = _augly_call(name, n) if augly_available() else None
        if call is not None:
            anchor = _rate(lambda call=call: [call(pil, i) for i, pil in enumerate(pils)], n, min_seconds)
        rows.append((name, ours, anchor))
    return rows


def bench_audio(n: int, seconds: float, rate: int, min_seconds: float) -> list[tuple[str, float]]:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    waves = np.stack([0.4 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) for _ in range(n)]).astype(
        np.float32
    )
    rows = []
    for name, spec in registry().items():
        if spec.modality == "audio":
            work = lambda name=name: apply_perturbation(name, waves, SEVERITY, sample_rate=rate)  # noqa: E731
            rows.append((name, _rate(work, n * seconds, min_seconds)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    args = parser.parse_args(argv)
    n, size, min_seconds = (32, 64, 0.2) if args.quick else (256, 128, 1.0)
    audio_n, audio_seconds = (8, 1.0) if args.quick else (32, 4.0)

    print(
        f"image perturbations: {n} photos of {size}x{size}x3 uint8, severity {SEVERITY}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}"
    )
    print(f"{'perturbation':<22} {'ours img/s':>12} {'AugLy img/s':>12} {'ratio':>8}   (per CPU second)")
    for name, ours, anchor in bench_images(n, size, min_seconds):
        if anchor is None:
            print(f"{name:<22} {ours:>12.0f} {'n/a':>12} {'n/a':>8}")
        else:
            print(f"{name:<22} {ours:>12.0f} {anchor:>12.0f} {ours / anchor:>7.1f}x")
    print()
    print(
        f"audio perturbations: {audio_n} waveforms of {audio_seconds:g} s at 16 kHz (AugLy's audio module "
        "needs librosa/torchaudio: no anchor)"
    )
    print(f"{'perturbation':<22} {'audio s / s':>12}")
    for name, throughput in bench_audio(audio_n, audio_seconds, 16000, min_seconds):
        print(f"{name:<22} {throughput:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
