"""Accepted findings: a JSON file of (rule id, test node id, location) keys with a reason and expiry.

Keys never hold line numbers, so a baseline survives edits that move code around. An entry whose
``test`` is ``"*"`` accepts the finding in any test (and outside pytest).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding

BASELINE_VERSION = 1


@dataclass(frozen=True)
class BaselineEntry:
    """One accepted finding."""

    rule_id: str
    test: str
    location: str
    reason: str = ""
    expires: dt.date | None = None
    owner: str = ""

    def matches(self, finding: Finding, nodeid: str | None) -> bool:
        test_ok = self.test == "*" or self.test == (nodeid or "")
        return test_ok and self.rule_id == finding.rule_id and self.location == finding.location

    def expired(self, today: dt.date | None = None) -> bool:
        return self.expires is not None and self.expires < (today or dt.date.today())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule_id": self.rule_id,
            "test": self.test,
            "location": self.location,
            "reason": self.reason,
        }
        if self.owner:
            data["owner"] = self.owner
        if self.expires:
            data["expires"] = self.expires.isoformat()
        return data


@dataclass(frozen=True)
class Baseline:
    """A set of accepted findings, loaded from or written to a JSON file."""

    entries: tuple[BaselineEntry, ...] = ()
    path: Path | None = None

    def match(self, finding: Finding, nodeid: str | None) -> BaselineEntry | None:
        """The entry accepting ``finding`` in test ``nodeid``, expired or not; None if there is none."""
        return next((e for e in self.entries if e.matches(finding, nodeid)), None)

    def to_json(self) -> str:
        body = {"version": BASELINE_VERSION, "entries": [e.to_dict() for e in self.entries]}
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline file; raise ``AispError`` saying what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AispError(f"baseline file {path} does not exist; create it with `aisp baseline update`") from None
    except (OSError, ValueError) as exc:
        raise AispError(f"baseline file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise AispError(f"baseline file {path} must be an object with an 'entries' list")
    if int(data.get("version", 1)) > BASELINE_VERSION:
        raise AispError(f"baseline file {path} has version {data['version']}; this pytest-aisp reads 1")
    return Baseline(tuple(_entry(e, path, i) for i, e in enumerate(data["entries"])), path)


def _entry(raw: Any, path: Path, index: int) -> BaselineEntry:
    where = f"baseline file {path}, entry {index}"
    if not isinstance(raw, dict) or not raw.get("rule_id"):
        raise AispError(f"{where}: needs at least 'rule_id', 'test' and 'location'")
    expires = raw.get("expires")
    try:
        expiry = dt.date.fromisoformat(expires) if expires else None
    except (TypeError, ValueError):
        raise AispError(f"{where}: 'expires' must be a date like 2026-12-31, got {expires!r}") from None
    return BaselineEntry(
        rule_id=str(raw["rule_id"]),
        test=str(raw.get("test", "*")),
        location=str(raw.get("location", "")),
        reason=str(raw.get("reason", "")),
        expires=expiry,
        owner=str(raw.get("owner", "")),
    )


def baseline_from_findings(
    findings: Iterable[tuple[str, Finding]], *, reason: str = "accepted by aisp baseline update",
    previous: Baseline | None = None,
) -> Baseline:
    """A baseline accepting each (test node id, finding); reasons and expiries of ``previous`` are kept."""
    seen: dict[tuple[str, str, str], BaselineEntry] = {}
    for nodeid, finding in findings:
        key = (finding.rule_id, nodeid, finding.location)
        old = previous.match(finding, nodeid) if previous else None
        seen[key] = old if old is not None else BaselineEntry(finding.rule_id, nodeid, finding.location, reason)
    entries = sorted(seen.values(), key=lambda e: (e.test, e.rule_id, e.location))
    return Baseline(tuple(entries))
