"""LLM fixtures of the example suite: the Acme chat app (examples/llm_app) on free local ports.

``llm_endpoint`` is overridden here, the ordinary pytest way, to point at the hardened build; a team
with a deployed service sets ``--aisp-llm-endpoint`` and ``[tool.aisp.llm]`` instead.
"""

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest

from pytest_aisp.llm import LLMEndpoint


def _chat_app():
    """The Acme chat app module, found beside this file (examples/llm_app/app.py)."""
    here = Path(__file__).resolve()
    app_file = next(p / "llm_app" / "app.py" for p in here.parents if (p / "llm_app" / "app.py").is_file())
    name = "acme_chat_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, app_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def chat_app():
    return _chat_app()


@pytest.fixture(scope="session")
def llm_endpoint(chat_app):
    """The hardened chat service, with the marker its server-side prompt carries declared as a canary
    and its live API key declared secret."""
    with chat_app.running(chat_app.AppConfig()) as url:
        yield LLMEndpoint(url=url + "/v1/chat/completions", session="user",
                          canaries=(chat_app.SERVER_CANARY,), secrets=(chat_app.SERVER_API_KEY,))


@pytest.fixture(scope="session")
def weak_chat(chat_app):
    """``weak_chat(family)``: an endpoint on a build with that one weakness switched on."""
    with contextlib.ExitStack() as stack:
        urls = {}

        def endpoint(family):
            if family not in urls:
                config = chat_app.AppConfig(weaknesses=frozenset({family}))
                urls[family] = stack.enter_context(chat_app.running(config))
            return LLMEndpoint(url=urls[family] + "/v1/chat/completions", session="user",
                               canaries=(chat_app.SERVER_CANARY,), secrets=(chat_app.SERVER_API_KEY,))

        yield endpoint
