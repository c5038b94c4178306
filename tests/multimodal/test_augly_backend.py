"""Native vs AugLy: the same perturbation through both backends gives the same kind of output."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pytest_aisp.multimodal import apply_perturbation
from pytest_aisp.multimodal.registry import augly_available, choose_backend, get_perturbation, registry

if not augly_available() and not os.environ.get("CI"):  # under CI (tox env py3 has extra all) these must run
    pytest.skip("AugLy is not installed (pip install 'pytest-aisp[augly]')", allow_module_level=True)


def test_augly_loads_the_libmagic_of_the_pylibmagic_wheel():
    """No system package: python-magic finds libmagic inside the pylibmagic wheel, on every machine alike."""
    code = ("import sys; from pytest_aisp.multimodal.registry import import_augly; import_augly('augly.image'); "
            "print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libmagic' in l}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "/pylibmagic/libmagic.so" in done.stdout, done.stdout

SHARED_IMAGE = [p.name for p in registry().values() if p.modality == "image" and p.augly is not None]
# Pixel operations compute the same math; geometric ones crop/resize differently but keep statistics.
PIXEL_OPS = {
    "image:blur",
    "image:jpeg",
    "image:brightness",
    "image:contrast",
    "image:saturation",
    "image:crop",
}
# Same operation, different resampling details (block alignment, filters): compare strength only.
RESAMPLING_OPS = {"image:gaussian_noise", "image:pixelation", "image:scale"}


def _photos(digits) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    china = np.asarray(load_sample_images().images[0])
    return np.stack(
        [china[y : y + 48, x : x + 64] for y, x in ((100, 100), (200, 300), (50, 400), (300, 50))]
    )


@pytest.mark.parametrize("name", SHARED_IMAGE)
def test_native_and_augly_agree(name, digits):
    images = _photos(digits)
    native = apply_perturbation(name, images, 0.6, seed=1, backend="native")
    augly = apply_perturbation(name, images, 0.6, seed=1, backend="augly")
    assert native.shape == augly.shape == images.shape
    assert native.dtype == augly.dtype == np.uint8
    change_native = np.abs(native.astype(float) - images).mean()
    change_augly = np.abs(augly.astype(float) - images).mean()
    assert change_native > 0 and change_augly > 0
    gap = np.abs(native.astype(float) - augly).mean()
    if name in PIXEL_OPS:
        # same operation: outputs close pixel by pixel, relative to how much each changed the image
        assert gap <= 0.25 * max(change_native, change_augly) + 1.0, (gap, change_native, change_augly)
    if name in PIXEL_OPS | RESAMPLING_OPS:
        # same strength: each moves the pixels by about as much
        assert abs(change_native - change_augly) <= 0.2 * max(change_native, change_augly) + 1.0
    # every shared operation: similar brightness and spread of the result
    assert abs(native.mean() - augly.mean()) < 0.15 * 255
    assert abs(native.std() - augly.std()) < 0.2 * 255


@pytest.mark.parametrize(
    "name",
    [
        "text:typos",
        "text:similar_chars",
        "text:zero_width",
        "text:bidi",
        "text:contractions",
        "text:punctuation",
    ],
)
def test_text_backends_both_run_and_repeat(name):
    texts = ["I do not think that it is a good movie", "they are not coming because it is late"]
    native = apply_perturbation(name, texts, 0.8, seed=2, backend="native")
    augly = apply_perturbation(name, texts, 0.8, seed=2, backend="augly")
    assert len(native) == len(augly) == 2 and all(isinstance(t, str) for t in augly)
    assert augly == apply_perturbation(name, texts, 0.8, seed=2, backend="augly")
    assert native != texts and augly != texts


def test_augly_text_call_leaves_global_random_state_alone():
    import random

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    apply_perturbation("text:typos", ["some words to misspell here"], 1.0, backend="augly")
    assert (random.random(), np.random.random()) == expected


@pytest.mark.parametrize("name", ["image:meme_format", "image:perspective"])
def test_broken_augly_functions_run_native(name):
    """AugLy 1.0's meme_format and perspective_transform crash on Pillow >= 10 / numpy 2."""
    import augly.image as imaugs
    from PIL import Image

    function = {"image:meme_format": imaugs.meme_format, "image:perspective": imaugs.perspective_transform}[
        name
    ]
    with pytest.raises(AttributeError):
        function(Image.new("RGB", (32, 32)))
    assert choose_backend(get_perturbation(name), "augly") == "native"
    out = apply_perturbation(name, np.zeros((1, 32, 32, 3), np.uint8) + 90, 0.7, backend="augly")
    assert out.shape == (1, 32, 32, 3)


def test_default_backend_is_native_with_augly_installed(tmp_path):
    """The same call gives the same result on a machine with AugLy as on one without: native by default."""
    from pytest_aisp.multimodal import evaluate_invariance

    images = _photos(None)
    texts = ["I do not think that it is a good movie", "they are not coming because it is late"]
    default = apply_perturbation("image:blur", images, 0.6, seed=1)
    np.testing.assert_array_equal(default, apply_perturbation("image:blur", images, 0.6, seed=1, backend="native"))
    assert not np.array_equal(default, apply_perturbation("image:blur", images, 0.6, seed=1, backend="augly"))
    assert apply_perturbation("text:typos", texts, 0.8, seed=2) == apply_perturbation(
        "text:typos", texts, 0.8, seed=2, backend="native"
    )
    np.save(tmp_path / "images.npy", images)
    without_augly = (
        "import sys; sys.modules['augly'] = None; sys.modules['augly.image'] = None; import numpy as np; "
        "from pytest_aisp.multimodal import apply_perturbation; "
        f"x = np.load({str(tmp_path / 'images.npy')!r}); "
        f"np.save({str(tmp_path / 'out.npy')!r}, apply_perturbation('image:blur', x, 0.6, seed=1))"
    )
    subprocess.run([sys.executable, "-c", without_augly], check=True, capture_output=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), default)
    result = evaluate_invariance(
        lambda batch: np.zeros(len(batch), dtype=int), images, perturbations=["image:blur", "image:jpeg"]
    )
    assert {cell.backend for cell in result.cells} == {"native"}
    assert {cell.backend for cell in evaluate_invariance(
        lambda batch: np.zeros(len(batch), dtype=int), images, perturbations="image:blur", backend="augly"
    ).cells} == {"augly"}


def test_auto_uses_augly_where_it_works():
    """``auto`` stays available as an explicit choice: AugLy when it imports."""
    assert choose_backend(get_perturbation("image:overlay_emoji"), "auto") == "augly"
    assert choose_backend(get_perturbation("image:brightness"), "auto") == "augly"
    assert choose_backend(get_perturbation("text:typos"), "auto") == "augly"
    assert choose_backend(get_perturbation("image:occlusion"), "auto") == "native"  # AugLy has none
    assert choose_backend(get_perturbation("image:brightness"), "native") == "native"
