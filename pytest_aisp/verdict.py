"""The one decision every ``assert_*`` helper makes: which findings fail the test.

A finding fails when its severity reaches the fail-on threshold and no (unexpired) baseline entry
accepts it. A baseline entry does not accept a finding that got worse than what it accepted (higher
severity, a measured value moved the wrong way), and no entry applies inside an xfail-marked test:
there the finding is expected and the test must fail for the xfail to hold. The plugin sets the
session's policy from ``--aisp-fail-on`` and ``--aisp-baseline``; outside pytest the default policy
fails on ``medium`` and accepts nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.baseline import Baseline, BaselineEntry
from pytest_aisp.findings import AispFailure, Finding, Severity, escape_control
from pytest_aisp.identity import location_roots, stable_location
from pytest_aisp.recorder import current_record, note_raised

DEFAULT_FAIL_ON = Severity.MEDIUM
MAX_LISTED = 10


@dataclass(frozen=True)
class Policy:
    """What fails a test: the severity threshold and the accepted findings."""

    fail_on: Severity = DEFAULT_FAIL_ON
    baseline: Baseline | None = None
    today: dt.date | None = None
    root: Path | None = None  # locations under it are matched relative to it

    def roots(self, extra: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
        """The (prefix, label) pairs that make locations stable: ``extra`` (a test's temporary folders)
        and the rootdir, longest first."""
        return tuple(sorted(extra + location_roots(self.root), key=lambda p: -len(p[0])))


def stable_finding(finding: Finding, roots: tuple[tuple[str, str], ...]) -> Finding:
    """``finding`` with its location made stable (relative to the rootdir, temporary folders folded)."""
    location = stable_location(finding.location, roots)
    return finding if location == finding.location else dataclasses.replace(finding, location=location)


@dataclass(frozen=True)
class Verdict:
    """Findings sorted by what happens to them. ``refused`` holds findings a baseline entry names but
    does not accept (they got worse, or a legacy entry is ambiguous), with the reason; they fail."""

    failing: tuple[Finding, ...]
    expired: tuple[tuple[Finding, BaselineEntry], ...]
    accepted: tuple[tuple[Finding, BaselineEntry], ...]
    below_threshold: tuple[Finding, ...]
    refused: tuple[tuple[Finding, BaselineEntry, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failing and not self.expired and not self.refused


_policy = Policy()


def set_policy(policy: Policy) -> None:
    """Install the session's policy (the plugin does this at configure time)."""
    global _policy
    _policy = policy


def active_policy() -> Policy:
    """The policy in force."""
    return _policy


def decide(
    findings: Sequence[Finding], *, fail_on: Severity | str | None = None, nodeid: str | None = None,
    policy: Policy | None = None,
) -> Verdict:
    """Sort ``findings`` into failing, expired-baseline, refused, accepted and below-threshold.

    Baseline entries match on the finding's stable location (relative to the rootdir, pytest's temporary
    folders folded) and fingerprint; inside an xfail-marked test no entry applies.
    """
    policy = policy or _policy
    threshold = Severity.parse(fail_on) if fail_on is not None else policy.fail_on
    record = current_record()
    if nodeid is None:
        nodeid = record.nodeid if record is not None else None
    in_xfail = record is not None and record.in_xfail and record.nodeid == nodeid
    baseline = policy.baseline if not in_xfail else None
    roots = policy.roots(record.roots if record is not None and record.nodeid == nodeid else ())
    stable = [stable_finding(f, roots) for f in findings] if baseline else list(findings)
    failing: list[Finding] = []
    expired: list[tuple[Finding, BaselineEntry]] = []
    accepted: list[tuple[Finding, BaselineEntry]] = []
    refused: list[tuple[Finding, BaselineEntry, str]] = []
    below: list[Finding] = []
    for finding, key in zip(findings, stable):
        judged = baseline.judge(key, nodeid, stable) if baseline else None
        if judged is not None and judged.problem and finding.severity >= threshold:
            refused.append((finding, judged.entry, judged.problem))
        elif judged is not None and not judged.problem and judged.entry.expired(policy.today):
            expired.append((finding, judged.entry))
        elif judged is not None and not judged.problem:
            accepted.append((finding, judged.entry))
        elif finding.severity >= threshold:
            failing.append(finding)
        else:
            below.append(finding)
    return Verdict(tuple(failing), tuple(expired), tuple(accepted), tuple(below), tuple(refused))


def enforce(
    findings: Sequence[Finding], failure: type[AispFailure], *, headline: str, result: Any = None,
    fail_on: Severity | str | None = None, details: str = "",
) -> Verdict:
    """Raise ``failure`` when any finding fails the test; return the verdict otherwise.

    The message is ``headline``, then ``details`` (numbers, the smallest counterexample), then
    the failing findings one per line and any expired baseline entries.
    """
    __tracebackhide__ = True
    verdict = decide(findings, fail_on=fail_on)
    if verdict.ok:
        return verdict
    lines = [escape_control(headline)]
    if details:
        lines.append(escape_control(details))
    for finding in verdict.failing[:MAX_LISTED]:
        lines.append("  " + finding.one_line())
    if len(verdict.failing) > MAX_LISTED:
        lines.append(f"  ... and {len(verdict.failing) - MAX_LISTED} more findings")
    for finding, _entry, problem in verdict.refused[:MAX_LISTED]:
        lines.append(f"  {finding.one_line()} -- not accepted by the baseline: {problem}")
    for finding, entry in verdict.expired:
        lines.append(f"  {finding.one_line()} -- baseline entry expired on {entry.expires}; renew or fix it")
    failed = verdict.failing + tuple(f for f, _, _ in verdict.refused) + tuple(f for f, _ in verdict.expired)
    error = failure("\n".join(lines), result=result, findings=failed)
    note_raised(error)
    raise error
