"""End to end in a real headless Chromium (Debian's, driven by Playwright; no browser download): the overview of a
seeded history, filtering findings, accepting one (refused without the token), and the trend chart.

Screenshots are saved as test artifacts; with AISP_DOCS_SCREENSHOTS=1 they also refresh docs/img/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_aisp.baseline import load_baseline
from tests.system_tools import chromium_page

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
TOKEN = "browser-token"



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard(history: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    baseline = tmp_path / "aisp-baseline.json"
    env = dict(os.environ, AISP_DASHBOARD_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_aisp.cli", "dashboard", "--db", str(history), "--listen",
         f"127.0.0.1:{port}", "--baseline", str(baseline), "--root", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited: {proc.stdout.read().decode() if proc.stdout else ''}")
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}", baseline
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def page(tmp_path: Path) -> Iterator:
    with chromium_page(1200, 800) as opened:
        yield opened


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    if os.environ.get("AISP_DOCS_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / f"dashboard-{name}.png")


def test_overview_filter_triage_and_trends(dashboard: tuple[str, Path], page, tmp_path: Path) -> None:
    url, baseline = dashboard
    page.goto(url + "/")
    assert "Gate failed" in page.locator("section[data-branch='main'] #gate").inner_text()
    _shot(page, tmp_path, "overview")

    page.goto(url + "/findings?branch=main")
    assert page.locator("#findings tbody tr").count() == 2
    page.select_option("select[name=severity]", "critical")
    page.click("#apply")
    page.wait_for_url("**severity=critical**")
    rows = page.locator("#findings tbody tr")
    assert rows.count() == 1 and "AISP-LLM-INJECTION" in rows.inner_text()
    _shot(page, tmp_path, "findings")

    page.click("#findings tbody tr a")
    page.fill("input[name=reason]", "echo of the prompt")
    page.fill("input[name=token]", "not-the-token")
    page.click("#triage-submit")
    assert "wrong or missing token" in page.locator("#error").inner_text()
    assert not baseline.exists()

    page.go_back()
    page.select_option("select[name=status]", "false_positive")
    page.fill("input[name=reason]", "echo of the prompt")
    page.fill("input[name=token]", TOKEN)
    page.click("#triage-submit")
    assert "false positive: echo of the prompt" in page.locator("#triage-status").inner_text()
    (entry,) = load_baseline(baseline).entries
    assert entry.rule_id == "AISP-LLM-INJECTION" and entry.reason == "false positive: echo of the prompt"
    _shot(page, tmp_path, "finding")

    page.goto(url + "/trends?branch=main")
    chart = page.locator("svg.chart").first
    assert chart.is_visible() and chart.locator("polyline").count() >= 1
    box = chart.bounding_box()
    assert box is not None and box["width"] > 100
    _shot(page, tmp_path, "trends")
