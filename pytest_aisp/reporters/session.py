"""The session's findings: per test into JUnit properties, report sections and HTML extras; at the end
into SARIF, SonarQube, the aisp JSON report, the static HTML report and GitHub annotations (controller
only; xdist workers send theirs through ``workeroutput``).

Every finding is reported with its stable location (relative to the rootdir; the test's ``tmp_path``
and pytest's temporary root folded to ``{tmp_path}``/``{basetemp}``), its fingerprint, and whether it
was expected: raised in an xfailed test, carried by an ``AispFailure`` the test caught, or recorded in
a passing test marked ``aisp_negative``.
"""

from __future__ import annotations

import base64
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
from pytest_aisp.findings import AispError, Finding, Severity, escape_control, max_severity
from pytest_aisp.identity import location_roots, number_occurrences
from pytest_aisp.recorder import Attachment, TestRecord
from pytest_aisp.reporters import github
from pytest_aisp.reporters.entries import ReportedFinding, fingerprint
from pytest_aisp.reporters.findings_json import JSON_REPORT_NAME, JsonReport, write_json_report
from pytest_aisp.reporters.html_report import HtmlReport, write_html_report
from pytest_aisp.reporters.sarif import write_sarif
from pytest_aisp.reporters.sonar import write_sonar
from pytest_aisp.verdict import active_policy, decide, stable_finding

__all__ = ["JSON_REPORT_NAME", "NEGATIVE_MARKER", "ReportState"]

WORKER_KEY = "aisp_entries"
SECTION_TITLE = "aisp findings"
NEGATIVE_MARKER = "aisp_negative"
EXPECTED_XFAIL, EXPECTED_CAUGHT, EXPECTED_MARKER = "xfail", "caught", "marker"


@dataclass
class ReportState:
    """What the session collected so far."""

    settings: Settings
    is_worker: bool
    entries: list[ReportedFinding] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    attachments: dict[str, list[Attachment]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


STATE_KEY = pytest.StashKey[ReportState]()
OUTCOME_KEY = pytest.StashKey[str]()
ESCAPED_KEY = pytest.StashKey[BaseException | None]()


def start(config: pytest.Config, settings: Settings) -> None:
    config.stash[STATE_KEY] = ReportState(settings=settings, is_worker=hasattr(config, "workerinput"))


def _state(config: pytest.Config) -> ReportState | None:
    return config.stash.get(STATE_KEY, None)


def basetemp(config: pytest.Config) -> Path | None:
    """pytest's temporary root for this process, when one was given or made (None before that)."""
    given = config.getoption("basetemp", None)
    if given:
        return Path(given).absolute()
    factory = getattr(config, "_tmp_path_factory", None)
    made = getattr(factory, "_basetemp", None)
    return Path(made) if made else None


def prepare_call(item: pytest.Item, record: TestRecord) -> None:
    """Before the test body runs: the roots that make its locations stable, and whether it is an xfail."""
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    record.roots = location_roots(tmp_path=tmp_path, basetemp=basetemp(item.config))
    record.in_xfail = _expects_failure(item)


def _expects_failure(item: pytest.Item) -> bool:
    """True when pytest evaluated an xfail marker of ``item`` as active (its condition held)."""
    try:
        from _pytest.skipping import xfailed_key
    except ImportError:  # pragma: no cover - pytest moved it; fall back on the marker itself
        return item.get_closest_marker("xfail") is not None
    xfailed = item.stash.get(xfailed_key, None)
    return xfailed is not None and not item.config.option.runxfail


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


def note_call(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Remember the exception that escaped the test body (a caught AispFailure did not)."""
    item.stash[ESCAPED_KEY] = call.excinfo.value if call.excinfo is not None else None


def stable_findings(item: pytest.Item, record: TestRecord) -> list[Finding]:
    """The test's findings with stable locations, as every report shows them."""
    roots = active_policy().roots(record.roots)
    return [stable_finding(f, roots) for f in record.findings]


def expected_reasons(item: pytest.Item, record: TestRecord, outcome: str) -> list[str]:
    """For each of the test's findings: why it was expected (``xfail``, ``caught``, ``marker``) or ``""``."""
    if outcome == "xfailed":
        return [EXPECTED_XFAIL] * len(record.findings)
    escaped = item.stash.get(ESCAPED_KEY, None)
    caught: list[Finding] = [f for failure in record.raised if failure is not escaped for f in failure.findings]
    negative = outcome == "passed" and item.get_closest_marker(NEGATIVE_MARKER) is not None
    reasons = []
    for finding in record.findings:
        if finding in caught:
            reasons.append(EXPECTED_CAUGHT)
        elif negative:
            reasons.append(EXPECTED_MARKER)
        else:
            reasons.append("")
    return reasons


def entries_for(item: pytest.Item, record: TestRecord) -> list[ReportedFinding]:
    """The test's findings as report entries: stable locations, fingerprints, accepted and expected flags."""
    verdict = decide(record.findings, nodeid=item.nodeid)
    accepted = {id(f) for f, _ in verdict.accepted}
    path, line0, _ = item.location
    line = line0 + 1 if line0 is not None else None
    outcome = item.stash.get(OUTCOME_KEY, "passed")
    stable = stable_findings(item, record)
    fingerprints = number_occurrences((f, item.nodeid) for f in stable)
    reasons = expected_reasons(item, record, outcome)
    return [
        ReportedFinding(finding=shown, nodeid=item.nodeid, path=path, line=line,
                        accepted=id(raw) in accepted and not reason, outcome=outcome, fingerprint=key,
                        expected=reason)
        for raw, shown, key, reason in zip(record.findings, stable, fingerprints, reasons)
    ]


def user_properties(entries: list[ReportedFinding], metrics: dict[str, float]) -> list[tuple[str, str]]:
    """The JUnit properties of one test: ``aisp.findings``, ``aisp.max_severity``, ``aisp.rule_ids``,
    ``aisp.expected_findings``, ``aisp.metric.<name>``."""
    props: list[tuple[str, str]] = []
    if entries:
        findings = [e.finding for e in entries]
        listed = [dict(e.finding.to_dict(), accepted=e.accepted, expected=e.expected or None,
                       fingerprint=fingerprint(e)) for e in entries]
        props.append(("aisp.findings", json.dumps(listed, sort_keys=True, allow_nan=False)))
        props.append(("aisp.max_severity", str(max_severity(findings))))
        props.append(("aisp.rule_ids", ",".join(sorted({f.rule_id for f in findings}))))
        expected = sum(1 for e in entries if e.is_expected)
        if expected:
            props.append(("aisp.expected_findings", str(expected)))
    for name, value in sorted(metrics.items()):
        props.append((f"aisp.metric.{name}", f"{value:.6g}"))
    return props


def attach_to_report(item: pytest.Item, report: pytest.TestReport, record: TestRecord) -> None:
    """At teardown: write the test's findings and metrics into its properties and the session."""
    entries = entries_for(item, record)
    state = _state(item.config)
    if state is None or state.settings.junit_properties == "testcase":
        props = user_properties(entries, record.metrics)
        item.user_properties.extend(props)
        report.user_properties.extend(props)
    if state is not None:
        state.entries.extend(entries)
        state.outcomes[item.nodeid] = item.stash.get(OUTCOME_KEY, "passed")
        if record.metrics:
            state.metrics[item.nodeid] = dict(record.metrics)
        if record.attachments:
            state.attachments[item.nodeid] = list(record.attachments)


def section_text(findings: list[Finding]) -> str:
    return "\n".join(f.one_line() for f in findings) + "\n"


def add_call_section(item: pytest.Item, report: pytest.TestReport, record: TestRecord) -> None:
    if record.findings:
        report.sections.append((SECTION_TITLE, section_text(stable_findings(item, record))))


def add_html_extras(item: pytest.Item, report: pytest.TestReport, record: TestRecord) -> None:
    """pytest-html extras: a findings table (the same stable locations as SARIF) and the pictures."""
    if not item.config.pluginmanager.hasplugin("html"):
        return
    try:
        from pytest_html import extras
    except ImportError:  # pragma: no cover - hasplugin said it is there
        return
    items = list(getattr(report, "extras", []))
    if record.findings:
        items.append(extras.html(_findings_table(stable_findings(item, record))))
    for attachment in record.attachments:
        if attachment.mime == "image/png":
            items.append(extras.png(base64.b64encode(attachment.content).decode("ascii"), attachment.title))
        elif attachment.mime.startswith("text/"):
            items.append(extras.text(attachment.content.decode("utf-8", "replace"), attachment.title))
    report.extras = items


def _findings_table(findings: list[Finding]) -> str:
    def cell(text: str) -> str:
        return html.escape(escape_control(text))

    rows = "".join(
        f"<tr><td>{cell(f.severity.value)}</td><td>{cell(f.rule_id)}</td>"
        f"<td>{cell(f.location)}</td><td>{cell(f.message)}</td></tr>"
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
    for test, items in data.get("attachments", {}).items():
        state.attachments[test] = [Attachment(a["title"], base64.b64decode(a["content"]), a["mime"]) for a in items]


def finish(session: pytest.Session) -> None:
    """Write every report; a report that cannot be written is an error that fails the run (exit 4)."""
    state = _state(session.config)
    if state is None:
        return
    try:
        _write_reports(session.config, state)
    except AispError as exc:
        state.errors.append(str(exc))
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def _write_reports(config: pytest.Config, state: ReportState) -> None:
    if state.is_worker:
        payload = {
            "entries": [e.to_dict() for e in state.entries], "outcomes": state.outcomes, "metrics": state.metrics,
            "attachments": {test: [{"title": a.title, "mime": a.mime,
                                    "content": base64.b64encode(a.content).decode("ascii")} for a in items]
                            for test, items in state.attachments.items()},
        }
        config.workeroutput[WORKER_KEY] = json.dumps(payload)  # type: ignore[attr-defined]
        return
    settings = state.settings
    if settings.junit_properties == "testsuite":
        _suite_properties(config, state)
    expected = settings.expected_findings
    if settings.sarif:
        path = settings.resolve(settings.sarif)
        write_sarif(path, state.entries, expected=expected)
        state.written.append(f"SARIF {path}")
    if settings.sonar:
        path = settings.resolve(settings.sonar)
        write_sonar(path, state.entries, expected=expected)
        state.written.append(f"SonarQube {path}")
    if settings.report_dir:
        path = settings.resolve(settings.report_dir) / JSON_REPORT_NAME
        write_json_report(path, json_report(state), tool_version=__version__)
        state.written.append(f"findings {path}")
    if settings.html:
        path = settings.resolve(settings.html)
        write_html_report(path, HtmlReport(
            entries=state.entries, outcomes=state.outcomes, metrics=state.metrics, attachments=state.attachments,
            subtitle=f"pytest-aisp {__version__}, fail-on {settings.fail_on.value}, seed {settings.seed}"))
        state.written.append(f"HTML {path}")
    if settings.history:
        _record_history(state)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if github.is_github_actions(os.environ) and summary:
        try:
            github.append_summary(Path(summary), state.entries)
        except OSError as exc:
            raise AispError(f"cannot append the job summary to {summary}: {exc.strerror or exc}") from None


def json_report(state: ReportState) -> JsonReport:
    return JsonReport(entries=tuple(state.entries), outcomes=dict(state.outcomes), metrics=dict(state.metrics),
                      seed=state.settings.seed, fail_on=state.settings.fail_on.value)


def _record_history(state: ReportState) -> None:
    """Record the run into the history when the history policy says so; say where, or why not. A history
    that cannot be written raises ``AispError``, which fails the session (the other reports are written)."""
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
        raise AispError(f"history not recorded into {decision.shown}: {exc}") from None
    state.written.append(f"history run {run_id} into {decision.shown} ({decision.reason})")


def _suite_properties(config: pytest.Config, state: ReportState) -> None:
    """``junit_properties = testsuite``: every test's aisp properties as ``aisp.<nodeid>.<name>`` properties
    of the test suite, where the strict junit-10.xsd allows them (Jenkins' JUnit plugin does not show these)."""
    xml = _junit_xml(config)
    if xml is None:
        return
    by_test: dict[str, list[ReportedFinding]] = {}
    for entry in state.entries:
        by_test.setdefault(entry.nodeid or "", []).append(entry)
    for test in sorted(set(by_test) | set(state.metrics)):
        for name, value in user_properties(by_test.get(test, []), state.metrics.get(test, {})):
            xml.add_global_property(f"aisp.{test}.{name.removeprefix('aisp.')}", value)


def _junit_xml(config: pytest.Config) -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest moved it
        return None
    return config.stash.get(xml_key, None)


def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or state.is_worker:
        return
    if github.is_github_actions(os.environ):
        for line in github.annotations(state.entries, state.settings.expected_findings):
            terminalreporter.write_line(line)
    for error in state.errors:
        terminalreporter.write_line(escape_control(f"aisp: error: {error}"), red=True, bold=True)
    if not state.entries and not state.written and not state.notes:
        return
    shown = [e for e in state.entries if not e.accepted and not e.is_expected]
    counts = Counter(e.finding.severity for e in shown)
    parts = [f"{counts[s]} {s.value}" for s in sorted(Severity, reverse=True) if counts[s]]
    terminalreporter.section("aisp", sep="-")
    accepted = sum(1 for e in state.entries if e.accepted)
    expected = sum(1 for e in state.entries if e.is_expected and not e.accepted)
    terminalreporter.write_line(
        f"{len(shown)} findings ({', '.join(parts) or 'none'}), {accepted} accepted by the baseline, "
        f"{expected} expected (xfailed or negative tests)"
    )
    for line in state.written:
        terminalreporter.write_line(escape_control(f"wrote {line}"))
    for line in state.notes:
        terminalreporter.write_line(escape_control(f"aisp: {line}"), yellow=True, bold=True)
