"""Findings, severities and the error types every module raises."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@functools.total_ordering
class Severity(enum.Enum):
    """How bad a finding is, ordered ``info < low < medium < high < critical``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Return the severity named by ``value``; raise ``ValueError`` naming the allowed names."""
        if isinstance(value, Severity):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r}; use one of: {allowed}") from None

    def __str__(self) -> str:
        return self.value


_RANKS = {s: i for i, s in enumerate(Severity)}
SEVERITY_NAMES: tuple[str, ...] = tuple(s.value for s in Severity)


@dataclass(frozen=True)
class Finding:
    """One security finding: what rule fired, how bad, where, and the evidence for it.

    ``location`` starts with the artifact path or endpoint; a member follows a colon
    (``model.pt:archive/data.pkl``). ``evidence`` is a small JSON-able dict, ``metrics``
    holds numbers (robust accuracy, attack success rate ...).
    """

    rule_id: str
    severity: Severity
    message: str
    location: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rule_id or not self.rule_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"rule_id must be an id such as AISP-SCAN-PICKLE-GLOBAL, got {self.rule_id!r}")
        object.__setattr__(self, "severity", Severity.parse(self.severity))

    @property
    def module(self) -> str:
        """The module part of the rule id (``SCAN`` for ``AISP-SCAN-...``), lower-cased."""
        parts = self.rule_id.split("-")
        return parts[1].lower() if len(parts) > 2 and parts[0] == "AISP" else "other"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (severity as its name)."""
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "message": self.message,
            "location": self.location,
            "evidence": _jsonable(self.evidence),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_dict`."""
        return cls(
            rule_id=str(data["rule_id"]),
            severity=Severity.parse(data["severity"]),
            message=str(data.get("message", "")),
            location=str(data.get("location", "")),
            evidence=dict(data.get("evidence") or {}),
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
        )

    def one_line(self) -> str:
        """``[high] AISP-X: message (location)``, for failure messages and terminals."""
        where = f" ({self.location})" if self.location else ""
        return f"[{self.severity.value}] {self.rule_id}: {self.message}{where}"


def _jsonable(value: Any) -> Any:
    """Best-effort conversion of evidence to JSON types (numpy scalars, bytes, tuples ...)."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value[:256].hex()
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def relative_location(finding: Finding, root: str | os.PathLike[str] | None) -> Finding:
    """``finding`` with its location made relative to ``root`` when it lies under it.

    Reports and baselines key on locations: an absolute checkout path would differ between CI agents.
    """
    if not root or not finding.location:
        return finding
    prefix = os.fspath(root).rstrip(os.sep) + os.sep
    if not finding.location.startswith(prefix):
        return finding
    return dataclasses.replace(finding, location=finding.location[len(prefix):])


def max_severity(findings: list[Finding] | tuple[Finding, ...]) -> Severity | None:
    """The highest severity among ``findings``, or None when there are none."""
    return max((f.severity for f in findings), default=None)


# --- errors -----------------------------------------------------------------------------------


class AispError(Exception):
    """An infrastructure problem: an endpoint down, a file unreadable, bad input, a backend missing.

    It is not an ``AssertionError``: a test that hits it errors instead of failing, and
    ``xfail(raises=SomeAispFailure)`` does not hide it.
    """


class BackendMissing(AispError):
    """An optional backend is not installed; the message names the install line."""

    def __init__(self, module: str, extra: str, hint: str = "") -> None:
        self.module = module
        self.extra = extra
        line = f'pip install "pytest-aisp[{extra}]"' if extra else f"pip install {module}"
        text = f"{module} is not installed; install it with: {line}"
        super().__init__(f"{text}. {hint}" if hint else text)


class AispFailure(AssertionError):
    """A security check failed: the model, artifact or endpoint has the weakness tested for.

    ``result`` is the evaluate/scan/probe result that led to the failure; ``findings`` the
    findings that failed the test (not baselined, at or above the fail-on severity).
    """

    def __init__(self, message: str, *, result: Any = None, findings: tuple[Finding, ...] = ()) -> None:
        super().__init__(message)
        self.result = result
        self.findings = tuple(findings)


class UnsafeArtifact(AispFailure):
    """A serialized model or artifact carries unsafe code or payloads."""


class RobustnessFailure(AispFailure):
    """A model's accuracy under attack (evasion, poisoning, extraction, membership) is below the bound."""


class LLMVulnerability(AispFailure):
    """An LLM endpoint fell for an injection, jailbreak, leak or produced insecure output."""


class TextRobustnessFailure(AispFailure):
    """A text classifier is fooled by adversarial edits, or is biased."""


class InvarianceFailure(AispFailure):
    """A model's prediction changes under a perturbation it should be invariant to."""


class IntegrityFailure(AispFailure):
    """An artifact, manifest, signature or provenance record does not verify."""


class MonitorAlert(AispFailure):
    """A runtime monitor raised alerts where none were expected (or missed expected ones)."""
