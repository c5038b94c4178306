"""Requests the detectors could not see into: bodies over the middleware's ``max_body`` or unreadable.

Padding a prompt past the size the monitor reads, or sending a body its readers cannot parse,
would otherwise hide the request from the prompt, extraction and adversarial detectors. Failing
closed, each such request is itself an alert, and a client that keeps sending them is a higher one.
"""

from __future__ import annotations

from pytest_aisp.findings import Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import UNINSPECTED_REASONS, Alert, Event
from pytest_aisp.monitor.state import LruTable, TimeWindow


class UninspectedDetector:
    """Flags requests whose content went (partly) unchecked (``event.uninspected``).

    Parameters:

    - ``max_per_window``: uninspected requests a client may send within ``window_s`` seconds
      before its alert rises from medium to high (repeated evasion rather than an odd request);
    - ``max_clients``: clients tracked (least recently seen forgotten first).

    The middleware marks a request body or response body that exceeds ``max_body`` (only its
    start was read; the prompt detector still scans that start) or that its reader could not
    parse. Bodies of requests the app refused (4xx) and of error responses are not marked.
    """

    name = "uninspected"
    rule_id = "AISP-MON-UNINSPECTED"
    severity = Severity.MEDIUM

    def __init__(self, *, max_per_window: int = 5, window_s: float = 60.0, max_clients: int = 100_000) -> None:
        if max_per_window < 0 or window_s <= 0:
            raise ValueError("max_per_window must be >= 0 and window_s positive")
        self.max_per_window = int(max_per_window)
        self.window_s = float(window_s)
        self._clients: LruTable[TimeWindow] = LruTable(
            max_clients, lambda: TimeWindow(self.window_s, self.max_per_window + 1))

    def observe(self, event: Event) -> list[Alert]:
        if not event.uninspected:
            return []
        window = self._clients.get(event.client)
        window.add(event.ts)
        repeated = window.count() > self.max_per_window
        reasons = sorted(set(event.uninspected))
        described = "; ".join(UNINSPECTED_REASONS.get(r, r) for r in reasons)
        message = (f"a request from {event.client} to {event.endpoint} went unchecked: {described}")
        if repeated:
            message += (f"; {window.count()} such requests within {self.window_s:g}s "
                        f"(limit {self.max_per_window}): likely evasion")
        return [make_alert(self, event, message, severity=Severity.HIGH if repeated else Severity.MEDIUM,
                           signal="uninspected", kinds=[*reasons, *(["repeated"] if repeated else [])],
                           reasons=reasons, recent=window.count(), window_s=self.window_s)]
