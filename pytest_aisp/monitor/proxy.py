"""The sidecar: a reverse proxy in front of an inference endpoint written in any language."""

from __future__ import annotations

import json
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.monitor.middleware import ASGIApp, Receive, Scope, Send
from pytest_aisp.serving import read_body

# Connection-level headers a proxy must not forward (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"transfer-encoding", b"upgrade", b"host"})


def proxy_app(upstream: str, *, timeout_s: float = 30.0, max_connections: int = 100) -> ASGIApp:
    """An ASGI app that forwards every HTTP request to ``upstream`` and streams the answer back.

    Wrap it in :class:`AispMonitorMiddleware` to watch a service the monitor cannot live in.
    An unreachable upstream answers 502 with a JSON error.
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
        body = await read_body(receive)
        headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() not in HOP_BY_HOP]
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
            payload = json.dumps({"error": f"upstream unreachable: {type(exc).__name__}"}).encode()
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
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
