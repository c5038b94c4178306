"""What to do about alerts, kept apart from detecting them: log only, 429 for floods, harden outputs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pytest_aisp.monitor.events import Alert
from pytest_aisp.monitor.state import LruTable


class ResponsePolicy:
    """Actions the middleware takes on a client after its alerts. The default only logs.

    - ``block_floods``: answer 429 to a client for ``block_s`` seconds after a rate alert on it;
    - ``harden_extraction``: for ``harden_s`` seconds after an extraction alert on a client,
      rewrite its JSON responses: ``harden="round"`` rounds scores to ``decimals`` places,
      ``harden="top1"`` replaces each score vector by a one-hot vector of its top class.
    """

    def __init__(self, *, block_floods: bool = False, block_s: float = 60.0, harden_extraction: bool = False,
                 harden: str = "round", decimals: int = 1, harden_s: float = 3600.0,
                 max_clients: int = 100_000) -> None:
        if harden not in {"round", "top1"}:
            raise ValueError(f"harden must be 'round' or 'top1', got {harden!r}")
        self.block_floods = block_floods
        self.block_s = float(block_s)
        self.harden_extraction = harden_extraction
        self.harden = harden
        self.decimals = int(decimals)
        self.harden_s = float(harden_s)
        self._blocked: LruTable[list[float]] = LruTable(max_clients, lambda: [float("-inf")])
        self._hardened: LruTable[list[float]] = LruTable(max_clients, lambda: [float("-inf")])

    def update(self, alerts: Iterable[Alert]) -> None:
        """Note the clients that ``alerts`` put under an action."""
        for alert in alerts:
            if self.block_floods and alert.detector == "rate" and alert.client != "*":
                self._blocked.get(alert.client)[0] = alert.ts + self.block_s
            if self.harden_extraction and alert.detector == "extraction":
                self._hardened.get(alert.client)[0] = alert.ts + self.harden_s

    def blocks(self, client: str, ts: float) -> bool:
        until = self._blocked.peek(client)
        return until is not None and ts < until[0]

    def hardens(self, client: str, ts: float) -> bool:
        until = self._hardened.peek(client)
        return until is not None and ts < until[0]

    def harden_body(self, body: bytes) -> bytes:
        """The JSON response ``body`` with its score vectors rounded or made top-1; other bodies unchanged."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return body
        return json.dumps(self._harden(data)).encode()

    def _harden(self, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
            if self.harden == "top1":
                top = max(range(len(value)), key=value.__getitem__)
                return [1.0 if i == top else 0.0 for i in range(len(value))]
            return [round(v, self.decimals) for v in value]
        if isinstance(value, list):
            return [self._harden(v) for v in value]
        if isinstance(value, dict):
            return {k: self._harden(v) for k, v in value.items()}
        return value
