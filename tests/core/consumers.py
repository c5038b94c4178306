"""The reports' real consumers, driven from the tests: Microsoft's SARIF Multitool with GitHub's rules,
SonarQube's generic-issue field rules, and Chromium under Jenkins' Content-Security-Policy.

A tool missing here skips its test with the line that installs it; under CI (``CI`` set) it fails.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.system_tools import require_tool

# Jenkins' default Content-Security-Policy for archived files and publishHTML reports.
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"


def multitool() -> list[str]:
    """The command that runs the SARIF Multitool: its native binary (the npm wrapper goes through a shell,
    which splits the ';' of --rule-kind), else the wrapper."""
    wrapper = require_tool("sarif-multitool", "validates the SARIF with GitHub's rules")
    package = Path(os.path.realpath(wrapper)).parent
    for native in (package / "node_modules" / "@microsoft" / "sarif-multitool-linux" / "Sarif.Multitool",
                   package.parent / "sarif-multitool-linux" / "Sarif.Multitool"):
        if native.is_file():
            if not os.access(native, os.X_OK):
                native.chmod(native.stat().st_mode | 0o100)
            return [str(native)]
    return [wrapper]


def multitool_problems(sarif: Path, tmp: Path) -> list[dict]:
    """Every error or warning the Multitool's SARIF and GitHub (Gh) rules report for ``sarif``."""
    log = tmp / f"{sarif.stem}.validation.sarif"
    log.unlink(missing_ok=True)
    command = [*multitool(), "validate", "--rule-kind", "Sarif;Gh", "--level", "Error;Warning", "-o", str(log),
               str(sarif)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert log.is_file(), f"the Multitool wrote no log (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    run = json.loads(log.read_text(encoding="utf-8-sig"))["runs"][0]
    for invocation in run.get("invocations", []):
        assert invocation.get("executionSuccessful", True), invocation
    return [{"rule": r["ruleId"], "level": r.get("level", "warning"), "message": r["message"]} for r in run["results"]]


def sonar_field_problems(report: dict, project: Path) -> list[str]:
    """What SonarQube's ExternalIssueReportValidator and importer would refuse in a generic issue report
    (10.3+ format), with ``project`` as ``sonar.projectBaseDir``."""
    problems: list[str] = []
    rules = report.get("rules")
    issues = report.get("issues")
    if not isinstance(rules, list) or not isinstance(issues, list):
        return ["the report needs both 'rules' and 'issues' arrays (else it is the deprecated format)"]
    ids: set[str] = set()
    for rule in rules:
        for key in ("id", "name", "engineId", "cleanCodeAttribute"):
            if not rule.get(key):
                problems.append(f"rule {rule.get('id')}: missing mandatory field {key!r}")
        if rule.get("id") in ids:
            problems.append(f"duplicate rule id {rule['id']}")
        ids.add(rule.get("id"))
        impacts = rule.get("impacts") or []
        if not impacts:
            problems.append(f"rule {rule.get('id')}: 'impacts' must be a non-empty array")
        for impact in impacts:
            if impact.get("softwareQuality") not in ("SECURITY", "RELIABILITY", "MAINTAINABILITY"):
                problems.append(f"rule {rule.get('id')}: unknown softwareQuality {impact.get('softwareQuality')}")
            if impact.get("severity") not in ("LOW", "MEDIUM", "HIGH"):  # what SonarQube 10.3 knows
                problems.append(f"rule {rule.get('id')}: impact severity {impact.get('severity')} unknown to 10.3")
        if rule.get("cleanCodeAttribute") not in ("CONVENTIONAL", "FORMATTED", "IDENTIFIABLE", "CLEAR", "COMPLETE",
                                                  "EFFICIENT", "LOGICAL", "DISTINCT", "FOCUSED", "MODULAR",
                                                  "TESTED", "LAWFUL", "RESPECTFUL", "TRUSTWORTHY"):
            problems.append(f"rule {rule.get('id')}: unknown cleanCodeAttribute")
    for number, issue in enumerate(issues):
        where = f"issue {number}"
        if not issue.get("ruleId") or issue["ruleId"] not in ids:
            problems.append(f"{where}: ruleId {issue.get('ruleId')!r} is not a rule of the report")
        for deprecated in ("severity", "type"):
            if deprecated in issue:
                problems.append(f"{where}: deprecated field {deprecated!r}")
        location = issue.get("primaryLocation") or {}
        if not location.get("message") or not location.get("filePath"):
            problems.append(f"{where}: primaryLocation needs 'message' and 'filePath'")
            continue
        file = project / location["filePath"]
        if not file.is_file():
            problems.append(f"{where}: {location['filePath']} is not a file of the project (the issue is dropped)")
            continue
        start = (location.get("textRange") or {}).get("startLine")
        if start is not None:
            lines = file.read_text(encoding="utf-8").splitlines()
            if not 1 <= start <= len(lines):
                problems.append(f"{where}: startLine {start} is outside {location['filePath']}")
            elif not lines[start - 1].strip():
                problems.append(f"{where}: startLine {start} is an empty line (selectLine refuses it)")
    return problems


def ant_pattern(pattern: str) -> re.Pattern[str]:
    """SonarQube's (Ant-style) path pattern as a regex: ``**`` any folders, ``*`` within a name, ``?`` one."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out + r"\Z")


def indexed_files(project: Path, properties: dict[str, str]) -> tuple[set[str], set[str]]:
    """(main files, test files) the scanner indexes under ``project`` with these sonar.* properties."""

    def patterns(key: str) -> list[re.Pattern[str]]:
        return [ant_pattern(p.strip()) for p in properties.get(key, "").split(",") if p.strip()]

    def under(roots: str, path: str) -> bool:
        return any(root.strip() in (".", "") or path == root.strip() or path.startswith(root.strip().rstrip("/") + "/")
                   for root in roots.split(","))

    files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    main_in, main_out = patterns("sonar.inclusions"), patterns("sonar.exclusions")
    test_in, test_out = patterns("sonar.test.inclusions"), patterns("sonar.test.exclusions")

    def selected(path: str, includes: list[re.Pattern[str]], excludes: list[re.Pattern[str]]) -> bool:
        return (not includes or any(p.match(path) for p in includes)) and not any(p.match(path) for p in excludes)

    main = {f for f in files if under(properties.get("sonar.sources", ""), f) and selected(f, main_in, main_out)}
    tests = {f for f in files if under(properties.get("sonar.tests", ""), f) and selected(f, test_in, test_out)}
    return main, tests


def read_properties(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


@contextmanager
def served_like_jenkins(folder: Path) -> Iterator[str]:
    """``folder`` served on 127.0.0.1 with Jenkins' default Content-Security-Policy on every file."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            self.send_header("Content-Security-Policy", JENKINS_CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            super().end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


