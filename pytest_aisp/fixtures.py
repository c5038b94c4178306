"""The aisp fixtures. Each reads the resolved settings and hands the work to its module's engine.

A fixture whose option is not set is an error of the test that requested it, naming the option, the ini
key, the ``[tool.aisp]`` key and the environment variable to set: a misspelt ``AISP_MODEL`` in CI must not
go green having checked nothing. A team that wants such tests skipped says so: ``aisp_missing = "skip"``
(``--aisp-missing=skip``), or ``@pytest.mark.aisp_optional`` on a test; the terminal summary counts
those skips. A team overrides any of these fixtures in its own conftest.py by defining one of the same name.
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


UNCONFIGURED = "aisp fixture not configured:"
OPTIONAL_MARKER = "aisp_optional"


def _factory(fixture: str) -> Callable[..., Any]:
    module_name, function = FACTORIES[fixture]
    module = importlib.import_module(f"pytest_aisp.{module_name}")
    return getattr(module, function)


# The fixtures that need an option, and that option.
CONFIGURED_BY: dict[str, str] = {"aisp_model": "model", "llm_endpoint": "llm_endpoint", "artifact_manifest": "manifest"}


def unconfigured_message(settings: Settings, fixture: str) -> str | None:
    """Why ``fixture`` cannot be built from ``settings`` (naming every place to set its option), or None."""
    name = CONFIGURED_BY[fixture]
    if getattr(settings, name) is not None:
        return None
    if fixture == "artifact_manifest" and (settings.rootdir / "aisp-manifest.json").is_file():
        return None
    spec = OPTIONS_BY_NAME[name]
    return (
        f"{UNCONFIGURED} {fixture} needs {spec.flag} (ini {spec.ini}, [tool.aisp] {name}, environment "
        f"{spec.env}), or an override of the {fixture} fixture in conftest.py"
    )


def check_configured(item: pytest.Item, settings: Settings) -> None:
    """Before ``item`` runs: error it (or skip it, where the team opted in) when it needs one of the plugin's
    own fixtures whose option is not set. A fixture overridden in a conftest.py is the team's business."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return
    for fixture in CONFIGURED_BY:
        definitions = info.name2fixturedefs.get(fixture)
        if fixture not in info.names_closure or not definitions:
            continue
        if getattr(definitions[-1].func, "__module__", "") != __name__:
            continue  # overridden
        message = unconfigured_message(settings, fixture)
        if message is None:
            continue
        if settings.missing == "skip" or item.get_closest_marker(OPTIONAL_MARKER) is not None:
            pytest.skip(message)
        pytest.fail(f"{message}; to skip such tests instead, set aisp_missing = \"skip\" or mark them "
                    f"@pytest.mark.{OPTIONAL_MARKER}", pytrace=False)


def _require_option(settings: Settings, fixture: str) -> None:
    """The same check inside the fixture, for a value requested outside a test's setup."""
    message = unconfigured_message(settings, fixture)
    if message is not None:
        pytest.fail(message, pytrace=False)


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
    _require_option(aisp_config, "aisp_model")
    return _factory("aisp_model")(aisp_config, device=aisp_device)


@pytest.fixture(scope="session")
def llm_endpoint(aisp_config: Settings) -> Any:
    """The LLM endpoint from ``--aisp-llm-endpoint`` and ``[tool.aisp.llm]``."""
    _require_option(aisp_config, "llm_endpoint")
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
    _require_option(aisp_config, "artifact_manifest")
    return _factory("artifact_manifest")(aisp_config)


@pytest.fixture
def aisp_monitor(aisp_config: Settings) -> Any:
    """A fresh runtime ``Monitor`` with its own metrics registry."""
    return _factory("aisp_monitor")(aisp_config)


AISP_FIXTURES: frozenset[str] = frozenset(
    {"aisp_config", "aisp_device", "aisp_seed", "aisp_model", "llm_endpoint", "llm_endpoint_factory",
     "artifact_manifest", "aisp_monitor"}
)
