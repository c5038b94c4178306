"""Serve ASGI apps with uvicorn (the monitor sidecar, the dashboard): in the foreground or in a background
thread (tests, tools); and read a request body the ASGI way."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError


async def read_body(receive: Any) -> bytes:
    """The whole request body from an ASGI ``receive`` channel."""
    body = bytearray()
    more = True
    while more:
        message = await receive()
        body.extend(message.get("body", b""))
        more = message.get("more_body", False)
    return bytes(body)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as a pair; raise ``AispError`` naming the expected form."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise AispError(f"--listen expects HOST:PORT such as 127.0.0.1:9100, got {text!r}")
    return host.strip("[]"), int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response sent in two writes (head, body)
    # waits for the client's delayed ACK, some 40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AispError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def run_server(app: Any, host: str, port: int, *, log_level: str = "warning", extra: str = "monitor",
               proxy_headers: bool = True) -> None:
    """Serve ``app`` until interrupted; a missing uvicorn names ``pytest-aisp[extra]``. ``proxy_headers=False``
    keeps the TCP peer as the client address (uvicorn otherwise takes X-Forwarded-For from 127.0.0.1)."""
    uvicorn = require("uvicorn", extra)
    sock = _bind(host, port)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", proxy_headers=proxy_headers)
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def background_server(app: Any, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning",
                      startup_timeout_s: float = 15.0) -> Iterator[str]:
    """Serve ``app`` from a thread on ``host`` (a free port by default); yield its base URL."""
    uvicorn = require("uvicorn", "monitor")
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="aisp-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise AispError(f"the server on {host}:{bound_port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
