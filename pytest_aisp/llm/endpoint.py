"""The LLM endpoint under test: how to reach it, how a conversation is kept, and how to ask it.

Three kinds of endpoint: ``api="openai"`` (chat completions with a system turn and the history),
``api="rest"`` (a JSON request template with ``$INPUT``/``$SYSTEM``/``$SESSION``/``$HISTORY``
placeholders and a path to the answer), and an in-process callable
(:meth:`LLMEndpoint.from_callable`). Header values may name environment variables
(``"Bearer ${OPENAI_API_KEY}"``); they are expanded at request time and never shown in a repr,
an error message or a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import inspect
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_aisp.findings import AispError

APIS = ("openai", "rest", "callable")
SESSION_MODES = ("history", "user", "header", "cookie")
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FIRST_BYTES = 200

ChatFunction = Callable[..., "str | Awaitable[str]"]


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class LLMEndpoint:
    """Where and how to reach a chat model.

    ``session`` says how a conversation is kept apart from another: ``"history"`` (each request
    carries the whole conversation, the server keeps nothing), ``"user"`` (the OpenAI ``user``
    field), ``"header"`` (``session_header``) or ``"cookie"`` (``session_cookie``, plus any cookie
    the server sets). ``canaries`` are strings the team planted in its server-side system prompt;
    ``secrets`` strings that must never appear in an answer (``${ENV}`` names are expanded).
    ``attempts`` and ``seed`` are the defaults of probes run against this endpoint (the
    ``llm_endpoint`` fixture takes them from ``[tool.aisp.llm] attempts`` and ``--aisp-seed``).
    ``max_tokens`` (default 256) and ``temperature`` (default: not sent, the server's own) bound each
    answer: an OpenAI endpoint gets them as ``max_tokens`` and ``temperature``, a REST template as
    ``$MAX_TOKENS`` and ``$TEMPERATURE``; None leaves them out.
    """

    url: str = ""
    api: str = "openai"
    model: str = "default"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    request_template: Any = None
    response_path: str = ""
    session: str = "history"
    session_header: str = "X-Session-Id"
    session_cookie: str = "session"
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    concurrency: int = 8
    canaries: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)
    allowed_hosts: tuple[str, ...] = ()
    attempts: int = 3
    seed: int = 0
    max_tokens: int | None = 256
    temperature: float | None = None
    fn: ChatFunction | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise AispError(f"llm endpoint api {self.api!r} is unknown; use one of: {', '.join(APIS)}")
        if self.session not in SESSION_MODES:
            raise AispError(f"llm endpoint session {self.session!r} is unknown; use one of: "
                            f"{', '.join(SESSION_MODES)}")
        if self.api == "callable" and self.fn is None:
            raise AispError("a callable endpoint needs a function: use LLMEndpoint.from_callable(fn)")
        if self.api != "callable" and not str(self.url).startswith(("http://", "https://")):
            raise AispError(f"llm endpoint url must be an http(s) URL, got {self.url!r}")
        if self.api == "rest" and self.request_template is None:
            raise AispError('a rest endpoint needs request_template, e.g. {"message": "$INPUT"}')
        if self.concurrency < 1 or self.retries < 0 or self.timeout <= 0 or self.attempts < 1:
            raise AispError("llm endpoint needs concurrency >= 1, retries >= 0, timeout > 0 and attempts >= 1")
        if self.max_tokens is not None and int(self.max_tokens) < 1:
            raise AispError(f"llm endpoint max_tokens must be at least 1 (or None), got {self.max_tokens}")
        if self.temperature is not None and not 0.0 <= float(self.temperature) <= 2.0:
            raise AispError(f"llm endpoint temperature must be between 0 and 2 (or None), got {self.temperature}")
        template = self.request_template
        if isinstance(template, str):
            try:
                object.__setattr__(self, "request_template", json.loads(template))
            except json.JSONDecodeError as exc:
                raise AispError(f"llm request_template is not valid JSON: {exc}") from None
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "canaries", tuple(self.canaries))
        object.__setattr__(self, "secrets", tuple(self.secrets))
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))

    @classmethod
    def from_callable(cls, fn: ChatFunction, *, concurrency: int = 8, **options: Any) -> LLMEndpoint:
        """An endpoint that calls ``fn(messages)`` in process (sync or async).

        ``messages`` is a list of ``{"role", "content"}`` dicts, system turn first; a ``session``
        keyword parameter, when ``fn`` has one, receives the conversation's id.
        """
        name = getattr(fn, "__qualname__", type(fn).__name__)
        return cls(url=f"callable:{name}", api="callable", fn=fn, concurrency=concurrency, **options)

    @property
    def location(self) -> str:
        """What findings name as their location: the URL (or ``callable:NAME``)."""
        return self.url

    @property
    def takes_system_turn(self) -> bool:
        """False for a REST template without ``$SYSTEM``: probes then put their rules in the user turn."""
        if self.api != "rest":
            return True
        return "$SYSTEM" in json.dumps(self.request_template)

    @property
    def keeps_server_sessions(self) -> bool:
        """True when conversations are told apart by an id (user field, header or cookie)."""
        if self.session != "history":
            return True
        return self.api == "rest" and "$SESSION" in json.dumps(self.request_template)

    def with_options(self, **changes: Any) -> LLMEndpoint:
        """A copy with some options changed."""
        return replace(self, **changes)

    def expanded_secrets(self) -> tuple[str, ...]:
        """Declared secrets with ``${ENV}`` names expanded (missing variables are skipped)."""
        values = []
        for secret in self.secrets:
            try:
                values.append(_expand(secret, "secrets"))
            except AispError:
                continue
        return tuple(v for v in values if v)

    def redact(self, text: str) -> str:
        """``text`` with every expanded header value and declared secret replaced by ``***``."""
        for value in self._sensitive_values():
            text = text.replace(value, "***")
        return text

    def _sensitive_values(self) -> list[str]:
        values = []
        for name, raw in self.headers.items():
            try:
                expanded = _expand(raw, f"header {name}")
            except AispError:
                continue
            values.extend(part for part in (expanded, *expanded.split()) if len(part) >= 6)
        values.extend(self.expanded_secrets())
        return sorted(set(values), key=len, reverse=True)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[EndpointClient]:
        """A client with its own connection pool and concurrency limit, for one event loop."""
        if self.api == "callable":
            yield EndpointClient(self, None)
            return
        import httpx  # lazy: import pytest_aisp.llm stays light

        headers = {name: _expand(value, f"header {name}") for name, value in self.headers.items()}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        # No shared cookie jar: a cookie the server sets belongs to one conversation, never to all.
        jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout, limits=limits,
                                     cookies=jar) as client:
            yield EndpointClient(self, client)

    def chat(self, messages: Sequence[Message | Mapping[str, str]], *, session: str | None = None) -> str:
        """Send one conversation and return the answer (a blocking convenience around :meth:`open`)."""

        async def run() -> str:
            async with self.open() as client:
                conversation = client.conversation(session or f"aisp-{uuid.uuid4().hex[:16]}")
                return await conversation.send_messages([_as_message(m) for m in messages])

        return asyncio.run(run())

    def ask(self, prompt: str, *, system: str | None = None, session: str | None = None) -> str:
        """Ask one question (with an optional system turn) in a new conversation."""
        messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
        return self.chat(messages, session=session)


def _as_message(value: Message | Mapping[str, str]) -> Message:
    return value if isinstance(value, Message) else Message(str(value["role"]), str(value["content"]))


def _expand(value: str, what: str) -> str:
    """``value`` with ``${NAME}`` replaced from the environment; a missing one is an error naming it."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise AispError(f"llm endpoint {what} names ${{{name}}}, but the environment variable {name} "
                            "is not set; export it before running the probes")
        return os.environ[name]

    return _ENV_RE.sub(lookup, str(value))


class EndpointClient:
    """An open connection to an endpoint: it sends requests, retries and limits concurrency."""

    def __init__(self, endpoint: LLMEndpoint, http: Any) -> None:
        self.endpoint = endpoint
        self.http = http
        self.semaphore = asyncio.Semaphore(endpoint.concurrency)
        self.requests = 0

    def conversation(self, session_id: str, system: str | None = None) -> Conversation:
        """A new conversation with its own id (and cookies), optionally opened by a system turn."""
        return Conversation(self, session_id, system)

    async def complete(self, conversation: Conversation, messages: list[Message]) -> str:
        """One request for ``messages`` (the whole history); return the answer text."""
        async with self.semaphore:
            self.requests += 1
            if self.endpoint.api == "callable":
                return await self._call_function(conversation, messages)
            return await self._post(conversation, messages)

    async def _call_function(self, conversation: Conversation, messages: list[Message]) -> str:
        fn = self.endpoint.fn
        assert fn is not None
        payload = [m.to_dict() for m in messages]
        kwargs = {"session": conversation.session_id} if _accepts_session(fn) else {}
        try:
            if inspect.iscoroutinefunction(fn):
                answer = await fn(payload, **kwargs)
            else:
                answer = await asyncio.to_thread(fn, payload, **kwargs)
                if inspect.isawaitable(answer):
                    answer = await answer
        except AispError:
            raise
        except Exception as exc:
            raise AispError(f"{self.endpoint.location} raised {type(exc).__name__}: "
                            f"{self.endpoint.redact(str(exc))[:_FIRST_BYTES]}") from exc
        if not isinstance(answer, str):
            raise AispError(f"{self.endpoint.location} returned {type(answer).__name__}, expected str")
        if not answer.strip():
            raise AispError(f"{self.endpoint.location} returned an empty answer, which cannot be judged; "
                            "an endpoint under test must answer with text")
        return answer

    def _request(
        self, conversation: Conversation, messages: list[Message],
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body and extra headers for one request."""
        ep = self.endpoint
        headers: dict[str, str] = {}
        if ep.session == "header":
            headers[ep.session_header] = conversation.session_id
        cookies = dict(conversation.cookies)
        if ep.session == "cookie":
            cookies = {ep.session_cookie: conversation.session_id, **cookies}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if ep.api == "openai":
            body: dict[str, Any] = {"model": ep.model, "messages": [m.to_dict() for m in messages]}
            if ep.max_tokens is not None:
                body["max_tokens"] = int(ep.max_tokens)
            if ep.temperature is not None:
                body["temperature"] = float(ep.temperature)
            if ep.session == "user":
                body["user"] = conversation.session_id
            return body, headers
        system = "\n".join(m.content for m in messages if m.role == "system")
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        values = {
            "$INPUT": last_user,
            "$SYSTEM": system,
            "$SESSION": conversation.session_id,
            "$HISTORY": [m.to_dict() for m in messages],
            "$MAX_TOKENS": ep.max_tokens,
            "$TEMPERATURE": ep.temperature,
        }
        return _fill_template(ep.request_template, values), headers

    async def _post(self, conversation: Conversation, messages: list[Message]) -> str:
        import httpx

        ep = self.endpoint
        body, headers = self._request(conversation, messages)
        last_problem, retry_after = "", ""
        for attempt in range(ep.retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, retry_after))
                retry_after = ""
            try:
                response = await self.http.post(ep.url, json=body, headers=headers)
            except httpx.TransportError as exc:
                last_problem = f"could not reach it ({type(exc).__name__}: {exc})"
                continue
            if response.status_code in RETRY_STATUSES:
                last_problem = self._describe(response)
                retry_after = response.headers.get("retry-after", "")
                continue
            if response.status_code >= 400:
                raise AispError(f"{ep.location} {self._describe(response)}; check the URL, api and headers")
            for name, value in response.cookies.items():
                conversation.cookies[name] = value
            return self._answer(response)
        raise AispError(f"{ep.location} failed after {ep.retries + 1} tries: {ep.redact(last_problem)}")

    def _delay(self, attempt: int, retry_after: str) -> float:
        """Exponential backoff; a numeric Retry-After (capped at 10 s) wins."""
        with contextlib.suppress(ValueError):
            if retry_after:
                return min(float(retry_after), 10.0)
        return self.endpoint.backoff * (2 ** (attempt - 1))

    def _describe(self, response: Any) -> str:
        first = response.content[:_FIRST_BYTES].decode("utf-8", "replace")
        return f"answered HTTP {response.status_code} with {self.endpoint.redact(first)!r}"

    def _answer(self, response: Any) -> str:
        ep = self.endpoint
        try:
            data = response.json()
        except ValueError:
            raise AispError(f"{ep.location} {self._describe(response)}, which is not JSON; "
                            "is this the chat endpoint?") from None
        path = ep.response_path or ("$.choices[0].message.content" if ep.api == "openai" else "")
        if not path:
            raise AispError("a rest endpoint needs response_path, e.g. $.reply or $.choices[0].text")
        try:
            answer = json_path(data, path)
        except (KeyError, IndexError, TypeError) as exc:
            raise AispError(f"{ep.location} {self._describe(response)}, where {path} finds nothing ({exc}); "
                            "set response_path to where the answer is") from None
        if answer is not None and not isinstance(answer, str):
            raise AispError(f"{ep.location} {self._describe(response)}: {path} is a "
                            f"{type(answer).__name__}, not text; set response_path to the answer text")
        if answer is None or not answer.strip():
            # Fail closed: an answer with no text cannot show a refusal or a leak; it is unreadable.
            raise AispError(f"{ep.location} {self._describe(response)}: {path} holds no text (null or empty), "
                            "so the answer cannot be judged; check the endpoint, or response_path")
        return answer


def _accepts_session(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "session" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class Conversation:
    """One conversation: its id, cookies and history. Each :meth:`send` adds a user turn."""

    def __init__(self, client: EndpointClient, session_id: str, system: str | None = None) -> None:
        self.client = client
        self.session_id = session_id
        self.cookies: dict[str, str] = {}
        self.history: list[Message] = []
        self.seconds = 0.0
        self._pending_rules = ""
        if system:
            if client.endpoint.takes_system_turn:
                self.history.append(Message("system", system))
            else:
                self._pending_rules = system

    async def send(self, text: str) -> str:
        """Send a user turn; return the answer (and keep both in the history)."""
        if self._pending_rules:
            # No system turn on this endpoint: the probe's rules go first in the user turn.
            text = f"Instructions: {self._pending_rules}\n\n{text}"
            self._pending_rules = ""
        return await self.send_messages([Message("user", text)])

    async def send_messages(self, messages: Sequence[Message]) -> str:
        self.history.extend(messages)
        started = time.perf_counter()
        answer = await self.client.complete(self, list(self.history))
        self.seconds += time.perf_counter() - started
        self.history.append(Message("assistant", answer))
        return answer


# --- templates and answer paths ------------------------------------------------------------------


def _fill_template(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with placeholders replaced: a string that is exactly one placeholder takes its value
    (a list for ``$HISTORY``); placeholders inside a longer string are replaced as text."""
    if isinstance(template, str):
        if template in values:
            return values[template]
        text = template
        for name in sorted(values, key=len, reverse=True):
            if name in text:
                value = values[name]
                text = text.replace(name, value if isinstance(value, str) else json.dumps(value))
        return text
    if isinstance(template, Mapping):
        return {k: _fill_template(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill_template(v, values) for v in template]
    return template


_PATH_TOKEN = re.compile(
    r"\.([A-Za-z_][\w-]*)|\[(\d+|-\d+)\]|\[['\"]([^'\"]+)['\"]\]|([A-Za-z_][\w-]*)|\.(\d+)")


def json_path(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data``: ``$.choices[0].message.content``, ``reply.text``,
    ``$['output'][0]``, ``items.0.text``. Raises ``KeyError``/``IndexError`` when it is absent."""
    rest = path.strip()
    if rest.startswith("$"):
        rest = rest[1:]
    value = data
    position = 0
    while position < len(rest):
        match = _PATH_TOKEN.match(rest, position)
        if match is None:
            raise KeyError(f"cannot read path {path!r} at {rest[position:]!r}")
        name, index, quoted, bare, dotted_index = match.groups()
        if index is not None or dotted_index is not None:
            if not isinstance(value, list):
                raise TypeError(f"{path}: expected a list before [{index or dotted_index}]")
            value = value[int(index if index is not None else dotted_index)]
        else:
            key = name or quoted or bare
            if not isinstance(value, Mapping):
                raise TypeError(f"{path}: expected an object before {key!r}")
            value = value[key]
        position = match.end()
    return value


# --- configuration --------------------------------------------------------------------------------

_OPTION_NAMES = ("api", "model", "headers", "request_template", "response_path", "session", "session_header",
                 "session_cookie", "timeout", "retries", "backoff", "concurrency", "canaries", "secrets",
                 "allowed_hosts", "attempts", "seed", "max_tokens", "temperature")


def endpoint_from_config(url: str, config: Mapping[str, Any]) -> LLMEndpoint:
    """An endpoint from a URL and a ``[tool.aisp.llm]``-shaped mapping (unknown keys are ignored)."""
    options: dict[str, Any] = {}
    for name in _OPTION_NAMES:
        if name in config and config[name] is not None:
            options[name] = config[name]
    for name in ("timeout", "backoff", "temperature"):
        if name in options:
            options[name] = float(options[name])
    for name in ("retries", "concurrency", "attempts", "seed", "max_tokens"):
        if name in options:
            options[name] = int(options[name])
    for name in ("canaries", "secrets", "allowed_hosts"):
        if name in options and isinstance(options[name], str):
            options[name] = (options[name],)
    if "headers" in options and not isinstance(options["headers"], Mapping):
        raise AispError("[tool.aisp.llm] headers must be a table of header names to values")
    return LLMEndpoint(url=url, **options)


def endpoint_from_settings(settings: Any, **overrides: Any) -> LLMEndpoint:
    """The ``llm_endpoint`` fixture's endpoint: ``settings.llm_endpoint`` plus ``[tool.aisp.llm]``,
    with ``overrides`` (``url=`` and any :class:`LLMEndpoint` option) on top."""
    url = overrides.pop("url", None) or settings.llm_endpoint
    if not url:
        raise AispError("no LLM endpoint configured: set --aisp-llm-endpoint, [tool.aisp] llm_endpoint or "
                        "AISP_LLM_ENDPOINT, or pass url=")
    config = {"seed": settings.seed, **settings.section("llm")}
    unknown = sorted(set(overrides) - set(_OPTION_NAMES))
    if unknown:
        raise AispError(f"unknown llm endpoint option(s) {', '.join(unknown)}; use: {', '.join(_OPTION_NAMES)}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    return endpoint_from_config(str(url), config)


def configured_endpoint(url: str | None = None, *, settings: Any = None, **overrides: Any) -> LLMEndpoint:
    """An endpoint from the configuration in force (``[tool.aisp.llm]``, the environment, ``--aisp-*``
    options inside pytest) plus overrides: ``configured_endpoint(url=f"http://127.0.0.1:{port}/v1/chat/completions")``
    keeps the project's headers, sessions, canaries and attempts for a URL known only at run time."""
    if settings is None:
        from pytest_aisp.config import current_settings

        settings = current_settings()
    return endpoint_from_settings(settings, url=url, **overrides)
