"""What the dashboard shows of a run: counts, new vs fixed findings, metric changes and the gate verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_aisp.dashboard.metric_catalog import DEFAULT_CATALOG, MetricCatalog, MetricSpec
from pytest_aisp.dashboard.store import HistoryStore, StoredFinding, StoredRun, TriageDecision
from pytest_aisp.findings import Severity

GATE_SEVERITY = Severity.HIGH


@dataclass(frozen=True)
class MetricChange:
    """One metric of one test, this run against the previous run on the branch."""

    test: str
    name: str
    before: float
    after: float
    spec: MetricSpec

    @property
    def worse_by(self) -> float:
        return self.spec.worse_by(self.before, self.after)

    @property
    def beyond_tolerance(self) -> bool:
        return self.spec.regressed(self.before, self.after)

    @property
    def regressed(self) -> bool:
        """Worse by more than the tolerance, for a metric that gates."""
        return self.spec.gate and self.beyond_tolerance

    @property
    def direction(self) -> str:
        """``better``, ``worse`` or ``unchanged`` (``changed`` for a metric without a direction)."""
        if self.before == self.after:
            return "unchanged"
        if self.spec.better == "none":
            return "changed"
        return "worse" if self.worse_by > 0 else "better"

    def describe(self) -> str:
        tolerance = (f"{self.spec.tolerance:.0%}" if self.spec.relative else f"{self.spec.tolerance:g}")
        return (f"{self.name} of {self.test} {'fell' if self.spec.better == 'higher' else 'rose'} from "
                f"{self.before:.4g} to {self.after:.4g} ({self.spec.better} is better, tolerance {tolerance})")


@dataclass(frozen=True)
class RunSummary:
    """A run with everything the overview shows."""

    run: StoredRun
    previous: StoredRun | None
    findings: tuple[StoredFinding, ...]
    new: frozenset[str]
    fixed: frozenset[str]
    expected: frozenset[str]
    counts: Mapping[tuple[str, str], int]
    metric_changes: tuple[MetricChange, ...]
    gate_reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def gate_passed(self) -> bool:
        return not self.gate_reasons


def metric_changes(store: HistoryStore, run: StoredRun, previous: StoredRun | None,
                   catalog: MetricCatalog = DEFAULT_CATALOG) -> list[MetricChange]:
    """Every metric recorded by the same test in both runs."""
    if previous is None:
        return []
    before, after = store.run_metrics(previous.id), store.run_metrics(run.id)
    return [MetricChange(test, name, before[(test, name)], value, catalog.spec(name))
            for (test, name), value in sorted(after.items()) if (test, name) in before]


def summarize(store: HistoryStore, run: StoredRun, *, catalog: MetricCatalog = DEFAULT_CATALOG,
              triaged: Mapping[str, TriageDecision] | None = None) -> RunSummary:
    """Counts per module and severity, new and fixed findings, metric regressions and the gate verdict.

    The gate fails when a new finding of high or critical severity is neither accepted by the baseline,
    triaged, nor expected (raised inside an xfailed or negative test), or when a security metric got worse by
    more than its tolerance since the previous run on the project's branch. Timings and counts are reported,
    never gated, unless the catalog says so.
    """
    findings = store.findings(run.id)
    previous = store.previous(run)
    before = store.fingerprints(previous.id) if previous else set()
    if triaged is None:
        triaged = store.triage(run.info.project)
    expected = frozenset(f.fingerprint for f in findings if f.expected)
    now = {f.fingerprint for f in findings}
    new = frozenset(now - before - expected)
    fixed = frozenset(before - now)
    counts = Counter((f.finding.module, f.finding.severity.value) for f in findings if not f.expected)
    changes = metric_changes(store, run, previous, catalog)
    reasons = [
        f"new {f.finding.severity.value} finding {f.finding.rule_id} in {f.test or f.path}"
        for f in findings
        if f.fingerprint in new and f.finding.severity >= GATE_SEVERITY and not f.accepted
        and f.fingerprint not in triaged
    ]
    reasons += [c.describe() for c in changes if c.regressed]
    notes = [f"{c.describe()}; {c.spec.kind} metrics do not gate" for c in changes
             if c.beyond_tolerance and not c.spec.gate]
    return RunSummary(run, previous, tuple(findings), new, fixed, expected, dict(counts), tuple(changes),
                      tuple(reasons), tuple(notes))


def finding_status(finding: StoredFinding, new: Iterable[str], triaged: Mapping[str, TriageDecision]) -> str:
    """``expected``, ``accepted`` (baseline or triage), ``false positive``, ``new`` or ``open``."""
    decision = triaged.get(finding.fingerprint)
    if decision is not None:
        return "false positive" if decision.status == "false_positive" else "accepted"
    if finding.accepted:
        return "accepted"
    if finding.expected:
        return "expected"
    return "new" if finding.fingerprint in set(new) else "open"
