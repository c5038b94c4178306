"""The session's findings: per test into JUnit properties, report sections and HTML extras; at the end
into SARIF, SonarQube, the aisp JSON report and GitHub annotations (controller only; xdist workers
send theirs through ``workeroutput``)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_aisp import __version__
from pytest_aisp.config import Settings
from pytest_aisp.findings import AispError, Finding, Severity, max_severity, relative_location
from pytest_aisp.recorder import TestRecord
from pytest_aisp.reporters import github
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.sarif import write_sarif
from pytest_aisp.reporters.sonar import write_sonar
from pytest_aisp.verdict import decide

WORKER_KEY = "aisp_entries"
JSON_REPORT_NAME = "aisp-findings.json"
JSON_REPORT_VERSION = 1
SECTION_TITLE = "aisp findings"


@dataclass
class ReportState:
    """What the session collected so far."""

    settings: Settings
    is_worker: bool
    entries: list[ReportedFinding] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JsonReport:
    """What an aisp JSON report holds: every finding entry, each test's outcome and metrics."""

    entries: tuple[ReportedFinding, ...]
    outcomes: dict[str, str]
    metrics: dict[str, dict[str, float]]


STATE_KEY = pytest.StashKey[ReportState]()
OUTCOME_KEY = pytest.StashKey[str]()


def start(config: pytest.Config, settings: Settings) -> None:
    config.stash[STATE_KEY] = ReportState(settings=settings, is_worker=hasattr(config, "workerinput"))


def _state(config: pytest.Config) -> ReportState | None:
    return config.stash.get(STATE_KEY, None)


def note_outcome(item: pytest.Item, report: pytest.TestReport) -> None:
    """Remember what happened to the test (the worst phase wins), for the reports."""
    if report.when == "setup" and report.failed:
        outcome = "error"
    elif hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.when == "call" or report.skipped:
        outcome = report.outcome
    elif report.failed:
        outcome = "error"
    else:
        return
    if item.stash.get(OUTCOME_KEY, "passed") in ("passed", "") or outcome in ("error", "failed"):
        item.stash[OUTCOME_KEY] = outcome


def entries_for(item: pytest.Item, record: TestRecord) -> list[ReportedFinding]:
    """The test's findings as report entries, each marked accepted when the baseline accepts it."""
    verdict = decide(record.findings, nodeid=item.nodeid)
    accepted = {id(f) for f, _ in verdict.accepted}
    path, line0, _ = item.location
    line = line0 + 1 if line0 is not None else None
    outcome = item.stash.get(OUTCOME_KEY, "passed")
    root = item.config.rootpath
    return [
        ReportedFinding(finding=relative_location(f, root), nodeid=item.nodeid, path=path, line=line,
                        accepted=id(f) in accepted, outcome=outcome)
        for f in record.findings
    ]


def user_properties(entries: list[ReportedFinding], metrics: dict[str, float]) -> list[tuple[str, str]]:
    """The JUnit properties of one test: ``aisp.findings``, ``aisp.max_severity``, ``aisp.rule_ids``,
    ``aisp.metric.<name>``."""
    props: list[tuple[str, str]] = []
    if entries:
        findings = [e.finding for e in entries]
        listed = [dict(e.finding.to_dict(), accepted=e.accepted) for e in entries]
        props.append(("aisp.findings", json.dumps(listed, sort_keys=True)))
        props.append(("aisp.max_severity", str(max_severity(findings))))
        props.append(("aisp.rule_ids", ",".join(sorted({f.rule_id for f in findings}))))
    for name, value in sorted(metrics.items()):
        props.append((f"aisp.metric.{name}", f"{value:.6g}"))
    return props


def attach_to_report(item: pytest.Item, report: pytest.TestReport, record: TestRecord) -> None:
    """At teardown: write the test's findings and metrics into its properties and the session."""
    entries = entries_for(item, record)
    props = user_properties(entries, record.metrics)
    item.user_properties.extend(props)
    report.user_properties.extend(props)
    state = _state(item.config)
    if state is not None:
        state.entries.extend(entries)
        state.outcomes[item.nodeid] = item.stash.get(OUTCOME_KEY, "passed")
        if record.metrics:
            state.metrics[item.nodeid] = dict(record.metrics)


def section_text(findings: list[Finding]) -> str:
    return "\n".join(f.one_line() for f in findings) + "\n"


def add_call_section(report: pytest.TestReport, record: TestRecord) -> None:
    if record.findings:
        report.sections.append((SECTION_TITLE, section_text(record.findings)))


def add_html_extras(config: pytest.Config, report: pytest.TestReport, record: TestRecord) -> None:
    """pytest-html extras: a findings table and the pictures modules attached."""
    if not config.pluginmanager.hasplugin("html"):
        return
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - hasplugin said it is there
        return
    items = list(getattr(report, "extras", []))
    if record.findings:
        items.append(extras.html(_findings_table(record.findings)))
    for attachment in record.attachments:
        if attachment.mime == "image/png":
            items.append(extras.png(base64.b64encode(attachment.content).decode("ascii"), attachment.title))
        elif attachment.mime.startswith("text/"):
            items.append(extras.text(attachment.content.decode("utf-8", "replace"), attachment.title))
    report.extras = items


def _findings_table(findings: list[Finding]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(f.severity.value)}</td><td>{html.escape(f.rule_id)}</td>"
        f"<td>{html.escape(f.location)}</td><td>{html.escape(f.message)}</td></tr>"
        for f in findings
    )
    return ("<table class='aisp-findings'><thead><tr><th>severity</th><th>rule</th><th>location</th>"
            f"<th>message</th></tr></thead><tbody>{rows}</tbody></table>")


def merge_worker(node: Any) -> None:
    """xdist controller: add the entries a worker sent in ``workeroutput``."""
    state = _state(node.config)
    payload = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if state is None or not payload:
        return
    data = json.loads(payload)
    state.entries.extend(ReportedFinding.from_dict(e) for e in data["entries"])
    state.outcomes.update(data["outcomes"])
    state.metrics.update(data["metrics"])


def finish(session: pytest.Session) -> None:
    config = session.config
    state = _state(config)
    if state is None:
        return
    if state.is_worker:
        payload = {"entries": [e.to_dict() for e in state.entries], "outcomes": state.outcomes,
                   "metrics": state.metrics}
        config.workeroutput[WORKER_KEY] = json.dumps(payload)  # type: ignore[attr-defined]
        return
    settings = state.settings
    try:
        if settings.sarif:
            path = settings.resolve(settings.sarif)
            write_sarif(path, state.entries)
            state.written.append(f"SARIF {path}")
        if settings.sonar:
            path = settings.resolve(settings.sonar)
            write_sonar(path, state.entries)
            state.written.append(f"SonarQube {path}")
        if settings.report_dir:
            path = settings.resolve(settings.report_dir) / JSON_REPORT_NAME
            write_json_report(path, state)
            state.written.append(f"findings {path}")
        if settings.history:
            _record_history(session, state)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if github.is_github_actions(os.environ) and summary:
            github.append_summary(Path(summary), state.entries)
    except OSError as exc:
        raise AispError(f"could not write an aisp report: {exc}") from exc


def _record_history(session: pytest.Session, state: ReportState) -> None:
    """Record the run into the history when the history policy says so; say where, or why not. A history
    that cannot be written fails the session (nothing else is lost: the other reports are written)."""
    from pytest_aisp.dashboard.history_policy import history_decision
    from pytest_aisp.dashboard.ingest import record_session

    decision = history_decision(state.settings)
    if decision is None:
        return
    if decision.url is None:
        state.notes.append(f"history not recorded into {decision.shown}: {decision.reason}")
        return
    try:
        run_id = record_session(decision.url, state.settings.rootdir, entries=state.entries,
                                outcomes=state.outcomes, metrics=state.metrics)
    except AispError as exc:
        state.notes.append(f"error: history not recorded: {exc}")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return
    state.written.append(f"history run {run_id} into {decision.shown} ({decision.reason})")


def write_json_report(path: Path, state: ReportState) -> None:
    """The aisp JSON report: every entry (accepted ones marked) and every test's outcome."""
    body = {
        "version": JSON_REPORT_VERSION,
        "tool": {"name": "pytest-aisp", "version": __version__},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": state.settings.seed,
        "fail_on": state.settings.fail_on.value,
        "outcomes": state.outcomes,
        "metrics": state.metrics,
        "entries": [e.to_dict() for e in state.entries],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def read_json_report(path: Path) -> JsonReport:
    """An aisp JSON report read back; ``AispError`` when it is not one."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if int(body.get("version", 0)) > JSON_REPORT_VERSION:
            raise AispError(f"{path} was written by a newer pytest-aisp (version {body['version']})")
        return JsonReport(
            entries=tuple(ReportedFinding.from_dict(e) for e in body["entries"]),
            outcomes={str(k): str(v) for k, v in body.get("outcomes", {}).items()},
            metrics={str(t): {str(n): float(v) for n, v in m.items()} for t, m in body.get("metrics", {}).items()},
        )
    except FileNotFoundError:
        raise AispError(f"{path} does not exist; run pytest with --aisp-report-dir first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AispError(f"{path} is not an aisp findings report: {exc}") from None


def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or state.is_worker:
        return
    if github.is_github_actions(os.environ):
        for entry in state.entries:
            if not entry.accepted:
                terminalreporter.write_line(github.annotation(entry))
    if not state.entries and not state.written and not state.notes:
        return
    shown = [e for e in state.entries if not e.accepted]
    counts = Counter(e.finding.severity for e in shown)
    parts = [f"{counts[s]} {s.value}" for s in sorted(Severity, reverse=True) if counts[s]]
    terminalreporter.section("aisp", sep="-")
    accepted = len(state.entries) - len(shown)
    terminalreporter.write_line(
        f"{len(shown)} findings ({', '.join(parts) or 'none'}), {accepted} accepted by the baseline"
    )
    for line in state.written:
        terminalreporter.write_line(f"wrote {line}")
    for line in state.notes:
        terminalreporter.write_line(f"aisp: {line}", yellow=True, bold=True)
