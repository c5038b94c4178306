"""Findings, severities and the error types every module raises."""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import os
import re
import reprlib
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
        """A JSON-ready dict (severity as its name).

        Evidence nested deeper than ``MAX_EVIDENCE_DEPTH`` is cut with a marker; a metric that is
        not a finite number (NaN, infinity) is written as the string ``"nan"``, ``"inf"`` or
        ``"-inf"``, since JSON has no such numbers.
        """
        return {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "message": self.message,
            "location": self.location,
            "evidence": _jsonable(self.evidence),
            "metrics": {str(k): metric_to_json(v) for k, v in self.metrics.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """The inverse of :meth:`to_dict`; ``ValueError`` naming the field when ``data`` is not a finding."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a finding must be an object, got {_kind(data)}")
        for key in ("rule_id", "severity"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"a finding needs '{key}' as a string, got {_kind(data.get(key))}")
        for key in ("message", "location"):
            if not isinstance(data.get(key, ""), str):
                raise ValueError(f"a finding's '{key}' must be a string, got {_kind(data.get(key))}")
        evidence = data.get("evidence") or {}
        metrics = data.get("metrics") or {}
        if not isinstance(evidence, Mapping):
            raise ValueError(f"a finding's 'evidence' must be an object, got {_kind(evidence)}")
        if not isinstance(metrics, Mapping):
            raise ValueError(f"a finding's 'metrics' must be an object, got {_kind(metrics)}")
        return cls(
            rule_id=data["rule_id"],
            severity=Severity.parse(data["severity"]),
            message=data.get("message", ""),
            location=data.get("location", ""),
            evidence=dict(evidence),
            metrics={str(k): metric_from_json(k, v) for k, v in metrics.items()},
        )

    def one_line(self) -> str:
        """``[high] AISP-X: message (location)``, for failure messages and terminals.

        Control characters (terminal escape sequences, carriage returns, newlines) from names read
        out of files are shown escaped, so they cannot rewrite the terminal.
        """
        where = f" ({self.location})" if self.location else ""
        return escape_control(f"[{self.severity.value}] {self.rule_id}: {self.message}{where}", keep_newlines=False)


MAX_EVIDENCE_DEPTH = 32
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def metric_to_json(value: float) -> float | str:
    """A metric as JSON: the number, or ``"nan"``/``"inf"``/``"-inf"`` (JSON has no such numbers)."""
    number = float(value)
    if math.isfinite(number):
        return number
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


def metric_from_json(name: Any, value: Any) -> float:
    """The inverse of :func:`metric_to_json`; ``ValueError`` naming the metric for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"metric {name!r} must be a number, got {_kind(value)}")
    if isinstance(value, str):
        if value.strip().lower() in _NON_FINITE:
            return _NON_FINITE[value.strip().lower()]
        raise ValueError(f"metric {name!r} must be a number, got the string {value[:40]!r}")
    return float(value)


def _kind(value: Any) -> str:
    """How a bad value is named in an error: its JSON type and a short preview."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return f"{names.get(type(value), type(value).__name__)} {reprlib.repr(value)[:40]}"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Evidence as JSON types (numpy scalars, bytes, tuples ...), cut below ``MAX_EVIDENCE_DEPTH`` levels.

    Non-finite floats become strings (JSON has no NaN); anything else unknown becomes its repr.
    """
    if depth > MAX_EVIDENCE_DEPTH:
        return f"<nested deeper than {MAX_EVIDENCE_DEPTH} levels: cut>"
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else metric_to_json(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v, depth + 1) for v in items]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:256]).hex()
    if hasattr(value, "tolist"):
        try:
            return _jsonable(value.tolist(), depth + 1)
        except (TypeError, ValueError):
            pass
    return repr(value)[:1000]


# C0 and C1 control characters, DEL, and the Unicode bidi overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with control characters shown as escapes (``ESC`` -> ``\\x1b``), for text outputs.

    A name read from a file (a pickle global, a zip member) can hold terminal escape sequences
    that erase or rewrite lines; printed raw they could hide a finding. Newlines and tabs are kept
    unless ``keep_newlines`` is False.
    """

    def escape(match: re.Match[str]) -> str:
        char = match.group(0)
        if keep_newlines and char in "\n\t":
            return char
        if char in _NAMED_ESCAPES:
            return _NAMED_ESCAPES[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROL.sub(escape, str(text))


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
