"""Real models for the robustness tests, trained once per session by fixtures/robust/make_models.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixture_scripts import load_fixture_script

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the machines running these tests are small and shared



def _load_script() -> Any:
    return load_fixture_script("robust/make_models.py", "robust_make_models")


make_models = _load_script()


@dataclass(frozen=True)
class Trained:
    """One trained model: its module, files and held-out data."""

    name: str
    module: Any
    files: dict[str, Path]
    x: np.ndarray
    y: np.ndarray
    extra: dict[str, np.ndarray]

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x, self.y


@pytest.fixture(scope="session")
def robust_models() -> dict[str, dict[str, Path]]:
    return make_models.build_all()


def _trained(name: str, models: dict[str, dict[str, Path]]) -> Trained:
    with np.load(models[name]["data"]) as archive:
        arrays = {key: archive[key] for key in archive.files}
    module = make_models.load_module(name)
    return Trained(name, module, models[name], arrays.pop("x"), arrays.pop("y"), arrays)


@pytest.fixture(scope="session")
def digits_mlp(robust_models) -> Trained:
    return _trained("digits_mlp", robust_models)


@pytest.fixture(scope="session")
def digits_cnn(robust_models) -> Trained:
    return _trained("digits_cnn", robust_models)


@pytest.fixture(scope="session")
def cancer_mlp(robust_models) -> Trained:
    return _trained("cancer_mlp", robust_models)


@pytest.fixture(scope="session")
def linear_binary(robust_models) -> Trained:
    return _trained("linear_binary", robust_models)


# --- poisoning, backdoors, extraction, membership ---------------------------------------------



@pytest.fixture(scope="session")
def poison_script() -> Any:
    """fixtures/robust/make_poison_fixtures.py, imported."""
    return load_fixture_script("robust/make_poison_fixtures.py", "make_poison_fixtures")


@pytest.fixture(scope="session")
def poison_fixtures(poison_script) -> Any:
    """The known-answer fixtures (made once, cached in fixtures/robust/generated/)."""
    return poison_script.make_all()


@pytest.fixture(scope="session")
def backdoor_cnn(poison_script, poison_fixtures) -> Any:
    return poison_script.load_cnn(poison_fixtures.backdoor_cnn)


@pytest.fixture(scope="session")
def clean_cnn(poison_script, poison_fixtures) -> Any:
    return poison_script.load_cnn(poison_fixtures.clean_cnn)
