"""A pure ASGI middleware that feeds every request to a Monitor and serves ``/metrics``."""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from pytest_aisp.monitor.core import Monitor
from pytest_aisp.monitor.events import Event, Features, Prediction
from pytest_aisp.monitor.policy import ResponsePolicy
from pytest_aisp.monitor.prefix import complete_json_prefix
from pytest_aisp.monitor.sinks import wait_until_handled

log = logging.getLogger("pytest_aisp.monitor")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
BodyReader = Callable[[bytes, Scope], Any]


def header(scope: Scope, name: str) -> str | None:
    """The value of request header ``name`` (lower case), or None."""
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def default_client_key(scope: Scope) -> str:
    """A digest of the ``x-api-key`` or bearer token when there is one, else the peer address.

    Keys are hashed so that neither logs nor alerts ever hold a credential.
    """
    secret = header(scope, "x-api-key")
    auth = header(scope, "authorization")
    if secret is None and auth and auth.lower().startswith("bearer "):
        secret = auth[7:]
    if secret:
        return "key:" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    peer = scope.get("client")
    return f"ip:{peer[0]}" if peer else "unknown"


def json_field(name: str) -> BodyReader:
    """A reader that takes field ``name`` from a JSON body: a list of numbers, a string or an int."""

    def read(body: bytes, scope: Scope) -> Features | Prediction:
        if not body:
            return None
        value = json.loads(body).get(name)
        if isinstance(value, list):
            if value and isinstance(value[0], list):  # a batch of one row
                value = value[0]
            return tuple(float(v) for v in value)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return value
        return None

    read.__name__ = f"json_field_{name}"
    return read


def _text_of(content: Any) -> str | None:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text")]
        return "\n".join(p for p in parts if isinstance(p, str)) or None
    return None


def chat_prompt(body: bytes, scope: Scope) -> str | None:
    """The user text of a chat request: OpenAI ``messages`` (user turns; string or text-part content)
    or a REST ``message``/``prompt``/``input``."""
    data = json.loads(body)
    if isinstance(data.get("messages"), list):
        turns = [_text_of(m.get("content")) for m in data["messages"]
                 if isinstance(m, dict) and m.get("role") == "user"]
        return "\n".join(t for t in turns if t) or None
    for key in ("message", "prompt", "input"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


def chat_answer(body: bytes, scope: Scope) -> str | None:
    """The answer text of a chat response: OpenAI ``choices[0].message.content`` or ``reply.text``/``text``."""
    data = json.loads(body)
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else None
    reply = data.get("reply")
    if isinstance(reply, dict) and isinstance(reply.get("text"), str):
        return reply["text"]
    for key in ("text", "output", "answer"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


@dataclass(frozen=True)
class Body:
    """What the middleware kept of a request or response body: its start, and whether it was cut."""

    data: bytes
    cut: bool = False


class AispMonitorMiddleware:
    """Watches an ASGI app: each HTTP request becomes an :class:`Event` for ``monitor``.

    - ``client_key(scope) -> str``: who sent the request (default :func:`default_client_key`);
    - ``features(body, scope)`` and ``prediction(body, scope)``: what the model got and answered,
      read from the request and response bodies (e.g. :func:`json_field`); bodies are only
      buffered (up to ``max_body`` bytes) when these are given. A body over ``max_body``, or one
      its reader cannot parse, is marked in ``event.uninspected`` (the ``uninspected``
      detector alerts on it); of a body over ``max_body`` the readers still get the part that
      was read, closed into valid JSON, and a prompt read from it is scanned;
    - ``policy``: a :class:`ResponsePolicy` (default: log only);
    - ``event_sinks``: callables that get every event (e.g. an ``EventLog`` recording traffic);
    - ``metrics_path``: where the monitor's Prometheus metrics are served (None to disable);
    - ``timestamp(scope) -> float``: the event time (default: the wall clock);
    - ``background``: run the readers, event sinks and detectors in a worker thread instead of on
      the event loop (None: when a detector keeps its state in a shared store such as Redis, so
      that no request waits on the network); ``max_queue`` events may wait for the worker,
      beyond that they are counted as unchecked (``queue`` in ``monitor.detector_errors``).

    The monitor runs after the response has been sent; its failures are logged and counted,
    never passed on to the request. In the background, the policy (429, hardening) acts once
    the worker has seen the alert, a few events later under load.
    """

    def __init__(self, app: ASGIApp, *, monitor: Monitor, client_key: Callable[[Scope], str] | None = None,
                 features: BodyReader | None = None, prediction: BodyReader | None = None,
                 policy: ResponsePolicy | None = None, event_sinks: Iterable[Callable[[Event], None]] = (),
                 metrics_path: str | None = "/metrics", timestamp: Callable[[Scope], float] | None = None,
                 max_body: int = 1 << 20, background: bool | None = None, max_queue: int = 10_000) -> None:
        self.app = app
        self.monitor = monitor
        self.client_key = client_key or default_client_key
        self.features = features
        self.prediction = prediction
        self.policy = policy or ResponsePolicy()
        self.event_sinks = list(event_sinks)
        self.metrics_path = metrics_path
        self.timestamp = timestamp
        self.max_body = int(max_body)
        if background is None:
            background = any(getattr(d, "shared", None) is not None for d in monitor.detectors)
        self.background = background
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=max_queue)
        if background:
            threading.Thread(target=self._work, name="aisp-monitor", daemon=True).start()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until the worker has handled every queued event; True when it did in time
        (at once without a worker)."""
        return wait_until_handled(self._queue, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Handle what is queued, then stop the worker."""
        if self.background:
            self._queue.put(None)
            self.drain(timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.metrics_path is not None and scope.get("path") == self.metrics_path \
                and self.monitor.metrics is not None:
            await self._serve_metrics(send)
            return
        started = time.perf_counter()
        client = self._safe(self.client_key, scope, default="unknown")
        ts = self._safe(self.timestamp, scope, default=None) if self.timestamp else None
        ts = time.time() if ts is None else float(ts)
        if self.policy.blocks(client, ts):
            await _send_json(send, 429, {"error": "too many requests"}, [(b"retry-after", b"60")])
            self._count_action("block")
            self._finish(scope, client, ts, 429, started, Body(b""), Body(b""))
            return
        capture = self.features is not None or self.prediction is not None
        harden = self.policy.hardens(client, ts)
        request_body = bytearray()
        response_body = bytearray()
        # Bytes seen of each body, so a body cut at max_body is known to be cut.
        state: dict[str, Any] = {"status": 500, "start": None, "request_bytes": 0, "response_bytes": 0}

        async def watched_receive() -> Message:
            message = await receive()
            if capture and message["type"] == "http.request":
                chunk = message.get("body", b"")
                state["request_bytes"] += len(chunk)
                if len(request_body) < self.max_body:
                    request_body.extend(chunk[: self.max_body - len(request_body)])
            return message

        async def watched_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                state["status"] = int(message["status"])
                if harden:
                    state["start"] = message
                    return
            elif kind == "http.response.body":
                chunk = message.get("body", b"")
                if harden:
                    response_body.extend(chunk)
                    if message.get("more_body", False):
                        return
                    await self._send_hardened(send, state["start"], bytes(response_body))
                    return
                if capture:
                    state["response_bytes"] += len(chunk)
                    if len(response_body) < self.max_body:
                        response_body.extend(chunk[: self.max_body - len(response_body)])
            await send(message)

        try:
            await self.app(scope, watched_receive, watched_send)
        except Exception:
            state["status"] = 500
            raise
        finally:
            self._finish(scope, client, ts, state["status"], started,
                         Body(bytes(request_body), state["request_bytes"] > len(request_body)),
                         Body(bytes(response_body), state["response_bytes"] > len(response_body)))

    def _finish(self, scope: Scope, client: str, ts: float, status: int, started: float,
                request: Body, response: Body) -> None:
        latency_s = time.perf_counter() - started
        if not self.background:
            self._observe(scope, client, ts, status, latency_s, request, response)
            return
        try:
            self._queue.put_nowait((scope, client, ts, status, latency_s, request, response))
        except queue.Full:  # the worker fell behind: the event goes unchecked, and is counted
            self.monitor._count_error("queue")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._observe(*item)
            finally:
                self._queue.task_done()

    def _observe(self, scope: Scope, client: str, ts: float, status: int, latency_s: float,
                 request: Body, response: Body) -> None:
        started = time.perf_counter()
        try:
            uninspected: list[str] = []
            # A request the app refused (4xx) reached no model; an error response carries no answer.
            features = self._read(self.features, request, scope, "request", uninspected,
                                  judged=not 400 <= status < 500)
            prediction = self._read(self.prediction, response, scope, "response", uninspected,
                                    judged=status < 400)
            event = Event(ts=ts, client=client, endpoint=str(scope.get("path", "/")), status=status,
                          latency_s=latency_s, features=features, prediction=prediction,
                          uninspected=tuple(uninspected))
            for sink in self.event_sinks:
                sink(event)
            alerts = self.monitor.observe(event)
            if alerts:
                self.policy.update(alerts)
            if self.monitor.metrics is not None:
                self.monitor.metrics.monitor_seconds.observe(time.perf_counter() - started)
        except Exception:  # the monitor never breaks the request it watches
            log.exception("monitor failed on a request to %s", scope.get("path"))
            self.monitor._count_error("middleware")

    def _read(self, reader: BodyReader | None, body: Body, scope: Scope, side: str, uninspected: list[str],
              *, judged: bool) -> Any:
        """What ``reader`` takes from ``body``; notes in ``uninspected`` a body it could not read whole.

        Of a body cut at ``max_body`` only text is kept (a prompt can be scanned in part; a cut
        feature or score vector is not the model's input or output).
        """
        if reader is None or (not body.data and not body.cut):
            return None
        value = None
        try:
            value = reader(body.data, scope)
        except Exception:  # garbage in a body is the client's doing, never the request's failure
            if body.cut:
                completed = complete_json_prefix(body.data)
                if completed is not None:
                    try:
                        value = reader(completed, scope)
                    except Exception:
                        value = None
            elif judged:
                uninspected.append(f"{side}-unreadable")
        if body.cut:
            if judged:
                uninspected.append(f"{side}-too-large")
            return value if isinstance(value, str) else None
        return value

    def _safe(self, function: Callable[[Scope], Any] | None, scope: Scope, default: Any) -> Any:
        try:
            return function(scope) if function else default
        except Exception:
            log.exception("monitor client_key/timestamp callable failed")
            self.monitor._count_error("middleware")
            return default

    async def _send_hardened(self, send: Send, start: Message | None, body: bytes) -> None:
        hardened = self.policy.harden_body(body)
        if hardened != body:
            self._count_action("harden")
        start = dict(start or {"type": "http.response.start", "status": 200, "headers": []})
        start["headers"] = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        start["headers"].append((b"content-length", str(len(hardened)).encode()))
        await send(start)
        await send({"type": "http.response.body", "body": hardened, "more_body": False})

    async def _serve_metrics(self, send: Send) -> None:
        body, content_type = self.monitor.metrics.exposition()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _count_action(self, action: str) -> None:
        if self.monitor.metrics is not None:
            self.monitor.metrics.action(action)


async def _send_json(send: Send, status: int, payload: Any, extra_headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra_headers]})
    await send({"type": "http.response.body", "body": body})
