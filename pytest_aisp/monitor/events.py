"""Events the monitor observes and the alerts it raises: plain frozen data, JSON in and out."""

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
}


@dataclass(frozen=True)
class Event:
    """One request seen at an inference endpoint.

    ``ts`` is seconds since the epoch (the monitor's only clock), ``client`` an opaque key
    (API key digest or address), ``features`` the model input (a vector or a prompt),
    ``prediction`` the model output (a label, a score vector or a response text).
    """

    ts: float
    client: str
    endpoint: str
    status: int = 200
    latency_s: float = 0.0
    features: Features = None
    prediction: Prediction = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Build an event from a JSON object; raise ``AispError`` naming a missing or bad field."""
        try:
            features = data.get("features")
            prediction = data.get("prediction")
            return cls(
                ts=float(data["ts"]),
                client=str(data["client"]),
                endpoint=str(data.get("endpoint", "/")),
                status=int(data.get("status", 200)),
                latency_s=float(data.get("latency_s", 0.0)),
                features=_freeze(features),
                prediction=_freeze(prediction),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AispError(f"traffic event {dict(data)!r:.200} is invalid ({exc}); "
                            "each line needs ts, client and optionally endpoint, status, latency_s, "
                            "features, prediction") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists)."""
        out: dict[str, Any] = {"ts": self.ts, "client": self.client, "endpoint": self.endpoint,
                               "status": self.status, "latency_s": round(self.latency_s, 6)}
        if self.features is not None:
            out["features"] = list(self.features) if isinstance(self.features, tuple) else self.features
        if self.prediction is not None:
            out["prediction"] = (list(self.prediction) if isinstance(self.prediction, tuple)
                                 else self.prediction)
        return out


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

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "rule_id": self.rule_id, "severity": self.severity.value,
                "client": self.client, "endpoint": self.endpoint, "ts": self.ts,
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
    """Events from a JSON-lines traffic log, in file order; blank lines are skipped."""
    source = Path(path)
    try:
        handle = source.open(encoding="utf-8")
    except OSError as exc:
        raise AispError(f"cannot read traffic log {source}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AispError(f"{source}:{number} is not JSON ({exc.msg}); "
                                "a traffic log holds one event object per line") from None
            yield Event.from_dict(data)


def write_events(path: str | Path, events: Sequence[Event]) -> Path:
    """Write ``events`` as a JSON-lines traffic log."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
    return target
