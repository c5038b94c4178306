"""One ``Settings`` object: CLI > environment > pytest ini > ``[tool.aisp]`` (pyproject.toml, aisp.toml) > defaults.

The environment sits above the files so that a CI job can override what the repository sets
(``AISP_MODEL=... pytest``), as CI users expect. Paths are made absolute against the rootdir when
they are resolved, so a test run from a subdirectory sees the same files.

Every entry point reads the same configuration: the plugin installs the session's settings with
``set_current_settings``; outside pytest, ``current_settings()`` resolves them once from the project
found above the working directory (the nearest ``aisp.toml`` or ``pyproject.toml``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_aisp.findings import SEVERITY_NAMES, Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class SettingError(ValueError):
    """A configuration value is invalid; the message names the option and the allowed values."""


def _path(value: str) -> Path:
    if not str(value).strip():
        raise ValueError("expected a path")
    return Path(os.path.expanduser(str(value).strip()))


def _seed(value: str) -> int:
    seed = int(str(value).strip())
    if seed < 0:
        raise ValueError("expected a non-negative integer")
    return seed


def _severity(value: str) -> Severity:
    return Severity.parse(value)


def _gpus(value: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in str(value).split(",") if part.strip())
    if not ids:
        raise ValueError("expected a comma-separated list of GPU ids (indexes, UUIDs or MIG ids)")
    return ids


def _url(value: str) -> str:
    text = str(value).strip()
    if not text.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return text


def _import_path(value: str) -> str:
    text = str(value).strip()
    module, _, attr = text.partition(":")
    if not module or not attr or not all(part.isidentifier() for part in (*module.split("."), *attr.split("."))):
        raise ValueError("expected package.module:Class (the module to import, a colon, the class or factory)")
    return text


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected a JSON object such as {{\"channels\": 8}}: {exc}") from None
    if not isinstance(parsed, dict):
        raise ValueError("expected a JSON object such as {\"channels\": 8}")
    return parsed


def _name(value: str) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("expected a name")
    return text
def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"use one of: {', '.join(allowed)}")
        return text

    return parse


def _history(value: str) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("expected a path, sqlite:/// or postgresql:// URL")
    return text


HISTORY_RECORD_CHOICES = ("auto", "always", "never")


def _history_record(value: str) -> str:
    text = str(value).strip().lower()
    if text not in HISTORY_RECORD_CHOICES:
        raise ValueError(f"use one of {', '.join(HISTORY_RECORD_CHOICES)}")
    return text


@dataclass(frozen=True)
class OptionSpec:
    """One ``--aisp-NAME`` option with its ini key ``aisp_NAME`` and ``[tool.aisp] NAME`` key."""

    name: str
    help: str
    parse: Callable[[str], Any]
    allowed: str
    metavar: str

    @property
    def flag(self) -> str:
        return "--aisp-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "aisp_" + self.name

    @property
    def env(self) -> str:
        return "AISP_" + self.name.upper()


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("model", "model file that the aisp_model fixture scans and loads", _path, "a path", "PATH"),
    OptionSpec("data", "evaluation data for aisp_model (.npz with x and y)", _path, "a path", "PATH"),
    OptionSpec("model_class", "architecture to build a state_dict or safetensors --aisp-model into",
               _import_path, "package.module:Class", "MODULE:CLASS"),
    OptionSpec("model_kwargs", "constructor keyword arguments for --aisp-model-class (a JSON object)",
               _json_object, "a JSON object (a table in [tool.aisp])", "JSON"),
    OptionSpec("onnx_output", "ONNX output that holds the class scores (default: chosen from the file)", _name,
               "an output name of the ONNX model", "NAME"),
    OptionSpec("llm_endpoint", "URL of the LLM endpoint the llm_endpoint fixture probes", _url,
               "an http(s) URL", "URL"),
    OptionSpec("manifest", "artifact manifest the artifact_manifest fixture verifies", _path, "a path", "PATH"),
    OptionSpec("gpus", "GPU ids to spread xdist workers over (default: CUDA_VISIBLE_DEVICES)", _gpus,
               "comma-separated GPU ids", "LIST"),
    OptionSpec("seed", "seed for every attack and probe (default 0)", _seed, "a non-negative integer", "N"),
    OptionSpec("fail_on", "lowest severity that fails a test (default medium)", _severity,
               "one of " + ", ".join(SEVERITY_NAMES), "SEVERITY"),
    OptionSpec("baseline", "baseline file of accepted findings", _path, "a path", "PATH"),
    OptionSpec("sarif", "write a SARIF 2.1.0 report to PATH", _path, "a path", "PATH"),
    OptionSpec("sonar", "write a SonarQube generic issue report to PATH", _path, "a path", "PATH"),
    OptionSpec("report_dir", "write aisp-findings.json (for baselines and history) into DIR", _path,
               "a directory", "DIR"),
    OptionSpec("history", "record this run into the dashboard history (a path, sqlite:/// or postgresql:// URL)",
               _history, "a path, sqlite:/// or postgresql:// URL", "URL"),
    OptionSpec("history_record", "when a configured history records: auto (a URL from the command line or "
               "environment, or any run under CI), always, never", _history_record,
               "one of " + ", ".join(HISTORY_RECORD_CHOICES), "WHEN"),
    OptionSpec("missing", "what a test that needs an unconfigured aisp fixture does: error (default) or skip",
               _choice("error", "skip"), "error or skip", "error|skip"),
    OptionSpec("html", "write a static findings report to PATH (CSS and pictures as files beside it, no script: "
               "Jenkins shows it under its default Content-Security-Policy)", _path, "a path", "PATH"),
    OptionSpec("expected_findings", "how SARIF, SonarQube and GitHub annotations report expected findings "
               "(xfailed and negative tests): omit (default) or note", _choice("omit", "note"),
               "omit or note", "MODE"),
    OptionSpec("junit_properties", "where the aisp.* JUnit properties go: testcase (default; Jenkins' JUnit "
               "plugin reads them) or testsuite (valid under the strict junit-10.xsd)",
               _choice("testcase", "testsuite"), "testcase or testsuite", "WHERE"),
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """The resolved pytest-aisp configuration. ``tool`` is the whole ``[tool.aisp]`` table,
    so modules read their own sections (``settings.section("llm")``)."""

    rootdir: Path = field(default_factory=Path.cwd)
    model: Path | None = None
    data: Path | None = None
    model_class: str | None = None
    model_kwargs: Mapping[str, Any] | None = None
    onnx_output: str | None = None
    llm_endpoint: str | None = None
    manifest: Path | None = None
    gpus: tuple[str, ...] = ()
    seed: int = 0
    fail_on: Severity = Severity.MEDIUM
    baseline: Path | None = None
    sarif: Path | None = None
    sonar: Path | None = None
    report_dir: Path | None = None
    history: str | None = None
    missing: str = "error"
    html: Path | None = None
    expected_findings: str = "omit"
    junit_properties: str = "testcase"
    history_record: str = "auto"
    tool: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        """``[tool.aisp.NAME]`` as a dict (empty when absent)."""
        value = self.tool.get(name, {})
        return value if isinstance(value, Mapping) else {}

    def resolve(self, path: Path | None) -> Path | None:
        """``path`` made absolute against the rootdir."""
        if path is None:
            return None
        return path if path.is_absolute() else self.rootdir / path

    def source_of(self, name: str) -> str:
        """Where option ``name`` came from (``--aisp-model``, ``environment AISP_MODEL`` ...), or ``default``."""
        return self.sources.get(name, "default")


def read_tool_table(rootdir: Path) -> dict[str, Any]:
    """``[tool.aisp]`` from ``rootdir/pyproject.toml`` merged under ``rootdir/aisp.toml`` (which wins)."""
    table: dict[str, Any] = {}
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        table.update(_load_toml(pyproject).get("tool", {}).get("aisp", {}))
    own = rootdir / "aisp.toml"
    if own.is_file():
        data = _load_toml(own)
        table.update(data.get("tool", {}).get("aisp", data))
    return table


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingError(f"{path} is not valid TOML: {exc}") from None


def parse_option(spec: OptionSpec, raw: Any, source: str) -> Any:
    """Parse one raw value; raise ``SettingError`` naming the option, where it came from and what is allowed."""
    try:
        return spec.parse(raw)
    except (TypeError, ValueError) as exc:
        reason = str(exc)
        allowed = "" if spec.allowed in reason or "use one of" in reason else f"; allowed: {spec.allowed}"
        raise SettingError(f"{spec.flag} (from {source}) got {raw!r}: {reason}{allowed}") from None


PATH_OPTIONS: frozenset[str] = frozenset({"model", "data", "manifest", "baseline", "sarif", "sonar", "report_dir",
                                          "html"})


def resolve_settings(
    rootdir: Path,
    cli: Mapping[str, Any],
    ini: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every option by precedence: ``cli`` > environment > ``ini`` > ``[tool.aisp]`` > default.

    ``cli`` and ``ini`` map option names to raw values (None or "" when unset). Path options come
    back absolute, made so against ``rootdir``.
    """
    environ = os.environ if environ is None else environ
    rootdir = Path(rootdir).absolute()
    tool = read_tool_table(rootdir)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        candidates = (
            (cli.get(spec.name), spec.flag),
            (environ.get(spec.env), f"environment {spec.env}"),
            (ini.get(spec.name), f"ini {spec.ini}"),
            (tool.get(spec.name), f"[tool.aisp] {spec.name}"),
        )
        for raw, source in candidates:
            if raw is not None and raw != "" and raw != []:
                value = parse_option(spec, raw, source)
                if spec.name in PATH_OPTIONS and not value.is_absolute():
                    value = rootdir / value
                values[spec.name] = value
                sources[spec.name] = source
                break
    return Settings(rootdir=rootdir, tool=tool, sources=sources, **values)


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: the working directory) holding
    ``aisp.toml`` or ``pyproject.toml``; ``start`` itself when there is none."""
    here = Path(start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / "aisp.toml").is_file() or (folder / "pyproject.toml").is_file():
            return folder
    return here


_current: Settings | None = None


def set_current_settings(settings: Settings | None) -> None:
    """Install the settings every engine reads by default (the plugin does this per session)."""
    global _current
    _current = settings


def current_settings_or_none() -> Settings | None:
    """The installed settings, without resolving any (None when nothing installed them)."""
    return _current


def current_settings() -> Settings:
    """The settings in force: the pytest session's, or (outside pytest) those of the project above
    the working directory, resolved from the environment and ``[tool.aisp]`` once."""
    global _current
    if _current is None:
        _current = resolve_settings(find_project_root(), {}, {})
    return _current


def settings_for_cli(cli: Mapping[str, Any] | None = None, *, start: Path | None = None) -> Settings:
    """Settings for an ``aisp`` subcommand: its own flags (``cli``) over the environment and the
    project's ``[tool.aisp]``; installed as the current settings so the engines it calls agree."""
    settings = resolve_settings(find_project_root(start), dict(cli or {}), {})
    set_current_settings(settings)
    return settings
