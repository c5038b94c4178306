"""pytest hooks of pytest-aisp: options, markers, header, collection, recording, reports, xdist."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_aisp import __version__
from pytest_aisp.backends import installed_backends
from pytest_aisp.baseline import load_baseline
from pytest_aisp.config import OPTIONS, SettingError, Settings, resolve_settings, set_current_settings
from pytest_aisp.devices import assign_worker_gpu, gpu_pool
from pytest_aisp.findings import AispError
from pytest_aisp.fixtures import AISP_FIXTURES, SETTINGS_KEY
from pytest_aisp.recorder import TestRecord, recording
from pytest_aisp.reporters import session as report_session
from pytest_aisp.verdict import Policy, set_policy

SUBMARKERS: dict[str, str] = {
    "aisp_scan": "static model analysis",
    "aisp_robust": "adversarial robustness",
    "aisp_llm": "LLM endpoint security",
    "aisp_nlp": "NLP security",
    "aisp_multimodal": "multimodal robustness",
    "aisp_supply": "supply-chain integrity",
    "aisp_monitor": "deployment monitoring",
}
RECORD_KEY = pytest.StashKey[TestRecord]()
HYPOTHESIS_CI_PROFILE = "aisp-ci"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("aisp", "AI security checks (pytest-aisp)")
    for spec in OPTIONS:
        group.addoption(spec.flag, dest=f"aisp_{spec.name}", metavar=spec.metavar, default=None,
                        help=f"{spec.help}. ini: {spec.ini}")
        parser.addini(spec.ini, help=f"pytest-aisp: {spec.help}", default=None)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Give each xdist worker its GPU before any conftest can import torch."""
    configured = _early_gpus(args) or os.environ.get("AISP_GPUS", "")
    pool = gpu_pool(tuple(p for p in configured.split(",") if p.strip()))
    assign_worker_gpu(pool)


def _early_gpus(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg == "--aisp-gpus" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--aisp-gpus="):
            return arg.split("=", 1)[1]
    return ""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aisp: an AI security check (pytest-aisp); select with -m aisp")
    for name, what in SUBMARKERS.items():
        config.addinivalue_line("markers", f"{name}: pytest-aisp {what} check (implies aisp)")
    settings = _resolve(config)
    config.stash[SETTINGS_KEY] = settings
    set_current_settings(settings)
    baseline = None
    if settings.baseline is not None:
        try:
            baseline = load_baseline(settings.resolve(settings.baseline))
        except AispError as exc:
            raise pytest.UsageError(f"--aisp-baseline: {exc}") from None
    set_policy(Policy(fail_on=settings.fail_on, baseline=baseline, root=settings.rootdir))
    report_session.start(config, settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    set_current_settings(None)


def _register_hypothesis_profile() -> None:
    """``aisp-ci``: derandomized and without a database, so CI runs repeat exactly."""
    from hypothesis import HealthCheck
    from hypothesis import settings as hsettings

    hsettings.register_profile(
        HYPOTHESIS_CI_PROFILE, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


_register_hypothesis_profile()


def _resolve(config: pytest.Config) -> Settings:
    cli = {spec.name: config.getoption(f"aisp_{spec.name}") for spec in OPTIONS}
    ini = {spec.name: config.getini(spec.ini) for spec in OPTIONS}
    try:
        return resolve_settings(Path(config.rootpath), cli, ini)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings: Settings = config.stash[SETTINGS_KEY]
    hypothesis_profile = _hypothesis_profile()
    pool = gpu_pool(settings.gpus)
    backends = ", ".join(f"{name}={'yes' if ok else 'no'}" for name, ok in installed_backends().items())
    baseline = str(settings.baseline) if settings.baseline else "none"
    lines = [
        f"aisp: pytest-aisp {__version__}, seed={settings.seed}, fail-on={settings.fail_on}, "
        f"hypothesis profile={hypothesis_profile}",
        f"aisp: gpus={','.join(pool) if pool else 'none (cpu)'}, baseline={baseline}",
        f"aisp: backends: {backends}",
    ]
    if config.get_verbosity() > 0:
        lines.extend(_value_sources(settings))
    return lines


def _value_sources(settings: Settings) -> list[str]:
    """One line per option: its value and where it came from (CLI > env > ini > [tool.aisp] > default)."""
    lines = []
    for spec in OPTIONS:
        value = getattr(settings, spec.name)
        shown = ",".join(value) if isinstance(value, tuple) else value
        if spec.name == "history" and value:
            from pytest_aisp.dashboard.db import redact_url

            shown = redact_url(value)  # a postgresql:// URL may carry a password
        lines.append(f"aisp:   {spec.name} = {shown if shown not in (None, ()) else '-'} "
                     f"({settings.source_of(spec.name)})")
    return lines


def _hypothesis_profile() -> str:
    try:
        from hypothesis import settings as hsettings
    except ImportError:  # pragma: no cover - hypothesis is a core dependency
        return "n/a"
    return str(getattr(hsettings, "_current_profile", None) or "default")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses an aisp fixture or carries a sub-marker as ``aisp``."""
    for item in items:
        if item.get_closest_marker("aisp") is not None:
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        has_submarker = any(item.get_closest_marker(name) is not None for name in SUBMARKERS)
        if has_submarker or fixtures & AISP_FIXTURES:
            item.add_marker(pytest.mark.aisp)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    with recording(item.nodeid) as record:
        item.stash[RECORD_KEY] = record
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    record = item.stash.get(RECORD_KEY, None)
    if record is None:
        return report
    report_session.note_outcome(item, report)
    if report.when == "call":
        report_session.add_call_section(report, record)
        report_session.add_html_extras(item.config, report, record)
    elif report.when == "teardown":
        report_session.attach_to_report(item, report, record)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    report_session.finish(session)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report_session.terminal_summary(terminalreporter, config)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: take the findings a worker sent through ``workeroutput``."""
    report_session.merge_worker(node)
