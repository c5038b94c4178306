"""Where alerts (and recorded events) go: JSON-lines files and a webhook."""

from __future__ import annotations

import json
import logging
import queue
import threading
from pathlib import Path
from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.monitor.events import Alert, Event

log = logging.getLogger("pytest_aisp.monitor")



def wait_until_handled(work: queue.Queue, timeout_s: float) -> bool:
    """Wait until every item put on ``work`` was marked done (``Queue.join`` has no timeout of its own);
    True when that happened within ``timeout_s``."""
    done = threading.Event()

    def wait() -> None:
        work.join()
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    return done.wait(timeout_s)

class _JsonLines:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def _write(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, separators=(",", ":")) + "\n"
        with self._lock:
            self._handle.write(line)

    def close(self) -> None:
        with self._lock:
            self._handle.close()


class JsonLinesSink(_JsonLines):
    """Appends each alert as one JSON object per line to ``path`` (for log shippers).

    An alert sink: put it in ``Monitor(sinks=...)`` / ``monitor.sinks``. Records carry
    ``"kind": "alert"``; replay refuses them as traffic.
    """

    def __call__(self, alert: Alert) -> None:
        if not isinstance(alert, Alert):
            raise TypeError(f"JsonLinesSink writes alerts, got {type(alert).__name__}: record traffic with EventLog "
                            "in AispMonitorMiddleware(event_sinks=[...])")
        self._write(alert.to_dict())


class EventLog(_JsonLines):
    """Records each event as one JSON line: a traffic log that ``replay`` and ``aisp monitor replay`` read.

    An event sink of the middleware: ``AispMonitorMiddleware(app, ..., event_sinks=[EventLog(path)])``.
    Put in ``monitor.sinks`` by mistake it receives alerts, refuses them (the monitor counts and
    logs the failing sink) and writes nothing.
    """

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"EventLog records events, got {type(event).__name__}: pass it to "
                            "AispMonitorMiddleware(event_sinks=[...]), not to monitor.sinks (which receive alerts)")
        self._write(event.to_dict())


class WebhookSink:
    """POSTs each alert as JSON to ``url`` from a background thread.

    The request path never waits on the webhook: alerts queue (at most ``max_queue``; beyond
    that they are dropped and counted in :attr:`dropped`), and failed posts are counted in
    :attr:`failed`. Extra ``headers`` (e.g. an authorization header read from the environment)
    go with every post.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0, max_queue: int = 1000,
                 headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.timeout_s = float(timeout_s)
        self.headers = dict(headers or {})
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="aisp-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the queued alerts have been posted; True when the queue drained in time."""
        return wait_until_handled(self._queue, timeout_s)

    def close(self) -> None:
        """Post what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(self.timeout_s * 2)

    def _run(self) -> None:
        httpx = require("httpx", "monitor")
        with httpx.Client(timeout=self.timeout_s, headers=self.headers) as client:
            while True:
                alert = self._queue.get()
                try:
                    if alert is None:
                        return
                    response = client.post(self.url, json={"source": "pytest-aisp", "alert": alert.to_dict()})
                    response.raise_for_status()
                    self.sent += 1
                except Exception as exc:  # the webhook being down must not stop the monitor
                    self.failed += 1
                    log.warning("alert webhook %s failed: %s", self.url, exc)
                finally:
                    self._queue.task_done()
