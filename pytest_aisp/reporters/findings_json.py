"""``aisp-findings.json``: every finding of a run with its test, outcome, fingerprint and flags.

It is the input of ``aisp baseline update`` and ``aisp history ingest``, and users script against it;
its JSON Schema is published as ``docs/schemas/aisp-findings.schema.json``. Version 2 added each
entry's ``fingerprint``, ``expected`` and ``expected_reason``; version 1 files are still read (their
fingerprints are computed on reading).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, metric_from_json, metric_to_json
from pytest_aisp.reporters.entries import ReportedFinding, with_fingerprints

JSON_REPORT_NAME = "aisp-findings.json"
JSON_REPORT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class JsonReport:
    """What an aisp JSON report holds: every finding entry, each test's outcome and metrics."""

    entries: tuple[ReportedFinding, ...]
    outcomes: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seed: int | None = None
    fail_on: str | None = None


def report_body(report: JsonReport, *, tool_version: str) -> dict[str, Any]:
    """The JSON document of ``report`` (the current version)."""
    return {
        "version": JSON_REPORT_VERSION,
        "tool": {"name": "pytest-aisp", "version": tool_version},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": report.seed,
        "fail_on": report.fail_on,
        "outcomes": dict(report.outcomes),
        "metrics": {test: {name: metric_to_json(v) for name, v in values.items()}
                    for test, values in report.metrics.items()},
        "entries": [e.to_dict() for e in with_fingerprints(report.entries)],
    }


def write_json_report(path: Path, report: JsonReport, *, tool_version: str) -> None:
    """Write ``report`` to ``path`` (parents created); ``AispError`` saying why it could not be written."""
    write_text_file(path, json_text(report_body(report, tool_version=tool_version)), what="the aisp findings report")


def json_text(document: Any) -> str:
    """``document`` as strict JSON text (indented, newline-terminated): a NaN or infinity anywhere in it,
    which JSON cannot hold, is written as the string ``"nan"``, ``"inf"`` or ``"-inf"``."""
    try:
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    except ValueError:
        return json.dumps(_finite(document), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return metric_to_json(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_text_file(path: Path, text: str, *, what: str, create_folders: bool = True) -> None:
    """Write ``text`` to ``path``; ``AispError`` naming ``what`` and the problem. Report files of a pytest
    run get their folder made (``reports/`` in CI, as ``--junitxml`` does); a file a user names on the
    command line (``create_folders=False``) must go into a folder that exists, so a typo creates nothing."""
    if path.is_dir():
        raise AispError(f"cannot write {what} to {path}: it is a directory; give a file name")
    blocking = next((folder for folder in path.parents if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        raise AispError(f"cannot write {what} to {path}: {blocking} is a file, not a folder")
    if not create_folders and not path.parent.is_dir():
        raise AispError(f"cannot write {what} to {path}: the folder {path.parent} does not exist; create it first")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise AispError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None


def load_json_file(path: Path, *, what: str) -> Any:
    """The JSON in ``path``; ``AispError`` saying what is wrong with it (missing, a folder, not UTF-8,
    not JSON, nested too deeply)."""
    if path.is_dir():
        raise AispError(f"{what} {path} is a directory, not a file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AispError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise AispError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AispError(f"{what} {path} is not UTF-8 text (byte {exc.start}); is it a binary file?") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AispError(f"{what} {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise AispError(f"{what} {path} nests objects or lists too deeply to read") from None


def read_json_report(path: Path) -> JsonReport:
    """An aisp JSON report read back; ``AispError`` naming the file and what is wrong with it."""
    if not path.exists():
        raise AispError(f"{path} does not exist; run pytest with --aisp-report-dir first")
    body = load_json_file(path, what="aisp findings report")
    try:
        return parse_json_report(body)
    except ValueError as exc:
        raise AispError(f"{path} is not an aisp findings report: {exc}") from None


def parse_json_report(body: Any) -> JsonReport:
    """A report from its parsed JSON; ``ValueError`` saying which part is wrong."""
    if not isinstance(body, Mapping):
        raise ValueError(f"expected a JSON object with 'version' and 'entries', got {_what(body)}")
    version = body.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"'version' must be an integer, got {version!r:.40}")
    if version > JSON_REPORT_VERSION:
        raise ValueError(f"it has version {version}, written by a newer pytest-aisp; this one reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    if version not in READABLE_VERSIONS:
        raise ValueError(f"unknown version {version}")
    raw_entries = body.get("entries")
    if not isinstance(raw_entries, list):
        raise ValueError(f"'entries' must be a list, got {_what(raw_entries)}")
    entries = []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(ReportedFinding.from_dict(raw))
        except ValueError as exc:
            raise ValueError(f"entry {index}: {exc}") from None
    outcomes = _string_map(body.get("outcomes", {}), "outcomes")
    metrics_raw = body.get("metrics", {})
    if not isinstance(metrics_raw, Mapping):
        raise ValueError(f"'metrics' must be an object of tests, got {_what(metrics_raw)}")
    metrics: dict[str, dict[str, float]] = {}
    for test, values in metrics_raw.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"'metrics' of test {test!r:.80} must be an object, got {_what(values)}")
        metrics[str(test)] = {str(name): metric_from_json(name, v) for name, v in values.items()}
    seed = body.get("seed")
    fail_on = body.get("fail_on")
    return JsonReport(
        entries=tuple(with_fingerprints(entries)),
        outcomes=outcomes,
        metrics=metrics,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        fail_on=fail_on if isinstance(fail_on, str) else None,
    )


def _string_map(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"'{name}' must be an object, got {_what(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValueError(f"'{name}' of {key!r:.80} must be a string, got {_what(item)}")
    return {str(k): v for k, v in value.items()}


def _what(value: Any) -> str:
    kinds: Mapping[type, str] = {dict: "an object", list: "a list", str: "a string", int: "a number",
                                 float: "a number", bool: "a boolean", type(None): "null"}
    return f"{kinds.get(type(value), type(value).__name__)} {reprlib.repr(value)[:40]}"
