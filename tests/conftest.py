"""The project's own tests run under the aisp-ci Hypothesis profile, so every run repeats exactly."""

from __future__ import annotations

# numpy's C core cannot be imported twice in one process; pytester's in-process runs drop the modules
# they imported, so numpy is loaded here, before any of them.
import numpy  # noqa: F401
import pytest
from hypothesis import settings

from pytest_aisp.hypothesis_profile import HYPOTHESIS_CI_PROFILE, register

register()  # Hypothesis's entry point does this too, unless HYPOTHESIS_NO_PLUGINS is set
settings.load_profile(HYPOTHESIS_CI_PROFILE)

from tests.system_tools import SKIP_PREFIX  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One list, at the end, of the tests skipped because a system tool is missing, and how to get it."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple) and SKIP_PREFIX in report.longrepr[2]:
            reason = report.longrepr[2].split(SKIP_PREFIX, 1)[1].strip().split("):", 1)[0]
            reason = reason if reason.endswith(")") else reason + ")"
            counts[reason] = counts.get(reason, 0) + 1
    if counts:
        terminalreporter.section("skipped for a missing system tool")
        for reason, count in sorted(counts.items()):
            terminalreporter.line(f"{count:4d} skipped: {reason}")


# Markers of tests whose backend lives in its own tox environment, and the module that shows it is there.
OWN_ENVIRONMENT = {"textattack": "textattack", "garak": "garak"}


def pytest_collection_modifyitems(config, items):
    """Outside its own environment (where tox deselects it with -m), a backend's test skips and says where it runs;
    inside it, nothing skips: a missing backend there fails the test."""
    import importlib.util

    for marker, module in OWN_ENVIRONMENT.items():
        if importlib.util.find_spec(module) is not None:
            continue
        skip = pytest.mark.skip(reason=f"{module} runs in its own environment: tox -e {marker}")
        for item in items:
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)
