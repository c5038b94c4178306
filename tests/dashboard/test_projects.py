"""One dashboard for many projects: runs carry project and branch, pages filter by project, each project has
its own gate and its own triage (and baseline file); behind a reverse proxy it serves under a path prefix and
believes an identity header only from the configured proxy addresses, and triage records who decided."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pytest_aisp.baseline import load_baseline
from pytest_aisp.dashboard.access import parse_proxies
from pytest_aisp.dashboard.app import DashboardConfig, create_app
from pytest_aisp.dashboard.ingest import project_from_url, run_info
from pytest_aisp.dashboard.store import RunInfo, RunRecord, open_store

from .conftest import entry

TOKEN = "projects-token"
SHARED_TEST = "tests/test_model_security.py::test_robust_to_pgd"


def seed_projects(path: Path) -> None:
    """Two repositories with the same test and finding (so the same fingerprint) and their own branches."""
    with open_store(path) as store:
        for project, second in (("org/vision", ("AISP-ROBUST-EVASION", "high")),
                                ("org/llm", ("AISP-LLM-INJECTION", "low"))):
            store.record(RunRecord(RunInfo(f"{project}:1", "2026-11-01T10:00:00+00:00", "main", project=project),
                                   {SHARED_TEST: "passed"}, (), {SHARED_TEST: {"robust_acc": 0.8}}))
            store.record(RunRecord(
                RunInfo(f"{project}:2", "2026-11-02T10:00:00+00:00", "main", project=project),
                {SHARED_TEST: "failed"},
                (entry("AISP-SCAN-PICKLE-GLOBAL", "critical", "models/model.pkl"), entry(*second, "models/x.pt")),
                {SHARED_TEST: {"robust_acc": 0.8}},
            ))
        store.record(RunRecord(RunInfo("org/llm:3", "2026-11-02T11:00:00+00:00", "dev", project="org/llm"), {}, ()))


@pytest.fixture
def projects_db(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    seed_projects(path)
    return path


def make_client(db: Path, tmp_path: Path, *, client_host: str = "testclient", **options) -> TestClient:
    config = DashboardConfig(str(db), tmp_path / "aisp-baseline.json", tmp_path, **options)
    return TestClient(create_app(config), raise_server_exceptions=False, client=(client_host, 50000))


def fingerprints(page: str) -> list[str]:
    return re.findall(r'data-fingerprint="([0-9a-f]+)"', page)


def test_project_from_ci_variables_and_remotes(tmp_path: Path) -> None:
    assert run_info(tmp_path, {"GITHUB_REPOSITORY": "org/vision"}).project == "org/vision"
    assert run_info(tmp_path, {"CI_PROJECT_PATH": "group/sub/repo"}).project == "group/sub/repo"
    assert run_info(tmp_path, {"AISP_PROJECT": "explicit", "GITHUB_REPOSITORY": "org/x"}).project == "explicit"
    assert run_info(tmp_path, {"GIT_URL": "https://ci:s3cr3t@git.example/org/jenkins-repo.git"}).project == (
        "org/jenkins-repo")
    assert project_from_url("git@github.com:org/repo.git") == "org/repo"
    assert run_info(tmp_path, {"GIT_BRANCH": "origin/release"}).branch == "release"
    (tmp_path / "pyproject.toml").write_text('[tool.aisp.dashboard]\nproject = "org/from-config"\n')
    assert run_info(tmp_path, {}).project == "org/from-config"


def test_overview_shows_each_projects_gate_and_filters(projects_db: Path, tmp_path: Path) -> None:
    c = make_client(projects_db, tmp_path)
    page = c.get("/").text
    rows = dict(re.findall(r'<tr data-project="([^"]+)" data-branch="main">.*?<td class="gate">(.*?)</td>', page,
                           re.S))
    assert "failed" in rows["org/vision"] and "AISP-ROBUST-EVASION" in rows["org/vision"]
    assert "failed" in rows["org/llm"] and "AISP-ROBUST-EVASION" not in rows["org/llm"]
    assert 'data-project="org/llm" data-branch="dev"' in page
    llm = c.get("/", params={"project": "org/llm"}).text
    assert "Overview: org/llm" in llm and "org/vision" not in llm.split("</form>", 1)[1]
    assert c.get("/", params={"project": "org/nope"}).status_code == 404
    vision = c.get("/findings", params={"project": "org/vision", "branch": "main"}).text
    assert "AISP-ROBUST-EVASION" in vision and "AISP-LLM-INJECTION" not in vision
    trends = c.get("/trends", params={"project": "org/llm"}).text
    assert "Trends on org/llm" in trends


def test_triage_is_per_project_and_writes_that_projects_baseline(projects_db: Path, tmp_path: Path) -> None:
    baselines = tmp_path / "baselines"
    c = make_client(projects_db, tmp_path, token=TOKEN, baseline_dir=baselines)
    vision = c.get("/findings", params={"project": "org/vision", "rule": "AISP-SCAN-PICKLE-GLOBAL"}).text
    (fp,) = fingerprints(vision)
    llm = c.get("/findings", params={"project": "org/llm", "rule": "AISP-SCAN-PICKLE-GLOBAL"}).text
    assert fingerprints(llm) == [fp]  # the same finding identity in both repositories
    done = c.post(f"/findings/{fp}/triage", data={"project": "org/vision", "status": "accepted",
                                                  "reason": "allowlisted loader", "token": TOKEN},
                  follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/findings/{fp}?project=org%2Fvision"
    (accepted,) = load_baseline(baselines / "org" / "vision" / "aisp-baseline.json").entries
    assert (accepted.rule_id, accepted.location) == ("AISP-SCAN-PICKLE-GLOBAL", "models/model.pkl")
    assert not (baselines / "org" / "llm").exists()
    gates = c.get("/").text
    vision_gate = re.search(r'data-project="org/vision" data-branch="main">.*?</tr>', gates, re.S).group(0)
    llm_gate = re.search(r'data-project="org/llm" data-branch="main">.*?</tr>', gates, re.S).group(0)
    assert "AISP-SCAN-PICKLE-GLOBAL" not in vision_gate and "AISP-SCAN-PICKLE-GLOBAL" in llm_gate
    assert "accepted" in c.get("/findings", params={"project": "org/vision", "status": "accepted"}).text
    assert fingerprints(c.get("/findings", params={"project": "org/llm", "status": "accepted"}).text) == []
    exported = c.get("/baseline.json", params={"project": "org/vision"})
    assert exported.status_code == 200 and '"reason": "allowlisted loader"' in exported.text
    assert '"entries": []' in c.get("/baseline.json", params={"project": "org/llm"}).text
    detail = c.get(f"/findings/{fp}", params={"project": "org/vision"}).text
    assert "decided by <span id=\"decided-by\">token</span>" in detail


def test_identity_header_is_believed_only_from_trusted_proxies(projects_db: Path, tmp_path: Path) -> None:
    proxies = parse_proxies("10.0.0.0/24, ::1")
    behind = make_client(projects_db, tmp_path, client_host="10.0.0.7", trusted_proxies=proxies)
    (fp,) = fingerprints(behind.get("/findings", params={"project": "org/vision", "rule": "AISP-ROBUST-EVASION"}).text)
    page = behind.get(f"/findings/{fp}", params={"project": "org/vision"}, headers={"X-Forwarded-User": "alice"})
    assert "signed in as alice" in page.text and 'name="token"' not in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    form = {"project": "org/vision", "status": "false_positive", "reason": "test double", "csrf": csrf}
    forged = behind.post(f"/findings/{fp}/triage", data={**form, "csrf": "0" * 64},
                         headers={"X-Forwarded-User": "alice"})
    assert forged.status_code == 403 and "another site" in forged.text
    as_bob = behind.post(f"/findings/{fp}/triage", data=form, headers={"X-Forwarded-User": "bob"})
    assert as_bob.status_code == 403  # alice's form value does not work for another user
    ok = behind.post(f"/findings/{fp}/triage", data=form, headers={"X-Forwarded-User": "alice"},
                     follow_redirects=False)
    assert ok.status_code == 303
    detail = behind.get(f"/findings/{fp}", params={"project": "org/vision"}).text
    assert "decided by <span id=\"decided-by\">alice</span>" in detail
    assert load_baseline(tmp_path / "aisp-baseline.json").entries[0].reason == "false positive: test double"
    direct = make_client(projects_db, tmp_path, client_host="192.0.2.9", trusted_proxies=proxies)
    refused = direct.post(f"/findings/{fp}/triage", data=form, headers={"X-Forwarded-User": "alice"})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert "signed in as" not in direct.get("/", headers={"X-Forwarded-User": "alice"}).text


def test_path_prefix_with_and_without_the_proxy_stripping_it(projects_db: Path, tmp_path: Path) -> None:
    c = make_client(projects_db, tmp_path, root_path="/tools/aisp/", token=TOKEN)
    for path in ("/tools/aisp/", "/"):  # the proxy forwarded the prefix / stripped it
        page = c.get(path, params={"project": "org/vision"})
        assert page.status_code == 200
        hrefs = re.findall(r'(?:href|action)="([^"]+)"', page.text)
        assert hrefs and all(h.startswith("/tools/aisp/") for h in hrefs), hrefs
    (fp,) = fingerprints(c.get("/tools/aisp/findings",
                               params={"project": "org/vision", "rule": "AISP-ROBUST-EVASION"}).text)
    done = c.post(f"/tools/aisp/findings/{fp}/triage", data={"project": "org/vision", "reason": "x", "token": TOKEN},
                  follow_redirects=False)
    assert done.headers["location"].startswith(f"/tools/aisp/findings/{fp}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(projects_db: Path, tmp_path: Path) -> Iterator[str]:
    """``aisp dashboard`` itself, trusting a proxy address that is not the test's own (127.0.0.1)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "AISP_DASHBOARD_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_aisp.cli", "dashboard", "--db", str(projects_db), "--listen",
         f"127.0.0.1:{port}", "--root", str(tmp_path), "--root-path", "/aisp", "--trusted-proxy", "10.1.2.3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_forwarded_for_cannot_make_a_client_a_trusted_proxy(served: str) -> None:
    """The peer address decides, not X-Forwarded-For: a client that claims to come through the trusted proxy
    is still read-only."""
    headers = {"X-Forwarded-User": "mallory", "X-Forwarded-For": "10.1.2.3", "Forwarded": "for=10.1.2.3"}
    page = urllib.request.urlopen(urllib.request.Request(f"{served}/aisp/?project=org%2Fvision",
                                                         headers=headers), timeout=10).read().decode()
    assert "signed in as" not in page and "Overview: org/vision" in page
    data = urllib.parse.urlencode({"project": "org/vision", "reason": "x"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{served}/aisp/findings/{'0' * 32}/triage", data=data,
                                                      headers=headers), timeout=10)
    assert refused.value.code == 403
