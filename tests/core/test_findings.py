"""Finding, Severity, errors, recording outside pytest, and backend hints."""

from __future__ import annotations

import contextvars
import dataclasses

import pytest

from pytest_aisp import (
    AispError,
    AispFailure,
    BackendMissing,
    Finding,
    IntegrityFailure,
    InvarianceFailure,
    LLMVulnerability,
    MonitorAlert,
    RobustnessFailure,
    Severity,
    TextRobustnessFailure,
    UnsafeArtifact,
    record_finding,
)
from pytest_aisp.backends import require
from pytest_aisp.findings import max_severity
from pytest_aisp.recorder import current_record, record_metric, recording


def test_severity_order_and_parsing() -> None:
    assert Severity.INFO < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert sorted([Severity.HIGH, Severity.INFO, Severity.CRITICAL])[-1] is Severity.CRITICAL
    assert Severity.parse(" High ") is Severity.HIGH
    with pytest.raises(ValueError, match="use one of: info, low, medium, high, critical"):
        Severity.parse("severe")


def test_finding_is_frozen_and_round_trips() -> None:
    finding = Finding("AISP-SCAN-PICKLE-GLOBAL", "critical", "os.system", "m.pkl:data.pkl",
                      {"opcode": "STACK_GLOBAL", "offset": 12, "raw": b"\x80\x04"}, {"n": 1})
    assert finding.severity is Severity.CRITICAL and finding.module == "scan"
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.message = "x"  # type: ignore[misc]
    data = finding.to_dict()
    assert data["evidence"]["raw"] == "8004"  # bytes become hex, JSON-safe
    assert Finding.from_dict(data).rule_id == finding.rule_id
    assert finding.one_line() == "[critical] AISP-SCAN-PICKLE-GLOBAL: os.system (m.pkl:data.pkl)"
    with pytest.raises(ValueError, match="rule_id"):
        Finding("not an id!", "low", "x")
    assert max_severity([finding, Finding("AISP-X-Y", "low", "x")]) is Severity.CRITICAL
    assert max_severity([]) is None


def test_error_types() -> None:
    for failure in (UnsafeArtifact, RobustnessFailure, LLMVulnerability, TextRobustnessFailure,
                    InvarianceFailure, IntegrityFailure, MonitorAlert):
        assert issubclass(failure, AispFailure) and issubclass(failure, AssertionError)
    assert not issubclass(AispError, AssertionError)
    assert issubclass(BackendMissing, AispError)


def test_recording_outside_pytest_is_a_no_op_that_returns_the_finding() -> None:
    finding = Finding("AISP-LLM-INJECTION", "high", "followed injected instruction", "http://127.0.0.1:1")

    def outside_any_test() -> None:
        assert current_record() is None
        assert record_finding(finding) is finding
        record_metric("asr", 0.5)  # no error without a test

    contextvars.Context().run(outside_any_test)  # a fresh context: no test is running there


def test_recording_inside_a_record_deduplicates() -> None:
    finding = Finding("AISP-LLM-INJECTION", "high", "x", "e", metrics={"asr": 0.25})
    outer = current_record()
    with recording("t.py::test") as record:
        record_finding(finding)
        record_finding(finding)
        record_metric("robust_acc", 0.7)
    assert record.findings == [finding]
    assert record.metrics == {"asr": 0.25, "robust_acc": 0.7}
    assert current_record() is outer


def test_require_names_the_install_line() -> None:
    with pytest.raises(BackendMissing, match=r'pip install "pytest-aisp\[garak\]"'):
        require("surely_not_a_module_aisp", "garak")
    assert require("json", "core").dumps([]) == "[]"
