"""Video perturbations on batches of clips (N, F, H, W, C): every image perturbation per frame, plus
temporal ones (frame drop, frame-rate change, temporal crop) and a low-bitrate re-encode through ffmpeg.

Every operation keeps the frame count F: dropped frames repeat the previous frame, a lower frame
rate repeats frames, a temporal crop is stretched back over F frames, as a player would show it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_aisp.findings import AispError
from pytest_aisp.multimodal import image_ops
from pytest_aisp.multimodal.inputs import Context
from pytest_aisp.multimodal.perturbation import Perturbation

DEFAULT = ("blur", "jpeg", "brightness", "frame_drop", "frame_rate", "reencode", "temporal_crop")


def _per_frame(image: Perturbation) -> Perturbation:
    """``image``'s operation applied to every frame of every clip, as one batch of N·F images."""

    def parameters(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
        return image.parameters(s, rng, n)

    def flat(clips: np.ndarray) -> np.ndarray:
        return clips.reshape(-1, *clips.shape[2:])

    def repeat_per_frame(params: Mapping[str, Any], frames: int) -> dict[str, Any]:
        # per-clip choices (arrays of length N) hold for every frame of that clip
        return {k: np.repeat(v, frames) if isinstance(v, np.ndarray) else v for k, v in params.items()}

    def native(
        clips: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator, c: Context
    ) -> np.ndarray:
        out = image.native(flat(clips), repeat_per_frame(params, clips.shape[1]), rng, c)
        return out.reshape(clips.shape)

    augly = None
    if image.augly is not None:

        def augly(clips: np.ndarray, params: Mapping[str, Any], seed: int, c: Context) -> np.ndarray:
            out = image.augly(flat(clips), repeat_per_frame(params, clips.shape[1]), seed, c)  # type: ignore[misc]
            return out.reshape(clips.shape)

    return Perturbation(
        name=f"video:{image.short_name}",
        mapping=f"per frame: {image.mapping}",
        parameters=parameters,
        native=native,
        augly=augly,
        batched=image.batched,
        augly_note=image.augly_note,
    )


def _frame_drop(clips: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    frames = clips.shape[1]
    dropped = rng.random((clips.shape[0], frames)) < p["fraction"]
    dropped[:, 0] = False
    # index of the last kept frame at or before each position
    kept_index = np.where(dropped, 0, np.arange(frames)[None, :])
    kept_index = np.maximum.accumulate(kept_index, axis=1)
    return np.take_along_axis(clips, kept_index[:, :, None, None, None], axis=1)


def _frame_rate(clips: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    frames = clips.shape[1]
    ratio = p["fps_ratio"]
    # frame shown at original time k is the latest frame of the slower stream
    index = np.minimum(np.floor(np.floor(np.arange(frames) * ratio) / ratio).astype(int), frames - 1)
    return clips[:, index]


def _temporal_crop(
    clips: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context
) -> np.ndarray:
    frames = clips.shape[1]
    keep = max(1, round(frames * p["keep"]))
    start = round(p["start"] * (frames - keep))
    index = start + np.minimum((np.arange(frames) * keep) // frames, keep - 1)
    return clips[:, index]


def ffmpeg_path() -> str:
    """The ffmpeg executable: ``AISP_FFMPEG`` if set, else the binary inside the ``imageio-ffmpeg`` wheel
    (the same build on every machine), else a system ffmpeg on PATH; an ``AispError`` names the install."""
    explicit = os.environ.get("AISP_FFMPEG", "").strip()
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise AispError(f"AISP_FFMPEG={explicit} is not an executable file; unset it to use imageio-ffmpeg's")
        return explicit
    wheel = _wheel_ffmpeg()
    if wheel is not None:
        return wheel
    path = shutil.which("ffmpeg")
    if path is None:
        raise AispError(
            "no ffmpeg found; video re-encoding needs one: pip install imageio-ffmpeg "
            '(or pip install "pytest-aisp[multimodal]"), or choose another video perturbation'
        )
    return path


def _wheel_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:  # the wheel holds no binary for this platform
        return None


def reencode_clip(clip: np.ndarray, fps: float, bitrate_kbps: float) -> np.ndarray:
    """One clip (F, H, W, 3) uint8 through H.264 at ``bitrate_kbps`` and back, in memory."""
    frames, height, width, _ = clip.shape
    # yuv420p needs even sizes: pad by edge replication, cut back after decoding
    even = np.pad(clip, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    size = f"{even.shape[2]}x{even.shape[1]}"
    rate = f"{max(1, round(bitrate_kbps))}k"
    encode = [
        ffmpeg_path(),
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        size,
        "-r",
        str(fps),
        "-i",
        "pipe:0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        rate,
        "-maxrate",
        rate,
        "-bufsize",
        rate,
        "-pix_fmt",
        "yuv420p",
        "-f",
        "h264",
        "pipe:1",
    ]
    decode = [
        ffmpeg_path(),
        "-v",
        "error",
        "-f",
        "h264",
        "-i",
        "pipe:0",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    try:
        encoded = subprocess.run(encode, input=even.tobytes(), capture_output=True, check=True, timeout=120)
        decoded = subprocess.run(decode, input=encoded.stdout, capture_output=True, check=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        raise AispError(
            f"ffmpeg failed to re-encode a clip: {exc.stderr.decode(errors='replace')[-300:]}"
        ) from None
    out = np.frombuffer(decoded.stdout, dtype=np.uint8)
    frame_bytes = even.shape[1] * even.shape[2] * 3
    got = out.size // frame_bytes
    out = out[: got * frame_bytes].reshape(got, even.shape[1], even.shape[2], 3)
    if got < frames:  # the encoder may drop trailing frames at very low rates: repeat the last
        out = np.concatenate([out, np.repeat(out[-1:], frames - got, axis=0)])
    return out[:frames, :height, :width]


def _reencode(clips: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator, c: Context) -> np.ndarray:
    from pytest_aisp.multimodal.inputs import from_float255, to_float255

    pixels = np.clip(np.rint(to_float255(clips)), 0, 255).astype(np.uint8)
    channels = pixels.shape[-1]
    rgb = np.repeat(pixels, 3, axis=-1) if channels == 1 else pixels[..., :3]
    out = np.stack([reencode_clip(clip, float(c.fps), p["bitrate_kbps"]) for clip in rgb]).astype(np.float32)
    if channels == 1:
        out = image_ops._luminance(out)
    elif channels == 4:
        out = np.concatenate([out, to_float255(clips)[..., 3:]], axis=-1)
    return from_float255(out, clips)


_TEMPORAL = (
    Perturbation(
        "video:frame_drop",
        "each frame dropped (previous one repeated) with probability 0.5·s",
        lambda s, rng, n: {"fraction": 0.5 * s},
        _frame_drop,
    ),
    Perturbation(
        "video:frame_rate",
        "frame rate lowered to (1 − 0.8·s) of the original, frames repeated",
        lambda s, rng, n: {"fps_ratio": 1 - 0.8 * s},
        _frame_rate,
    ),
    Perturbation(
        "video:reencode",
        "H.264 re-encode through ffmpeg at 2000·(0.01)^s kbit/s",
        lambda s, rng, n: {"bitrate_kbps": 2000 * 0.01**s},
        _reencode,
        batched=False,
    ),
    Perturbation(
        "video:temporal_crop",
        "keep a window of 1 − 0.6·s of the clip (seeded start), stretched",
        lambda s, rng, n: {"keep": 1 - 0.6 * s, "start": float(rng.random())},
        _temporal_crop,
    ),
)

PERTURBATIONS: tuple[Perturbation, ...] = tuple(_per_frame(p) for p in image_ops.PERTURBATIONS) + _TEMPORAL


def write_video(path: str, clip: np.ndarray, fps: float, *, crf: int = 18) -> None:
    """Write one clip (F, H, W, 3) uint8 to ``path`` (H.264 in MP4) through ffmpeg."""
    _, height, width, _ = clip.shape
    even = np.pad(clip, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    command = [
        ffmpeg_path(),
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{even.shape[2]}x{even.shape[1]}",
        "-r",
        str(fps),
        "-i",
        "pipe:0",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        str(crf),
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    try:
        subprocess.run(
            command, input=np.ascontiguousarray(even).tobytes(), capture_output=True, check=True, timeout=120
        )
    except subprocess.CalledProcessError as exc:
        raise AispError(
            f"ffmpeg could not write {path}: {exc.stderr.decode(errors='replace')[-300:]}"
        ) from None


def read_video(path: str, height: int, width: int) -> np.ndarray:
    """Decode the video at ``path`` into (F, height, width, 3) uint8 frames through ffmpeg."""
    command = [
        ffmpeg_path(),
        "-v",
        "error",
        "-i",
        str(path),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-vf",
        f"scale={width + width % 2}:{height + height % 2}",
        "pipe:1",
    ]
    try:
        decoded = subprocess.run(command, capture_output=True, check=True, timeout=120).stdout
    except subprocess.CalledProcessError as exc:
        raise AispError(
            f"ffmpeg could not read {path}: {exc.stderr.decode(errors='replace')[-300:]}"
        ) from None
    even_h, even_w = height + height % 2, width + width % 2
    frames = np.frombuffer(decoded, dtype=np.uint8).reshape(-1, even_h, even_w, 3)
    return frames[:, :height, :width]
