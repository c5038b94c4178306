"""Error-rate and latency anomalies per endpoint, and bursts of 401/403 per client."""

from __future__ import annotations

import math
from typing import Any

from pytest_aisp.findings import Severity
from pytest_aisp.monitor.core import make_alert
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.state import CountWindow, LruTable, TimeWindow

AUTH_FAILURES = frozenset({401, 403})


class _EndpointHealth:
    __slots__ = ("errors", "latency_mean", "latency_var", "samples", "slow")

    def __init__(self, window: int) -> None:
        self.errors = CountWindow(window)
        self.slow = CountWindow(window)
        self.latency_mean = 0.0
        self.latency_var = 0.0
        self.samples = 0


class ErrorDetector:
    """Flags server errors, slow responses and unauthorised-access bursts.

    Parameters:

    - ``window``: events per endpoint that the error and slow fractions are taken over;
    - ``min_events``: events an endpoint needs before its fractions are judged;
    - ``max_error_rate``: largest tolerated share of 5xx responses in the window;
    - ``latency_z``: a response slower than the running mean plus this many standard deviations ...
    - ``min_slow_latency_s``: ... and slower than this is slow;
    - ``max_slow_rate``: largest tolerated share of slow responses in the window;
    - ``auth_failures``: 401/403 responses a client may get within ``auth_window_s`` seconds;
    - ``max_clients``, ``max_endpoints``: state kept (least recently seen first out);
    - ``shared``: a :class:`~pytest_aisp.monitor.shared.RedisState` to keep the per-client 401/403
      windows in, shared by every replica (None: in this process). Per-endpoint error and latency
      shares stay per replica; across replicas the Prometheus rules aggregate them.
    """

    name = "errors"
    rule_id = "AISP-MON-ERRORS"
    severity = Severity.MEDIUM

    def __init__(self, *, window: int = 100, min_events: int = 30, max_error_rate: float = 0.2,
                 latency_z: float = 4.0, min_slow_latency_s: float = 0.25, max_slow_rate: float = 0.3,
                 auth_failures: int = 10, auth_window_s: float = 60.0, max_clients: int = 100_000,
                 max_endpoints: int = 1_000, shared: Any = None) -> None:
        if not 0 < max_error_rate < 1 or not 0 < max_slow_rate < 1:
            raise ValueError("max_error_rate and max_slow_rate must lie between 0 and 1")
        self.window = int(window)
        self.min_events = int(min_events)
        self.max_error_rate = float(max_error_rate)
        self.latency_z = float(latency_z)
        self.min_slow_latency_s = float(min_slow_latency_s)
        self.max_slow_rate = float(max_slow_rate)
        self.auth_failures = int(auth_failures)
        self.auth_window_s = float(auth_window_s)
        self.shared = shared
        self._endpoints: LruTable[_EndpointHealth] = LruTable(max_endpoints, lambda: _EndpointHealth(self.window))
        self._auth: LruTable[TimeWindow] = LruTable(
            max_clients, lambda: TimeWindow(self.auth_window_s, self.auth_failures + 1))

    def observe(self, event: Event) -> list[Alert]:
        alerts: list[Alert] = []
        health = self._endpoints.get(event.endpoint)
        health.errors.add(event.status >= 500)
        if health.errors.size >= self.min_events and health.errors.fraction() > self.max_error_rate:
            alerts.append(make_alert(
                self, event, f"{event.endpoint} returns server errors for {health.errors.fraction():.0%} "
                f"of the last {health.errors.size} requests (limit {self.max_error_rate:.0%})", client="*",
                signal="server-errors", error_rate=round(health.errors.fraction(), 4), window=health.errors.size))
        slow = self._is_slow(health, event.latency_s)
        health.slow.add(slow)
        if health.slow.size >= self.min_events and health.slow.fraction() > self.max_slow_rate:
            alerts.append(make_alert(
                self, event, f"{event.endpoint} is slow: {health.slow.fraction():.0%} of the last "
                f"{health.slow.size} responses are anomalously slow (baseline {health.latency_mean * 1000:.1f} ms)",
                client="*", signal="slow", slow_rate=round(health.slow.fraction(), 4),
                baseline_latency_s=round(health.latency_mean, 6), latency_s=round(event.latency_s, 6)))
        if event.status in AUTH_FAILURES:
            if self.shared is None:
                failures = self._auth.get(event.client)
                failures.add(event.ts)
                count = failures.count()
            else:
                count = self.shared.window_count("auth", event.client, event.ts, self.auth_window_s,
                                                 self.auth_failures + 1)
            if count > self.auth_failures:
                alerts.append(make_alert(
                    self, event, f"client {event.client} got {count} 401/403 responses within "
                    f"{self.auth_window_s:g}s (limit {self.auth_failures}): unauthorised access attempts",
                    severity=Severity.HIGH, signal="auth-failures", auth_failures=count,
                    window_s=self.auth_window_s))
        return alerts

    def _is_slow(self, health: _EndpointHealth, latency: float) -> bool:
        if health.samples >= self.min_events:
            limit = health.latency_mean + self.latency_z * math.sqrt(health.latency_var)
            if latency > limit and latency > self.min_slow_latency_s:
                return True  # slow responses stay out of the baseline, so a slowdown is not learned
        health.samples += 1
        # Exponentially weighted mean and variance (West's update).
        alpha = max(1.0 / health.samples, 0.02)
        delta = latency - health.latency_mean
        health.latency_mean += alpha * delta
        health.latency_var = (1 - alpha) * (health.latency_var + alpha * delta * delta)
        return False
