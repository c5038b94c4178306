"""Dependency pinning: unpinned or unhashed dependencies let a build pull code nobody reviewed.

Checks ``requirements*.txt`` (``==`` pins and ``--hash``), ``pyproject.toml`` (exact pins unless a
lock file is present), ``Pipfile.lock``, ``poetry.lock`` and ``uv.lock`` (hashes recorded).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_aisp.findings import AispError, Finding, IntegrityFailure, Severity
from pytest_aisp.recorder import record_findings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RULE_UNPINNED = "AISP-SUPPLY-UNPINNED"
LOCK_FILES: tuple[str, ...] = ("poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", "requirements.lock")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")
_EXACT = re.compile(r"^===?\s*[^*,;\s]+$")


@dataclass(frozen=True)
class PinningResult:
    """The dependency files looked at and the findings about them."""

    root: Path
    files: tuple[Path, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


def _finding(path: Path, lineno: int | None, message: str, **evidence: object) -> Finding:
    where = f"{path}:{lineno}" if lineno else str(path)
    return Finding(RULE_UNPINNED, Severity.LOW, message, where, dict(evidence))


def _is_exact(spec: str) -> bool:
    spec = spec.split(";", 1)[0].strip()
    return bool(_EXACT.match(spec))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Requirement lines with continuations joined and comments dropped, with their first line number."""
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            lines.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        lines.append((start, buffer.strip()))
    return lines


def check_requirements(path: Path, require_hashes: bool = True) -> list[Finding]:
    findings = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8", errors="replace")):
        if line.startswith(
            (
                "-r",
                "-c",
                "--requirement",
                "--constraint",
                "--index-url",
                "--extra-index-url",
                "-i",
                "--find-links",
                "-f",
                "--trusted-host",
                "--no-binary",
                "--only-binary",
                "--prefer-binary",
                "--require-hashes",
                "--pre",
                "--no-index",
            )
        ):
            if line.startswith(("--trusted-host",)):
                findings.append(
                    _finding(path, number, f"{line.split()[0]} turns off TLS checks for an index", line=line)
                )
            continue
        if line.startswith(("-e", "--editable")) or "://" in line or line.startswith((".", "/")):
            if not re.search(r"@[0-9a-f]{40}\b", line) and "--hash" not in line:
                findings.append(
                    _finding(
                        path,
                        number,
                        f"{line.split()[0] if line.startswith('-') else 'URL'} "
                        "requirement is not pinned to a commit or hash",
                        line=line[:200],
                    )
                )
            continue
        requirement = line.split(" --hash", 1)[0].strip()
        match = _NAME.match(requirement)
        if not match:
            continue
        name, spec = match.group(1), match.group(3).strip()
        if "@" in spec:  # PEP 508 direct reference
            continue
        if not _is_exact(spec):
            findings.append(
                _finding(
                    path,
                    number,
                    f"{name} is not pinned (`{spec or 'any version'}`); pin it "
                    f"with =={'X.Y.Z'} or compile a lock file",
                    package=name,
                    spec=spec,
                )
            )
        elif require_hashes and "--hash=" not in line:
            findings.append(
                _finding(
                    path,
                    number,
                    f"{name}{spec} has no --hash; a replaced file on the index "
                    "would install silently (pip-compile --generate-hashes)",
                    package=name,
                )
            )
    return findings


def check_pyproject(path: Path, locked: bool) -> list[Finding]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AispError(f"{path} is not valid TOML: {exc}") from None
    if locked:
        return []  # ranges in pyproject are fine when a lock file pins the resolution
    deps = list(data.get("project", {}).get("dependencies", []))
    findings = []
    for dep in deps:
        match = _NAME.match(str(dep))
        if not match:
            continue
        name, spec = match.group(1), match.group(3).strip()
        if "@" in spec or _is_exact(spec):
            continue
        findings.append(
            _finding(
                path,
                None,
                f"{name} is not pinned (`{spec or 'any version'}`) and no lock file "
                f"({', '.join(LOCK_FILES)}) pins it",
                package=name,
                spec=spec,
            )
        )
    return findings


def check_lock(path: Path) -> list[Finding]:
    findings = []
    try:
        if path.name == "Pipfile.lock":
            data = json.loads(path.read_text(encoding="utf-8"))
            packages = {**data.get("default", {}), **data.get("develop", {})}
            for name, info in packages.items():
                if not info.get("hashes"):
                    findings.append(
                        _finding(path, None, f"{name} has no hashes in the lock file", package=name)
                    )
            return findings
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AispError(f"{path} cannot be parsed: {exc}") from None
    for package in data.get("package", []):
        name = package.get("name", "?")
        source = package.get("source", {})
        if isinstance(source, dict) and (
            "editable" in source or "virtual" in source or "directory" in source
        ):
            continue  # the project itself
        hashed = bool(package.get("files")) or bool(package.get("wheels")) or bool(package.get("sdist"))
        if not hashed:
            findings.append(_finding(path, None, f"{name} has no file hashes in the lock file", package=name))
    return findings


def check_pinning(root: str | Path = ".", *, require_hashes: bool = True) -> PinningResult:
    """Findings (``AISP-SUPPLY-UNPINNED``, low) for every unpinned or unhashed dependency under ``root``."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise AispError(f"{root_path} is not a directory")
    files: list[Path] = []
    findings: list[Finding] = []
    requirement_files = sorted(p for p in root_path.glob("requirements*.txt") if p.is_file())
    for path in requirement_files:
        files.append(path)
        findings.extend(check_requirements(path, require_hashes))
    locks = [root_path / name for name in LOCK_FILES if (root_path / name).is_file()]
    for path in locks:
        files.append(path)
        if path.name in ("Pipfile.lock", "poetry.lock", "uv.lock"):
            findings.extend(check_lock(path))
    pyproject = root_path / "pyproject.toml"
    if pyproject.is_file():
        files.append(pyproject)
        findings.extend(check_pyproject(pyproject, locked=bool(locks) or bool(requirement_files)))
    result = PinningResult(root_path, tuple(files), tuple(findings))
    record_findings(result.findings)
    return result


def assert_dependencies_pinned(
    root: str | Path = ".", *, require_hashes: bool = True, fail_on: Severity | str | None = Severity.LOW
) -> PinningResult:
    """Fail the test when a dependency under ``root`` is unpinned or unhashed (low fails by default)."""
    __tracebackhide__ = True
    from pytest_aisp.verdict import enforce

    result = check_pinning(root, require_hashes=require_hashes)
    enforce(
        result.findings,
        IntegrityFailure,
        result=result,
        fail_on=fail_on,
        headline=f"{len(result.findings)} unpinned or unhashed dependencies under {root}",
        details=f"first: {result.findings[0].one_line()}" if result.findings else "",
    )
    return result
