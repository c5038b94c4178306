"""The aisp fixtures. Each reads the resolved settings and hands the work to its module's engine.

A fixture whose option is not set skips its test with a reason naming the option. A team
overrides any of these in its own conftest.py by defining a fixture of the same name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest

from pytest_aisp.config import OPTIONS_BY_NAME, Settings
from pytest_aisp.devices import default_device

SETTINGS_KEY = pytest.StashKey[Settings]()

# Fixture name -> (module package, factory function). Each factory takes (settings, **kwargs).
FACTORIES: dict[str, tuple[str, str]] = {
    "aisp_model": ("robust", "model_under_test_from_settings"),
    "llm_endpoint": ("llm", "endpoint_from_settings"),
    "artifact_manifest": ("supply", "manifest_from_settings"),
    "aisp_monitor": ("monitor", "monitor_from_settings"),
}


def settings_of(config: pytest.Config) -> Settings:
    """The settings the plugin resolved for this session."""
    return config.stash[SETTINGS_KEY]


def _factory(fixture: str) -> Callable[..., Any]:
    module_name, function = FACTORIES[fixture]
    module = importlib.import_module(f"pytest_aisp.{module_name}")
    factory = getattr(module, function, None)
    if factory is None:
        pytest.skip(f"{fixture}: pytest_aisp.{module_name} provides no {function}() in this version")
    return factory


def _require_option(settings: Settings, name: str, fixture: str) -> None:
    if getattr(settings, name) is None:
        spec = OPTIONS_BY_NAME[name]
        pytest.skip(
            f"{fixture} is not configured: set {spec.flag}, ini {spec.ini}, [tool.aisp] {name} "
            f"or {spec.env}, or override the {fixture} fixture in conftest.py"
        )


@pytest.fixture(scope="session")
def aisp_config(pytestconfig: pytest.Config) -> Settings:
    """The resolved pytest-aisp settings (CLI > environment > ini > [tool.aisp] > defaults)."""
    return settings_of(pytestconfig)


@pytest.fixture(scope="session")
def aisp_device() -> str:
    """The torch device for this worker: ``"cuda:0"`` (its own GPU under xdist) or ``"cpu"``."""
    return default_device()


@pytest.fixture(scope="session")
def aisp_seed(aisp_config: Settings) -> int:
    """The seed every attack and probe uses (``--aisp-seed``, default 0)."""
    return aisp_config.seed


@pytest.fixture(scope="session")
def aisp_model(aisp_config: Settings, aisp_device: str) -> Any:
    """The model under test from ``--aisp-model`` (scanned first, loaded without running code),
    with its evaluation data from ``--aisp-data``."""
    _require_option(aisp_config, "model", "aisp_model")
    return _factory("aisp_model")(aisp_config, device=aisp_device)


@pytest.fixture(scope="session")
def llm_endpoint(aisp_config: Settings) -> Any:
    """The LLM endpoint from ``--aisp-llm-endpoint`` and ``[tool.aisp.llm]``."""
    _require_option(aisp_config, "llm_endpoint", "llm_endpoint")
    return _factory("llm_endpoint")(aisp_config)


@pytest.fixture(scope="session")
def llm_endpoint_factory(aisp_config: Settings) -> Any:
    """``llm_endpoint_factory(url=None, **options)``: an endpoint from the configured settings
    (``[tool.aisp.llm]``, ``--aisp-*``) plus overrides, for a URL or option known only at run time."""
    from pytest_aisp.llm.endpoint import endpoint_from_settings

    def make(url: str | None = None, **options: Any) -> Any:
        return endpoint_from_settings(aisp_config, url=url, **options)

    return make


@pytest.fixture(scope="session")
def artifact_manifest(aisp_config: Settings) -> Any:
    """The artifact manifest from ``--aisp-manifest`` (or ``aisp-manifest.json`` at the rootdir)."""
    if aisp_config.manifest is None and not (aisp_config.rootdir / "aisp-manifest.json").is_file():
        _require_option(aisp_config, "manifest", "artifact_manifest")
    return _factory("artifact_manifest")(aisp_config)


@pytest.fixture
def aisp_monitor(aisp_config: Settings) -> Any:
    """A fresh runtime ``Monitor`` with its own metrics registry."""
    return _factory("aisp_monitor")(aisp_config)


AISP_FIXTURES: frozenset[str] = frozenset(
    {"aisp_config", "aisp_device", "aisp_seed", "aisp_model", "llm_endpoint", "llm_endpoint_factory",
     "artifact_manifest", "aisp_monitor"}
)
