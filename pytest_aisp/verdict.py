"""The one decision every ``assert_*`` helper makes: which findings fail the test.

A finding fails when its severity reaches the fail-on threshold and no (unexpired) baseline entry
accepts it. The plugin sets the session's policy from ``--aisp-fail-on`` and ``--aisp-baseline``;
outside pytest the default policy fails on ``medium`` and accepts nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.baseline import Baseline, BaselineEntry
from pytest_aisp.findings import AispFailure, Finding, Severity, relative_location
from pytest_aisp.recorder import current_nodeid

DEFAULT_FAIL_ON = Severity.MEDIUM
MAX_LISTED = 10


@dataclass(frozen=True)
class Policy:
    """What fails a test: the severity threshold and the accepted findings."""

    fail_on: Severity = DEFAULT_FAIL_ON
    baseline: Baseline | None = None
    today: dt.date | None = None
    root: Path | None = None  # locations under it are matched relative to it


@dataclass(frozen=True)
class Verdict:
    """Findings sorted by what happens to them."""

    failing: tuple[Finding, ...]
    expired: tuple[tuple[Finding, BaselineEntry], ...]
    accepted: tuple[tuple[Finding, BaselineEntry], ...]
    below_threshold: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.failing and not self.expired


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
    """Sort ``findings`` into failing, expired-baseline, accepted and below-threshold."""
    policy = policy or _policy
    threshold = Severity.parse(fail_on) if fail_on is not None else policy.fail_on
    nodeid = nodeid if nodeid is not None else current_nodeid()
    failing: list[Finding] = []
    expired: list[tuple[Finding, BaselineEntry]] = []
    accepted: list[tuple[Finding, BaselineEntry]] = []
    below: list[Finding] = []
    for finding in findings:
        entry = policy.baseline.match(relative_location(finding, policy.root), nodeid) if policy.baseline else None
        if entry is not None and entry.expired(policy.today):
            expired.append((finding, entry))
        elif entry is not None:
            accepted.append((finding, entry))
        elif finding.severity >= threshold:
            failing.append(finding)
        else:
            below.append(finding)
    return Verdict(tuple(failing), tuple(expired), tuple(accepted), tuple(below))


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
    lines = [headline]
    if details:
        lines.append(details)
    for finding in verdict.failing[:MAX_LISTED]:
        lines.append("  " + finding.one_line())
    if len(verdict.failing) > MAX_LISTED:
        lines.append(f"  ... and {len(verdict.failing) - MAX_LISTED} more findings")
    for finding, entry in verdict.expired:
        lines.append(f"  {finding.one_line()} -- baseline entry expired on {entry.expires}; renew or fix it")
    raise failure("\n".join(lines), result=result, findings=verdict.failing + tuple(f for f, _ in verdict.expired))
