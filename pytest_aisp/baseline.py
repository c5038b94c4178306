"""Accepted findings: a JSON file of entries, each accepting one finding as it was when accepted.

An entry written by ``aisp baseline update`` (version 2) names the rule, the test and the location
for people to read, and matches on the finding's stable fingerprint (:mod:`pytest_aisp.identity`:
the pickle global, the probe, the detector, the check's bounds ...), so accepting one unknown global
in ``model.pt`` does not hide the next one. It also records what was accepted: the severity and the
measured values. A finding that matches but got worse fails again: its severity rose, or a measured
value moved the wrong way (robust accuracy down, attack success rate up).

Entries without a fingerprint (files of version 1, or written by hand) still work, conservatively:
such an entry accepts a finding only when it is the only finding of its test with that rule and
location; when several match, none is accepted and the message says to rerun ``aisp baseline update``.

Keys never hold line numbers, so a baseline survives edits that move code around. An entry whose
``test`` is ``"*"`` accepts the finding in any test (and outside pytest). A baseline never applies
inside an xfailed test, and never records findings of xfailed or negative tests (they are expected).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.identity import fingerprint_of, identity_location
from pytest_aisp.metric_directions import TOLERANCE, measured_metrics, metric_direction

BASELINE_VERSION = 2
READABLE_VERSIONS = (1, 2)
ANY_TEST = "*"

@dataclass(frozen=True)
class BaselineEntry:
    """One accepted finding.

    ``rule_id``, ``test`` and ``location`` say what it is; ``fingerprint`` (when set) is what it
    matches on; ``severity`` and ``metrics`` are what was accepted, so a finding that got worse
    fails again.
    """

    rule_id: str
    test: str
    location: str
    reason: str = ""
    expires: dt.date | None = None
    owner: str = ""
    fingerprint: str = ""
    severity: Severity | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def for_finding(
        cls, finding: Finding, test: str, *, reason: str = "", owner: str = "", expires: dt.date | None = None
    ) -> BaselineEntry:
        """An entry accepting exactly ``finding`` in test ``test`` (``"*"``: any test), as it is now.

        ``finding``'s location must already be stable (relative to the rootdir, temporary folders folded),
        as reports and ``aisp-findings.json`` hold it.
        """
        return cls(
            rule_id=finding.rule_id, test=test, location=identity_location(finding.location), reason=reason,
            expires=expires, owner=owner, fingerprint=fingerprint_of(finding, test),
            severity=finding.severity, metrics=measured_metrics(finding.metrics),
        )

    @property
    def legacy(self) -> bool:
        """True for an entry without a fingerprint (matched on rule, test and location only)."""
        return not self.fingerprint

    def matches(self, finding: Finding, nodeid: str | None) -> bool:
        """Whether this entry names ``finding`` in test ``nodeid`` (whether it got worse is separate)."""
        if self.test != ANY_TEST and self.test != (nodeid or ""):
            return False
        if self.rule_id != finding.rule_id:
            return False
        if self.fingerprint:
            return self.fingerprint == fingerprint_of(finding, self.test)
        return self.location in (finding.location, identity_location(finding.location))

    def worse(self, finding: Finding) -> str:
        """Why ``finding`` is worse than what this entry accepted (``""`` when it is not)."""
        if self.severity is not None and finding.severity > self.severity:
            return f"severity rose from {self.severity.value} to {finding.severity.value} since it was accepted"
        for name, accepted in self.metrics.items():
            now = finding.metrics.get(name)
            if now is None or not math.isfinite(float(now)):
                continue
            direction = metric_direction(name)
            if (direction == "higher" and now < accepted - TOLERANCE) or (
                    direction == "lower" and now > accepted + TOLERANCE):
                return f"{name} got worse since it was accepted: {accepted:.4g} -> {float(now):.4g}"
        return ""

    def expired(self, today: dt.date | None = None) -> bool:
        return self.expires is not None and self.expires < (today or dt.date.today())

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rule_id": self.rule_id,
            "test": self.test,
            "location": self.location,
        }
        if self.fingerprint:
            data["fingerprint"] = self.fingerprint
        if self.severity is not None:
            data["severity"] = self.severity.value
        if self.metrics:
            data["metrics"] = dict(self.metrics)
        data["reason"] = self.reason
        if self.owner:
            data["owner"] = self.owner
        if self.expires:
            data["expires"] = self.expires.isoformat()
        return data


@dataclass(frozen=True)
class BaselineMatch:
    """What the baseline says about one finding: the entry naming it, and why it is not accepted."""

    entry: BaselineEntry
    problem: str = ""  # "" when accepted; else why not (worse, ambiguous legacy entry)


@dataclass(frozen=True)
class Baseline:
    """A set of accepted findings, loaded from or written to a JSON file."""

    entries: tuple[BaselineEntry, ...] = ()
    path: Path | None = None

    @property
    def legacy_entries(self) -> int:
        return sum(1 for e in self.entries if e.legacy)

    def match(self, finding: Finding, nodeid: str | None) -> BaselineEntry | None:
        """The entry naming ``finding`` in test ``nodeid``, expired or not; None if there is none.

        An entry with a fingerprint is preferred over one without.
        """
        found = [e for e in self.entries if e.matches(finding, nodeid)]
        return min(found, key=lambda e: (e.legacy, e.test == ANY_TEST), default=None)

    def judge(self, finding: Finding, nodeid: str | None, siblings: Sequence[Finding] = ()) -> BaselineMatch | None:
        """Whether the baseline accepts ``finding`` of test ``nodeid``; ``siblings`` are the other findings
        judged with it (a legacy entry accepts only when it names one finding among them)."""
        entry = self.match(finding, nodeid)
        if entry is None:
            return None
        if entry.legacy:
            named = sum(1 for other in siblings if entry.matches(other, nodeid))
            if named > 1:
                return BaselineMatch(entry, f"the baseline entry for {entry.rule_id} at {entry.location or '-'} "
                                            f"has no fingerprint and names {named} findings; rerun `aisp baseline "
                                            "update` to accept them one by one")
        return BaselineMatch(entry, entry.worse(finding))

    def to_json(self) -> str:
        body = {"version": BASELINE_VERSION, "entries": [e.to_dict() for e in self.entries]}
        return json.dumps(body, indent=2, sort_keys=False, allow_nan=False) + "\n"

    def write(self, path: Path) -> None:
        """Write the file atomically (a temporary file beside it, then renamed)."""
        path = Path(path)
        if path.is_dir():
            raise AispError(f"cannot write the baseline to {path}: it is a directory; give a file name")
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(self.to_json(), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AispError(f"cannot write the baseline to {path}: {exc.strerror or exc}") from None


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline file; raise ``AispError`` saying what is wrong with it."""
    from pytest_aisp.reporters.findings_json import load_json_file

    path = Path(path)
    if not path.exists():
        raise AispError(f"baseline file {path} does not exist; create it with `aisp baseline update`")
    data = load_json_file(path, what="baseline file")
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise AispError(f"baseline file {path} must be an object with an 'entries' list")
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise AispError(f"baseline file {path}: 'version' must be an integer, got {version!r:.40}")
    if version not in READABLE_VERSIONS:
        raise AispError(f"baseline file {path} has version {version}; this pytest-aisp reads versions "
                        f"{', '.join(map(str, READABLE_VERSIONS))}")
    return Baseline(tuple(_entry(e, path, i) for i, e in enumerate(data["entries"])), path)


def _entry(raw: Any, path: Path, index: int) -> BaselineEntry:
    where = f"baseline file {path}, entry {index}"
    if not isinstance(raw, dict) or not isinstance(raw.get("rule_id"), str) or not raw["rule_id"]:
        raise AispError(f"{where}: needs at least 'rule_id', 'test' and 'location'")
    for key in ("test", "location", "reason", "owner", "fingerprint", "severity"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise AispError(f"{where}: '{key}' must be a string, got {raw[key]!r:.40}")
    expires = raw.get("expires")
    try:
        expiry = dt.date.fromisoformat(expires) if expires else None
    except (TypeError, ValueError):
        raise AispError(f"{where}: 'expires' must be a date like 2026-12-31, got {expires!r:.40}") from None
    try:
        severity = Severity.parse(raw["severity"]) if raw.get("severity") else None
    except ValueError as exc:
        raise AispError(f"{where}: {exc}") from None
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        raise AispError(f"{where}: 'metrics' must map metric names to numbers")
    return BaselineEntry(
        rule_id=raw["rule_id"],
        test=raw.get("test") or ANY_TEST,
        location=raw.get("location") or "",
        reason=raw.get("reason") or "",
        expires=expiry,
        owner=raw.get("owner") or "",
        fingerprint=raw.get("fingerprint") or "",
        severity=severity,
        metrics={str(k): float(v) for k, v in metrics.items()},
    )


def baseline_from_findings(
    findings: Iterable[tuple[str, Finding]], *, reason: str = "accepted by aisp baseline update",
    previous: Baseline | None = None,
) -> Baseline:
    """A baseline accepting each (test node id, finding) as it is now.

    Reasons, owners and expiries of ``previous`` entries that name the same finding are kept (an old
    entry without a fingerprint hands them on to each finding it names), but the accepted severity
    and values are the current ones.
    """
    seen: dict[str, BaselineEntry] = {}
    for nodeid, finding in findings:
        entry = BaselineEntry.for_finding(finding, nodeid, reason=reason)
        old = previous.match(finding, nodeid) if previous else None
        if old is not None:
            entry = BaselineEntry.for_finding(finding, old.test if old.test == ANY_TEST else nodeid,
                                              reason=old.reason, owner=old.owner, expires=old.expires)
        current = seen.get(entry.fingerprint)
        if current is None:
            seen[entry.fingerprint] = entry
        else:  # the same finding twice (shards, several occurrences): accept the worst values seen
            seen[entry.fingerprint] = _worst(current, entry)
    entries = sorted(seen.values(), key=lambda e: (e.test, e.rule_id, e.location, e.fingerprint))
    return Baseline(tuple(entries))


def _worst(a: BaselineEntry, b: BaselineEntry) -> BaselineEntry:
    severity = max(s for s in (a.severity, b.severity) if s is not None) if (a.severity or b.severity) else None
    metrics = dict(a.metrics)
    for name, value in b.metrics.items():
        if name not in metrics:
            metrics[name] = value
        elif metric_direction(name) == "higher":
            metrics[name] = min(metrics[name], value)
        else:
            metrics[name] = max(metrics[name], value)
    return BaselineEntry(a.rule_id, a.test, a.location, a.reason, a.expires, a.owner, a.fingerprint, severity,
                         metrics)
