"""The sidecar: a reverse proxy in front of an inference endpoint written in any language."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.monitor.middleware import ASGIApp, Receive, Scope, Send
from pytest_aisp.serving import read_body

# Connection-level headers a proxy must not forward (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"transfer-encoding", b"upgrade", b"host"})
# The request body is forwarded whole; its length is the one httpx sets, never the client's.
NOT_FORWARDED = HOP_BY_HOP | {b"content-length"}


def framing_problem(scope: Scope) -> str | None:
    """Why the request's framing cannot be trusted, or None.

    Both Content-Length and Transfer-Encoding, or disagreeing Content-Length values, are how
    requests are smuggled past a proxy (RFC 9112, section 6.3): such a request is refused.
    """
    lengths = {value.strip() for key, value in scope.get("headers", ()) if key.lower() == b"content-length"}
    chunked = any(key.lower() == b"transfer-encoding" for key, _ in scope.get("headers", ()))
    if lengths and chunked:
        return "the request has both Content-Length and Transfer-Encoding"
    if len(lengths) > 1:
        return "the request has disagreeing Content-Length headers"
    return None


def proxy_app(upstream: str, *, timeout_s: float = 30.0, max_connections: int = 100) -> ASGIApp:
    """An ASGI app that forwards every HTTP request to ``upstream`` and streams the answer back.

    Wrap it in :class:`AispMonitorMiddleware` to watch a service the monitor cannot live in.
    An unreachable upstream answers 502 with a JSON error. A request whose framing cannot be
    trusted (:func:`framing_problem`) or whose body ends before its declared length answers 400
    and is never forwarded.
    """
    httpx = require("httpx", "monitor")
    base = upstream.rstrip("/")
    holder: dict[str, Any] = {}

    def client() -> Any:
        if "client" not in holder:
            holder["client"] = httpx.AsyncClient(
                timeout=timeout_s, limits=httpx.Limits(max_connections=max_connections))
        return holder["client"]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                await receive()
            if "client" in holder:
                await holder.pop("client").aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        problem = framing_problem(scope)
        if problem:
            await _send_error(send, 400, problem)
            return
        disconnected = False

        async def checked_receive() -> Any:
            nonlocal disconnected
            message = await receive()
            disconnected = disconnected or message["type"] == "http.disconnect"
            return message

        body = await read_body(checked_receive)
        if disconnected:  # the body ended early, or its chunks were malformed: never forward a part
            with contextlib.suppress(Exception):  # the server may have answered or closed already
                await _send_error(send, 400, "the request body ended before its declared length")
            return
        headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() not in NOT_FORWARDED]
        peer = scope.get("client")
        if peer:
            headers.append((b"x-forwarded-for", peer[0].encode()))
        url = base + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = client().build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await client().send(request, stream=True)
        except httpx.HTTPError as exc:
            await _send_error(send, 502, f"upstream unreachable: {type(exc).__name__}")
            return
        try:
            out_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


async def _send_error(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
