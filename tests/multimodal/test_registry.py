"""The perturbation registry: every operation keeps the layout, is seeded, and severity 0 is the identity."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pytest_aisp.findings import AispError
from pytest_aisp.multimodal import apply_perturbation, list_perturbations, resolve_perturbations
from pytest_aisp.multimodal.registry import get_perturbation, registry, severity_table
from pytest_aisp.multimodal.video_ops import ffmpeg_path

RNG = np.random.default_rng(7)
IMAGES = (RNG.random((3, 20, 28, 3)) * 255).astype(np.uint8)
WAVES = (
    0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)[None].repeat(2, 0)
    + 0.05 * RNG.standard_normal((2, 4000))
).astype(np.float32)
CLIPS = (RNG.random((2, 5, 12, 16, 3)) * 255).astype(np.uint8)
TEXTS = ["I do not think it is a good movie", "the cat sat on the warm mat today"]


def _sample(modality: str):
    return {"image": IMAGES, "audio": WAVES, "video": CLIPS, "text": TEXTS}[modality]


def _apply(name: str, severity: float, seed: int = 0, backend: str = "native"):
    return apply_perturbation(
        name, _sample(name.split(":")[0]), severity, seed=seed, backend=backend, sample_rate=8000, fps=10
    )


def _distance(a, b) -> float:
    if isinstance(a, list):
        return float(sum(x != y for x, y in zip(a, b)))
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


SLOW_ONES = {"video:reencode"}
NAMES = [n for n in registry() if n not in SLOW_ONES]


def test_registry_covers_the_issue_list():
    names = set(list_perturbations())
    for short in (
        "blur",
        "gaussian_noise",
        "salt_pepper",
        "jpeg",
        "brightness",
        "contrast",
        "saturation",
        "rotation",
        "crop",
        "pad",
        "scale",
        "perspective",
        "pixelation",
        "overlay_text",
        "overlay_emoji",
        "meme_format",
        "occlusion",
    ):
        assert f"image:{short}" in names and f"video:{short}" in names
    for short in (
        "white_noise",
        "pink_noise",
        "speed",
        "pitch_shift",
        "time_shift",
        "clipping",
        "lowpass",
        "highpass",
        "reverb",
        "mp3",
        "background",
    ):
        assert f"audio:{short}" in names
    for short in ("frame_drop", "frame_rate", "reencode", "temporal_crop"):
        assert f"video:{short}" in names
    for short in ("typos", "similar_chars", "zero_width", "bidi", "contractions"):
        assert f"text:{short}" in names
    assert all(mapping for _, _, mapping in severity_table())


@pytest.mark.parametrize("name", NAMES)
def test_perturbation_keeps_layout_is_seeded_and_changes_the_input(name):
    original = _sample(name.split(":")[0])
    out = _apply(name, 0.8, seed=3)
    again = _apply(name, 0.8, seed=3)
    if isinstance(original, list):
        assert isinstance(out, list) and len(out) == len(original)
        assert out == again
    else:
        assert out.shape == original.shape and out.dtype == original.dtype
        np.testing.assert_array_equal(out, again)
    assert _distance(out, original) > 0, f"{name} at severity 0.8 left the input unchanged"


@pytest.mark.parametrize(
    "name", ["image:blur", "image:rotation", "audio:reverb", "video:frame_drop", "text:typos"]
)
def test_severity_zero_is_identity(name):
    original = _sample(name.split(":")[0])
    out = _apply(name, 0.0)
    assert _distance(out, original) == 0
    assert out is not original


@pytest.mark.parametrize(
    "name",
    [
        "image:blur",
        "image:gaussian_noise",
        "image:brightness",
        "image:pixelation",
        "image:occlusion",
        "audio:white_noise",
        "audio:lowpass",
        "audio:clipping",
    ],
)
def test_stronger_severity_changes_more(name):
    original = _sample(name.split(":")[0])
    distances = [_distance(_apply(name, s), original) for s in (0.2, 0.5, 1.0)]
    assert distances[0] < distances[1] < distances[2], distances


@pytest.mark.parametrize(
    "name", ["image:gaussian_noise", "image:occlusion", "audio:white_noise", "text:typos"]
)
def test_different_seeds_give_different_outputs(name):
    assert _distance(_apply(name, 0.7, seed=1), _apply(name, 0.7, seed=2)) > 0


def test_float_images_round_trip_in_their_dtype():
    floats = IMAGES.astype(np.float32) / 255
    out = apply_perturbation("image:contrast", floats, 0.5)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    as_uint8 = apply_perturbation("image:contrast", IMAGES, 0.5)
    assert np.abs(out * 255 - as_uint8).max() <= 1.0


def test_grayscale_and_rgba_images_are_supported():
    grey = IMAGES[..., :1]
    rgba = np.concatenate([IMAGES, np.full((*IMAGES.shape[:3], 1), 200, np.uint8)], axis=-1)
    for name in ("image:saturation", "image:overlay_emoji", "image:jpeg", "image:meme_format"):
        assert apply_perturbation(name, grey, 0.6, backend="native").shape == grey.shape
        out = apply_perturbation(name, rgba, 0.6, backend="native")
        assert out.shape == rgba.shape


def test_brightness_factor_follows_the_documented_mapping():
    flat = np.full((64, 4, 4, 3), 100, np.uint8)
    out = apply_perturbation("image:brightness", flat, 0.5, seed=0).astype(float)
    levels = set(np.unique(out[:, 0, 0, 0]))
    assert levels == {60.0, 140.0}  # 1 - 0.8*0.5 and 1 + 0.8*0.5


def test_pitch_shift_moves_a_tone_by_the_semitones():
    rate = 8000
    tone = np.sin(2 * np.pi * 500 * np.arange(rate) / rate).astype(np.float32)[None] * 0.5
    from pytest_aisp.multimodal.registry import perturbation_parameters

    semitones = perturbation_parameters("audio:pitch_shift", 1.0, seed=0)["semitones"]
    out = apply_perturbation("audio:pitch_shift", tone, 1.0, seed=0, sample_rate=rate)
    spectrum = np.abs(np.fft.rfft(out[0] * np.hanning(rate)))
    peak_hz = np.argmax(spectrum) * rate / rate
    assert peak_hz == pytest.approx(500 * 2 ** (semitones / 12), rel=0.03)
    assert out.shape == tone.shape


def test_white_noise_hits_the_requested_snr():
    rate = 8000
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate))[None].astype(np.float32)
    out = apply_perturbation("audio:white_noise", tone, 0.5, sample_rate=rate)  # 20 dB
    noise = out.astype(np.float64) - tone
    snr = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(20.0, abs=0.3)


def test_video_temporal_operations_keep_frames_in_order():
    clips = np.arange(8, dtype=np.uint8)[None, :, None, None, None].repeat(4, 2).repeat(4, 3).repeat(3, 4)
    rate = apply_perturbation("video:frame_rate", clips, 1.0, fps=10)[0, :, 0, 0, 0]
    drop = apply_perturbation("video:frame_drop", clips, 1.0, fps=10, seed=4)[0, :, 0, 0, 0]
    crop = apply_perturbation("video:temporal_crop", clips, 1.0, fps=10)[0, :, 0, 0, 0]
    for frames in (rate, drop, crop):
        assert np.all(np.diff(frames.astype(int)) >= 0)
        assert len(np.unique(frames)) < 8


def test_defaults_expand_and_names_resolve():
    assert [p.name for p in resolve_perturbations("image:default")][:2] == [
        "image:blur",
        "image:gaussian_noise",
    ]
    assert len(resolve_perturbations("audio:all")) == len([n for n in registry() if n.startswith("audio:")])
    assert resolve_perturbations(["image:blur", "image:blur"])[0].name == "image:blur"


def test_unknown_name_says_what_exists():
    with pytest.raises(AispError, match=r"unknown perturbation 'image:blurr'.*Did you mean image:blur"):
        get_perturbation("image:blurr")
    with pytest.raises(AispError, match="aisp multimodal list"):
        apply_perturbation("sound:noise", WAVES, 0.5)


def test_mixed_modalities_are_refused():
    with pytest.raises(AispError, match="assert_cross_modal_consistent"):
        resolve_perturbations(["image:blur", "audio:reverb"])


@pytest.mark.parametrize(
    ("name", "data", "kwargs", "message"),
    [
        ("image:blur", IMAGES[0], {}, r"x\[None\]"),
        ("image:blur", IMAGES.astype(np.int32), {}, "uint8"),
        ("image:blur", IMAGES.astype(np.float32), {}, r"\[0, 1\]"),
        ("image:blur", np.moveaxis(IMAGES, -1, 1), {}, "moveaxis"),
        ("image:blur", IMAGES.tolist(), {}, "numpy array"),
        ("audio:reverb", WAVES, {}, "sample_rate=16000"),
        ("audio:reverb", (WAVES * 30000).astype(np.int16), {"sample_rate": 8000}, "32768"),
        ("video:blur", CLIPS, {}, "fps=25"),
        ("text:typos", "one string", {}, r"\[text\]"),
        ("image:blur", IMAGES, {"severity": 1.5}, r"severity must be in \[0, 1\]"),
    ],
)
def test_bad_input_names_the_fix(name, data, kwargs, message):
    severity = kwargs.pop("severity", 0.5)
    with pytest.raises(AispError, match=message):
        apply_perturbation(name, data, severity, **kwargs)


def test_missing_ffmpeg_names_the_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("AISP_FFMPEG", raising=False)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # the wheel is not installed
    with pytest.raises(AispError, match="pip install imageio-ffmpeg"):
        apply_perturbation("video:reencode", CLIPS, 0.5, fps=10)


def test_ffmpeg_comes_from_the_wheel_without_a_system_one(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("AISP_FFMPEG", raising=False)
    import imageio_ffmpeg

    assert ffmpeg_path() == imageio_ffmpeg.get_ffmpeg_exe()
    out = apply_perturbation("video:reencode", CLIPS, 0.5, fps=10)
    assert out.shape == CLIPS.shape


def test_aisp_ffmpeg_must_be_an_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("AISP_FFMPEG", str(tmp_path / "nope"))
    with pytest.raises(AispError, match="AISP_FFMPEG"):
        ffmpeg_path()


def test_reencode_through_ffmpeg_degrades_with_bitrate():
    low = apply_perturbation("video:reencode", CLIPS, 1.0, fps=10)
    high = apply_perturbation("video:reencode", CLIPS, 0.1, fps=10)
    assert low.shape == CLIPS.shape and low.dtype == np.uint8
    assert _distance(low, CLIPS) > _distance(high, CLIPS) > 0


def test_importing_the_module_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, pytest_aisp.multimodal, pytest_aisp.multimodal.registry; "
        "heavy = [m for m in ('scipy', 'PIL', 'augly', 'torch', 'hypothesis') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _multimodal_imports() -> dict[str, set[str]]:
    """Each module of pytest_aisp/multimodal -> the modules of that folder it imports: at the top, under
    TYPE_CHECKING, inside functions, or by a dotted name in a string (importlib.import_module)."""
    import ast
    from pathlib import Path

    import pytest_aisp.multimodal as package

    folder, prefix = Path(package.__file__).parent, "pytest_aisp.multimodal."
    modules = {path.stem: path for path in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                targets.add(node.value)
        graph[name] = {
            t[len(prefix) :].split(".")[0] for t in targets if t.startswith(prefix)
        } & set(modules) - {name}
    return graph


def test_multimodal_modules_import_each_other_without_a_circle():
    graph = _multimodal_imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert graph["inputs"] == set()  # the input checks and Context depend on nothing else of the folder


def test_public_names_stay_where_they_were():
    from pytest_aisp.multimodal import inputs, perturbation, registry

    assert registry.Context is inputs.Context
    assert registry.Perturbation is perturbation.Perturbation
    assert registry.import_augly is perturbation.import_augly
    assert registry.augly_available is perturbation.augly_available


def test_every_entry_point_runs_the_native_backend_by_default():
    """The default must not depend on what is installed: AugLy only when asked for."""
    import argparse
    import inspect

    from pytest_aisp.multimodal import (
        assert_breaking_severity,
        assert_cross_modal_consistent,
        assert_invariant,
        evaluate_cross_modal,
        evaluate_invariance,
        find_breaking_severity,
    )
    from pytest_aisp.multimodal.cli import register

    for function in (
        apply_perturbation,
        evaluate_invariance,
        assert_invariant,
        find_breaking_severity,
        assert_breaking_severity,
        evaluate_cross_modal,
        assert_cross_modal_consistent,
    ):
        assert inspect.signature(function).parameters["backend"].default == "native", function.__name__
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["multimodal", "apply", "in.png", "-p", "image:blur", "-o", "out.png"])
    assert args.backend == "native"
