"""Image perturbations on batches (N, H, W, C): numpy/scipy math on the whole batch where it allows.

Every operation keeps the image size, so the model can take the result: geometric operations
(crop, pad, scale, rotation, perspective, meme format) resample back onto the original grid.
JPEG, rotation and perspective run image by image through Pillow's C code, which is faster than
a numpy gather over the batch; the others are batched.
Pixels are handled as float32 on the 0-255 scale and returned in the input's dtype.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_aisp.multimodal.inputs import Context, from_float255, to_float255
from pytest_aisp.multimodal.perturbation import Perturbation, import_augly

DEFAULT = ("blur", "gaussian_noise", "jpeg", "brightness", "contrast", "rotation", "crop", "occlusion")
OVERLAY_WORDS = ("SALE", "LOL", "FREE", "OK", "WOW", "NEW")


# --- resampling helpers -------------------------------------------------------------------------


def _interpolate_axis(images: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear resampling of ``images`` along ``axis`` to ``size`` samples, pixel centres aligned."""
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


def resize_batch(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of float images (N, h, w, C) to (N, height, width, C), separably along each axis."""
    return _interpolate_axis(_interpolate_axis(images, 1, height), 2, width)


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


CHUNK_BYTES = 1 << 19  # float32 working set per step: batches are cut to stay in the CPU cache


def _native(function: Any) -> Any:
    """Wrap float-domain math ``function(x255, params, rng)`` into a NativeFunction.

    The batch is processed in chunks of about CHUNK_BYTES: whole-batch float temporaries of a large
    batch fall out of the cache and make the same math several times slower.
    """

    def run(
        batch: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator, context: Context
    ) -> np.ndarray:
        step = max(1, CHUNK_BYTES // (batch[0].size * 4))
        if len(batch) <= step:
            return from_float255(function(to_float255(batch), params, rng), batch)
        out = np.empty_like(batch)
        for start in range(0, len(batch), step):
            part = slice(start, start + step)
            chunk_params = _slice_params(params, part, len(batch))
            out[part] = from_float255(function(to_float255(batch[part]), chunk_params, rng), batch[part])
        return out

    run.__doc__ = function.__doc__
    return run


def _slice_params(params: Mapping[str, Any], part: slice, n: int) -> dict[str, Any]:
    """Per-example parameters (arrays of length n) cut to ``part``; batch-wide ones unchanged."""
    return {k: v[part] if isinstance(v, np.ndarray) and v.shape[:1] == (n,) else v for k, v in params.items()}


def _native_uint8(function: Any) -> Any:
    """Wrap a per-image Pillow ``function(uint8 batch, params, rng)`` into a NativeFunction."""

    def run(
        batch: np.ndarray, params: Mapping[str, Any], rng: np.random.Generator, context: Context
    ) -> np.ndarray:
        return _from_uint8(function(_as_uint8(batch), params, rng), batch)

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
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=(0, p["radius"], p["radius"], 0), mode="nearest")


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
    from PIL import Image

    def encode(pil: Any, i: int) -> Any:
        buffer = io.BytesIO()
        pil.convert("RGB" if pil.mode == "RGBA" else pil.mode).save(
            buffer, format="JPEG", quality=p["quality"]
        )
        return Image.open(io.BytesIO(buffer.getvalue()))

    return _per_image(x, encode)


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


def _saturation(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    if x.shape[3] == 1:
        return x
    factor = np.asarray(p["factor"], dtype=np.float32).reshape(-1, 1, 1, 1)
    grey = _luminance(x)
    color = x[..., :3]
    color -= grey
    color *= factor
    color += grey
    return x


def _rotation(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    # Pillow's C warp beats a numpy gather on uint8 images, so geometric warps go image by image
    return _per_image(x, lambda pil, i: pil.rotate(p["degrees"], resample=Image.BILINEAR))


def _crop(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    top, left = round(p["y1"] * height), round(p["x1"] * width)
    bottom, right = max(top + 1, round(p["y2"] * height)), max(left + 1, round(p["x2"] * width))
    return resize_batch(x[:, top:bottom, left:right], height, width)


def _pad(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    pad_h, pad_w = round(p["h_factor"] * height), round(p["w_factor"] * width)
    padded = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
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
    from PIL import Image

    height, width = x.shape[1:3]
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float64)
    moved = corners + np.asarray(p["offsets"]) * np.array([width, height])
    # the output grid is the moved quadrilateral; Pillow samples the source through the inverse map
    coefficients = tuple(_homography(moved, corners).ravel()[:8])
    return _per_image(
        x, lambda pil, i: pil.transform(pil.size, Image.PERSPECTIVE, coefficients, resample=Image.BILINEAR)
    )


def _pixelation(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    small_h, small_w = max(1, round(height * p["ratio"])), max(1, round(width * p["ratio"]))
    # block means (box filter) then nearest upsampling, as Pillow's reduce-then-NEAREST does
    rows = np.minimum((np.arange(height) * small_h) // height, small_h - 1)
    cols = np.minimum((np.arange(width) * small_w) // width, small_w - 1)
    row_starts = np.searchsorted(rows, np.arange(small_h))
    col_starts = np.searchsorted(cols, np.arange(small_w))
    sums = np.add.reduceat(np.add.reduceat(x, row_starts, axis=1), col_starts, axis=2)
    counts = np.diff(np.append(row_starts, height))[:, None] * np.diff(np.append(col_starts, width))[None, :]
    means = sums / counts[None, :, :, None].astype(np.float32)
    return means[:, rows][:, :, cols]


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


def _blend(x: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Composite ``color`` ((3,) or (H, W, 3)) over the batch ``x`` with ``alpha`` (H, W), in place.

    Only the box that ``alpha`` covers is touched; an RGBA image keeps its alpha channel.
    """
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return x
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    weight = alpha[box].astype(np.float32)[None, :, :, None]
    paint = np.asarray(color, dtype=np.float32)
    paint = paint[box] if paint.ndim == 3 else paint
    if x.shape[3] == 1:
        paint = paint.mean(axis=-1, keepdims=True)
    target = x[:, box[0], box[1], : min(3, x.shape[3])]
    target *= 1 - weight
    target += paint * weight
    return x


def _overlay_text(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    mask = _text_mask(x.shape[1], x.shape[2], p["text"], p["font_size"], p["x_pos"], p["y_pos"])
    return _blend(x, mask * p["opacity"], np.array(p["color"]))


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
    return _blend(x, alpha, color)


def _meme_format(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    bar = min(height - 1, max(1, round(p["caption_height"] * height)))
    body = resize_batch(x, height - bar, width)
    caption = np.full((x.shape[0], bar, width, x.shape[3]), 255.0, dtype=np.float32)
    mask = _text_mask(bar, width, p["text"], 0.7, 0.05, 0.1)
    caption = _blend(caption, mask, np.zeros(3))
    return np.concatenate([caption, body], axis=1)


def _occlusion(x: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    side_h = max(1, round(p["side"] * height))
    side_w = max(1, round(p["side"] * width))
    tops = np.asarray(p["top"]) * (height - side_h)
    lefts = np.asarray(p["left"]) * (width - side_w)
    rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    tops, lefts = np.rint(tops)[:, None, None], np.rint(lefts)[:, None, None]
    inside = (rows >= tops) & (rows < tops + side_h) & (cols >= lefts) & (cols < lefts + side_w)
    return np.where(inside[..., None], p["fill"], x)


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


PILLOW_OPS = {_jpeg, _rotation, _perspective}  # per image through Pillow on uint8 (faster in C)


def _perturbation(
    name: str, mapping: str, params: Any, native: Any, augly: Any = None, **kw: Any
) -> Perturbation:
    parameters = params if params.__code__.co_argcount == 3 else (lambda s, rng, n, _f=params: _f(s))
    return Perturbation(
        name=f"image:{name}",
        mapping=mapping,
        parameters=parameters,
        native=_native_uint8(native) if native in PILLOW_OPS else _native(native),
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
