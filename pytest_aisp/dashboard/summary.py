"""What the dashboard shows of a run: counts, new vs fixed findings, metric changes and the gate verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_aisp.dashboard.store import HistoryStore, StoredFinding, StoredRun, diff_fingerprints
from pytest_aisp.findings import Severity

# Metrics where a smaller number is better; every other metric (accuracy, agreement ...) is better larger.
LOWER_IS_BETTER_HINTS = ("success", "asr", "flip", "gap", "auc", "fidelity", "leak", "hits", "findings", "drop")
DEFAULT_TOLERANCE = 0.02
GATE_SEVERITY = Severity.HIGH


@dataclass(frozen=True)
class MetricChange:
    """One metric of one test, this run against the previous run on the branch."""

    test: str
    name: str
    before: float
    after: float
    regressed: bool


@dataclass(frozen=True)
class RunSummary:
    """A run with everything the overview shows."""

    run: StoredRun
    previous: StoredRun | None
    findings: tuple[StoredFinding, ...]
    new: frozenset[str]
    fixed: frozenset[str]
    counts: Mapping[tuple[str, str], int]
    metric_changes: tuple[MetricChange, ...]
    gate_reasons: tuple[str, ...]

    @property
    def gate_passed(self) -> bool:
        return not self.gate_reasons


def lower_is_better(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in LOWER_IS_BETTER_HINTS)


def metric_changes(
    store: HistoryStore, run: StoredRun, previous: StoredRun | None, tolerance: float
) -> list[MetricChange]:
    if previous is None:
        return []
    series = store.metric_series(run.info.branch)
    changes = []
    for (test, name), points in sorted(series.items()):
        values = dict(points)
        if run.id in values and previous.id in values:
            before, after = values[previous.id], values[run.id]
            worse = (after - before) if lower_is_better(name) else (before - after)
            changes.append(MetricChange(test, name, before, after, worse > tolerance))
    return changes


def summarize(store: HistoryStore, run: StoredRun, *, tolerance: float = DEFAULT_TOLERANCE) -> RunSummary:
    """Counts per module and severity, new and fixed findings, metric regressions and the gate verdict.

    The gate fails when a new finding of high or critical severity is neither accepted by the baseline nor
    triaged, or when a metric regressed by more than ``tolerance`` since the previous run on the branch.
    """
    findings = store.findings(run.id)
    previous = store.previous(run)
    new, fixed = diff_fingerprints(findings, store.findings(previous.id) if previous else [])
    triaged = store.triage()
    counts = Counter((f.finding.module, f.finding.severity.value) for f in findings)
    changes = metric_changes(store, run, previous, tolerance)
    reasons = [
        f"new {f.finding.severity.value} finding {f.finding.rule_id} in {f.test or f.path}"
        for f in findings
        if f.fingerprint in new and f.finding.severity >= GATE_SEVERITY and not f.accepted
        and f.fingerprint not in triaged
    ]
    reasons += [
        f"{c.name} of {c.test} regressed from {c.before:.4g} to {c.after:.4g}" for c in changes if c.regressed
    ]
    return RunSummary(run, previous, tuple(findings), frozenset(new), frozenset(fixed), dict(counts),
                      tuple(changes), tuple(reasons))


def finding_status(finding: StoredFinding, new: Iterable[str], triaged: Mapping[str, dict]) -> str:
    """``accepted`` (baseline or triage), ``false positive``, ``new`` or ``open``."""
    decision = triaged.get(finding.fingerprint)
    if decision is not None:
        return "false positive" if decision["status"] == "false_positive" else "accepted"
    if finding.accepted:
        return "accepted"
    return "new" if finding.fingerprint in set(new) else "open"
