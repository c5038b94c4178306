"""Multimodal fixtures for the example suite: digit CNNs, tone classifier, image + caption model.

The models are made by fixtures/multimodal/make_fixtures.py on first use (seconds, offline).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest


def _multimodal_fixture_script() -> Path:
    """fixtures/multimodal/make_fixtures.py, found from this file upwards (examples/ or examples/parts/)."""
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "fixtures" / "multimodal" / "make_fixtures.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "fixtures/multimodal/make_fixtures.py not found above " + str(Path(__file__).parent)
    )


@pytest.fixture(scope="session")
def multimodal_fixtures() -> ModuleType:
    """The fixture script, with its artifacts generated into fixtures/multimodal/generated/."""
    if "multimodal_fixtures" not in sys.modules:
        spec = importlib.util.spec_from_file_location("multimodal_fixtures", _multimodal_fixture_script())
        module = importlib.util.module_from_spec(spec)
        sys.modules["multimodal_fixtures"] = module
        spec.loader.exec_module(module)
    module = sys.modules["multimodal_fixtures"]
    module.make_all()
    return module


@pytest.fixture(scope="session")
def mm_digit_images(multimodal_fixtures: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    """Held-out digit images (N, 24, 24, 3) uint8 and their labels."""
    data = np.load(multimodal_fixtures.GENERATED / "digits_test.npz")
    return data["x"][:150], data["y"][:150]


@pytest.fixture(scope="session")
def mm_digit_classifier(multimodal_fixtures: ModuleType) -> Any:
    """The production digit classifier: trained with brightness and contrast augmentation."""
    return multimodal_fixtures.DigitsCNN(
        multimodal_fixtures.GENERATED / "digits_augmented.pt", "digits_augmented.pt"
    )


@pytest.fixture(scope="session")
def mm_legacy_digit_classifier(multimodal_fixtures: ModuleType) -> Any:
    """The previous digit classifier, trained on clean images only (known to be brightness-sensitive)."""
    return multimodal_fixtures.DigitsCNN(multimodal_fixtures.GENERATED / "digits_plain.pt", "digits_plain.pt")


@pytest.fixture(scope="session")
def mm_tone_classifier(multimodal_fixtures: ModuleType) -> tuple[Any, np.ndarray, np.ndarray]:
    """The tone/chirp classifier with its held-out 8 kHz waveforms and labels."""
    data = np.load(multimodal_fixtures.GENERATED / "tones.npz")
    return (
        multimodal_fixtures.ToneClassifier(multimodal_fixtures.GENERATED / "tones.npz"),
        data["x"],
        data["y"],
    )


@pytest.fixture(scope="session")
def mm_image_caption_model(
    multimodal_fixtures: ModuleType, mm_digit_images: tuple[np.ndarray, np.ndarray]
) -> Any:
    """The image + caption model with matching samples: (model, {"image": ..., "text": ...}, labels)."""
    x, y = mm_digit_images
    samples = {"image": x[:80], "text": multimodal_fixtures.captions_for(y[:80])}
    return multimodal_fixtures.load_image_caption_model(), samples, y[:80]
