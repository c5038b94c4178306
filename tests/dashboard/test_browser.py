"""End to end in a real headless Chromium (Debian's, driven by Playwright; no browser download) against
``aisp dashboard`` itself: the overview of two projects, filtering findings, accepting one (refused without
the token), the trend charts, a findings table that fits 1400 px, and triage behind a proxy under /aisp.

Screenshots are saved as test artifacts; with AISP_DOCS_SCREENSHOTS=1 they also refresh docs/img/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_aisp.baseline import load_baseline
from pytest_aisp.dashboard.store import RunInfo, RunRecord, open_store
from pytest_aisp.findings import Finding
from pytest_aisp.reporters.entries import ReportedFinding
from tests.system_tools import chromium_browser

from .conftest import entry

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
TOKEN = "browser-token"
PGD = "tests/test_model_security.py::test_robust_to_pgd"
SQUARE = "tests/test_model_security.py::test_robust_to_square_attack"
LLM = "tests/test_model_security.py::test_llm_endpoint_resists_prompt_injection"
LONG_LOCATION = "models/" + "/".join(f"experiment_{k:02d}_checkpoints" for k in range(8)) + "/cnn_state_dict.pt"
LONG_MESSAGE = ("robust accuracy 0.402 < min_acc 0.700 under pgd eps=0.03 norm=linf steps=40 restarts=2 [95% CI "
                "0.372-0.433], clean accuracy 0.981, n=1000; smallest counterexample: sample 17 (label 3 -> 8) at "
                "Linf distance 0.0300; see the pictures in the HTML report")



def seed_team_history(path: Path) -> None:
    """Two repositories recorded over eight CI runs each, as a platform team's dashboard holds them."""
    with open_store(path) as store:
        for k in range(8):
            day = f"2026-11-{k + 1:02d}T09:00:00+00:00"
            vision = [entry("AISP-SCAN-PICKLE-GLOBAL", "medium", "models/legacy.pkl", "tests/test_scan.py::test_safe")]
            if k == 7:
                weak = Finding("AISP-ROBUST-EVASION", "high", LONG_MESSAGE, LONG_LOCATION, {"eps": 0.03},
                               {"robust_acc": 0.402})
                vision.append(ReportedFinding(weak, PGD, "tests/test_model_security.py", 40, False, "failed"))
            store.record(RunRecord(
                RunInfo(f"vision:{k}", day, "main", f"{k:x}" * 40, f"https://ci.example/vision/{k}",
                        project="ml/vision"),
                {PGD: "failed" if k == 7 else "passed"}, tuple(vision),
                {PGD: {"robust_acc": (0.61, 0.63, 0.64, 0.66, 0.65, 0.68, 0.69, 0.402)[k], "clean_acc": 0.98,
                       "attack_success_rate": (0.36, 0.34, 0.33, 0.31, 0.32, 0.29, 0.28, 0.58)[k]},
                 SQUARE: {"robust_acc": (0.71, 0.72, 0.72, 0.74, 0.75, 0.75, 0.77, 0.76)[k]}},
            ))
            store.record(RunRecord(
                RunInfo(f"llm:{k}", day, "main", f"{k + 1:x}" * 40, project="ml/llm-gateway"),
                {LLM: "passed"},
                (entry("AISP-LLM-INJECTION", "critical", "http://127.0.0.1:8000/v1", LLM),) if k == 7 else (),
                {LLM: {"llm_attack_success_rate": (0.2, 0.15, 0.12, 0.1, 0.1, 0.08, 0.05, 0.05)[k],
                       "llm_probe_seconds": 1.24 - 0.02 * k, "llm_attempts": 70.0}},
            ))


@pytest.fixture
def team_history(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    seed_team_history(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start ``aisp dashboard`` with extra arguments; return its base URL. Stopped after the test."""
    procs: list[subprocess.Popen] = []

    def start(db: Path, *args: str, token: str | None = TOKEN) -> str:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "AISP_DASHBOARD_TOKEN"}
        if token:
            env["AISP_DASHBOARD_TOKEN"] = token
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_aisp.cli", "dashboard", "--db", str(db), "--listen", f"127.0.0.1:{port}",
             "--root", str(tmp_path), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"dashboard exited: {proc.stdout.read().decode() if proc.stdout else ''}")
                time.sleep(0.2)
        pytest.fail("the dashboard did not start within 30 s")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def browser() -> Iterator:
    with chromium_browser() as opened:
        yield opened


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    if os.environ.get("AISP_DOCS_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / f"dashboard-{name}.png")


def test_overview_filter_triage_and_trends(team_history: Path, serve, browser, tmp_path: Path) -> None:
    baseline = tmp_path / "aisp-baseline.json"
    url = serve(team_history, "--baseline", str(baseline))
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(url + "/")
    vision = page.locator("#projects tr[data-project='ml/vision'] td.gate")
    assert "failed" in vision.inner_text()
    assert "failed" in page.locator("#projects tr[data-project='ml/llm-gateway'] td.gate").inner_text()
    _shot(page, tmp_path, "overview")

    page.click("#projects tr[data-project='ml/vision'] a")
    page.wait_for_url("**project=ml%2Fvision**")
    assert "robust_acc of tests/test_model_security.py::test_robust_to_pgd fell from 0.69 to 0.402" in (
        page.locator("#gate").inner_text())
    page.goto(url + "/findings?project=ml%2Fvision")
    assert page.locator("#findings tbody tr").count() == 2
    page.select_option("select[name=severity]", "high")
    page.click("#apply")
    page.wait_for_url("**severity=high**")
    rows = page.locator("#findings tbody tr")
    assert rows.count() == 1 and "AISP-ROBUST-EVASION" in rows.inner_text()
    _shot(page, tmp_path, "findings")

    page.click("#findings tbody tr a")
    page.fill("input[name=reason]", "tracked in ML-42")
    page.fill("input[name=token]", "not-the-token")
    page.click("#triage-submit")
    assert "wrong or missing token" in page.locator("#error").inner_text()
    assert not baseline.exists()

    page.go_back()
    page.fill("input[name=reason]", "tracked in ML-42")
    page.fill("input[name=owner]", "vision-team")
    page.fill("input[name=token]", TOKEN)
    page.click("#triage-submit")
    assert "accepted: tracked in ML-42" in page.locator("#triage-status").inner_text()
    assert page.locator("#decided-by").inner_text() == "token"
    (accepted,) = load_baseline(baseline).entries
    assert accepted.rule_id == "AISP-ROBUST-EVASION" and accepted.location == LONG_LOCATION
    _shot(page, tmp_path, "finding")

    page.goto(url + "/trends?project=ml%2Fvision")
    charts = page.locator("section.trend svg.chart")
    assert charts.count() == 4  # attack success, clean accuracy, robust accuracy, findings per run
    robust = page.locator("section.trend[data-metric='robust_acc']")
    assert robust.locator("polyline").count() == 2 and robust.locator("ul.legend li").count() == 2
    box = robust.locator("svg.chart").bounding_box()
    assert box is not None and box["width"] > 300
    legend = robust.locator("ul.legend").bounding_box()
    assert legend is not None and legend["y"] >= box["y"] + box["height"] - 1  # below the drawing, not over it
    _shot(page, tmp_path, "trends")


def test_findings_table_fits_1400_px(team_history: Path, serve, browser) -> None:
    url = serve(team_history)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    for path in ("/findings?project=ml%2Fvision", "/?project=ml%2Fvision", "/trends?project=ml%2Fvision"):
        page.goto(url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than the window"
    page.goto(url + "/findings?project=ml%2Fvision")
    table = page.locator("#findings").bounding_box()
    assert table is not None and table["x"] + table["width"] <= 1400
    assert LONG_LOCATION in page.locator("#findings").inner_text()
    page.click("#findings tbody tr:has-text('AISP-ROBUST-EVASION') a")
    page.wait_for_url("**/findings/*")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the finding's page is {overflow} px wider than the window"


def test_triage_behind_a_proxy_under_a_path_prefix(team_history: Path, serve, browser, tmp_path: Path) -> None:
    """The proxy (here: the test, from 127.0.0.1) serves the dashboard under /aisp and names the user."""
    baselines = tmp_path / "baselines"
    url = serve(team_history, "--root-path", "/aisp", "--trusted-proxy", "127.0.0.1", "--baseline-dir",
                str(baselines), token=None)
    context = browser.new_context(viewport={"width": 1200, "height": 800},
                                  extra_http_headers={"X-Forwarded-User": "carol"})
    page = context.new_page()
    page.goto(url + "/aisp/")
    assert page.locator("#who").inner_text() == "signed in as carol"
    page.click("#projects tr[data-project='ml/llm-gateway'] a")
    page.wait_for_url("**/aisp/?project=ml%2Fllm-gateway")
    page.click("nav a:has-text('Findings')")
    page.wait_for_url("**/aisp/findings?project=ml%2Fllm-gateway")
    page.click("#findings tbody tr a")
    assert page.locator("input[name=token]").count() == 0
    page.select_option("select[name=status]", "false_positive")
    page.fill("input[name=reason]", "the canary is in the system prompt")
    page.click("#triage-submit")
    page.wait_for_url("**/aisp/findings/*")
    assert page.locator("#decided-by").inner_text() == "carol"
    (entry_,) = load_baseline(baselines / "ml" / "llm-gateway" / "aisp-baseline.json").entries
    assert entry_.reason == "false positive: the canary is in the system prompt"
    context.close()
