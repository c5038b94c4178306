"""Small pieces the poisoning, backdoor, extraction and membership checks share."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError


@contextlib.contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for code that draws from it (ART's KMeans, PCA) and restore it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def check_fraction(value: float, name: str) -> float:
    """``value`` as a float in [0, 1]; ``AispError`` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AispError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise AispError(f"{name} must be in [0, 1], got {number}")
    return number


def thumbnails_png(images: Sequence[np.ndarray], scale: int = 4) -> bytes | None:
    """A row of up to 8 images as one PNG, or None when they are not images or Pillow is missing."""
    try:
        from PIL import Image
    except ImportError:
        return None
    tiles = []
    for image in list(images)[:8]:
        arr = np.asarray(image, float)
        if arr.ndim == 3 and arr.shape[0] in (1, 3):
            arr = np.moveaxis(arr, 0, -1)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            return None
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        tile = Image.fromarray((arr * 255).astype(np.uint8))
        tiles.append(tile.resize((tile.width * scale, tile.height * scale), Image.NEAREST))
    if not tiles:
        return None
    strip = Image.new(tiles[0].mode, (sum(t.width + 2 for t in tiles), max(t.height for t in tiles)))
    offset = 0
    for tile in tiles:
        strip.paste(tile, (offset, 0))
        offset += tile.width + 2
    buffer = io.BytesIO()
    strip.save(buffer, format="PNG")
    return buffer.getvalue()


def rounded(value: Any, digits: int = 4) -> float:
    """``value`` as a float rounded for evidence."""
    return round(float(value), digits)
