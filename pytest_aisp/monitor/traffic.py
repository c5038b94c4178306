"""Replaying traffic logs through a monitor, and the assertions built on it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_aisp.findings import AispError, Finding, MonitorAlert, Severity
from pytest_aisp.monitor.core import Monitor
from pytest_aisp.monitor.events import RULES, Alert, Event, read_events
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.verdict import enforce

UNCHECKED_RULE = "AISP-MON-UNCHECKED"


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found: the alerts raised, and what could not be checked.

    ``findings`` holds one finding per alert plus, failing closed, one ``AISP-MON-UNCHECKED``
    finding per detector that raised on some events.
    """

    source: str
    events: int
    alerts: tuple[Alert, ...]
    detector_errors: Mapping[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def findings(self) -> tuple[Finding, ...]:
        unchecked = tuple(
            Finding(rule_id=UNCHECKED_RULE, severity=Severity.MEDIUM,
                    message=f"detector {name} failed on {count} of {self.events} events; they went unchecked",
                    location=f"{self.source}:detector={name}", evidence={"detector": name, "failures": count},
                    metrics={"failures": float(count)})
            for name, count in sorted(self.detector_errors.items()))
        return tuple(a.to_finding() for a in self.alerts) + unchecked

    @property
    def metrics(self) -> dict[str, float]:
        return {"events": float(self.events), "alerts": float(len(self.alerts)),
                "events_per_s": self.events / self.seconds if self.seconds > 0 else 0.0}

    def matching(self, *, detector: str | None = None, client: str | None = None,
                 rule_id: str | None = None) -> tuple[Alert, ...]:
        """The alerts of ``detector`` (name), on ``client``, of ``rule_id``; None matches all."""
        return _matching(self.alerts, detector, client, rule_id)


def _matching(alerts: Iterable[Alert], detector: str | None, client: str | None,
              rule_id: str | None) -> tuple[Alert, ...]:
    return tuple(a for a in alerts
                 if (detector is None or a.detector == detector) and (client is None or a.client == client)
                 and (rule_id is None or a.rule_id == rule_id))


def replay(monitor: Monitor, log: str | Path | Iterable[Event]) -> ReplayResult:
    """Feed a traffic log (a JSON-lines path or events) through ``monitor`` in order.

    Time comes from the events, so the same log and detectors give the same alerts every run.
    The alerts are recorded as findings of the running test. A log holding no events raises
    ``AispError``: nothing replayed is nothing checked, never a pass.
    """
    source = str(log) if isinstance(log, (str, Path)) else "events"
    events = read_events(log) if isinstance(log, (str, Path)) else iter(log)
    errors_before = dict(monitor.detector_errors)
    started = time.perf_counter()
    alerts: list[Alert] = []
    count = 0
    for event in events:
        alerts.extend(monitor.observe(event))
        count += 1
    if count == 0:
        raise AispError(f"{source} holds no traffic events: nothing was replayed, so nothing was checked")
    errors = {name: n - errors_before.get(name, 0) for name, n in monitor.detector_errors.items()
              if n > errors_before.get(name, 0)}
    result = ReplayResult(source=source, events=count, alerts=tuple(alerts), detector_errors=errors,
                          seconds=time.perf_counter() - started)
    record_findings(result.findings)
    record_metric("monitor_alerts", len(alerts))
    return result


evaluate_traffic = replay

Source = ReplayResult | Monitor | Iterable[Alert]


def _alerts_of(source: Source) -> tuple[tuple[Alert, ...], tuple[Finding, ...]]:
    if isinstance(source, ReplayResult):
        return source.alerts, tuple(f for f in source.findings if f.rule_id == UNCHECKED_RULE)
    if isinstance(source, Monitor):
        unchecked = tuple(
            Finding(rule_id=UNCHECKED_RULE, severity=Severity.MEDIUM,
                    message=f"detector {name} failed on {count} events; they went unchecked",
                    location=f"monitor:detector={name}", evidence={"detector": name, "failures": count})
            for name, count in sorted(source.detector_errors.items()))
        return tuple(source.alerts), unchecked
    return tuple(source), ()


def assert_no_alerts(source: Source, *, detector: str | None = None, client: str | None = None,
                     fail_on: Severity | str | None = None) -> tuple[Alert, ...]:
    """Fail with ``MonitorAlert`` when ``source`` (a replay result, a monitor, or alerts) holds
    alerts of ``detector`` on ``client`` (None: any), or when a detector failed on some events.
    Returns the (non-failing) matching alerts."""
    __tracebackhide__ = True
    alerts, unchecked = _alerts_of(source)
    found = _matching(alerts, detector, client, None)
    findings = [a.to_finding() for a in found] + list(unchecked if detector is None else
                                                      [f for f in unchecked if f.evidence["detector"] == detector])
    scope = (f"detector {detector}" if detector else "any detector") + (f" on client {client}" if client else "")
    first = found[0] if found else None
    details = (f"first alert at ts={first.ts:.3f}: {first.message}" if first
               else "some events went unchecked")
    enforce(findings, MonitorAlert, headline=f"expected no alerts from {scope}, got {len(found)}",
            details=details, result=source, fail_on=fail_on)
    return found


def assert_alerts(source: Source, *, detector: str | None = None, client: str | None = None,
                  min_count: int = 1, fail_on: Severity | str | None = None) -> tuple[Alert, ...]:
    """Fail with ``MonitorAlert`` unless ``source`` holds at least ``min_count`` alerts of
    ``detector`` on ``client`` (None: any). Returns the matching alerts."""
    __tracebackhide__ = True
    alerts, _ = _alerts_of(source)
    found = _matching(alerts, detector, client, None)
    if len(found) >= min_count:
        return found
    scope = (f"detector {detector}" if detector else "any detector") + (f" on client {client}" if client else "")
    seen = sorted({f"{a.detector}/{a.client}" for a in alerts})[:10]
    missed = Finding(
        rule_id=RULES.get(detector or "", "AISP-MON-MISSED"), severity=Severity.HIGH,
        message=f"expected at least {min_count} alerts from {scope}, got {len(found)}",
        location=f"{getattr(source, 'source', 'monitor')}:client={client or '*'}",
        evidence={"expected": min_count, "found": len(found), "alerts_seen": seen},
        metrics={"found": float(len(found))})
    enforce([missed], MonitorAlert, headline=f"the monitor missed an attack: {missed.message}",
            details=f"alerts raised (detector/client): {seen or 'none'}", result=source, fail_on=fail_on)
    return found
