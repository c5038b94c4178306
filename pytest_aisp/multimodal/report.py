"""Pictures for the HTML report: original vs perturbed thumbnails, video frame strips, spectrograms.

Drawn with Pillow and numpy only (no matplotlib), as PNG bytes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

THUMB = 96  # thumbnail height in pixels
GAP = 4


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images.astype(np.float32) * 255), 0, 255).astype(np.uint8)


def _thumbnail(image: np.ndarray) -> Any:
    """A PIL RGB thumbnail of one (H, W, C) uint8 image, THUMB pixels high (nearest for tiny ones)."""
    from PIL import Image

    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    pil = Image.fromarray(np.ascontiguousarray(rgb))
    width = max(1, round(pil.width * THUMB / pil.height))
    resample = Image.NEAREST if pil.height < THUMB // 2 else Image.BILINEAR
    return pil.resize((width, THUMB), resample)


def _grid(rows: list[list[Any]]) -> bytes:
    from PIL import Image

    widths = [sum(t.width for t in row) + GAP * (len(row) - 1) for row in rows]
    canvas = Image.new("RGB", (max(widths), len(rows) * THUMB + GAP * (len(rows) - 1)), (255, 255, 255))
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            canvas.paste(tile, (x, r * (THUMB + GAP)))
            x += tile.width + GAP
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def image_pair_png(original: np.ndarray, perturbed: np.ndarray) -> bytes:
    """Originals on the top row, perturbed images below, for a batch (N, H, W, C)."""
    return _grid(
        [[_thumbnail(i) for i in _to_uint8(original)], [_thumbnail(i) for i in _to_uint8(perturbed)]]
    )


def video_pair_png(original: np.ndarray, perturbed: np.ndarray, frames: int = 6) -> bytes:
    """For the first clip: evenly spaced frames of the original (top) and the perturbed clip (bottom)."""
    index = np.linspace(0, original.shape[1] - 1, min(frames, original.shape[1])).round().astype(int)
    return image_pair_png(original[0, index], perturbed[0, index])


def spectrogram_image(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """A log-magnitude spectrogram as an RGB uint8 image (low frequencies at the bottom)."""
    from scipy.signal import spectrogram

    _, _, power = spectrogram(waveform.astype(np.float64), fs=sample_rate, nperseg=256, noverlap=192)
    level = 10 * np.log10(power + 1e-12)
    level = np.clip((level - (level.max() - 80)) / 80, 0, 1)[::-1]
    # a simple dark-blue -> yellow colour map
    red = np.clip(1.5 * level - 0.3, 0, 1)
    green = np.clip(1.2 * level - 0.1, 0, 1) * 0.9
    blue = np.clip(0.6 - np.abs(level - 0.35) * 1.5, 0, 1) + 0.15
    return (np.stack([red, green, np.clip(blue, 0, 1)], axis=-1) * 255).astype(np.uint8)


def audio_pair_png(original: np.ndarray, perturbed: np.ndarray, sample_rate: int) -> bytes:
    """Spectrograms of the originals (top) and the perturbed waveforms (bottom), batch (N, T)."""
    return _grid(
        [
            [_thumbnail(spectrogram_image(w, sample_rate)) for w in original],
            [_thumbnail(spectrogram_image(w, sample_rate)) for w in perturbed],
        ]
    )


def comparison_png(modality: str, original: Any, perturbed: Any, *, sample_rate: int | None = None) -> bytes:
    """The right picture for ``modality``: image thumbnails, video frames or audio spectrograms."""
    if modality == "image":
        return image_pair_png(original, perturbed)
    if modality == "video":
        return video_pair_png(original, perturbed)
    if modality == "audio":
        return audio_pair_png(original, perturbed, int(sample_rate or 16000))
    raise ValueError(f"no picture for modality {modality!r}")
