"""System tools that a few tests need (Debian packages), found one way everywhere.

On a developer machine a missing tool skips its test with the one line that installs it; when ``CI`` is
set the test fails instead, because ``.ci/run`` installs every tool listed here. ``AISP_HIDE_SYSTEM_TOOLS=1``
hides them all (or a comma-separated list hides some), to check what a machine with only Python does.
The session ends with one list of what was skipped for a missing tool (``tests/conftest.py``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SKIP_PREFIX = "system tool missing:"

# tool -> (where to look, the Debian install line)
SYSTEM_TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "promtool": (("promtool",), "apt-get install -y prometheus"),
    "chromium": (("chromium", "chromium-browser"), "apt-get install -y chromium"),
}


def hidden(name: str) -> bool:
    """True when ``AISP_HIDE_SYSTEM_TOOLS`` hides ``name`` (``1``/``all`` hides every tool)."""
    raw = os.environ.get("AISP_HIDE_SYSTEM_TOOLS", "").strip().lower()
    names = {part.strip() for part in raw.split(",") if part.strip()}
    return bool(names & {"1", "all", "true", "yes", name})


def find_tool(name: str) -> str | None:
    """The tool's path (an executable on PATH, or a data file), or None when missing or hidden."""
    if hidden(name):
        return None
    for candidate in SYSTEM_TOOLS[name][0]:
        found = candidate if candidate.startswith("/") and Path(candidate).exists() else shutil.which(candidate)
        if found:
            return found
    return None


def require_tool(name: str, why: str = "") -> str:
    """The tool's path; skip (locally) or fail (with ``CI`` set) naming the install line when it is missing."""
    path = find_tool(name)
    if path is not None:
        return path
    install = SYSTEM_TOOLS[name][1]
    reason = f"{SKIP_PREFIX} {name} ({install}){': ' + why if why else ''}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)
