"""What the dashboard shows of a run: counts, new vs fixed findings, metric changes and the gate verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
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
    finding_count: int
    new: int
    fixed: int
    expected: int
    counts: Mapping[tuple[str, str], int]
    metric_changes: tuple[MetricChange, ...]
    gate_reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def gate_passed(self) -> bool:
        return not self.gate_reasons


def metric_changes(before: Mapping[tuple[str, str], float], after: Mapping[tuple[str, str], float],
                   catalog: MetricCatalog = DEFAULT_CATALOG) -> list[MetricChange]:
    """Every metric recorded by the same test in both runs."""
    return [MetricChange(test, name, before[(test, name)], value, catalog.spec(name))
            for (test, name), value in sorted(after.items()) if (test, name) in before]


def summarize_runs(store: HistoryStore, runs: Sequence[StoredRun], *, catalog: MetricCatalog = DEFAULT_CATALOG
                   ) -> list[RunSummary]:
    """The summary of each run, in the same order, from a fixed number of queries however many runs.

    The gate fails when a new finding of high or critical severity is neither accepted by the baseline,
    triaged in the run's project, nor expected (raised inside an xfailed or negative test), or when a security
    metric got worse by more than its tolerance since the previous run on the project's branch. Timings and
    counts are reported, never gated, unless the catalog says so.
    """
    if not runs:
        return []
    previous_ids = store.previous_ids(runs)
    previous_runs = store.runs_by_id(p for p in previous_ids.values() if p is not None)
    keys = store.finding_keys([*(run.id for run in runs), *previous_runs])
    triaged = store.triaged(run.info.project for run in runs)
    metrics = store.metrics_of([*(run.id for run in runs), *previous_runs])
    summaries = []
    for run in runs:
        previous_id = previous_ids.get(run.id)
        previous = previous_runs.get(previous_id) if previous_id is not None else None
        before = {k.fingerprint for k in keys[previous.id]} if previous is not None else set()
        findings = keys[run.id]
        new = [k for k in findings if k.fingerprint not in before and not k.expected]
        kept = sum(1 for k in findings if k.fingerprint in before)
        counts = Counter((k.module, k.severity) for k in findings if not k.expected)
        reasons = [f"new {k.severity} finding {k.rule_id} in {k.test or k.path}"
                   for k in sorted(new, key=lambda k: (k.rule_id, k.test))
                   if Severity.parse(k.severity) >= GATE_SEVERITY and not k.accepted
                   and (run.info.project, k.fingerprint) not in triaged]
        changes = metric_changes(metrics[previous.id], metrics[run.id], catalog) if previous is not None else []
        reasons += [c.describe() for c in changes if c.regressed]
        notes = [f"{c.describe()}; {c.spec.kind} metrics do not gate" for c in changes
                 if c.beyond_tolerance and not c.spec.gate]
        summaries.append(RunSummary(
            run, previous, run.finding_count, len(new), len(before) - kept if previous is not None else 0,
            sum(1 for k in findings if k.expected), dict(counts), tuple(changes), tuple(reasons), tuple(notes)))
    return summaries


def summarize(store: HistoryStore, run: StoredRun, *, catalog: MetricCatalog = DEFAULT_CATALOG) -> RunSummary:
    """Counts per module and severity, new and fixed findings, metric changes and the gate verdict of one run
    (see :func:`summarize_runs`)."""
    return summarize_runs(store, [run], catalog=catalog)[0]


def new_fingerprints(store: HistoryStore, run: StoredRun, findings: Iterable[StoredFinding]) -> frozenset[str]:
    """Fingerprints of ``findings`` (of ``run``) that the previous run on the branch did not have."""
    previous = store.previous(run)
    before = store.fingerprints(previous.id) if previous else set()
    return frozenset(f.fingerprint for f in findings if f.fingerprint not in before and not f.expected)


def finding_status(finding: StoredFinding, new: Iterable[str], triaged: Mapping[str, TriageDecision]) -> str:
    """``expected``, ``accepted`` (baseline or triage), ``false positive``, ``new`` or ``open``."""
    decision = triaged.get(finding.fingerprint)
    if decision is not None:
        return "false positive" if decision.status == "false_positive" else "accepted"
    if finding.accepted:
        return "accepted"
    if finding.expected:
        return "expected"
    return "new" if finding.fingerprint in new else "open"
