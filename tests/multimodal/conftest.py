"""Fixtures for the multimodal tests: the models and data made by fixtures/multimodal/make_fixtures.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.fixture_scripts import load_fixture_script

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _load_script() -> ModuleType:
    return load_fixture_script("multimodal/make_fixtures.py", "multimodal_fixtures")


@pytest.fixture(scope="session")
def mm() -> ModuleType:
    """The fixture script as a module (models, loaders, synthetic data helpers)."""
    return sys.modules.get("multimodal_fixtures") or _load_script()


@pytest.fixture(scope="session")
def generated(mm: ModuleType) -> Path:
    return mm.make_all()


@pytest.fixture(scope="session")
def digits(generated: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(generated / "digits_test.npz")
    return data["x"][:120], data["y"][:120]


@pytest.fixture(scope="session")
def plain_cnn(mm: ModuleType, generated: Path) -> Any:
    return mm.DigitsCNN(generated / "digits_plain.pt", "digits_plain.pt")


@pytest.fixture(scope="session")
def augmented_cnn(mm: ModuleType, generated: Path) -> Any:
    return mm.DigitsCNN(generated / "digits_augmented.pt", "digits_augmented.pt")


@pytest.fixture(scope="session")
def tones(mm: ModuleType, generated: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    data = np.load(generated / "tones.npz")
    return mm.ToneClassifier(generated / "tones.npz"), data["x"], data["y"]


@pytest.fixture(scope="session")
def clips(mm: ModuleType, generated: Path) -> tuple[Any, np.ndarray, np.ndarray, float]:
    data = np.load(generated / "clips.npz")
    return mm.ClipClassifier(generated / "clips.npz"), data["x"], data["y"], float(data["fps"])


@pytest.fixture(scope="session")
def image_caption(
    mm: ModuleType, generated: Path, digits: tuple[np.ndarray, np.ndarray]
) -> tuple[Any, dict, np.ndarray]:
    x, y = digits
    return mm.load_image_caption_model(generated), {"image": x[:80], "text": mm.captions_for(y[:80])}, y[:80]
