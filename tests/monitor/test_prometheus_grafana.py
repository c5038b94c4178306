"""The shipped alert rules, their unit tests and every Grafana panel query, checked by promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pytest_aisp.findings import Severity
from pytest_aisp.monitor import Alert, Event, Monitor, MonitorMetrics, RateDetector
from tests.system_tools import require_tool

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_aisp" / "monitor"
PROMETHEUS = PACKAGE / "prometheus"
DASHBOARD = PACKAGE / "grafana" / "aisp-monitor.json"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*", "$endpoint": ".*"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", "checks the alert rules and panel queries")


def run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_rules_are_valid(promtool):
    assert "SUCCESS: 19 rules found" in run(promtool, "check", "rules", "rules.yml", cwd=PROMETHEUS).stdout


def test_rules_unit_tests_pass(promtool):
    run(promtool, "test", "rules", "rules_test.yml", cwd=PROMETHEUS)


def test_rule_unit_tests_can_fail(promtool, tmp_path):
    """A wrong expectation makes `promtool test rules` fail: the tests above are not vacuous."""
    shutil.copy(PROMETHEUS / "rules.yml", tmp_path / "rules.yml")
    broken = (PROMETHEUS / "rules_test.yml").read_text().replace("severity: critical, aisp_rule: AISP-MON-EXTRACTION",
                                                                  "severity: warning, aisp_rule: AISP-MON-EXTRACTION")
    (tmp_path / "rules_test.yml").write_text(broken)
    done = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0


def test_example_scrape_config_is_valid(promtool):
    run(promtool, "check", "config", "prometheus.example.yml", cwd=PROMETHEUS)


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [(f"variable {v['name']}", v["query"]) for v in dashboard["templating"]["list"]
                if v["type"] == "query"]
    return queries


def concrete(expr: str) -> str:
    """A panel query with Grafana's variables filled in, so promtool can parse it."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    match = re.fullmatch(r"label_values\((.*),\s*\w+\)", expr)
    return match.group(1) if match else expr


def test_every_panel_query_parses(promtool, tmp_path):
    queries = panel_queries()
    assert len(queries) >= 12
    rules = {"groups": [{"name": "grafana-panels", "rules": [
        {"record": f"aisp:panel_query:{i}", "expr": concrete(expr)} for i, (_, expr) in enumerate(queries)]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    done = run(promtool, "check", "rules", "panels.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_a_broken_panel_query_is_caught(promtool, tmp_path):
    rules = {"groups": [{"name": "g", "rules": [{"record": "aisp:bad", "expr": "sum by (rule (aisp_alerts_total)"}]}]}
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(rules))
    assert subprocess.run([promtool, "check", "rules", "bad.yml"], cwd=tmp_path,
                          capture_output=True).returncode != 0


def exported_names() -> set[str]:
    """Every sample name the monitor exports once each metric has a value."""
    metrics = MonitorMetrics()
    monitor = Monitor([RateDetector(rate_per_s=1, burst=1)], metrics=metrics)
    monitor.observe_all(Event(ts=0.0, client="c", endpoint="/p", status=500, latency_s=0.01) for _ in range(3))
    monitor.observe(Event(ts=0.0, client="c", endpoint="/p", uninspected=("request-too-large",)))
    metrics.alert(Alert("x", "AISP-MON-RATE", Severity.LOW, "c", "/p", 0.0, "m"))
    metrics.detector_error("x")
    metrics.action("block")
    metrics.monitor_seconds.observe(0.0001)
    text = metrics.exposition()[0].decode()
    return set(re.findall(r"^(aisp_\w+?)(?:\{| )", text, flags=re.MULTILINE))


def test_rules_and_panels_use_only_exported_metrics():
    exported = exported_names()
    sources = (PROMETHEUS / "rules.yml").read_text() + DASHBOARD.read_text()
    used = set(re.findall(r"(?<![:\w])aisp_[a-z_]+\b(?!:)", sources))
    used = {name for name in used if not name.startswith("aisp_rule")}
    assert used and used <= exported, sorted(used - exported)


def test_rule_ids_in_rules_match_the_detectors():
    text = (PROMETHEUS / "rules.yml").read_text()
    ids = set(re.findall(r"AISP-MON-[A-Z-]+", text))
    assert ids == {"AISP-MON-RATE", "AISP-MON-EXTRACTION", "AISP-MON-DRIFT", "AISP-MON-ADVERSARIAL",
                   "AISP-MON-PROMPT-ATTACK", "AISP-MON-ERRORS", "AISP-MON-UNCHECKED", "AISP-MON-UNINSPECTED"}


def test_every_exported_metric_is_on_the_dashboard():
    dashboard = DASHBOARD.read_text()
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", name) for name in exported_names()}
    assert all(family in dashboard for family in families), sorted(f for f in families if f not in dashboard)


@pytest.mark.parametrize(("alert", "expected", "wrong"), [
    ("AispUnauthorisedSurge", "summary: \"model: 25% of requests", "summary: \"model: 50% of requests"),
    ("AispTrafficSpike", "requests across all replicas at 4/s", "requests across all replicas at 2/s"),
])
def test_replica_rule_tests_can_fail(promtool, tmp_path, alert, expected, wrong):
    """The aggregated rules' tests check the summed value: a wrong sum fails them."""
    shutil.copy(PROMETHEUS / "rules.yml", tmp_path / "rules.yml")
    tests = (PROMETHEUS / "rules_test.yml").read_text()
    assert expected in tests
    (tmp_path / "rules_test.yml").write_text(tests.replace(expected, wrong))
    done = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0 and alert in done.stdout + done.stderr


def test_provisioning_files_are_valid_yaml():
    dashboards = yaml.safe_load((PACKAGE / "grafana/provisioning/dashboards/aisp.yml").read_text())
    sources = yaml.safe_load((PACKAGE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert dashboards["providers"][0]["type"] == "file"
    assert sources["datasources"][0]["type"] == "prometheus"
    assert json.loads(DASHBOARD.read_text())["uid"] == "aisp-monitor"
