"""System tools that a few tests need (Debian packages), found one way everywhere.

On a developer machine a missing tool skips its test with the one line that installs it; when ``CI`` is
set the test fails instead, because ``.ci/run`` installs every tool listed here. ``AISP_HIDE_SYSTEM_TOOLS=1``
hides them all (or a comma-separated list hides some), to check what a machine with only Python does.
The session ends with one list of what was skipped for a missing tool (``tests/conftest.py``).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

SKIP_PREFIX = "system tool missing:"

# tool -> (where to look, the Debian install line)
SYSTEM_TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "promtool": (("promtool",), "apt-get install -y prometheus"),
    "chromium": (("chromium", "chromium-browser"), "apt-get install -y chromium"),
    "redis-server": (("redis-server",), "apt-get install -y redis-server"),
    "sarif-multitool": (("sarif-multitool",), "npm install -g @microsoft/sarif-multitool@5.7.0"),
    # Debian keeps PostgreSQL's server binaries off the PATH
    "postgresql": (("pg_ctl", "/usr/lib/postgresql/*/bin/pg_ctl"), "apt-get install -y postgresql"),
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
        found = sorted(glob.glob(candidate))[-1:] if candidate.startswith("/") else [shutil.which(candidate)]
        if found and found[0]:
            return found[0]
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


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no browser download). Background networking is off:
    this machine's closed network would refuse its connections at every start."""
    executable = require_tool("chromium", "the browser tests drive it headless")
    from playwright.sync_api import sync_playwright  # the dev extra

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """One page of :func:`chromium_browser` with a ``width`` x ``height`` viewport."""
    with chromium_browser() as browser:
        yield browser.new_page(viewport={"width": width, "height": height})
