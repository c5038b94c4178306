"""Input checks: each modality's batch layout, with errors that say how to fix the input.

This module imports nothing else of the package's multimodal folder: the registry and the
operations import it, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError


@dataclass(frozen=True)
class Context:
    """What some perturbations need besides the data: the audio sample rate, the video frame rate."""

    sample_rate: int | None = None
    fps: float | None = None

_LAYOUT = {
    "image": "(N, H, W, C) with C in 1, 3 or 4",
    "audio": "(N, T) mono waveforms",
    "video": "(N, F, H, W, C) with C in 1, 3 or 4",
}


def check_inputs(modality: str, inputs: Any, context: Context) -> Any:
    """Return ``inputs`` if they fit ``modality``'s layout; raise ``AispError`` naming the fix."""
    if modality == "text":
        return check_texts(inputs)
    if not isinstance(inputs, np.ndarray):
        raise AispError(
            f"{modality} inputs must be a numpy array {_LAYOUT[modality]}, got {type(inputs).__name__}; "
            "convert with numpy.asarray(...) (torch: tensor.cpu().numpy(), channels last)"
        )
    ndim = {"image": 4, "audio": 2, "video": 5}[modality]
    if inputs.ndim != ndim:
        hint = " (a single item: add a batch axis with x[None])" if inputs.ndim == ndim - 1 else ""
        raise AispError(f"{modality} inputs must have shape {_LAYOUT[modality]}, got {inputs.shape}{hint}")
    if inputs.shape[0] == 0:
        raise AispError(f"{modality} inputs are empty (shape {inputs.shape}); pass at least one example")
    if modality in ("image", "video"):
        if inputs.shape[-1] not in (1, 3, 4):
            raise AispError(
                f"{modality} inputs must be channels-last {_LAYOUT[modality]}, got {inputs.shape}; "
                "for channels-first arrays use numpy.moveaxis(x, 1, -1)"
            )
        _check_pixels(modality, inputs)
    if modality == "audio":
        if inputs.dtype.kind != "f":
            raise AispError(
                f"audio inputs must be float waveforms in [-1, 1], got dtype {inputs.dtype}; "
                "for int16 PCM use x.astype(numpy.float32) / 32768"
            )
        if context.sample_rate is None or int(context.sample_rate) <= 0:
            raise AispError("audio perturbations need the sample rate: pass sample_rate=16000 (or your rate)")
    if modality == "video" and (context.fps is None or float(context.fps) <= 0):
        raise AispError("video perturbations need the frame rate: pass fps=25 (or your clips' rate)")
    return inputs


def _check_pixels(modality: str, inputs: np.ndarray) -> None:
    if inputs.dtype == np.uint8:
        return
    if inputs.dtype.kind != "f":
        raise AispError(
            f"{modality} pixels must be uint8 (0-255) or floats in [0, 1], got dtype {inputs.dtype}; "
            "convert with x.astype(numpy.uint8) or x.astype(numpy.float32) / 255"
        )
    low, high = float(np.nanmin(inputs)), float(np.nanmax(inputs))
    if not np.isfinite(low) or low < -1e-6 or high > 1 + 1e-6:
        raise AispError(
            f"float {modality} pixels must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; "
            "scale them (x / 255) or pass uint8 arrays"
        )


def check_texts(inputs: Any) -> list[str]:
    """A list of strings, or an ``AispError``."""
    if isinstance(inputs, str):
        raise AispError("text inputs must be a list of strings; wrap a single text as [text]")
    try:
        texts = list(inputs)
    except TypeError:
        raise AispError(f"text inputs must be a list of strings, got {type(inputs).__name__}") from None
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise AispError(f"text inputs must all be str, found {bad[0]}; convert them with str(...)")
    if not texts:
        raise AispError("text inputs are empty; pass at least one string")
    return texts


def batch_size(batch: Any) -> int:
    return len(batch)


def copy_batch(batch: Any) -> Any:
    return batch.copy() if isinstance(batch, np.ndarray) else list(batch)


def take(batch: Any, indices: Any) -> Any:
    """The examples of ``batch`` at ``indices`` (arrays and lists alike)."""
    if isinstance(batch, np.ndarray):
        return batch[np.asarray(indices, dtype=int)]
    return [batch[i] for i in indices]


def to_float255(images: np.ndarray) -> np.ndarray:
    """Pixels as float32 on the 0-255 scale, whatever the input dtype."""
    if images.dtype == np.uint8:
        return images.astype(np.float32)
    return images.astype(np.float32) * 255.0


def from_float255(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Back to ``like``'s dtype and scale, clipped to the valid range."""
    values = np.clip(values, 0.0, 255.0, out=values if values.dtype == np.float32 else None)
    if like.dtype == np.uint8:
        return np.rint(values, out=values).astype(np.uint8)
    return (values / 255.0).astype(like.dtype)
