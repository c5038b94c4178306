"""Building a monitor from ``[tool.aisp.monitor]``: the fixture's and the CLI's factory.

```toml
[tool.aisp.monitor]
reference = "monitor/reference.npz"        # from `aisp monitor fit`; enables drift, ood, off-manifold
detectors = ["rate", "errors", "extraction", "drift", "ood"]   # default: all that can be built
cooldown_s = 60
alerts_log = "reports/monitor-alerts.jsonl"  # optional JSON-lines alert sink

[tool.aisp.monitor.rate]                    # any detector parameter, by detector name
rate_per_s = 5
burst = 20

[tool.aisp.monitor.shared]                  # optional: per-client state in Redis, shared by replicas
url_env = "AISP_MONITOR_REDIS_URL"          # or url = "redis://127.0.0.1:6379/0"
prefix = "aisp"
ttl_s = 86400
```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_aisp.backends import available
from pytest_aisp.findings import AispError
from pytest_aisp.monitor.core import Detector, Monitor
from pytest_aisp.monitor.reference import Reference

DETECTOR_NAMES = ("rate", "errors", "extraction", "drift", "ood", "adversarial", "prompt", "uninspected")
# The detectors that keep per-client history and can keep it in the shared state.
SHARED_DETECTORS = frozenset({"rate", "errors", "extraction"})
TOP_LEVEL_KEYS = {"reference", "detectors", "cooldown_s", "alerts_log", "webhook", "shared", *DETECTOR_NAMES}
SHARED_KEYS = {"url", "url_env", "prefix", "ttl_s", "timeout_s", "retry_after_s"}


def _build(name: str, params: dict[str, Any], reference: Reference | None, shared: Any) -> Detector:
    from pytest_aisp.monitor import adversarial, drift, errors, extraction, rate, uninspected

    if shared is not None and name in SHARED_DETECTORS:
        params = {**params, "shared": shared}
    builders: dict[str, Callable[..., Detector]] = {
        "rate": rate.RateDetector, "errors": errors.ErrorDetector,
        "extraction": lambda **kw: extraction.ExtractionDetector(reference=reference, **kw),
        "drift": lambda **kw: drift.DriftDetector(_needs(reference, name), **kw),
        "ood": lambda **kw: drift.OODDetector(_needs(reference, name), **kw),
        "adversarial": adversarial.AdversarialInputDetector,
        "uninspected": uninspected.UninspectedDetector,
    }
    if name == "prompt":
        from pytest_aisp.monitor.prompt import PromptAttackDetector

        builders["prompt"] = PromptAttackDetector
    try:
        return builders[name](**params)
    except (TypeError, ValueError) as exc:
        raise AispError(f"[tool.aisp.monitor.{name}] is invalid: {exc}") from None


def _needs(reference: Reference | None, name: str) -> Reference:
    if reference is None:
        raise AispError(f"the {name} detector needs a reference: set [tool.aisp.monitor] reference to a file "
                        "made by `aisp monitor fit DATA --out PATH`")
    return reference


def default_detectors(section: Mapping[str, Any], reference: Reference | None) -> list[str]:
    """The detectors that can be built from ``section`` without more configuration."""
    names = ["rate", "errors", "extraction"]
    if reference is not None:
        names += ["drift", "ood"]
    adversarial = section.get("adversarial")
    if isinstance(adversarial, Mapping) and ("lower" in adversarial or "upper" in adversarial):
        names.append("adversarial")
    if available("pytest_aisp.llm.detectors"):
        names.append("prompt")
    names.append("uninspected")
    return names


def shared_state_from_config(table: Any) -> Any:
    """The :class:`~pytest_aisp.monitor.shared.RedisState` that ``[tool.aisp.monitor.shared]`` describes.

    ``url`` or ``url_env`` (the name of an environment variable holding the URL, so that a
    password stays out of files) names the server; ``prefix``, ``ttl_s``, ``timeout_s`` and
    ``retry_after_s`` are passed on.
    """
    if not isinstance(table, Mapping):
        raise AispError("[tool.aisp.monitor.shared] must be a table such as {url_env = \"AISP_MONITOR_REDIS_URL\"}")
    unknown = set(table) - SHARED_KEYS
    if unknown:
        raise AispError(f"[tool.aisp.monitor.shared] has unknown keys {sorted(unknown)}; known: {sorted(SHARED_KEYS)}")
    url = table.get("url")
    if table.get("url_env"):
        url = os.environ.get(str(table["url_env"]))
        if not url:
            raise AispError(f"[tool.aisp.monitor.shared] url_env names {table['url_env']!r}, which is not set; "
                            "export the Redis URL there (from your secret store)")
    if not url:
        raise AispError("[tool.aisp.monitor.shared] needs url or url_env (a redis:// URL)")
    from pytest_aisp.monitor.shared import RedisState

    options = {k: table[k] for k in ("prefix", "ttl_s", "timeout_s", "retry_after_s") if k in table}
    try:
        return RedisState(str(url), **options)
    except (TypeError, ValueError) as exc:
        raise AispError(f"[tool.aisp.monitor.shared] is invalid: {exc}") from None


def monitor_from_config(section: Mapping[str, Any], *, rootdir: Path | None = None, registry: Any = None,
                        metrics: bool = True, shared: bool = True) -> Monitor:
    """A monitor with the detectors, sinks and cooldown that ``section`` names.

    ``registry`` is the Prometheus registry for its metrics (a fresh one when None); with
    ``metrics=False`` (or prometheus_client missing) the monitor keeps no metrics. With
    ``shared=False`` a ``[tool.aisp.monitor.shared]`` table is ignored and every detector keeps
    its state in this process (replays and tests: deterministic, never touching a live store).
    """
    unknown = set(section) - TOP_LEVEL_KEYS
    if unknown:
        raise AispError(f"[tool.aisp.monitor] has unknown keys {sorted(unknown)}; known: {sorted(TOP_LEVEL_KEYS)}")
    root = rootdir or Path.cwd()
    reference = None
    if section.get("reference"):
        path = Path(str(section["reference"]))
        reference = Reference.load(path if path.is_absolute() else root / path)
    names = section.get("detectors") or default_detectors(section, reference)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise AispError("[tool.aisp.monitor] detectors must be a list of names such as [\"rate\", \"drift\"]")
    bad = [n for n in names if n not in DETECTOR_NAMES]
    if bad:
        raise AispError(f"unknown monitor detectors {bad}; known: {list(DETECTOR_NAMES)}")
    state = shared_state_from_config(section["shared"]) if shared and section.get("shared") else None
    detectors = []
    for name in names:
        params = section.get(name) or {}
        if not isinstance(params, Mapping):
            raise AispError(f"[tool.aisp.monitor.{name}] must be a table of parameters")
        detectors.append(_build(name, dict(params), reference, state))
    sinks: list[Callable[[Any], None]] = []
    if section.get("alerts_log"):
        from pytest_aisp.monitor.sinks import JsonLinesSink

        log_path = Path(str(section["alerts_log"]))
        sinks.append(JsonLinesSink(log_path if log_path.is_absolute() else root / log_path))
    if section.get("webhook"):
        from pytest_aisp.monitor.sinks import WebhookSink

        sinks.append(WebhookSink(str(section["webhook"])))
    monitor_metrics = None
    if metrics and available("prometheus_client"):
        from pytest_aisp.monitor.metrics import MonitorMetrics

        monitor_metrics = MonitorMetrics(registry)
    return Monitor(detectors, sinks=sinks, metrics=monitor_metrics,
                   cooldown_s=float(section.get("cooldown_s", 60.0)))


def monitor_from_settings(settings: Any) -> Monitor:
    """The ``aisp_monitor`` fixture's factory: a fresh monitor (its own metrics registry) from
    ``settings.section("monitor")``, paths resolved against the rootdir, state in this process
    (a test replays recorded traffic; it never reads or writes a shared store)."""
    return monitor_from_config(settings.section("monitor"), rootdir=settings.rootdir, shared=False)
