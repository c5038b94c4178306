"""Turn a session's findings or report folders into a ``RunRecord`` for the history."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_aisp.dashboard.store import RunInfo, RunRecord
from pytest_aisp.findings import AispError, Finding, Severity
from pytest_aisp.reporters.entries import ReportedFinding
from pytest_aisp.reporters.findings_json import JSON_REPORT_NAME, read_json_report
from pytest_aisp.reporters.sarif import FINGERPRINT_KEY

# CI variables naming one pipeline run: every shard of the run shares them, so shards land as one run.
RUN_KEY_VARIABLES = ("AISP_RUN_ID", "GITHUB_RUN_ID", "BUILD_TAG", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID")
BUILD_URL_VARIABLES = ("BUILD_URL", "CI_PIPELINE_URL", "BUILDKITE_BUILD_URL")
# CI variables naming the repository, as "owner/name" or as a clone URL.
PROJECT_VARIABLES = ("GITHUB_REPOSITORY", "CI_PROJECT_PATH", "BITBUCKET_REPO_FULL_NAME", "BUILD_REPOSITORY_NAME")
PROJECT_URL_VARIABLES = ("GIT_URL", "BUILDKITE_REPO", "CI_REPOSITORY_URL")


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def project_from_url(url: str) -> str:
    """``owner/name`` of a clone URL (https, ssh or scp-like); credentials and host are dropped."""
    text = url.strip().rstrip("/")
    if "://" in text:
        path = text.split("://", 1)[1].split("/", 1)[1] if "/" in text.split("://", 1)[1] else ""
    elif ":" in text and not text.startswith("/"):
        path = text.split(":", 1)[1]  # git@host:owner/name.git
    else:
        path = text
    path = path.removesuffix(".git").strip("/")
    parts = [p for p in path.split("/") if p]
    return "/".join(parts[-2:]) if parts else ""


def project_name(root: Path, environ: Mapping[str, str] | None = None) -> str:
    """The project (repository) a run belongs to: ``AISP_PROJECT``, ``[tool.aisp.dashboard] project``, the CI's
    repository variable, the ``origin`` remote, else the project folder's name."""
    environ = os.environ if environ is None else environ
    if environ.get("AISP_PROJECT"):
        return environ["AISP_PROJECT"].strip()
    try:
        from pytest_aisp.config import read_tool_table

        configured = read_tool_table(root).get("dashboard", {})
    except (AispError, ValueError):  # an unreadable pyproject.toml is reported by the plugin, not here
        configured = {}
    if isinstance(configured, Mapping) and configured.get("project"):
        return str(configured["project"]).strip()
    for variable in PROJECT_VARIABLES:
        if environ.get(variable):
            return environ[variable].strip()
    for variable in PROJECT_URL_VARIABLES:
        if environ.get(variable) and project_from_url(environ[variable]):
            return project_from_url(environ[variable])
    remote = _git(["remote", "get-url", "origin"], root)
    return project_from_url(remote) if remote else Path(root).absolute().name


def run_info(root: Path, environ: Mapping[str, str] | None = None, run_key: str | None = None) -> RunInfo:
    """Where this run comes from: project, git commit and branch, the CI build URL and a run key."""
    environ = os.environ if environ is None else environ
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    commit = environ.get("GITHUB_SHA") or environ.get("GIT_COMMIT") or _git(["rev-parse", "HEAD"], root)
    branch = (environ.get("GITHUB_HEAD_REF") or environ.get("GITHUB_REF_NAME") or environ.get("BRANCH_NAME")
              or environ.get("CI_COMMIT_REF_NAME") or environ.get("GIT_BRANCH", "").removeprefix("origin/")
              or _git(["rev-parse", "--abbrev-ref", "HEAD"], root) or "local")
    build_url = next((environ[v] for v in BUILD_URL_VARIABLES if environ.get(v)), "")
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_SERVER_URL") and environ.get("GITHUB_REPOSITORY"):
        build_url = (f"{environ['GITHUB_SERVER_URL']}/{environ['GITHUB_REPOSITORY']}/actions/runs/"
                     f"{environ['GITHUB_RUN_ID']}")
    key = run_key or next((f"{v}:{environ[v]}" for v in RUN_KEY_VARIABLES if environ.get(v)), "")
    if not key:
        key = f"local:{commit[:12] or 'nogit'}:{created}"
    return RunInfo(run_key=key, created=created, branch=branch, commit=commit, build_url=build_url,
                   source="pytest", project=project_name(root, environ))


def record_from_report_dir(folder: Path, info: RunInfo) -> RunRecord:
    """A run from a report folder: ``aisp-findings.json`` if present, else every ``*.sarif`` in it."""
    json_report = folder / JSON_REPORT_NAME
    if json_report.is_file():
        report = read_json_report(json_report)
        return RunRecord(info=info, outcomes=report.outcomes, entries=report.entries, metrics=report.metrics)
    sarifs = sorted(folder.glob("*.sarif"))
    if not sarifs:
        raise AispError(f"{folder} holds neither {JSON_REPORT_NAME} nor a .sarif file; run pytest with "
                        "--aisp-report-dir or --aisp-sarif there first")
    entries: list[ReportedFinding] = []
    for path in sarifs:
        entries.extend(entries_from_sarif(path))
    return RunRecord(info=info, entries=tuple(entries))


def entries_from_sarif(path: Path) -> list[ReportedFinding]:
    """Findings of a pytest-aisp SARIF file (severity from its aisp properties, else from the level)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        runs = doc["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AispError(f"{path} is not a SARIF file: {exc}") from None
    level_severity = {"error": "high", "warning": "medium", "note": "low", "none": "info"}
    entries = []
    for run in runs:
        for result in run.get("results", []):
            props = result.get("properties", {})
            severity = props.get("aisp-severity") or level_severity.get(result.get("level", "warning"), "medium")
            physical = (result.get("locations") or [{}])[0].get("physicalLocation", {})
            message = result.get("message", {}).get("text", "")
            location = props.get("aisp-location", "")
            if location and message.endswith(f" ({location})"):
                message = message[: -len(location) - 3]
            finding = Finding(result.get("ruleId", "AISP-UNKNOWN"), Severity.parse(severity), message, location,
                              metrics=props.get("aisp-metrics", {}))
            entries.append(ReportedFinding(
                finding=finding, nodeid=props.get("aisp-test"),
                path=physical.get("artifactLocation", {}).get("uri"),
                line=physical.get("region", {}).get("startLine"),
                fingerprint=str((result.get("partialFingerprints") or {}).get(FINGERPRINT_KEY, "")),
            ))
    return entries


def record_session(
    url: str | Path, root: Path, *, entries: Sequence[ReportedFinding], outcomes: Mapping[str, str],
    metrics: Mapping[str, Mapping[str, float]],
) -> int:
    """Record one pytest session into the history at ``url``; return the run id."""
    from pytest_aisp.dashboard.store import open_store

    run = RunRecord(info=run_info(root), outcomes=dict(outcomes), entries=tuple(entries),
                    metrics={t: dict(m) for t, m in metrics.items()})
    with open_store(url) as store:
        return store.record(run)
