"""Fixtures for the LLM tests: the reference chat app, started on free 127.0.0.1 ports."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "llm"
sys.path.insert(0, str(FIXTURES))

import reference_app  # noqa: E402  (fixtures/llm is put on the path just above)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "garak: runs NVIDIA garak in a subprocess (tox env garak)")


@pytest.fixture(scope="session")
def app() -> ModuleType:
    """The reference app module (examples/llm_app/app.py)."""
    return reference_app.load_app()


@pytest.fixture(scope="session")
def app_configs() -> dict[str, Path]:
    """The app's configurations, written by fixtures/llm/reference_app.py."""
    return reference_app.write_configs()


@pytest.fixture(scope="session")
def serve(app: ModuleType, app_configs: dict[str, Path]) -> Iterator[Callable[..., str]]:
    """``serve(name_or_mapping)`` -> base URL of a running app. Named configurations are shared by
    the session; a mapping starts a fresh app (for state- or failure-specific tests)."""
    import json

    stack = contextlib.ExitStack()
    named: dict[str, str] = {}

    def start(config: str | dict[str, Any]) -> str:
        if isinstance(config, str):
            if config not in named:
                data = json.loads(app_configs[config].read_text("utf-8"))
                named[config] = stack.enter_context(app.running(app.AppConfig.from_mapping(data)))
            return named[config]
        return stack.enter_context(app.running(app.AppConfig.from_mapping(config)))

    with stack:
        yield start


@pytest.fixture(scope="session")
def openai_endpoint(serve: Callable[..., str], app: ModuleType) -> Callable[..., Any]:
    """``openai_endpoint(config, **options)`` -> an LLMEndpoint on the app's chat completions route."""
    from pytest_aisp.llm.endpoint import LLMEndpoint

    def make(config: str | dict[str, Any], **options: Any) -> LLMEndpoint:
        options.setdefault("canaries", (app.SERVER_CANARY,))
        return LLMEndpoint(url=serve(config) + "/v1/chat/completions", **options)

    return make


@pytest.fixture(scope="session")
def rest_endpoint(serve: Callable[..., str], app: ModuleType) -> Callable[..., Any]:
    """``rest_endpoint(config, **options)`` -> an LLMEndpoint on the app's REST route."""
    from pytest_aisp.llm.endpoint import LLMEndpoint

    def make(config: str | dict[str, Any], **options: Any) -> LLMEndpoint:
        options.setdefault("request_template", {"message": "$INPUT", "system": "$SYSTEM", "session": "$SESSION"})
        options.setdefault("response_path", "$.reply.text")
        return LLMEndpoint(url=serve(config) + "/api/chat", api="rest", **options)

    return make
