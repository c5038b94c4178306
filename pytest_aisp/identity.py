"""The stable identity of a finding, and the fingerprint every report keys on.

One identity serves SARIF (``partialFingerprints``), ``aisp report merge``, the dashboard history and
the baseline, so a finding is the same finding everywhere and run after run. It is made of:

- the rule id and the test node id (``""`` outside pytest);
- the location, with the parts that change between runs folded: the rootdir prefix, pytest's
  temporary directories (``{tmp_path}``, ``{basetemp}``) and the port of a loopback URL
  (``http://127.0.0.1:{port}/...``, servers started by tests listen on random ports);
- the evidence that tells findings of one rule apart (:data:`IDENTITY_EVIDENCE`: the pickle global,
  the probe, the detector and its signal, the attack and its eps ...);
- the bounds the check was run with (metrics such as ``min_acc``, ``max_auc``: see
  :func:`pytest_aisp.metric_directions.is_bound`).

Measured values, messages and severities are left out: a finding whose number moves stays the same
finding (the baseline compares those separately). Two findings that still share an identity within
one test (the same detector firing twice on one client) are numbered in the order they were
recorded, so each keeps a fingerprint of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_aisp.findings import MAX_EVIDENCE_DEPTH, Finding
from pytest_aisp.metric_directions import is_bound

FINGERPRINT_LENGTH = 32
TMP_PATH_LABEL = "{tmp_path}"
BASETEMP_LABEL = "{basetemp}"
PORT_LABEL = "{port}"

# Evidence keys that say *which* thing a finding is about, not how bad it measured.
IDENTITY_EVIDENCE: tuple[str, ...] = (
    "global", "opcode", "stream", "member", "tensor", "op", "module", "limit",  # scan
    "probe", "family",  # llm
    "detector", "signal", "kinds",  # monitor
    "attack", "norm", "eps", "targeted", "method", "target",  # robust, nlp
    "perturbation", "combination", "modality", "groups",  # multimodal, nlp bias
    "path", "change", "package",  # supply
)

# pytest's default temporary root, as it appears in a location: .../pytest-of-USER/pytest-N[/popen-gwK]
_PYTEST_BASETEMP = re.compile(r"(?:[A-Za-z]:)?[^\s:'\"]*?pytest-of-[^/\\\s]+[/\\]pytest-\d+(?:[/\\]popen-gw\d+)?")
_LOOPBACK_PORT = re.compile(
    r"(?i)\b((?:https?|wss?|grpc)://(?:localhost|127(?:\.\d{1,3}){3}|\[::1\]|0\.0\.0\.0)):\d{1,5}\b"
)


def location_roots(
    rootdir: str | os.PathLike[str] | None = None,
    *,
    tmp_path: str | os.PathLike[str] | None = None,
    basetemp: str | os.PathLike[str] | None = None,
) -> tuple[tuple[str, str], ...]:
    """The (prefix, label) pairs :func:`stable_location` folds, most specific first.

    ``tmp_path`` (the test's own temporary directory) becomes ``{tmp_path}``, ``basetemp`` (the
    session's) ``{basetemp}``, and ``rootdir`` is dropped so the location is relative to it.
    """
    roots: list[tuple[str, str]] = []
    for path, label in ((tmp_path, TMP_PATH_LABEL), (basetemp, BASETEMP_LABEL), (rootdir, "")):
        if not path:
            continue
        for variant in {os.fspath(path), os.fspath(Path(path).resolve())}:
            roots.append((variant.rstrip("/\\"), label))
    roots.sort(key=lambda pair: -len(pair[0]))
    return tuple(roots)


def stable_location(location: str, roots: Sequence[tuple[str, str]] = ()) -> str:
    """``location`` with pytest's temporary directories and the given roots folded into labels.

    ``/tmp/pytest-of-ci/pytest-7/test_swap0/project/model.pt`` is reported as
    ``{tmp_path}/project/model.pt`` when it is the test's ``tmp_path``, and as
    ``{basetemp}/test_swap0/project/model.pt`` otherwise; a path under the rootdir becomes relative.
    """
    if not location:
        return location
    text = location
    for prefix, label in roots:
        if not prefix:
            continue
        for sep in ("/", "\\"):
            text = text.replace(prefix + sep, f"{label}/" if label else "")
        if text == prefix:
            text = label or "."
    return _PYTEST_BASETEMP.sub(BASETEMP_LABEL, text)


def identity_location(location: str) -> str:
    """The location as the identity sees it: also the port of a loopback URL folded to ``{port}``."""
    return _LOOPBACK_PORT.sub(lambda m: f"{m.group(1)}:{PORT_LABEL}", stable_location(location))


def finding_identity(finding: Finding, nodeid: str | None) -> str:
    """The canonical text of ``finding``'s identity in test ``nodeid`` (see the module docstring)."""
    evidence = {key: _stable_value(finding.evidence[key]) for key in IDENTITY_EVIDENCE if key in finding.evidence}
    bounds = {name: _rounded(value) for name, value in sorted(finding.metrics.items()) if is_bound(name)}
    parts = [finding.rule_id, stable_location(nodeid or ""), identity_location(finding.location), evidence, bounds]
    return json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr)


def fingerprint_of(finding: Finding, nodeid: str | None, occurrence: int = 0) -> str:
    """The fingerprint of ``finding`` in test ``nodeid``: a hash of its identity and, after the first
    finding of that identity in the test, its occurrence number."""
    text = finding_identity(finding, nodeid)
    if occurrence:
        text += f"#{occurrence}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


def number_occurrences(pairs: Iterable[tuple[Finding, str | None]]) -> list[str]:
    """Fingerprints for (finding, nodeid) pairs in order, numbering findings that share an identity."""
    seen: dict[str, int] = {}
    fingerprints = []
    for finding, nodeid in pairs:
        identity = finding_identity(finding, nodeid)
        occurrence = seen.get(identity, 0)
        seen[identity] = occurrence + 1
        fingerprints.append(fingerprint_of(finding, nodeid, occurrence))
    return fingerprints


def _stable_value(value: Any, depth: int = 0) -> Any:
    if depth > MAX_EVIDENCE_DEPTH:
        return "<cut>"
    if isinstance(value, str):
        return identity_location(value)
    if isinstance(value, float):
        return _rounded(value)
    if isinstance(value, Mapping):
        return {str(k): _stable_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable_value(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int)):
        return value
    return repr(value)[:200]


def _rounded(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return float(f"{number:.6g}") if math.isfinite(number) else str(number)
