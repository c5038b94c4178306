"""Whether a pytest session records into the history, and what the terminal says about it.

A history URL in ``pyproject.toml``/``aisp.toml``/ini is meant for CI: with ``history_record = "auto"`` (the
default) it records only when a CI server runs the tests (``CI`` is set, or a known CI server's own
variable), so local runs do not fill ``.aisp/history.db``. A URL given for this run (``--aisp-history`` or
``AISP_HISTORY``) always records. ``history_record = "always"`` records every run, ``"never"`` none. Either
way the terminal summary says where the run went, or why it was not recorded and how to change that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_aisp.config import Settings
from pytest_aisp.dashboard.db import redact_url

# Set by CI servers; CI=false or CI=0 counts as unset.
CI_VARIABLES = ("CI", "JENKINS_URL", "GITLAB_CI", "GITHUB_ACTIONS", "BUILDKITE", "TF_BUILD", "TEAMCITY_VERSION")


def running_in_ci(environ: Mapping[str, str] | None = None) -> str | None:
    """The variable that says a CI server runs this session, or None."""
    environ = os.environ if environ is None else environ
    for name in CI_VARIABLES:
        if environ.get(name, "").strip().lower() not in ("", "0", "false", "no"):
            return name
    return None


@dataclass(frozen=True)
class HistoryDecision:
    """``url``: where to record (None: not recorded); ``shown``: the same without a password;
    ``reason``: why, for the terminal summary."""

    url: str | None
    shown: str
    reason: str


def history_decision(settings: Settings, environ: Mapping[str, str] | None = None) -> HistoryDecision | None:
    """What to do with the history for this session; None when no history is configured at all."""
    if not settings.history:
        return None
    url = settings.history
    if "://" not in url:
        url = str(settings.resolve(Path(url)))
    shown = redact_url(url)
    source = settings.source_of("history")
    when = settings.history_record
    if when == "never":
        return HistoryDecision(None, shown, f"history_record = never ({settings.source_of('history_record')})")
    if when == "always":
        return HistoryDecision(url, shown, "history_record = always")
    if source.startswith(("--aisp-", "environment")):
        return HistoryDecision(url, shown, f"from {source}")
    ci = running_in_ci(environ)
    if ci:
        return HistoryDecision(url, shown, f"{ci} is set")
    return HistoryDecision(
        None, shown,
        f"a history from {source} records CI runs only and CI is not set; --aisp-history records this run, "
        "history_record = \"always\" every run",
    )
