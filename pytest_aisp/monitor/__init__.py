"""Runtime monitoring of inference endpoints: detectors over request events, an ASGI middleware,
a sidecar proxy, Prometheus metrics with alert rules, and a Grafana dashboard.

Names load lazily so that ``import pytest_aisp.monitor`` stays light.
"""

from __future__ import annotations

from pytest_aisp.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Event": "events",
    "Alert": "events",
    "read_events": "events",
    "write_events": "events",
    "Monitor": "core",
    "LruTable": "state",
    "RateDetector": "rate",
    "ErrorDetector": "errors",
    "ExtractionDetector": "extraction",
    "DriftDetector": "drift",
    "OODDetector": "drift",
    "AdversarialInputDetector": "adversarial",
    "PromptAttackDetector": "prompt",
    "UninspectedDetector": "uninspected",
    "RedisState": "shared",
    "SharedStateError": "shared",
    "Reference": "reference",
    "fit_reference": "reference",
    "MonitorMetrics": "metrics",
    "AispMonitorMiddleware": "middleware",
    "json_field": "middleware",
    "chat_prompt": "middleware",
    "chat_answer": "middleware",
    "ResponsePolicy": "policy",
    "EventLog": "sinks",
    "JsonLinesSink": "sinks",
    "WebhookSink": "sinks",
    "proxy_app": "proxy",
    "ReplayResult": "traffic",
    "replay": "traffic",
    "evaluate_traffic": "traffic",
    "assert_no_alerts": "traffic",
    "assert_alerts": "traffic",
    "monitor_from_settings": "config",
    "monitor_from_config": "config",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
