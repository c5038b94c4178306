"""Throughput of the multimodal perturbations against AugLy, with what each side does stated per row.

    python benchmarks/bench_multimodal.py --quick   # 32 photos of 64x64, about a minute
    python benchmarks/bench_multimodal.py           # 256 photos of 128x128, a few minutes

Image rows, at severity 0.5 with the same parameters on both sides (``perturbation_parameters`` for
seed 0, so the same crop window, rotation, factors ...):

- ours: ``apply_perturbation(name, batch, 0.5)`` (the native backend) on an (N, H, W, 3) uint8 batch,
  returning a new uint8 batch of the same shape;
- AugLy 1.0 (the anchor): its function for the perturbation, called on each image as a PIL image, as its
  API takes them. The PIL images are made from the batch before timing and its PIL outputs are left as
  they are: the two conversions per image a model's batch needs are not in AugLy's time (that counts
  against us). Where AugLy's output has another size (crop, pad, scale, rotation) it is resized back to
  the input size, as ours keeps the size for the model. Each row says what differs in the algorithm.

Where our algorithm does less work by design, the row prints the as-designed ratio and the same-work
ratios beside it: the text and emoji overlays draw their picture once per call and composite it over
the batch, while AugLy renders it for every image. Same work there is ours called on one image at a time
(drawing per image, as AugLy does) and, for the emoji, AugLy's ``overlay_image`` with the emoji loaded and
resized once (prepared once, as ours; AugLy's text overlay takes a font path, so it has no such form).

Rows without an anchor (AugLy has no such function, or its audio module needs librosa and torchaudio)
are baselines: our own throughput, for later runs to compare with.

Times are CPU seconds (``time.process_time``), not wall time: both sides run single-threaded
(OMP_NUM_THREADS=1) and on a shared machine wall time measures the neighbours. Ours and the anchor are
measured in alternating rounds in the same process, so a change in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from pytest_aisp.multimodal.registry import (
    apply_perturbation,
    augly_available,
    import_augly,
    perturbation_parameters,
    registry,
)

SEVERITY = 0.5
RESIZED_BACK = "then resized back to the input size (Pillow's default filter)"

# What differs between the two sides, per perturbation (both: the parameters of severity 0.5).
DIFFERENCES: dict[str, str] = {
    "image:blur": "Gaussian blur sigma {radius:g} px: ours the exact kernel to 4 sigma (scipy.ndimage); "
    "AugLy Pillow's GaussianBlur (box passes)",
    "image:gaussian_noise": "additive noise, std {std:.3f} of full scale: ours one float32 draw for the batch; "
    "AugLy a float64 draw per image",
    "image:salt_pepper": "ours only (AugLy has no salt-and-pepper)",
    "image:jpeg": "JPEG quality {quality}: both Pillow's libjpeg encode and decode per image (same bytes)",
    "image:brightness": "factor per image: ours float32 math on the batch; AugLy ImageEnhance.Brightness",
    "image:contrast": "factor per image around the mean grey: ours float32 math on the batch; "
    "AugLy ImageEnhance.Contrast",
    "image:saturation": "factor per image against the luma: ours float32 math on the batch; "
    "AugLy ImageEnhance.Color",
    "image:rotation": "{degrees:g} degrees: ours bilinear, black corners, one sampling grid for the batch; "
    f"AugLy nearest-neighbour with expand, cropped to the largest inner box, {RESIZED_BACK}",
    "image:crop": f"window ({{x1:.2f}}, {{y1:.2f}})-({{x2:.2f}}, {{y2:.2f}}): ours bilinear resize back; "
    f"AugLy crop, {RESIZED_BACK}",
    "image:pad": f"black border {{w_factor:g}} of the size: ours bilinear shrink back; AugLy pad, {RESIZED_BACK}",
    "image:scale": f"down by {{factor:g}} and back: ours bilinear both ways; AugLy Lanczos down, {RESIZED_BACK}",
    "image:perspective": "ours only (AugLy's perspective_transform uses np.float, removed in numpy 2)",
    "image:pixelation": "ratio {ratio:g}: ours block means shown as blocks; AugLy bicubic down and up",
    "image:overlay_text": "the word {text!r}: ours drawn once per call with Pillow's default font, "
    "composited on the batch; AugLy rendered on each image with its bundled font (loaded per image)",
    "image:overlay_emoji": "an emoji of {emoji_size:g} of the height: ours a smiley drawn once per call, "
    "composited on the batch; AugLy its emoji PNG loaded, resized and pasted per image",
    "image:meme_format": "ours only (AugLy's meme_format calls Pillow's removed getsize_multiline)",
    "image:occlusion": "ours only (AugLy has no occlusion patch)",
}


@dataclass(frozen=True)
class Row:
    """One printed row: ours and maybe an anchor, each a call over ``items`` images."""

    label: str
    ours: Callable[[], Any]
    anchor: Callable[[], Any] | None
    note: str


def _rates(works: dict[str, Callable[[], Any]], items: float, min_seconds: float) -> dict[str, float]:
    """Items per CPU second of each work (each call handles ``items``), measured in alternating rounds
    until each has run at least ``min_seconds`` of CPU time and at least three calls."""
    for work in works.values():
        work()  # warm up: imports, caches
    seconds = dict.fromkeys(works, 0.0)
    calls = dict.fromkeys(works, 0)
    while min(seconds.values()) < min_seconds or min(calls.values()) < 3:
        for key, work in works.items():
            started = time.process_time()
            work()
            seconds[key] += time.process_time() - started
            calls[key] += 1
    return {key: calls[key] * items / seconds[key] for key in works}


def _photos(n: int, size: int) -> np.ndarray:
    """``n`` square crops of the sample photographs, made by the fixture script the tests use."""
    from tests.fixture_scripts import load_fixture_script

    return load_fixture_script("multimodal/make_fixtures.py", "multimodal_fixtures").photo_crops(n, size, size, seed=0)


def _augly_call(name: str, params: dict[str, Any]) -> Callable[[Any, int], Any]:
    """AugLy's own function for ``name`` with ``params``, taking (pil, index), its output at the input size."""
    from pytest_aisp.multimodal import image_ops

    imaugs = import_augly("augly.image")
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
        return out if out.size == pil.size else out.resize(pil.size)

    return run


def _emoji_prepared_once(params: dict[str, Any], height: int) -> Callable[[Any, int], Any]:
    """AugLy's ``overlay_image`` with its emoji loaded and resized once: the emoji row's same-work anchor."""
    from PIL import Image

    imaugs = import_augly("augly.image")
    from augly import utils

    with Image.open(utils.EMOJI_PATH) as source:
        emoji = source.convert("RGBA")
    side = max(1, int(height * params["emoji_size"]))
    emoji = emoji.resize((side, side))  # the size overlay_image would resize it to, so it only copies

    def run(pil: Any, i: int) -> Any:
        return imaugs.overlay_image(
            pil,
            overlay=emoji,
            opacity=params["opacity"],
            overlay_size=params["emoji_size"],
            x_pos=params["x_pos"],
            y_pos=params["y_pos"],
        )

    return run


def _each(call: Callable[[Any, int], Any], pils: list[Any]) -> Callable[[], list[Any]]:
    """A call over every PIL image, as AugLy's API takes them."""
    return lambda: [call(pil, i) for i, pil in enumerate(pils)]


def image_rows(n: int, size: int) -> list[Row]:
    from PIL import Image

    batch = _photos(n, size)
    pils = [Image.fromarray(image) for image in batch]
    has_augly = augly_available()
    rows = []
    for name, spec in registry().items():
        if spec.modality != "image":
            continue
        params = perturbation_parameters(spec, SEVERITY, seed=0, n=n)
        note = DIFFERENCES[name].format(**params)

        def ours(name: str = name) -> Any:
            return apply_perturbation(name, batch, SEVERITY)

        anchor = _each(_augly_call(name, params), pils) if has_augly and spec.augly is not None else None
        if name in ("image:overlay_text", "image:overlay_emoji"):
            rows.append(Row(f"{name} (as designed)", ours, anchor, note))

            def one_at_a_time(name: str = name) -> Any:
                return [apply_perturbation(name, batch[i : i + 1], SEVERITY) for i in range(n)]

            rows.append(
                Row(f"{name} (same work: drawn per image)", one_at_a_time, anchor,
                    "ours called on one image at a time, so it draws for every image as AugLy does")
            )
            if name == "image:overlay_emoji" and anchor is not None:
                prepared = _emoji_prepared_once(params, size)
                rows.append(
                    Row(f"{name} (same work: prepared once)", ours, _each(prepared, pils),
                        "AugLy overlay_image with its emoji loaded and resized once, as ours draws once")
                )
        else:
            rows.append(Row(name, ours, anchor, note))
    return rows


def bench_images(n: int, size: int, min_seconds: float) -> list[tuple[Row, float, float | None]]:
    results = []
    for row in image_rows(n, size):
        works = {"ours": row.ours} if row.anchor is None else {"ours": row.ours, "anchor": row.anchor}
        rates = _rates(works, n, min_seconds)
        results.append((row, rates["ours"], rates.get("anchor")))
    return results


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
            rows.append((name, _rates({"ours": work}, n * seconds, min_seconds)["ours"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    args = parser.parse_args(argv)
    n, size, min_seconds = (32, 64, 0.3) if args.quick else (256, 128, 1.0)
    audio_n, audio_seconds = (8, 1.0) if args.quick else (32, 4.0)

    print(
        f"image perturbations: {n} photos of {size}x{size}x3 uint8, severity {SEVERITY}, images per CPU second, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print("ours: apply_perturbation on the uint8 batch, a new batch out; AugLy: its function per PIL image "
          "(conversions from and to the batch not timed), same parameters")
    if not augly_available():
        print("AugLy rows skipped: pip install 'pytest-aisp[augly]'")
    print(f"{'perturbation':<46} {'ours img/s':>10} {'AugLy img/s':>11} {'ratio':>6}  what differs")
    for row, ours, anchor in bench_images(n, size, min_seconds):
        if anchor is None:
            print(f"{row.label:<46} {ours:>10.0f} {'baseline':>11} {'':>6}  {row.note}")
        else:
            print(f"{row.label:<46} {ours:>10.0f} {anchor:>11.0f} {ours / anchor:>5.2f}x  {row.note}")
    print()
    print(
        f"audio perturbations: {audio_n} waveforms of {audio_seconds:g} s at 16 kHz, baseline rows (AugLy's audio "
        "module needs librosa and torchaudio: no anchor)"
    )
    print(f"{'perturbation':<22} {'audio s / CPU s':>15}")
    for name, throughput in bench_audio(audio_n, audio_seconds, 16000, min_seconds):
        print(f"{name:<22} {throughput:>15.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
