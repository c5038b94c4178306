"""Request floods: a token bucket per client, and spikes in the overall request rate."""

from __future__ import annotations

from typing import Any

from pytest_aisp.findings import Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.state import LruTable


class RateDetector:
    """Flags a client that exceeds its request budget, and a sudden jump in total traffic.

    Parameters:

    - ``rate_per_s``: requests per second a client may keep up (the bucket's refill rate);
    - ``burst``: requests a client may send at once (the bucket's size);
    - ``window_s``: length of the windows the overall rate is counted in;
    - ``spike_factor``: a window with more than this many times the running average of earlier
      windows is a spike ...
    - ``spike_min_requests``: ... provided it holds at least this many requests;
    - ``max_clients``: buckets kept (least recently seen clients are forgotten first);
    - ``shared``: a :class:`~pytest_aisp.monitor.shared.RedisState` to keep the buckets in, shared
      by every replica (None: in this process). The overall spike is counted per replica; across
      replicas, the ``AispTrafficSpike`` Prometheus rule sums them.
    """

    name = "rate"
    rule_id = "AISP-MON-RATE"
    severity = Severity.MEDIUM

    def __init__(self, *, rate_per_s: float = 10.0, burst: int = 50, window_s: float = 10.0,
                 spike_factor: float = 5.0, spike_min_requests: int = 500, max_clients: int = 100_000,
                 shared: Any = None) -> None:
        if rate_per_s <= 0 or burst < 1 or window_s <= 0 or spike_factor <= 1:
            raise ValueError("rate_per_s and window_s must be positive, burst >= 1, spike_factor > 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self.window_s = float(window_s)
        self.spike_factor = float(spike_factor)
        self.spike_min_requests = int(spike_min_requests)
        self.shared = shared
        # [tokens, last_ts, requests over budget]: three numbers a client, whatever its traffic.
        self._buckets: LruTable[list[float]] = LruTable(max_clients, lambda: [self.burst, float("nan"), 0.0])
        self._window_start: float | None = None
        self._window_count = 0
        self._average: float | None = None
        self._windows_seen = 0
        self._spiked = False

    def observe(self, event: Event) -> list[Alert]:
        alerts: list[Alert] = []
        if self.shared is None:
            over, over_budget = self._take_token(event)
        else:
            over, over_budget = self.shared.token_bucket(event.client, event.ts, self.rate_per_s, self.burst)
        if over:
            alerts.append(make_alert(
                self, event,
                f"client {event.client} exceeds {self.rate_per_s:g} requests/s (burst {self.burst:g}): "
                f"{over_budget} requests over budget",
                signal="budget", over_budget=over_budget, rate_per_s=self.rate_per_s, burst=self.burst))
        spike = self._count_total(event)
        if spike is not None:
            alerts.append(spike)
        return alerts

    def _take_token(self, event: Event) -> tuple[bool, int]:
        """Take a token from the client's bucket: (over budget, requests over budget so far)."""
        bucket = self._buckets.get(event.client)
        tokens, last = bucket[0], bucket[1]
        if last == last:  # not NaN: refill for the time since this client's last request
            tokens = min(self.burst, tokens + max(0.0, event.ts - last) * self.rate_per_s)
        bucket[1] = event.ts
        if tokens >= 1.0 - 1e-9:  # float refill of exactly one token must count as one
            bucket[0] = tokens - 1.0
            return False, int(bucket[2])
        bucket[0] = tokens
        bucket[2] += 1
        return True, int(bucket[2])

    def _count_total(self, event: Event) -> Alert | None:
        if self._window_start is None:
            self._window_start = event.ts
        elapsed = int((event.ts - self._window_start) // self.window_s)
        if elapsed > 0:
            # Close the finished window and any empty ones after it (a few at most matter).
            for index in range(min(elapsed, 20)):
                self._fold(self._window_count if index == 0 else 0)
            self._window_start += elapsed * self.window_s
            self._window_count = 0
            self._spiked = False
        self._window_count += 1
        if (self._spiked or self._average is None or self._windows_seen < 3
                or self._window_count < self.spike_min_requests
                or self._window_count <= self.spike_factor * max(self._average, 1.0)):
            return None
        self._spiked = True
        return make_alert(
            self, event, f"overall request rate spiked: {self._window_count} requests in a {self.window_s:g}s "
            f"window against an average of {self._average:.1f}", client="*", signal="spike",
            requests=self._window_count, average=round(self._average, 3), window_s=self.window_s)

    def _fold(self, count: int) -> None:
        self._average = count if self._average is None else 0.7 * self._average + 0.3 * count
        self._windows_seen += 1
