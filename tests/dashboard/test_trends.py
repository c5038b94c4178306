"""The trends page charts the security metrics users care about, one chart per metric on the metric's own
range, with legends that cannot overlap; internals (attempts, confidence bounds) and timings are not charted."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from pytest_aisp.dashboard.app import DashboardConfig, create_app
from pytest_aisp.dashboard.charts import HEIGHT, Series, axis_range, line_chart, ticks
from pytest_aisp.dashboard.store import RunInfo, RunRecord, open_store

from .conftest import entry

ROBUST = "tests/test_model_security.py::test_robust_to_pgd"
NOISE = "tests/test_model_security.py::test_robust_to_noise"
LLM = "tests/test_model_security.py::test_llm_endpoint"


def seed(path: Path, runs: int = 6) -> None:
    """Runs as the plugin records them: test metrics, and findings whose own metrics hold internals."""
    with open_store(path) as store:
        for k in range(runs):
            probe = entry("AISP-LLM-INJECTION", "high", "http://127.0.0.1:8000/v1", LLM, metrics={
                "attempts": 10.0, "hits": 3.0, "asr_low": 0.1, "asr_high": 0.6, "attack_success_rate": 0.3})
            evasion = entry("AISP-ROBUST-EVASION", "high", "models/cnn.pt", ROBUST, metrics={
                "robust_acc": 0.02 * k, "ci_low": 0.0, "ci_high": 0.09})
            store.record(RunRecord(
                RunInfo(f"r{k}", f"2026-11-0{k + 1}T00:00:00+00:00", "main"), {ROBUST: "failed"}, (probe, evasion),
                {ROBUST: {"robust_acc": 0.02 * k, "clean_acc": 0.98, "attack_success_rate": 0.97},
                 NOISE: {"robust_acc": 0.0},
                 LLM: {"llm_attack_success_rate": 0.3, "llm_probe_seconds": 1.2 - 0.01 * k, "llm_attempts": 70.0}},
            ))


def trends_page(tmp_path: Path, query: str = "") -> str:
    path = tmp_path / "h.db"
    seed(path)
    config = DashboardConfig(str(path), tmp_path / "aisp-baseline.json", tmp_path)
    return TestClient(create_app(config)).get("/trends" + query).text


def charted(page: str) -> list[str]:
    return re.findall(r'<section class="trend" data-metric="([^"]+)">', page)


def test_only_security_metrics_are_charted_one_chart_each(tmp_path: Path) -> None:
    page = trends_page(tmp_path)
    assert charted(page) == ["attack_success_rate", "clean_acc", "llm_attack_success_rate", "robust_acc",
                             "findings per run"]
    for internal in ("attempts", "hits", "asr_low", "asr_high", "ci_low", "ci_high", "llm_attempts",
                     "llm_probe_seconds"):
        assert f'data-metric="{internal}"' not in page
    assert page.count("<svg class='chart'") == 5
    others = page.split('id="other-metrics"', 1)[1]
    assert "llm_probe_seconds" in others and "timing, lower is better" in others and "llm_attempts" in others


def test_accuracy_axes_stay_within_zero_and_one(tmp_path: Path) -> None:
    """Values at 0 and 0.1 were drawn on an axis down to -0.0917."""
    page = trends_page(tmp_path)
    robust = page.split('data-metric="robust_acc"', 1)[1].split("</section>", 1)[0]
    assert "data-lo='0' data-hi='1'" in robust
    labels = [float(t) for t in re.findall(r"<text class='tick'[^>]*>([^<]+)</text>", robust)]
    assert min(labels) == 0.0 and max(labels) == 1.0
    assert not re.search(r">-\d", robust)
    ys = [float(y) for y in re.findall(r"<circle cx='[\d.]+' cy='([\d.]+)'", robust)]
    assert ys and all(0 <= y <= HEIGHT for y in ys)


def test_legends_are_html_beside_the_chart_not_text_over_it(tmp_path: Path) -> None:
    page = trends_page(tmp_path)
    robust = page.split('data-metric="robust_acc"', 1)[1].split("</section>", 1)[0]
    svg = robust.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "test_robust_to_pgd" not in re.sub(r"<title>.*?</title>|data-name='[^']*'", "", svg)
    legend = robust.split("<ul class='legend'>", 1)[1]
    assert "test_robust_to_pgd" in legend and "test_robust_to_noise" in legend


def test_the_window_bounds_the_runs_charted(tmp_path: Path) -> None:
    page = trends_page(tmp_path, "?runs=3")
    robust = page.split('data-metric="robust_acc"', 1)[1].split("</section>", 1)[0]
    assert "3 run(s) shown" in page
    assert len(re.findall(r"<circle", robust)) == 6  # 3 runs x 2 tests
    assert "#6" in robust and "#3" not in robust


def test_axis_range_and_ticks() -> None:
    assert axis_range([0.0, 0.1], 0.0, 1.0) == (0.0, 1.0)
    low, high = axis_range([1.2, 1.3], 0.0, None)
    assert low == 0.0 and high > 1.3
    assert axis_range([0.0, 0.0], 0.0, None) == (0.0, 1.0)
    low, high = axis_range([-3.0, 5.0], None, None)
    assert low < -3.0 and high > 5.0
    assert ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert line_chart("x", [Series("a", "a", [])]).startswith("<p class='empty'>")
