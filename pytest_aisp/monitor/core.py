"""The monitor: events in, alerts out. No I/O and no wall clock: time comes from the events."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from pytest_aisp.findings import AispError, Severity
from pytest_aisp.monitor.events import Alert, Event
from pytest_aisp.monitor.state import LruTable

log = logging.getLogger("pytest_aisp.monitor")

AlertSink = Callable[[Alert], None]


@runtime_checkable
class Detector(Protocol):
    """What the monitor needs from a detector: a short ``name`` and ``observe``."""

    name: str

    def observe(self, event: Event) -> Sequence[Alert]: ...


def make_alert(detector: Any, event: Event, message: str, *, client: str | None = None,
               severity: Severity | None = None, **evidence: Any) -> Alert:
    """An alert from ``detector`` (its name, rule id and default severity) at ``event``."""
    return Alert(detector=detector.name, rule_id=detector.rule_id,
                 severity=severity or detector.severity, client=event.client if client is None else client,
                 endpoint=event.endpoint, ts=event.ts, message=message, evidence=evidence)


class Monitor:
    """Runs every detector over each event, deduplicates alerts and hands them to sinks.

    - ``detectors``: objects with ``name`` and ``observe(event) -> list[Alert]``;
    - ``sinks``: callables each alert is passed to (JSON-lines log, webhook ...);
    - ``metrics``: a :class:`~pytest_aisp.monitor.metrics.MonitorMetrics` to count requests and alerts;
    - ``cooldown_s``: an alert repeating one already raised within this many seconds (event
      time) is counted as suppressed, not raised again. Alerts repeat one another when they
      share detector, rule, client and kind (:attr:`Alert.kinds`): a different attack from the
      same client is raised. The next alert raised for a key says how many were folded into it
      (``evidence["folded"]``);
    - ``history``: how many raised alerts :attr:`alerts` keeps.

    A detector or sink that raises is logged and counted (:attr:`detector_errors`); the other
    detectors still run and ``observe`` never raises on their account.
    """

    def __init__(self, detectors: Iterable[Detector], *, sinks: Iterable[AlertSink] = (),
                 metrics: Any = None, cooldown_s: float = 60.0, history: int = 10_000,
                 max_alert_keys: int = 100_000) -> None:
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
        self.sinks: list[AlertSink] = list(sinks)
        self.metrics = metrics
        self.cooldown_s = float(cooldown_s)
        self.alerts: deque[Alert] = deque(maxlen=history)
        self.events_seen = 0
        self.suppressed = 0
        self.detector_errors: dict[str, int] = {}
        # Per alert key: [ts of the last raised alert, alerts folded since].
        self._last_alert: LruTable[list[float]] = LruTable(max_alert_keys, lambda: [float("-inf"), 0.0])

    def observe(self, event: Event) -> list[Alert]:
        """Feed one event to every detector; return the alerts raised (after the cooldown)."""
        self.events_seen += 1
        if self.metrics is not None:
            self.metrics.request(event)
        raised: list[Alert] = []
        for detector in self.detectors:
            try:
                found = detector.observe(event)
            except Exception as exc:  # a broken detector must not break the request it watches
                if self._count_error(detector.name):
                    log.error("monitor detector %s failed on an event from %s (%d failures so far): %s",
                              detector.name, event.endpoint, self.detector_errors[detector.name], exc,
                              exc_info=not isinstance(exc, AispError))  # a known failure needs no traceback
                continue
            for alert in found:
                fresh = self._fresh(alert)
                if fresh is not None:
                    raised.append(fresh)
        for alert in raised:
            self.alerts.append(alert)
            if self.metrics is not None:
                self.metrics.alert(alert)
            for sink in self.sinks:
                try:
                    sink(alert)
                except Exception:
                    name = f"sink:{type(sink).__name__}"
                    if self._count_error(name):
                        log.exception("monitor alert sink %r failed (%d failures so far)", sink,
                                      self.detector_errors[name])
        return raised

    def observe_all(self, events: Iterable[Event]) -> list[Alert]:
        """Observe each event in order; return every alert raised."""
        raised: list[Alert] = []
        for event in events:
            raised.extend(self.observe(event))
        return raised

    def detector(self, name: str) -> Detector:
        """The detector called ``name``; ``KeyError`` naming the detectors present otherwise."""
        for detector in self.detectors:
            if detector.name == name:
                return detector
        raise KeyError(f"no detector {name!r}; this monitor has {[d.name for d in self.detectors]}")

    def _fresh(self, alert: Alert) -> Alert | None:
        """The alert to raise (with the count of alerts folded since the last one), or None to fold it."""
        entries = [self._last_alert.get(f"{alert.detector}\x00{alert.rule_id}\x00{alert.client}\x00{kind}")
                   for kind in alert.kinds]
        if all(alert.ts - entry[0] < self.cooldown_s for entry in entries):
            self.suppressed += 1
            for entry in entries:
                entry[1] += 1
            return None
        folded = int(max(entry[1] for entry in entries))
        for entry in entries:
            entry[0], entry[1] = alert.ts, 0.0
        if not folded:
            return alert
        return dataclasses.replace(
            alert, message=f"{alert.message} ({folded} similar alert{'s' if folded > 1 else ''} folded since the "
            "last one)", evidence={**alert.evidence, "folded": folded})

    def _count_error(self, name: str) -> bool:
        """Count a failure of ``name``; True when it should be logged (the 1st, 2nd, 4th, 8th ... failure),
        so that a detector failing on every request cannot flood the logs."""
        count = self.detector_errors[name] = self.detector_errors.get(name, 0) + 1
        if self.metrics is not None:
            self.metrics.detector_error(name)
        return count & (count - 1) == 0
