"""Real models for the NLP tests, made by fixtures/nlp/make_models.py (seeded, about a second)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nlp"


def _load_make_models() -> Any:
    spec = importlib.util.spec_from_file_location("aisp_nlp_make_models", FIXTURES / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make_models = _load_make_models()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "textattack: needs TextAttack (its own environment, tox -e textattack)"
    )


@pytest.fixture(scope="session")
def models() -> Any:
    """The fixture script as a module (corpora, models, probe sets)."""
    return make_models


@pytest.fixture(scope="session")
def generated() -> dict[str, Path]:
    """The CSV corpora written into fixtures/nlp/generated/."""
    return make_models.generate()


@pytest.fixture(scope="session")
def sentiment_model() -> Any:
    return make_models.sentiment_model()


@pytest.fixture(scope="session")
def sentiment_test() -> tuple[list[str], list[int]]:
    return make_models.sentiment_test_set(30)


@pytest.fixture(scope="session")
def vader() -> Any:
    return make_models.vader_model()


@pytest.fixture(scope="session")
def wordnet_installed() -> Any:
    """The WordNet database the attacks read by default (rebuilt from the packaged table: never skipped)."""
    from pytest_aisp.nlp.resources import wordnet_source

    return wordnet_source()
