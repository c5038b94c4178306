"""Every dashboard route over HTTP (Starlette's test client): pages, filters, triage with and without the token,
configuration validation, and error pages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pytest_aisp.baseline import load_baseline
from pytest_aisp.config import read_tool_table
from pytest_aisp.dashboard.app import DashboardConfig, create_app

from .conftest import sqlite_file

TOKEN = "s3cret-token"


def client(history: Path, tmp_path: Path, token: str | None = TOKEN) -> TestClient:
    config = DashboardConfig(str(history), tmp_path / "aisp-baseline.json", tmp_path, token)
    return TestClient(create_app(config), raise_server_exceptions=False)


def fingerprints(page: str) -> list[str]:
    return re.findall(r'data-fingerprint="([0-9a-f]+)"', page)


def test_overview_shows_gate_counts_and_new_vs_fixed(history: Path, tmp_path: Path) -> None:
    page = client(history, tmp_path).get("/").text
    assert "Branch main" in page and "Branch feature/x" in page
    assert "Gate failed" in page and "robust_acc" in page and "Gate passed" in page
    assert "2 new</span>, 1 fixed since run 1" in page


def test_findings_filter_and_sort(history: Path, tmp_path: Path) -> None:
    c = client(history, tmp_path)
    assert len(fingerprints(c.get("/findings?branch=main").text)) == 2
    critical = c.get("/findings", params={"branch": "main", "severity": "critical"}).text
    assert "AISP-LLM-INJECTION" in critical and "AISP-ROBUST-EVASION" not in critical
    by_module = c.get("/findings", params={"branch": "main", "module": "robust", "status": "new"}).text
    assert len(fingerprints(by_module)) == 1 and "AISP-ROBUST-EVASION" in by_module
    by_rule = c.get("/findings", params={"branch": "main", "sort": "rule"}).text
    assert by_rule.index("AISP-LLM-INJECTION") < by_rule.index("AISP-ROBUST-EVASION")


def test_finding_detail_has_evidence_and_history(history: Path, tmp_path: Path) -> None:
    c = client(history, tmp_path)
    fp = fingerprints(c.get("/findings?branch=main&rule=AISP-ROBUST-EVASION").text)[0]
    page = c.get(f"/findings/{fp}").text
    assert "&#34;eps&#34;: 0.03" in page or '"eps": 0.03' in page
    assert "robust_acc" in page and "bbbbbbbbbbbb" in page
    assert c.get("/findings/0000").status_code == 404


def test_triage_needs_the_token_and_writes_the_baseline(history: Path, tmp_path: Path) -> None:
    c = client(history, tmp_path)
    fp = fingerprints(c.get("/findings?branch=main&rule=AISP-ROBUST-EVASION").text)[0]
    refused = c.post(f"/findings/{fp}/triage", data={"reason": "known", "token": "wrong"})
    assert refused.status_code == 403 and not (tmp_path / "aisp-baseline.json").exists()
    missing_reason = c.post(f"/findings/{fp}/triage", data={"reason": " ", "token": TOKEN})
    assert missing_reason.status_code == 400
    ok = c.post(f"/findings/{fp}/triage", data={"status": "accepted", "reason": "tracked in ML-42",
                                                 "owner": "ml-team", "expires": "2027-03-31", "token": TOKEN},
                follow_redirects=False)
    assert ok.status_code == 303
    (entry,) = load_baseline(tmp_path / "aisp-baseline.json").entries
    assert (entry.rule_id, entry.location, entry.reason, entry.owner, str(entry.expires)) == (
        "AISP-ROBUST-EVASION", "models/cnn.pt", "tracked in ML-42", "ml-team", "2027-03-31")
    assert entry.test == "tests/test_model_security.py::test_robust_to_pgd"
    assert "accepted: tracked in ML-42" in c.get(f"/findings/{fp}").text
    assert "accepted" in c.get("/findings?branch=main&status=accepted").text


def test_read_only_without_a_token(history: Path, tmp_path: Path) -> None:
    c = client(history, tmp_path, token=None)
    fp = fingerprints(c.get("/findings?branch=main").text)[0]
    assert "Read-only" in c.get(f"/findings/{fp}").text
    assert c.post(f"/findings/{fp}/triage", data={"reason": "x", "token": ""}).status_code == 403
    assert c.post("/config", data={"seed": "1"}).status_code == 403


def test_trends_render_svg_charts(history: Path, tmp_path: Path) -> None:
    page = client(history, tmp_path).get("/trends?branch=main").text
    assert "<svg" in page and "robust_acc" in page and "findings per run" in page
    assert page.count("<polyline") >= 2


def test_config_validates_and_writes_aisp_toml(history: Path, tmp_path: Path) -> None:
    c = client(history, tmp_path)
    assert 'name="fail_on"' in c.get("/config").text
    bad = c.post("/config", data={"fail_on": "loud", "token": TOKEN})
    assert bad.status_code == 400 and "unknown severity" in bad.text
    assert not (tmp_path / "aisp.toml").exists()
    secret = c.post("/config", data={"extra": '[llm]\napi_key = "sk-live-123"', "token": TOKEN})
    assert secret.status_code == 400 and "looks like a secret" in secret.text
    broken = c.post("/config", data={"extra": "[llm\n", "token": TOKEN})
    assert broken.status_code == 400 and "not valid TOML" in broken.text
    good = c.post("/config", data={"seed": "7", "fail_on": "high", "llm_endpoint": "http://127.0.0.1:8000/v1",
                                   "extra": '[llm]\napi = "openai"\napi_key = "${OPENAI_API_KEY}"', "token": TOKEN})
    assert good.status_code == 200 and "Saved" in good.text
    table = read_tool_table(tmp_path)
    assert table["seed"] == 7 and table["fail_on"] == "high"
    assert table["llm"] == {"api": "openai", "api_key": "${OPENAI_API_KEY}"}


def test_corrupt_database_gives_an_error_page(tmp_path: Path) -> None:
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x00\xff" * 300)
    page = client(corrupt, tmp_path).get("/")
    assert page.status_code == 503 and "corrupt" in page.text and str(corrupt) in page.text
    assert "Traceback" not in page.text


@pytest.mark.parametrize("page", ["/", "/findings", "/trends", "/findings/abc"])
def test_wrong_schema_database_names_the_problem_on_every_page(tmp_path: Path, page: str) -> None:
    """A file that says schema version 1 but lacks its tables' columns: an error page naming what is missing,
    not a bare 500, and the file left exactly as it was."""
    wrong = tmp_path / "wrong.db"
    before = sqlite_file(wrong, "CREATE TABLE schema_version (version INTEGER NOT NULL)",
                     "INSERT INTO schema_version VALUES (1)", "CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    answer = client(wrong, tmp_path).get(page)
    assert answer.status_code == 503
    assert "The history cannot be read" in answer.text and "lacks columns" in answer.text
    assert "runs (branch" in answer.text and "nothing was changed" in answer.text
    assert wrong.read_bytes() == before


def test_a_refused_database_keeps_its_header(tmp_path: Path) -> None:
    """The dashboard said "nothing was changed" about a foreign SQLite file after switching it to WAL."""
    foreign = tmp_path / "other-app.db"
    before = sqlite_file(foreign, "CREATE TABLE users (id INTEGER)")
    answer = client(foreign, tmp_path).get("/")
    assert answer.status_code == 503 and "not an aisp history" in answer.text
    assert foreign.read_bytes() == before
    assert not (tmp_path / "other-app.db-wal").exists()


def test_build_links_are_http_only(tmp_path: Path) -> None:
    from pytest_aisp.dashboard.store import RunInfo, RunRecord, open_store

    db = tmp_path / "h.db"
    with open_store(db) as store:
        store.record(RunRecord(RunInfo("k1", "2026-11-01T00:00:00+00:00", "main", build_url="javascript:alert(9)")))
        store.record(RunRecord(RunInfo("k2", "2026-11-01T00:00:00+00:00", "dev",
                                       build_url="https://ci.example/job/7")))
        store.record(RunRecord(RunInfo("k3", "2026-11-01T00:00:00+00:00", "x", build_url="JavaScript:alert(1)//http://")))
        store.record(RunRecord(RunInfo("k4", "2026-11-01T00:00:00+00:00", "y", build_url="data:text/html,<b>x</b>")))
    page = client(db, tmp_path).get("/").text
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert "https://ci.example/job/7" in hrefs
    assert not [h for h in hrefs if not h.startswith(("/", "https://", "http://"))], hrefs
    assert "javascript:alert(9)" in page  # shown as text, so the odd value is visible
    assert "<b>x</b>" not in page


def test_cli_dashboard_refuses_a_bad_listen_and_a_corrupt_db(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pytest_aisp.cli import main

    assert main(["dashboard", "--db", str(tmp_path / "h.db"), "--listen", "nowhere"]) == 2
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x00\xff" * 300)
    assert main(["dashboard", "--db", str(corrupt)]) == 2
    err = capsys.readouterr().err
    assert "HOST:PORT" in err and "corrupt" in err and json.dumps("x")
