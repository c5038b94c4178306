"""Real models for the NLP tests, made by fixtures/nlp/make_models.py (seeded, about a second)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixture_scripts import load_fixture_script


def _load_make_models() -> Any:
    return load_fixture_script("nlp/make_models.py", "aisp_nlp_make_models")


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
