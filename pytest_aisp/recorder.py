"""Where findings go while a test runs: the current test's record, kept in a context variable.

Every ``evaluate_*``/``scan_*``/``probe_*`` call hands its findings to :func:`record_finding`;
the plugin sets the current record around each test and writes it to the reports afterwards.
Outside pytest there is no current record and recording is a no-op that returns its input.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pytest_aisp.findings import AispFailure, Finding


@dataclass(frozen=True)
class Attachment:
    """A picture or text a module attaches to the running test's HTML report."""

    title: str
    content: bytes
    mime: str = "image/png"


@dataclass
class TestRecord:
    """What one test recorded: its findings, metrics and attachments, in order.

    ``raised`` holds every ``AispFailure`` an ``assert_*`` helper raised in the test: one the test
    caught (``pytest.raises``) marks its findings as expected. ``roots`` are the (prefix, label) pairs
    that make the test's locations stable (its ``tmp_path``; see :mod:`pytest_aisp.identity`), and
    ``in_xfail`` is True in a test marked xfail, where no baseline entry applies.
    """

    nodeid: str
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    raised: list[AispFailure] = field(default_factory=list)
    roots: tuple[tuple[str, str], ...] = ()
    in_xfail: bool = False

    __test__ = False  # not a pytest test class


_current: contextvars.ContextVar[TestRecord | None] = contextvars.ContextVar("aisp_record", default=None)


def current_record() -> TestRecord | None:
    """The record of the running test, or None outside a test."""
    return _current.get()


def current_nodeid() -> str | None:
    """The node id of the running test, or None outside a test."""
    record = _current.get()
    return record.nodeid if record is not None else None


@contextlib.contextmanager
def recording(nodeid: str) -> Iterator[TestRecord]:
    """Make a fresh record current for the duration of one test."""
    record = TestRecord(nodeid=nodeid)
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


def record_finding(finding: Finding) -> Finding:
    """Attach ``finding`` to the running test (JUnit, SARIF, HTML ...) and return it.

    Recording only reports: a test fails through an ``assert_*`` helper. Outside pytest
    this does nothing but return the finding. The same finding recorded twice is kept once.
    """
    record = _current.get()
    if record is not None and finding not in record.findings:
        record.findings.append(finding)
        for name, value in finding.metrics.items():
            record.metrics.setdefault(name, float(value))
    return finding


def record_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Record each of ``findings``; return them as a list."""
    return [record_finding(f) for f in findings]


def note_raised(failure: AispFailure) -> None:
    """Remember that ``failure`` is being raised in the running test (the plugin later tells whether
    the test caught it: then its findings were expected)."""
    record = _current.get()
    if record is not None:
        record.raised.append(failure)


def record_metric(name: str, value: float) -> None:
    """Attach a named number (``robust_acc``, ``attack_success_rate`` ...) to the running test."""
    record = _current.get()
    if record is not None:
        record.metrics[name] = float(value)


def attach(title: str, content: bytes, mime: str = "image/png") -> None:
    """Attach a picture (PNG by default) or other content to the running test's HTML report."""
    record = _current.get()
    if record is not None:
        record.attachments.append(Attachment(title=title, content=bytes(content), mime=mime))
