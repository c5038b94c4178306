"""The batched image operations against the implementations they replaced, and what changed on purpose.

The references below are the previous code of each operation (float32 resampling on the 0-255 scale,
Pillow image by image, scipy on float32): the batched, dtype-keeping versions must give the same
pixels within the bounds the docs state (docs/multimodal.md, "Native implementation").
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from pytest_aisp.multimodal import apply_perturbation, image_ops
from pytest_aisp.multimodal.registry import get_perturbation, perturbation_parameters
from tests.fixture_scripts import load_fixture_script

PHOTOS = load_fixture_script("multimodal/make_fixtures.py", "multimodal_fixtures").photo_crops(5, 48, 61, seed=3)


# --- the previous implementations -------------------------------------------------------------


def _old_interpolate_axis(images: np.ndarray, axis: int, size: int) -> np.ndarray:
    length = images.shape[axis]
    if length == size:
        return images
    position = np.clip((np.arange(size) + 0.5) * (length / size) - 0.5, 0, length - 1)
    first = np.floor(position).astype(np.int64)
    second = np.minimum(first + 1, length - 1)
    shape = [1] * images.ndim
    shape[axis] = size
    weight = (position - first).astype(np.float32).reshape(shape)
    low = np.take(images, first, axis=axis)
    return low + (np.take(images, second, axis=axis) - low) * weight


def _old_resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    return _old_interpolate_axis(_old_interpolate_axis(x, 1, height), 2, width)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 255)).astype(np.uint8)


def _old_crop(x: np.ndarray, p: dict) -> np.ndarray:
    height, width = x.shape[1:3]
    top, left = round(p["y1"] * height), round(p["x1"] * width)
    bottom, right = max(top + 1, round(p["y2"] * height)), max(left + 1, round(p["x2"] * width))
    return _to_uint8(_old_resize(x[:, top:bottom, left:right].astype(np.float32), height, width))


def _old_pad(x: np.ndarray, p: dict) -> np.ndarray:
    height, width = x.shape[1:3]
    pad_h, pad_w = round(p["h_factor"] * height), round(p["w_factor"] * width)
    padded = np.pad(x.astype(np.float32), ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
    return _to_uint8(_old_resize(padded, height, width))


def _old_scale(x: np.ndarray, p: dict) -> np.ndarray:
    height, width = x.shape[1:3]
    small = _old_resize(
        x.astype(np.float32), max(1, round(height * p["factor"])), max(1, round(width * p["factor"]))
    )
    return _to_uint8(_old_resize(small, height, width))


def _old_per_image(x: np.ndarray, function) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(x)
    for i, image in enumerate(x):
        pil = Image.fromarray(image[..., 0] if x.shape[3] == 1 else image)
        result = np.asarray(function(pil).convert(pil.mode))
        out[i] = result[..., None] if x.shape[3] == 1 else result
    return out


def _old_rotation(x: np.ndarray, p: dict) -> np.ndarray:
    from PIL import Image

    return _old_per_image(x, lambda pil: pil.rotate(p["degrees"], resample=Image.BILINEAR))


def _old_perspective(x: np.ndarray, p: dict) -> np.ndarray:
    from PIL import Image

    height, width = x.shape[1:3]
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)
    moved = corners + np.asarray(p["offsets"]) * np.array([width, height])
    coefficients = tuple(image_ops._homography(moved, corners).ravel()[:8])
    return _old_per_image(
        x, lambda pil: pil.transform(pil.size, Image.PERSPECTIVE, coefficients, resample=Image.BILINEAR)
    )


def _old_jpeg(x: np.ndarray, p: dict) -> np.ndarray:
    from PIL import Image

    def encode(pil):
        buffer = io.BytesIO()
        pil.convert("RGB" if pil.mode == "RGBA" else pil.mode).save(buffer, format="JPEG", quality=p["quality"])
        return Image.open(io.BytesIO(buffer.getvalue()))

    return _old_per_image(x, encode)


def _old_saturation(x: np.ndarray, p: dict) -> np.ndarray:
    values = x.astype(np.float32)
    if x.shape[3] == 1:
        return x.copy()
    factor = np.asarray(p["factor"], dtype=np.float32).reshape(-1, 1, 1, 1)
    grey = values[..., 0:1] * np.float32(0.299) + values[..., 1:2] * np.float32(0.587)
    grey += values[..., 2:3] * np.float32(0.114)
    colour = values[..., :3]
    colour -= grey
    colour *= factor
    colour += grey
    return _to_uint8(values)


def _old_pixelation(x: np.ndarray, p: dict) -> np.ndarray:
    values = x.astype(np.float32)
    height, width = x.shape[1:3]
    small_h, small_w = max(1, round(height * p["ratio"])), max(1, round(width * p["ratio"]))
    rows = np.minimum((np.arange(height) * small_h) // height, small_h - 1)
    cols = np.minimum((np.arange(width) * small_w) // width, small_w - 1)
    row_starts = np.searchsorted(rows, np.arange(small_h))
    col_starts = np.searchsorted(cols, np.arange(small_w))
    sums = np.add.reduceat(np.add.reduceat(values, row_starts, axis=1), col_starts, axis=2)
    counts = np.diff(np.append(row_starts, height))[:, None] * np.diff(np.append(col_starts, width))[None, :]
    means = sums / counts[None, :, :, None].astype(np.float32)
    return _to_uint8(means[:, rows][:, :, cols])


def _old_blur(x: np.ndarray, p: dict) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    radius = p["radius"]
    return _to_uint8(gaussian_filter(x.astype(np.float32), sigma=(0, radius, radius, 0), mode="nearest"))


def _old_blend(x: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The previous compositing: the whole batch in float32 on the 0-255 scale."""
    out = x.astype(np.float32)
    weight = alpha.astype(np.float32)[None, :, :, None]
    paint = np.asarray(colour, dtype=np.float32)
    if x.shape[3] == 1:
        paint = paint.mean(axis=-1, keepdims=True)
    out[..., : min(3, x.shape[3])] = out[..., : min(3, x.shape[3])] * (1 - weight) + paint * weight
    return out


def _old_overlay_text(x: np.ndarray, p: dict) -> np.ndarray:
    mask = image_ops._text_mask(x.shape[1], x.shape[2], p["text"], p["font_size"], p["x_pos"], p["y_pos"])
    return _to_uint8(_old_blend(x, mask * p["opacity"], np.array(p["color"])))


def _old_overlay_emoji(x: np.ndarray, p: dict) -> np.ndarray:
    height, width = x.shape[1:3]
    size = max(2, round(p["emoji_size"] * height))
    emoji = image_ops._emoji_rgba(size)
    top, left = round(p["y_pos"] * height), round(p["x_pos"] * width)
    alpha = np.zeros((height, width), dtype=np.float32)
    colour = np.zeros((height, width, 3), dtype=np.float32)
    h, w = min(size, height - top), min(size, width - left)
    alpha[top : top + h, left : left + w] = emoji[:h, :w, 3] / 255.0 * p["opacity"]
    colour[top : top + h, left : left + w] = emoji[:h, :w, :3]
    return _to_uint8(_old_blend(x, alpha, colour))


def _old_meme_format(x: np.ndarray, p: dict) -> np.ndarray:
    height, width = x.shape[1:3]
    bar = min(height - 1, max(1, round(p["caption_height"] * height)))
    body = _old_resize(x.astype(np.float32), height - bar, width)
    white = np.full((len(x), bar, width, x.shape[3]), 255, dtype=np.uint8)
    caption = _old_blend(white, image_ops._text_mask(bar, width, p["text"], 0.7, 0.05, 0.1), np.zeros(3))
    return _to_uint8(np.concatenate([caption, body], axis=1))


def _old_occlusion(x: np.ndarray, p: dict) -> np.ndarray:
    height, width = x.shape[1:3]
    side_h, side_w = max(1, round(p["side"] * height)), max(1, round(p["side"] * width))
    tops = np.rint(np.asarray(p["top"]) * (height - side_h))[:, None, None]
    lefts = np.rint(np.asarray(p["left"]) * (width - side_w))[:, None, None]
    rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    inside = (rows >= tops) & (rows < tops + side_h) & (cols >= lefts) & (cols < lefts + side_w)
    return _to_uint8(np.where(inside[..., None], p["fill"], x.astype(np.float32)))


PREVIOUS = {
    "image:overlay_text": _old_overlay_text,
    "image:overlay_emoji": _old_overlay_emoji,
    "image:meme_format": _old_meme_format,
    "image:occlusion": _old_occlusion,
    "image:crop": _old_crop,
    "image:pad": _old_pad,
    "image:scale": _old_scale,
    "image:rotation": _old_rotation,
    "image:perspective": _old_perspective,
    "image:jpeg": _old_jpeg,
    "image:saturation": _old_saturation,
    "image:pixelation": _old_pixelation,
    "image:blur": _old_blur,
}
# (largest pixel difference, mean difference) from the previous implementation, in 0-255 levels:
# resampling now rounds 8-bit fixed-point weights (scale resamples twice, so up to 2 levels); the
# warps truncate like Pillow from weights in 1/256 steps; the rest rounds the same values.
BOUNDS = {
    "image:overlay_text": (0, 0.0),
    "image:overlay_emoji": (0, 0.0),
    "image:meme_format": (1, 0.2),
    "image:occlusion": (0, 0.0),
    "image:crop": (1, 0.2),
    "image:pad": (1, 0.2),
    "image:scale": (2, 0.4),
    "image:rotation": (1, 0.05),
    "image:perspective": (1, 0.05),
    "image:jpeg": (0, 0.0),
    "image:saturation": (1, 0.01),
    "image:pixelation": (0, 0.0),
    "image:blur": (1, 0.01),
}


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("severity", [0.3, 0.9])
@pytest.mark.parametrize("name", sorted(PREVIOUS))
def test_batched_operation_matches_the_previous_implementation(name, severity, channels):
    images = PHOTOS if channels == 3 else np.ascontiguousarray(PHOTOS[..., :1])
    params = perturbation_parameters(name, severity, seed=4, n=len(images))
    out = apply_perturbation(name, images, severity, seed=4)
    assert out.shape == images.shape and out.dtype == np.uint8
    difference = np.abs(out.astype(int) - PREVIOUS[name](images, params))
    largest, mean = BOUNDS[name]
    assert difference.max() <= largest, (difference.max(), difference.mean())
    assert difference.mean() <= mean, difference.mean()


@pytest.mark.parametrize("name", ["image:crop", "image:saturation", "image:rotation", "image:blur", "image:jpeg"])
def test_cutting_the_batch_into_parts_changes_nothing(name, monkeypatch):
    whole = apply_perturbation(name, PHOTOS, 0.7, seed=2)
    monkeypatch.setattr(image_ops, "PART_VALUES", 1)  # one image per part
    np.testing.assert_array_equal(apply_perturbation(name, PHOTOS, 0.7, seed=2), whole)


def test_jpeg_is_byte_for_byte_pillows_save_and_open():
    """The codec is driven through Image.tobytes/frombytes("jpeg"): the same libjpeg call as save/open."""
    from PIL import Image

    image = Image.fromarray(PHOTOS[0])
    for quality in (5, 50, 95):
        saved = io.BytesIO()
        image.save(saved, format="JPEG", quality=quality)
        assert image.tobytes("jpeg", "RGB", quality) == saved.getvalue()
        decoded = Image.frombytes("RGB", image.size, saved.getvalue(), "jpeg", "RGB", "")
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(Image.open(saved)))


def _rgba() -> np.ndarray:
    alpha = np.linspace(0, 255, PHOTOS.shape[2]).astype(np.uint8)[None, None, :, None]
    return np.concatenate([PHOTOS, np.broadcast_to(alpha, (*PHOTOS.shape[:3], 1))], axis=-1)


def test_jpeg_keeps_the_alpha_channel():
    """JPEG has no alpha: the colour channels are re-encoded, the alpha channel is the input's (it was
    set to opaque before)."""
    rgba = _rgba()
    out = apply_perturbation("image:jpeg", rgba, 0.8)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[..., :3], apply_perturbation("image:jpeg", PHOTOS, 0.8))


@pytest.mark.parametrize("name", ["image:rotation", "image:perspective"])
def test_warps_resample_every_channel_alike(name):
    """RGBA is four channels resampled alike, as crop, pad and scale always did (Pillow premultiplied
    the colour by the alpha before)."""
    rgba = _rgba()
    out = apply_perturbation(name, rgba, 0.8, seed=1)
    np.testing.assert_array_equal(out[..., :3], apply_perturbation(name, PHOTOS, 0.8, seed=1))
    alpha_alone = apply_perturbation(name, np.ascontiguousarray(rgba[..., 3:]), 0.8, seed=1)
    np.testing.assert_array_equal(out[..., 3:], alpha_alone)


@pytest.mark.parametrize("name", ["image:rotation", "image:perspective"])
def test_warps_keep_float_precision(name):
    """Float images are sampled in float32: no detour through 8 bits (the outputs were multiples of 1/255)."""
    rng = np.random.default_rng(0)
    floats = np.clip(PHOTOS / 255 + rng.uniform(-1e-3, 1e-3, PHOTOS.shape), 0, 1).astype(np.float32)
    out = apply_perturbation(name, floats, 0.6, seed=1)
    assert out.dtype == np.float32
    levels = out * 255
    assert np.abs(levels - np.rint(levels)).max() > 0.05
    as_uint8 = apply_perturbation(name, PHOTOS, 0.6, seed=1)
    assert np.abs(levels - as_uint8).max() <= 1.5


@pytest.mark.parametrize("name", sorted(PREVIOUS))
def test_float_and_half_inputs_keep_their_dtype_and_range(name):
    for dtype in (np.float32, np.float16, np.float64):
        images = (PHOTOS / 255).astype(dtype)
        out = apply_perturbation(name, images, 0.6, seed=1)
        assert out.dtype == dtype and out.shape == images.shape
        assert out.min() >= 0 and out.max() <= 1
        assert np.abs(out.astype(np.float64) * 255 - apply_perturbation(name, PHOTOS, 0.6, seed=1)).mean() < 1.0


def test_pixelation_blocks_have_the_block_mean():
    image = np.arange(8 * 8, dtype=np.uint8).reshape(1, 8, 8, 1) * 3
    out = apply_perturbation("image:pixelation", image, 1.0)  # ratio 0.1: 8 x 8 -> one block
    assert np.unique(out).tolist() == [round(float(image.mean()))]
    spec = get_perturbation("image:pixelation")
    half = spec.native(image, {"ratio": 0.5}, np.random.default_rng(0), None)
    np.testing.assert_array_equal(half[0, :2, :2, 0], np.full((2, 2), round(image[0, :2, :2].mean())))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_change_too_small_to_resample_still_returns_a_new_array(dtype):
    images = PHOTOS if dtype == np.uint8 else (PHOTOS / 255).astype(dtype)
    for name in PREVIOUS:
        out = apply_perturbation(name, images, 0.001)  # scale 0.9992: the same size, nothing to resample
        assert not np.shares_memory(out, images), name
