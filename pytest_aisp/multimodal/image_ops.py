"""Image perturbations on batches (N, H, W, C): numpy/scipy math on the whole batch, in cache-sized parts.

Every operation keeps the image size, so the model can take the result: geometric operations
(crop, pad, scale, rotation, perspective, meme format) resample back onto the original grid.
Noise, brightness and contrast compute on a float32 copy on the 0-255 scale and return the input's
dtype. The operations in ``DIRECT_OPS`` read the input's own dtype instead, so a uint8 batch makes no
float32 round trip where the work allows: crop, pad and scale resample separably with one set of
taps for the batch (8-bit fixed-point weights on uint8); rotation and perspective sample through one
grid for the batch (Pillow's bilinear convention); pixelation sums blocks in integers; the overlays
draw their picture once and compute only the box it covers; blur and saturation convert once inside
their arithmetic; JPEG goes through one Pillow encode and one decode call per image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_aisp.multimodal.inputs import Context, from_float255, to_float255
from pytest_aisp.multimodal.perturbation import Perturbation, import_augly

DEFAULT = ("blur", "gaussian_noise", "jpeg", "brightness", "contrast", "rotation", "crop", "occlusion")
OVERLAY_WORDS = ("SALE", "LOL", "FREE", "OK", "WOW", "NEW")


# --- batch helpers ------------------------------------------------------------------------------

PART_VALUES = 1 << 17  # pixel values (H·W·C) per step: a uint8 part and its float32 working set stay in cache


def _in_parts(images: np.ndarray, work: Any, values: int = PART_VALUES) -> np.ndarray:
    """``work(part)`` for slices ``part`` of the batch of about ``values`` pixel values, concatenated.

    Whole-batch temporaries of a large batch fall out of the CPU cache and make the same work several
    times slower; set-up shared by the batch (taps, sampling grids) is done once, before.
    """
    step = max(1, values // max(1, images[0].size))
    if len(images) <= step:
        return work(slice(0, len(images)))
    return np.concatenate([work(slice(start, start + step)) for start in range(0, len(images), step)])


# --- resampling helpers -------------------------------------------------------------------------


def _linear_taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear resampling of ``length`` samples to ``size``, pixel centres aligned: for each output
    sample the two source indices and the weight of the second."""
    position = np.clip((np.arange(size) + 0.5) * (length / size) - 0.5, 0, length - 1)
    first = np.floor(position).astype(np.intp)
    second = np.minimum(first + 1, length - 1)
    return first, second, position - first


def _mix(low: np.ndarray, high: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``(1 - weight)·low + weight·high`` in ``low``'s dtype; ``low`` and ``high`` are fresh arrays.

    uint8 stays in integers: weights in 1/256 steps, rounded to the nearest level, at most one level
    from the float result.
    """
    if low.dtype == np.uint8:
        fixed = np.rint(weight * 256).astype(np.uint16)
        out = low.astype(np.uint16)
        out *= 256 - fixed
        out += high * fixed
        out += 128
        out >>= 8
        return out.astype(np.uint8)
    high -= low
    high *= weight.astype(high.dtype)
    high += low
    return high


def _resample_rows(images: np.ndarray, height: int) -> np.ndarray:
    """(N, h, W, C) -> (N, height, W, C) by linear resampling along the rows."""
    if images.shape[1] == height:
        return images
    first, second, weight = _linear_taps(images.shape[1], height)
    return _mix(
        np.take(images, first, axis=1), np.take(images, second, axis=1), weight.reshape(1, -1, 1, 1)
    )


def _resample_columns(images: np.ndarray, width: int) -> np.ndarray:
    """(N, H, w, C) -> (N, H, width, C) by linear resampling along the columns."""
    n, height, length, channels = images.shape
    if length == width:
        return images
    first, second, weight = _linear_taps(length, width)
    # gather single values (each channel of each tap) from (N·H, w·C) rows: numpy's fast take path
    lanes = np.arange(channels)
    first = (first[:, None] * channels + lanes).ravel()
    second = (second[:, None] * channels + lanes).ravel()
    rows = images.reshape(n * height, length * channels)
    mixed = _mix(np.take(rows, first, axis=1), np.take(rows, second, axis=1), np.repeat(weight, channels))
    return mixed.reshape(n, height, width, channels)


def resize_batch(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (N, h, w, C) to (N, height, width, C), separably, one set of taps for the batch.

    Pixel centres are aligned and edge pixels repeat; there is no antialiasing filter when shrinking.
    uint8 stays uint8 (fixed-point weights, rounded once per axis); floats stay in their dtype.
    """
    return _in_parts(images, lambda part: _resample_columns(_resample_rows(images[part], height), width))


def _warp(images: np.ndarray, source_x: np.ndarray, source_y: np.ndarray) -> np.ndarray:
    """Bilinear sampling of each image of the batch at the source positions (H, W) of each output pixel.

    Positions are in pixel units with pixel centres at +0.5, as Pillow's transforms use them: a
    position outside the image gives black, neighbours past the edge repeat the edge pixel. One grid
    for the whole batch; uint8 stays in integers (weights in 1/256 steps, truncated as Pillow does).
    """
    height, width, channels = images.shape[1:]
    inside = ((source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)).ravel()
    x, y = source_x - 0.5, source_y - 0.5
    left, top = np.floor(x), np.floor(y)
    dx, dy = (x - left).ravel(), (y - top).ravel()
    left, top = left.astype(np.intp).ravel(), top.astype(np.intp).ravel()
    columns = (np.clip(left, 0, width - 1), np.clip(left + 1, 0, width - 1))
    below = np.where((top + 1 >= 0) & (top + 1 < height), top + 1, np.clip(top, 0, height - 1))
    rows = (np.clip(top, 0, height - 1), below)
    lanes = np.arange(channels)
    # one gather index per output value: pixel index times channels plus the channel
    indices = [((row * width + column)[:, None] * channels + lanes).ravel() for row in rows for column in columns]
    weights = np.stack([wy * wx for wy in (1 - dy, dy) for wx in (1 - dx, dx)]) * inside
    uint8 = images.dtype == np.uint8
    if uint8:
        # fixed point: the four weights of a pixel sum to exactly 256 (the rounding rest goes to the
        # largest), so a flat area keeps its level; >> 8 then truncates as Pillow's filter does
        fixed = np.rint(weights * 256)
        fixed[weights.argmax(axis=0), np.arange(fixed.shape[1])] += 256 * inside - fixed.sum(axis=0)
        weights = fixed
    dtype = np.uint16 if uint8 else images.dtype
    expanded = [np.repeat(weight, channels).astype(dtype) for weight in weights]

    def sample(part: slice) -> np.ndarray:
        flat = images[part].reshape(len(images[part]), -1)
        out = np.zeros(flat.shape, dtype=dtype)
        product = np.empty(flat.shape, dtype=dtype)
        for index, weight in zip(indices, expanded):
            np.multiply(np.take(flat, index, axis=1), weight, out=product)
            out += product
        if uint8:
            out >>= 8
            return out.astype(np.uint8).reshape(images[part].shape)
        return out.reshape(images[part].shape)

    return _in_parts(images, sample)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The output pixel centres (x + 0.5, y + 0.5), each of shape (H, W)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return xs + 0.5, ys + 0.5


def _per_image(images: np.ndarray, function: Any) -> np.ndarray:
    """Run a PIL-based ``function(pil, i) -> pil`` over uint8 images (N, H, W, C); same size and dtype out."""
    from PIL import Image

    out = np.empty_like(images)
    channels = images.shape[3]
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if channels == 1 else image)
        result = function(pil, i)
        if result.size != (images.shape[2], images.shape[1]):
            result = result.resize((images.shape[2], images.shape[1]), Image.BILINEAR)
        arr = np.asarray(result.convert(pil.mode))
        out[i] = arr[..., None] if channels == 1 else arr
    return out


def _as_uint8(batch: np.ndarray) -> np.ndarray:
    return batch if batch.dtype == np.uint8 else from_float255(to_float255(batch), np.empty(0, np.uint8))


def _from_uint8(images: np.ndarray, like: np.ndarray) -> np.ndarray:
    return images if like.dtype == np.uint8 else (images.astype(np.float32) / 255.0).astype(like.dtype)


def _native(function: Any) -> Any:
    """Wrap float-domain math ``function(x255, params, rng)`` into a NativeFunction.

    The function gets a fresh float32 copy of each part of the batch on the 0-255 scale (with the
    part's per-example parameters); the result goes back to the input's dtype, rounded and clipped.
    """

    def run(
        batch: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator, context: Context
    ) -> np.ndarray:
        def work(part: slice) -> np.ndarray:
            chunk_params = _slice_params(params, part, len(batch))
            return from_float255(function(to_float255(batch[part]), chunk_params, rng), batch[part])

        return _in_parts(batch, work)

    run.__doc__ = function.__doc__
    return run


def _slice_params(params: Mapping[str, Any], part: slice, n: int) -> dict[str, Any]:
    """Per-example parameters (arrays of length n) cut to ``part``; batch-wide ones unchanged."""
    return {k: v[part] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v for k, v in params.items()}


def _native_direct(function: Any) -> Any:
    """Wrap ``function(batch, params, rng)`` that works in the batch's own dtype (uint8 0-255 or floats
    0-1: resampling, block means, Pillow calls) into a NativeFunction. Floats narrower than float32
    are computed in float32, and float results are clipped to [0, 1]. The function cuts large batches
    itself (``_in_parts``), after its set-up."""

    def run(
        batch: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator, context: Context
    ) -> np.ndarray:
        narrow = batch.dtype.kind == "f" and batch.dtype.itemsize < 4
        out = function(batch.astype(np.float32) if narrow else batch, params, rng)
        if np.may_share_memory(out, batch):  # a resize to the same size hands its input back
            out = out.copy()
        if batch.dtype == np.uint8:
            return out
        # float sums of weights that add up to 1 can land an ulp outside [0, 1]
        return np.clip(out, 0.0, 1.0, out=out).astype(batch.dtype, copy=False)

    run.__doc__ = function.__doc__
    return run


def _augly(call: Any) -> Any:
    """Wrap ``call(imaugs, pil, params, i, seed) -> pil`` (AugLy, image by image) into an AuglyFunction."""

    def run(batch: np.ndarray, params: Mapping[str, Any], seed: int, context: Context) -> np.ndarray:
        imaugs = import_augly("augly.image")
        out = _per_image(_as_uint8(batch), lambda pil, i: call(imaugs, pil, params, i, seed))
        return _from_uint8(out, batch)

    return run


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def _luminance(x: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as Pillow's ``convert("L")`` computes it, shape (N, H, W, 1)."""
    if x.shape[3] == 1:
        return x
    grey = x[..., 0:1] * np.float32(0.299)
    grey += x[..., 1:2] * np.float32(0.587)
    grey += x[..., 2:3] * np.float32(0.114)
    return grey


# --- the operations ---------------------------------------------------------------------------


def _blur(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of standard deviation ``radius`` pixels (scipy.ndimage, edges repeated), read from the
    input's dtype directly into float32 (float64 stays float64) and rounded back once."""
    from scipy.ndimage import gaussian_filter

    if p["radius"] <= 0:
        return x.copy()
    work = np.float64 if x.dtype == np.float64 else np.float32
    out = gaussian_filter(x, sigma=(0, p["radius"], p["radius"], 0), mode="nearest", output=work)
    if x.dtype == np.uint8:
        return np.rint(np.clip(out, 0, 255, out=out), out=out).astype(np.uint8)
    return out.astype(x.dtype)


# The float operations below own ``x`` (a fresh copy made by the wrapper) and work in place:
# fewer large temporaries, which is most of the cost on small images.


def _gaussian_noise(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    noise *= p["std"] * 255.0
    x += noise
    return x


def _salt_pepper(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    draw = rng.random(x.shape[:3], dtype=np.float32)
    x[draw < p["amount"] / 2] = 0.0
    x[draw > 1 - p["amount"] / 2] = 255.0
    return x


def _jpeg(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Encode and decode each image once through Pillow's JPEG codec (libjpeg), byte for byte what
    ``Image.save(format="JPEG", quality=q)`` and ``Image.open`` give, without the file-format layer.
    The alpha channel of RGBA images, which JPEG cannot carry, is kept as it was."""
    from PIL import Image

    images = _as_uint8(x)
    out = images.copy() if images.shape[3] == 4 else np.empty_like(images)
    mode = "L" if images.shape[3] == 1 else "RGB"
    size = (images.shape[2], images.shape[1])
    for i, image in enumerate(images):
        pixels = image[..., 0] if mode == "L" else image[..., :3]
        encoded = Image.fromarray(pixels).tobytes("jpeg", mode, p["quality"])
        decoded = np.asarray(Image.frombytes(mode, size, encoded, "jpeg", mode, ""))
        out[i, ..., :3] = decoded[..., None] if mode == "L" else decoded
    return _from_uint8(out, x)


def _brightness(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    x *= np.asarray(p["factor"], dtype=np.float32).reshape(-1, 1, 1, 1)
    return x


def _contrast(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    factor = np.asarray(p["factor"], dtype=np.float32).reshape(-1, 1, 1, 1)
    # Pillow blends with the image's mean grey level, rounded as it does.
    mean = np.floor(_luminance(x).mean(axis=(1, 2, 3), keepdims=True) + 0.5).astype(np.float32)
    x -= mean
    x *= factor
    x += mean
    return x


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, the weights of Pillow's convert("L")


def _saturation(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Blend each image with its grey version: factor·pixel + (1 − factor)·luma (factor 0: grey, 1:
    unchanged, above 1: more colour), luma with ITU-R 601 weights. Alpha is kept, grey images unchanged.

    Computed from the input's dtype in float32 (float64 stays float64) over cache-sized parts. The luma
    is one matrix-vector product over the (pixels, 3) values, and it is added to each channel through
    strided views: numpy's loops over a trailing axis of 3 are several times slower.
    """
    channels = x.shape[3]
    if channels == 1:
        return x.copy()
    factor = np.broadcast_to(np.asarray(p["factor"], dtype=np.float64), (len(x),))
    work = np.float64 if x.dtype == np.float64 else np.float32
    weights = np.asarray(LUMA, dtype=work)
    uint8 = x.dtype == np.uint8

    def saturate(index: slice) -> np.ndarray:
        part = x[index]
        n = len(part)
        f = factor[index].astype(work)[:, None]
        mixed = (part if channels == 3 else part[..., :3]).reshape(n, -1, 3).astype(work)
        grey = mixed @ weights
        grey *= 1 - f
        mixed *= f[:, :, None]
        for channel in range(3):
            mixed[:, :, channel] += grey
        # a factor up to 1 mixes two values in range, so only more colour can leave it (floats: and rounding)
        for i in np.flatnonzero((f[:, 0] > 1) | (not uint8)):
            np.clip(mixed[i], 0, 255 if uint8 else 1, out=mixed[i])
        out = part.copy() if channels == 4 else np.empty_like(part)
        colour = out[..., :3].reshape(n, -1, 3) if channels == 3 else out[..., :3]
        if uint8:
            np.rint(mixed.reshape(colour.shape), out=colour, casting="unsafe")
        else:
            colour[...] = mixed.reshape(colour.shape)
        return out

    # measured: larger parts than the resampling operations' (its per-part steps are many small calls)
    return _in_parts(x, saturate, values=4 * PART_VALUES)


def _rotation(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Rotate counter-clockwise about the centre by ``degrees``, as ``Image.rotate(resample=BILINEAR)``
    maps pixels (same matrix, same pixel-centre convention), black outside."""
    height, width = x.shape[1:3]
    angle = -math.radians(p["degrees"] % 360.0)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = round(-math.sin(angle), 15), round(math.cos(angle), 15)
    centre_x, centre_y = width / 2, height / 2
    c = a * -centre_x + b * -centre_y + centre_x
    f = d * -centre_x + e * -centre_y + centre_y
    xs, ys = _grid(height, width)
    return _warp(x, a * xs + b * ys + c, d * xs + e * ys + f)


def _crop(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    top, left = round(p["y1"] * height), round(p["x1"] * width)
    bottom, right = max(top + 1, round(p["y2"] * height)), max(left + 1, round(p["x2"] * width))
    return resize_batch(x[:, top:bottom, left:right], height, width)


def _pad(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    pad_h, pad_w = round(p["h_factor"] * height), round(p["w_factor"] * width)
    padded = np.zeros((x.shape[0], height + 2 * pad_h, width + 2 * pad_w, x.shape[3]), dtype=x.dtype)
    padded[:, pad_h : pad_h + height, pad_w : pad_w + width] = x
    return resize_batch(padded, height, width)


def _scale(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    small = resize_batch(x, max(1, round(height * p["factor"])), max(1, round(width * p["factor"])))
    return resize_batch(small, height, width)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 matrix mapping the four points ``src`` onto ``dst``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    h = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def _perspective(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)
    moved = corners + np.asarray(p["offsets"]) * np.array([width, height])
    # the output grid is the moved quadrilateral; each output pixel samples the source through the
    # inverse map, as Pillow's Image.PERSPECTIVE transform does
    h = _homography(moved, corners)
    xs, ys = _grid(height, width)
    denominator = h[2, 0] * xs + h[2, 1] * ys + 1
    source_x = (h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / denominator
    source_y = (h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / denominator
    return _warp(x, source_x, source_y)


def _block_sums(
    a: np.ndarray, axis: int, starts: np.ndarray, sizes: np.ndarray, dtype: Any, stride: int = 1
) -> np.ndarray:
    """Sums of ``a`` over blocks along ``axis``: block k adds ``sizes[k]`` slices, ``starts[k]``,
    ``starts[k] + stride`` ... (``stride``: the channel count when channels are interleaved on the axis).

    One gather per position within a block, so the work is one pass over ``a`` whatever the block size
    (numpy's ``add.reduceat`` over a middle axis is many times slower).
    """
    shape = [1] * a.ndim
    shape[axis] = -1
    total = np.zeros((*a.shape[:axis], len(starts), *a.shape[axis + 1 :]), dtype=dtype)
    for offset in range(int(sizes.max())):
        # past a block's end the index is clipped and the weight is 0
        taken = np.take(a, np.minimum(starts + offset * stride, a.shape[axis] - 1), axis=axis)
        if offset < sizes.min():
            total += taken
        else:
            total += taken * (offset < sizes).astype(dtype).reshape(shape)
    return total


def _pixelation(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Block means at resolution ratio ``ratio``, each block's mean repeated over it (nearest upsampling).

    Output row i shows block row floor(i · small / H); uint8 sums in integers and rounds each mean once.
    """
    height, width, channels = x.shape[1:]
    small_h, small_w = max(1, round(height * p["ratio"])), max(1, round(width * p["ratio"]))
    rows = np.minimum((np.arange(height) * small_h) // height, small_h - 1)
    cols = np.minimum((np.arange(width) * small_w) // width, small_w - 1)
    row_starts = np.searchsorted(rows, np.arange(small_h))
    col_starts = np.searchsorted(cols, np.arange(small_w))
    row_sizes = np.diff(np.append(row_starts, height))
    col_sizes = np.diff(np.append(col_starts, width))
    counts = (row_sizes[:, None] * col_sizes[None, :]).astype(np.float32)
    uint8 = x.dtype == np.uint8
    # uint8 block sums fit uint16 up to 257 pixels a block; larger blocks (tiny ratios) sum in uint32
    total = (np.uint16 if counts.max() * 255 < 2**16 else np.uint32) if uint8 else x.dtype
    lanes = np.arange(channels)
    # the column axis is gathered as single values of (rows, W·C): each channel of each column
    col_starts_lanes = (col_starts[:, None] * channels + lanes).ravel()
    col_sizes_lanes = np.repeat(col_sizes, channels)
    expand_columns = (cols[:, None] * channels + lanes).ravel()

    def pixelate(index: slice) -> np.ndarray:
        part = x[index]
        n = len(part)
        row_sums = _block_sums(part.reshape(n, height, width * channels), 1, row_starts, row_sizes, total)
        sums = _block_sums(
            row_sums.reshape(n * small_h, width * channels), 1, col_starts_lanes, col_sizes_lanes, total, channels
        ).reshape(n, small_h, small_w, channels)
        means = sums.astype(np.float32) if uint8 else sums
        means /= counts[None, :, :, None].astype(means.dtype)
        if uint8:
            means = np.rint(means, out=means).astype(np.uint8)
        wide = np.take(means.reshape(n * small_h, small_w * channels), expand_columns, axis=1)
        return np.take(wide.reshape(n, small_h, width * channels), rows, axis=1).reshape(part.shape)

    return _in_parts(x, pixelate)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(6, size))
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _text_mask(height: int, width: int, text: str, size: float, x_pos: float, y_pos: float) -> np.ndarray:
    """A (H, W) alpha mask of ``text`` at font size ``size`` x height, top-left at the relative position."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).text(
        (x_pos * width, y_pos * height), text, fill=255, font=_font(round(size * height))
    )
    return np.asarray(mask, dtype=np.float32) / 255.0


def _composite(x: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """A copy of the batch ``x`` with ``colour`` (0-255, (3,) or (H, W, 3)) laid over it with ``alpha`` (H, W).

    The same picture goes on every image: only the box that ``alpha`` covers is computed (in float32,
    rounded back for uint8); the rest is copied in the input's dtype. An RGBA image keeps its alpha.
    """
    out = x.copy()
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return out
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    weight = alpha[box].astype(np.float32)[None, :, :, None]
    paint = np.asarray(colour, dtype=np.float32)
    paint = paint[box] if paint.ndim == 3 else paint
    if x.shape[3] == 1:
        paint = paint.mean(axis=-1, keepdims=True)
    uint8 = x.dtype == np.uint8
    target = out[:, box[0], box[1], : min(3, x.shape[3])]
    mixed = target.astype(np.float32)
    mixed *= 1 - weight
    mixed += paint * weight if uint8 else paint * (weight / 255)
    target[...] = np.rint(np.clip(mixed, 0, 255, out=mixed)) if uint8 else np.clip(mixed, 0, 1, out=mixed)
    return out


def _overlay_text(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    mask = _text_mask(x.shape[1], x.shape[2], p["text"], p["font_size"], p["x_pos"], p["y_pos"])
    return _composite(x, mask * p["opacity"], np.array(p["color"]))


def _emoji_rgba(size: int) -> np.ndarray:
    """A drawn smiley face (RGBA float, 0-255) of ``size`` pixels: the native stand-in for AugLy's emoji."""
    from PIL import Image, ImageDraw

    scale = 4  # draw large and downsample for smooth edges
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((0, 0, big - 1, big - 1), fill=(255, 204, 77, 255), outline=(200, 140, 20, 255), width=scale)
    eye = big // 8
    for cx in (big * 0.33, big * 0.67):
        draw.ellipse((cx - eye, big * 0.3, cx + eye, big * 0.3 + 2 * eye), fill=(102, 69, 0, 255))
    draw.arc((big * 0.22, big * 0.3, big * 0.78, big * 0.8), 20, 160, fill=(102, 69, 0, 255), width=2 * scale)
    return np.asarray(image.resize((size, size), Image.LANCZOS), dtype=np.float32)


def _overlay_emoji(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    size = max(2, round(p["emoji_size"] * height))
    emoji = _emoji_rgba(size)
    top, left = round(p["y_pos"] * height), round(p["x_pos"] * width)
    alpha = np.zeros((height, width), dtype=np.float32)
    color = np.zeros((height, width, 3), dtype=np.float32)
    h, w = min(size, height - top), min(size, width - left)
    if h > 0 and w > 0:
        alpha[top : top + h, left : left + w] = emoji[:h, :w, 3] / 255.0 * p["opacity"]
        color[top : top + h, left : left + w] = emoji[:h, :w, :3]
    return _composite(x, alpha, color)


def _meme_format(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    bar = min(height - 1, max(1, round(p["caption_height"] * height)))
    body = resize_batch(x, height - bar, width)
    white = np.full((1, bar, width, x.shape[3]), 255 if x.dtype == np.uint8 else 1, dtype=x.dtype)
    caption = _composite(white, _text_mask(bar, width, p["text"], 0.7, 0.05, 0.1), np.zeros(3))
    return np.concatenate([np.broadcast_to(caption, (len(x), *caption.shape[1:])), body], axis=1)


def _occlusion(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    side_h = max(1, round(p["side"] * height))
    side_w = max(1, round(p["side"] * width))
    tops = np.asarray(p["top"]) * (height - side_h)
    lefts = np.asarray(p["left"]) * (width - side_w)
    rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    tops, lefts = np.rint(tops)[:, None, None], np.rint(lefts)[:, None, None]
    inside = (rows >= tops) & (rows < tops + side_h) & (cols >= lefts) & (cols < lefts + side_w)
    fill = p["fill"] if x.dtype == np.uint8 else p["fill"] / 255.0  # the fill level is on the 0-255 scale
    return np.where(inside[..., None], np.asarray(fill, dtype=x.dtype), x)


# --- severity -> parameters -------------------------------------------------------------------


def _const(**values: Any) -> Any:
    return values


def _params_brightness(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {"factor": 1.0 + 0.8 * s * _signs(rng, n)}


def _params_contrast(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    signs = _signs(rng, n)
    return {"factor": np.where(signs < 0, 1.0 - 0.8 * s, 1.0 + 1.0 * s)}


def _params_saturation(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    signs = _signs(rng, n)
    return {"factor": np.where(signs < 0, 1.0 - s, 1.0 + 2.0 * s)}


def _params_crop(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    keep = 1.0 - 0.5 * s
    x1, y1 = rng.random(2) * (1 - keep)
    return {"x1": float(x1), "y1": float(y1), "x2": float(x1 + keep), "y2": float(y1 + keep)}


def _params_perspective(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {"offsets": (rng.uniform(-1, 1, size=(4, 2)) * 0.15 * s).tolist()}


def _params_overlay_text(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {
        "text": str(rng.choice(OVERLAY_WORDS)),
        "font_size": 0.1 + 0.3 * s,
        "opacity": min(1.0, 0.4 + s),
        "x_pos": float(rng.uniform(0, 0.4)),
        "y_pos": float(rng.uniform(0, 0.6)),
        "color": tuple(int(c) for c in rng.integers(0, 256, size=3)),
    }


def _params_overlay_emoji(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    size = 0.1 + 0.4 * s
    return {
        "emoji_size": size,
        "opacity": min(1.0, 0.5 + s),
        "x_pos": float(rng.uniform(0, 1 - size)),
        "y_pos": float(rng.uniform(0, 1 - size)),
    }


def _params_occlusion(s: float, rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {"side": float(np.sqrt(0.4 * s)), "top": rng.random(n), "left": rng.random(n), "fill": 0.0}


# --- AugLy calls (one PIL image at a time) -----------------------------------------------------


def _a_blur(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.blur(pil, radius=p["radius"])


def _a_noise(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.random_noise(pil, mean=0.0, var=p["std"] ** 2, seed=seed + i)


def _a_jpeg(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.encoding_quality(pil, quality=p["quality"])


def _a_factor(name: str) -> Any:
    def call(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
        return getattr(m, name)(pil, factor=float(np.asarray(p["factor"])[i]))

    return call


def _a_rotation(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.rotate(pil, degrees=p["degrees"])  # AugLy crops to the largest inner box; resized back


def _a_crop(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.crop(pil, x1=p["x1"], y1=p["y1"], x2=p["x2"], y2=p["y2"])


def _a_pad(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.pad(pil, w_factor=p["w_factor"], h_factor=p["h_factor"])


def _a_scale(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.scale(pil, factor=p["factor"])


def _a_pixelation(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.pixelization(pil, ratio=p["ratio"])


def _a_overlay_text(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    # AugLy's text is a list of glyph indices into its bundled font
    glyphs = [int(b) % 100 + 10 for b in p["text"].encode()]
    return m.overlay_text(
        pil,
        text=glyphs,
        font_size=p["font_size"],
        opacity=p["opacity"],
        color=p["color"],
        x_pos=p["x_pos"],
        y_pos=p["y_pos"],
    )


def _a_overlay_emoji(m: Any, pil: Any, p: Mapping[str, Any], i: int, seed: int) -> Any:
    return m.overlay_emoji(
        pil, emoji_size=p["emoji_size"], opacity=p["opacity"], x_pos=p["x_pos"], y_pos=p["y_pos"]
    )


# work in the input's dtype (uint8 without a float round trip); the others compute on float32 0-255
DIRECT_OPS = {
    _blur,
    _jpeg,
    _saturation,
    _rotation,
    _crop,
    _pad,
    _scale,
    _perspective,
    _pixelation,
    _overlay_text,
    _overlay_emoji,
    _meme_format,
    _occlusion,
}


def _perturbation(
    name: str, mapping: str, params: Any, native: Any, augly: Any = None, **kw: Any
) -> Perturbation:
    parameters = params if params.__code__.co_argcount == 3 else (lambda s, rng, n, _f=params: _f(s))
    return Perturbation(
        name=f"image:{name}",
        mapping=mapping,
        parameters=parameters,
        native=_native_direct(native) if native in DIRECT_OPS else _native(native),
        augly=_augly(augly) if augly else None,
        **kw,
    )


PERTURBATIONS: tuple[Perturbation, ...] = (
    _perturbation("blur", "Gaussian blur, radius = 4·s px", lambda s: {"radius": 4.0 * s}, _blur, _a_blur),
    _perturbation(
        "gaussian_noise",
        "additive Gaussian noise, std = 0.25·s of full scale",
        lambda s: {"std": 0.25 * s},
        _gaussian_noise,
        _a_noise,
    ),
    _perturbation(
        "salt_pepper",
        "salt-and-pepper noise on a fraction 0.3·s of pixels",
        lambda s: {"amount": 0.3 * s},
        _salt_pepper,
        augly_note="AugLy has no salt-and-pepper",
    ),
    _perturbation(
        "jpeg",
        "JPEG re-encode, quality = 95 − 90·s",
        lambda s: {"quality": round(95 - 90 * s)},
        _jpeg,
        _a_jpeg,
        batched=False,
    ),
    _perturbation(
        "brightness",
        "brightness factor 1 ± 0.8·s (darker or brighter per example, seeded)",
        _params_brightness,
        _brightness,
        _a_factor("brightness"),
    ),
    _perturbation(
        "contrast",
        "contrast factor 1 − 0.8·s or 1 + s (per example, seeded)",
        _params_contrast,
        _contrast,
        _a_factor("contrast"),
    ),
    _perturbation(
        "saturation",
        "saturation factor 1 − s or 1 + 2·s (per example, seeded)",
        _params_saturation,
        _saturation,
        _a_factor("saturation"),
    ),
    _perturbation(
        "rotation",
        "rotation by ±30·s degrees (sign seeded), black corners",
        lambda s, rng, n: {"degrees": 30.0 * s * float(_signs(rng, 1)[0])},
        _rotation,
        _a_rotation,
    ),
    _perturbation(
        "crop",
        "crop a square window of side 1 − 0.5·s (seeded position), resized back",
        _params_crop,
        _crop,
        _a_crop,
    ),
    _perturbation(
        "pad",
        "black border of 0.4·s of the size on each side, resized back",
        lambda s: {"w_factor": 0.4 * s, "h_factor": 0.4 * s},
        _pad,
        _a_pad,
    ),
    _perturbation(
        "scale",
        "downscale by 1 − 0.8·s and upscale back (resolution loss)",
        lambda s: {"factor": 1.0 - 0.8 * s},
        _scale,
        _a_scale,
    ),
    _perturbation(
        "perspective",
        "corners moved by up to 0.15·s of the size (seeded)",
        _params_perspective,
        _perspective,
        augly_note="AugLy's perspective_transform uses np.float, removed in numpy 2",
    ),
    _perturbation(
        "pixelation",
        "pixel blocks: resolution ratio 1 − 0.9·s",
        lambda s: {"ratio": 1.0 - 0.9 * s},
        _pixelation,
        _a_pixelation,
    ),
    _perturbation(
        "overlay_text",
        "a word at font size 0.1 + 0.3·s of the height, opacity 0.4 + s (seeded)",
        _params_overlay_text,
        _overlay_text,
        _a_overlay_text,
    ),
    _perturbation(
        "overlay_emoji",
        "an emoji of 0.1 + 0.4·s of the height, opacity 0.5 + s (seeded)",
        _params_overlay_emoji,
        _overlay_emoji,
        _a_overlay_emoji,
    ),
    _perturbation(
        "meme_format",
        "white caption bar of 0.1 + 0.3·s of the height with text on top",
        lambda s: {"caption_height": 0.1 + 0.3 * s, "text": "LOL"},
        _meme_format,
        augly_note="AugLy's meme_format calls Pillow's removed getsize_multiline",
    ),
    _perturbation(
        "occlusion",
        "black square covering 0.4·s of the area per example (seeded position)",
        _params_occlusion,
        _occlusion,
        augly_note="AugLy has no occlusion patch",
    ),
)
