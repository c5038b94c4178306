"""Prometheus metrics of a monitor, in their own registry, with bounded label values."""

from __future__ import annotations

from typing import Any

from pytest_aisp.backends import require
from pytest_aisp.monitor.events import UNINSPECTED_REASONS, Alert, Event

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OTHER = "other"


class MonitorMetrics:
    """The ``aisp_*`` metrics: requests, latency, uninspected requests, alerts, detector errors and
    policy actions.

    Labels take bounded values only: endpoints beyond ``max_endpoints`` distinct paths count as
    ``other``, status is the HTTP code, detector and severity come from a fixed set. No label
    ever holds a client id.
    """

    def __init__(self, registry: Any = None, *, max_endpoints: int = 50) -> None:
        prom = require("prometheus_client", "monitor")
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self.max_endpoints = int(max_endpoints)
        self._endpoints: set[str] = set()
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.requests = prom.Counter("aisp_requests", "Requests seen by the monitor.",
                                     ["endpoint", "status"], registry=self.registry)
        self.duration = prom.Histogram("aisp_request_duration_seconds", "Request latency seen by the monitor.",
                                       ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.alerts = prom.Counter("aisp_alerts", "Alerts raised by monitor detectors.",
                                   ["detector", "rule", "severity"], registry=self.registry)
        self.detector_errors = prom.Counter("aisp_detector_errors", "Detector or sink failures (the request went on).",
                                            ["detector"], registry=self.registry)
        self.uninspected = prom.Counter(
            "aisp_uninspected_requests", "Requests whose bodies the detectors could not read whole (too large, "
            "unreadable).", ["endpoint", "reason"], registry=self.registry)
        self.policy_actions = prom.Counter("aisp_policy_actions", "Requests blocked or responses hardened.",
                                           ["action"], registry=self.registry)
        self.monitor_seconds = prom.Histogram(
            "aisp_monitor_overhead_seconds", "Time the monitor spent on one request.",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05), registry=self.registry)

    def endpoint_label(self, endpoint: str) -> str:
        """``endpoint`` itself while fewer than ``max_endpoints`` are known, else ``other``."""
        if endpoint in self._endpoints:
            return endpoint
        if len(self._endpoints) < self.max_endpoints:
            self._endpoints.add(endpoint)
            return endpoint
        return OTHER

    def request(self, event: Event) -> None:
        key = (event.endpoint, event.status)
        children = self._request_children.get(key)
        if children is None:  # labels() costs more than the increment: keep the children
            endpoint = self.endpoint_label(event.endpoint)
            children = (self.requests.labels(endpoint=endpoint, status=str(event.status)),
                        self.duration.labels(endpoint=endpoint))
            if len(self._request_children) < 100 * self.max_endpoints:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(max(event.latency_s, 0.0))
        for reason in event.uninspected:
            self.uninspected.labels(endpoint=self.endpoint_label(event.endpoint),
                                    reason=reason if reason in UNINSPECTED_REASONS else OTHER).inc()

    def alert(self, alert: Alert) -> None:
        self.alerts.labels(detector=alert.detector, rule=alert.rule_id, severity=alert.severity.value).inc()

    def detector_error(self, detector: str) -> None:
        self.detector_errors.labels(detector=detector).inc()

    def action(self, action: str) -> None:
        self.policy_actions.labels(action=action).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in the text exposition format, and its content type."""
        prom = require("prometheus_client", "monitor")
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
