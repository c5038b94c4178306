"""pytest hooks of pytest-aisp: options, markers, header, collection, recording, reports, xdist."""

from __future__ import annotations

import atexit
import gc
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_aisp import __version__
from pytest_aisp import hypothesis_profile as hypothesis_profile_module
from pytest_aisp.backends import installed_backends
from pytest_aisp.baseline import load_baseline
from pytest_aisp.config import (
    OPTIONS,
    SettingError,
    Settings,
    current_settings_or_none,
    resolve_settings,
    set_current_settings,
)
from pytest_aisp.devices import assign_worker_gpu, assign_worker_threads, available_cores, gpu_pool, thread_share
from pytest_aisp.findings import AispError
from pytest_aisp.fixtures import AISP_FIXTURES, OPTIONAL_MARKER, SETTINGS_KEY, UNCONFIGURED, check_configured
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
PREVIOUS_SETTINGS_KEY = pytest.StashKey["Settings | None"]()
HYPOTHESIS_PROFILE_FLAG = "--hypothesis-profile"  # Hypothesis's own option, when its plugin is loaded


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("aisp", "AI security checks (pytest-aisp)")
    for spec in OPTIONS:
        group.addoption(spec.flag, dest=f"aisp_{spec.name}", metavar=spec.metavar, default=None,
                        help=f"{spec.help}. ini: {spec.ini}")
        parser.addini(spec.ini, help=f"pytest-aisp: {spec.help}", default=None)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Give each xdist worker its GPU and its share of the CPU threads before any conftest can import torch."""
    configured = _early_gpus(args) or os.environ.get("AISP_GPUS", "")
    pool = gpu_pool(tuple(p for p in configured.split(",") if p.strip()))
    assign_worker_gpu(pool)
    assign_worker_threads()


def _early_gpus(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg == "--aisp-gpus" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--aisp-gpus="):
            return arg.split("=", 1)[1]
    return ""


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _register_hypothesis_profile_when_asked_for(config)
    if hasattr(config, "workerinput"):
        _skip_cycle_collection_at_exit()
    config.addinivalue_line("markers", "aisp: an AI security check (pytest-aisp); select with -m aisp")
    for name, what in SUBMARKERS.items():
        config.addinivalue_line("markers", f"{name}: pytest-aisp {what} check (implies aisp)")
    config.addinivalue_line(
        "markers", f"{OPTIONAL_MARKER}: skip (not error) this test when an aisp fixture it needs is not configured")
    config.addinivalue_line(
        "markers", f"{report_session.NEGATIVE_MARKER}: a negative test (it shows a check catching a known-bad "
        "input): when it passes, its findings are expected, never baselined and not reported as alerts")
    settings = _resolve(config)
    _check_report_paths(settings)
    config.stash[SETTINGS_KEY] = settings
    config.stash[PREVIOUS_SETTINGS_KEY] = current_settings_or_none()
    set_current_settings(settings)
    baseline = None
    if settings.baseline is not None:
        try:
            baseline = load_baseline(settings.resolve(settings.baseline))
        except AispError as exc:
            raise pytest.UsageError(f"--aisp-baseline: {exc}") from None
    set_policy(Policy(fail_on=settings.fail_on, baseline=baseline, root=settings.rootdir))
    report_session.start(config, settings)


def _register_hypothesis_profile_when_asked_for(config: pytest.Config) -> None:
    """Register ``aisp-ci`` before Hypothesis's plugin loads ``--hypothesis-profile`` (this hook runs first).

    Hypothesis's own entry point registers it whenever Hypothesis is imported; this covers
    ``HYPOTHESIS_NO_PLUGINS`` and a Hypothesis imported before this package was installed.
    """
    if _option(config, HYPOTHESIS_PROFILE_FLAG) or "hypothesis" in sys.modules:
        hypothesis_profile_module.register()


def _skip_cycle_collection_at_exit() -> None:
    """In an xdist worker, leave the heap to the operating system at exit instead of collecting it.

    The controller waits for every worker process to end before it finishes the session, and a worker that
    has loaded torch holds about half a million objects: the interpreter's shutdown collections over them
    took about 1 s of every ``-n`` run's wall time (``benchmarks/bench_xdist.py``). ``gc.freeze`` at exit
    moves them out of the collector's reach; objects are still freed by reference counting and every atexit
    handler still runs. Only an unreachable reference cycle whose finalizer was left to the final collection
    goes unfinalized, as it would under ``os._exit``. Registered at configure time, so atexit runs it after
    the handlers that tests and fixtures register later.
    """
    atexit.register(gc.freeze)


def _option(config: pytest.Config, name: str) -> Any:
    """An option of another plugin, or None when that plugin is not loaded."""
    return config.getoption(name, default=None)


def _check_report_paths(settings: Settings) -> None:
    """Refuse, before any test runs, report paths that cannot be written (a folder where a file goes)."""
    for name in ("sarif", "sonar", "html"):
        path = settings.resolve(getattr(settings, name))
        if path is not None and path.is_dir():
            raise pytest.UsageError(f"--aisp-{name} ({settings.source_of(name)}) names the directory {path}; "
                                    "give a file name")
    folder = settings.resolve(settings.report_dir)
    if folder is not None and folder.exists() and not folder.is_dir():
        raise pytest.UsageError(f"--aisp-report-dir ({settings.source_of('report_dir')}) names the file {folder}; "
                                "give a directory")


def pytest_unconfigure(config: pytest.Config) -> None:
    # an in-process pytest run (pytester) inside a session gives the outer session its settings back
    set_current_settings(config.stash.get(PREVIOUS_SETTINGS_KEY, None))


def _resolve(config: pytest.Config) -> Settings:
    cli = {spec.name: config.getoption(f"aisp_{spec.name}") for spec in OPTIONS}
    ini = {spec.name: config.getini(spec.ini) for spec in OPTIONS}
    try:
        return resolve_settings(Path(config.rootpath), cli, ini)
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings: Settings = config.stash[SETTINGS_KEY]
    hypothesis_profile = hypothesis_profile_module.current_profile(_option(config, HYPOTHESIS_PROFILE_FLAG))
    pool = gpu_pool(settings.gpus)
    backends = ", ".join(f"{name}={'yes' if ok else 'no'}" for name, ok in installed_backends().items())
    baseline = str(settings.baseline) if settings.baseline else "none"
    lines = [
        f"aisp: pytest-aisp {__version__}, seed={settings.seed}, fail-on={settings.fail_on}, "
        f"hypothesis profile={hypothesis_profile}",
        f"aisp: gpus={','.join(pool) if pool else 'none (cpu)'}, {_threads(config)}, baseline={baseline}",
        f"aisp: backends: {backends}",
    ]
    if config.get_verbosity() > 0:
        lines.extend(_value_sources(settings))
    return lines


def _threads(config: pytest.Config) -> str:
    """The CPU threads each xdist worker gets (or this process, without xdist)."""
    cores = available_cores()
    workers = getattr(config.option, "numprocesses", None)
    share = thread_share(cores, workers) if isinstance(workers, int) and workers > 0 else None
    if share is None:
        return f"threads={os.environ.get('OMP_NUM_THREADS') or cores} ({cores} cores, no xdist workers)"
    explicit = os.environ.get("OMP_NUM_THREADS", "")  # set by the caller: the workers keep it
    per_worker = int(explicit) if explicit.isdigit() else share
    return f"threads per worker={per_worker} ({workers} workers on {cores} cores)"


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test needing an unconfigured aisp fixture errors here (or skips, where the team opted in)."""
    check_configured(item, item.config.stash[SETTINGS_KEY])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    record = item.stash.get(RECORD_KEY, None)
    if record is not None:
        report_session.prepare_call(item, record)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    record = item.stash.get(RECORD_KEY, None)
    if record is None:
        return report
    report_session.note_outcome(item, report)
    if report.when == "call":
        report_session.note_call(item, call)
        report_session.add_call_section(item, report, record)
        report_session.add_html_extras(item, report, record)
    elif report.when == "teardown":
        report_session.attach_to_report(item, report, record)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # tryfirst: before pytest's junitxml writes its file (testsuite properties go in there).
    report_session.finish(session)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report_session.terminal_summary(terminalreporter, config)
    _count_unconfigured_skips(terminalreporter)


def _count_unconfigured_skips(terminalreporter: Any) -> None:
    """Skips a team opted into still show: one line per fixture, with how many tests it skipped."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        if UNCONFIGURED in reason:
            fixture = reason.split(UNCONFIGURED, 1)[1].split()[0]
            counts[fixture] = counts.get(fixture, 0) + 1
    for fixture, count in sorted(counts.items()):
        terminalreporter.write_line(
            f"aisp: {count} test(s) skipped because {fixture} is not configured (aisp_missing = skip or "
            f"@pytest.mark.{OPTIONAL_MARKER}): nothing was checked there", yellow=True)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: take the findings a worker sent through ``workeroutput``."""
    report_session.merge_worker(node)
