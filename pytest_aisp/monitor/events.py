"""Events the monitor observes and the alerts it raises: plain frozen data, JSON in and out.

Both are written as JSON objects with a ``kind`` field (``"event"`` or ``"alert"``), so a traffic
log and an alert log can never be mistaken for each other: :func:`read_events` refuses alert
records and any record with fields an event does not have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity

Features = tuple[float, ...] | str | None
Prediction = int | str | tuple[float, ...] | None

RULES: dict[str, str] = {
    "rate": "AISP-MON-RATE",
    "extraction": "AISP-MON-EXTRACTION",
    "drift": "AISP-MON-DRIFT",
    "ood": "AISP-MON-DRIFT",
    "adversarial": "AISP-MON-ADVERSARIAL",
    "prompt": "AISP-MON-PROMPT-ATTACK",
    "errors": "AISP-MON-ERRORS",
    "uninspected": "AISP-MON-UNINSPECTED",
}

# Why the middleware could not hand a request's content to the detectors (``Event.uninspected``).
UNINSPECTED_REASONS: dict[str, str] = {
    "request-too-large": "the request body exceeds the middleware's max_body; only its start was read",
    "request-unreadable": "the request body could not be read (not JSON, not UTF-8, or not what the reader expects)",
    "response-too-large": "the response body exceeds the middleware's max_body; only its start was read",
    "response-unreadable": "the response body could not be read (not JSON, not UTF-8, or not what the reader expects)",
}
EVENT_FIELDS = frozenset({"kind", "ts", "client", "endpoint", "status", "latency_s", "features", "prediction",
                          "uninspected"})
_ALERT_FIELDS = frozenset({"rule_id", "severity", "detector", "message"})


@dataclass(frozen=True)
class Event:
    """One request seen at an inference endpoint.

    ``ts`` is seconds since the epoch (the monitor's only clock), ``client`` an opaque key
    (API key digest or address), ``features`` the model input (a vector or a prompt),
    ``prediction`` the model output (a label, a score vector or a response text);
    ``uninspected`` names what the detectors could not see (keys of :data:`UNINSPECTED_REASONS`).
    """

    ts: float
    client: str
    endpoint: str
    status: int = 200
    latency_s: float = 0.0
    features: Features = None
    prediction: Prediction = None
    uninspected: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "traffic event") -> Event:
        """Build an event from a JSON object; raise ``AispError`` naming what is wrong with it.

        Alert records (``"kind": "alert"``, or the fields of one) and objects with fields an event
        does not have are refused: replaying them as traffic would check nothing.
        """
        if not isinstance(data, Mapping):
            raise AispError(f"{where} is a JSON {_json_type(data)}, not an event object; a traffic log holds "
                            "one object per line such as {\"kind\": \"event\", \"ts\": ..., \"client\": ...}")
        kind = data.get("kind", "event")
        if kind == "alert" or (kind == "event" and "kind" not in data and set(data) >= _ALERT_FIELDS):
            rule = str(data.get("rule_id", "an AISP-MON rule"))[:60]
            raise AispError(f"{where} is an alert record ({rule}), not a traffic event: this is an alert log "
                            "(JsonLinesSink, alerts_log, --alerts-log). Replay the traffic recorded by EventLog "
                            "passed as event_sinks= to AispMonitorMiddleware, or by "
                            "`aisp monitor serve --events-log`")
        if kind != "event":
            raise AispError(f"{where} has kind {kind!r:.40}; a traffic log holds only \"event\" records")
        unknown = sorted(str(key) for key in data if key not in EVENT_FIELDS)
        if unknown:
            raise AispError(f"{where} has fields an event does not have: {', '.join(unknown)[:120]}; "
                            f"an event has {', '.join(sorted(EVENT_FIELDS))}")
        try:
            uninspected = data.get("uninspected") or ()
            if isinstance(uninspected, str) or not all(isinstance(u, str) for u in uninspected):
                raise TypeError("uninspected must be a list of reason names")
            return cls(
                ts=float(data["ts"]),
                client=str(data["client"]),
                endpoint=str(data.get("endpoint", "/")),
                status=int(data.get("status", 200)),
                latency_s=float(data.get("latency_s", 0.0)),
                features=_freeze(data.get("features")),
                prediction=_freeze(data.get("prediction")),
                uninspected=tuple(uninspected),
            )
        except KeyError as exc:
            raise AispError(f"{where} lacks the field {exc}; each event needs ts and client, and may have "
                            "endpoint, status, latency_s, features, prediction, uninspected") from None
        except (TypeError, ValueError) as exc:
            raise AispError(f"{where} is invalid ({str(exc)[:120]}); each event needs ts and client, and may "
                            "have endpoint, status, latency_s, features, prediction, uninspected") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists), marked ``"kind": "event"``."""
        out: dict[str, Any] = {"kind": "event", "ts": self.ts, "client": self.client, "endpoint": self.endpoint,
                               "status": self.status, "latency_s": round(self.latency_s, 6)}
        if self.features is not None:
            out["features"] = list(self.features) if isinstance(self.features, tuple) else self.features
        if self.prediction is not None:
            out["prediction"] = (list(self.prediction) if isinstance(self.prediction, tuple)
                                 else self.prediction)
        if self.uninspected:
            out["uninspected"] = list(self.uninspected)
        return out


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"unsupported value {value!r:.60}")


@dataclass(frozen=True)
class Alert:
    """A detector's verdict on the traffic: which rule, how bad, who, when and why."""

    detector: str
    rule_id: str
    severity: Severity
    client: str
    endpoint: str
    ts: float
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[str, ...]:
        """What kinds of attack the alert reports (its evidence's ``kinds``, else its ``signal``).

        The monitor's cooldown is kept per detector, rule, client and kind, so a second, different
        attack from the same client is raised rather than folded into the first.
        """
        kinds = self.evidence.get("kinds")
        if isinstance(kinds, (list, tuple)) and kinds:
            return tuple(str(k) for k in kinds)
        signal = self.evidence.get("signal")
        return (str(signal),) if signal else ("",)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, marked ``"kind": "alert"``."""
        return {"kind": "alert", "detector": self.detector, "rule_id": self.rule_id,
                "severity": self.severity.value, "client": self.client, "endpoint": self.endpoint, "ts": self.ts,
                "message": self.message, "evidence": dict(self.evidence)}

    def to_finding(self) -> Finding:
        """The alert as a finding located at its endpoint (the client follows a colon)."""
        numbers = {k: float(v) for k, v in self.evidence.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return Finding(rule_id=self.rule_id, severity=self.severity, message=self.message,
                       location=f"{self.endpoint}:client={self.client}",
                       evidence={"detector": self.detector, "ts": self.ts, **dict(self.evidence)},
                       metrics=numbers)


def read_events(path: str | Path) -> Iterator[Event]:
    """Events from a JSON-lines traffic log, in file order; blank lines are skipped.

    Raises ``AispError`` naming the file and line for anything that is not an event record.
    """
    source = Path(path)
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise AispError(f"cannot read traffic log {source}: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise AispError(f"{source}:{number} is not UTF-8 text (a binary file?); a traffic log holds one "
                                "JSON event object per line") from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AispError(f"{source}:{number} is not JSON ({exc.msg}); "
                                "a traffic log holds one event object per line") from None
            except RecursionError:
                raise AispError(f"{source}:{number} nests too deeply to be an event record") from None
            yield Event.from_dict(data, where=f"{source}:{number}")


def write_events(path: str | Path, events: Sequence[Event]) -> Path:
    """Write ``events`` as a JSON-lines traffic log."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
    return target
