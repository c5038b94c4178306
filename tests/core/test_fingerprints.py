"""One stable identity per finding: distinct findings stay distinct, the same finding keeps its fingerprint
run after run (random ports, pytest's temporary folders), under xdist, and through every report."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pytest_aisp import Finding
from pytest_aisp.cli import main
from pytest_aisp.identity import fingerprint_of, identity_location, number_occurrences, stable_location
from pytest_aisp.reporters.entries import ReportedFinding, with_fingerprints
from pytest_aisp.reporters.sarif import build_sarif

# Findings that used to collide: two detectors on one client, three prompt attacks from one client,
# one probe family on a random port, a tamper test under tmp_path.
COLLIDING = '''
import socket
import pytest
from pytest_aisp import Finding, record_finding

def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

@pytest.mark.aisp
def test_monitor():
    for detector, signal in (("extraction", "prada"), ("extraction", "off_manifold"), ("rate", "bucket")):
        record_finding(Finding("AISP-MON-EXTRACTION", "high", f"{signal} fired", "/predict:client=thief",
                               {"detector": detector, "signal": signal, "ts": 1.5}))
    for ts, kind in enumerate(("injection", "jailbreak", "injection")):
        record_finding(Finding("AISP-MON-PROMPT-ATTACK", "high", kind, "/chat:client=attacker",
                               {"detector": "prompt", "kinds": [kind], "ts": float(ts)}))

@pytest.mark.aisp
def test_probes():
    url = f"http://127.0.0.1:{_port()}/v1/chat/completions"
    for probe in ("injection.direct", "injection.email"):
        record_finding(Finding("AISP-LLM-INJECTION", "high", f"{probe} with canary QX{_port()}", f"{url}:{probe}",
                               {"probe": probe, "reason": f"canary QX{_port()}"}, {"attack_success_rate": 1.0}))

@pytest.mark.aisp
def test_tamper(tmp_path):
    (tmp_path / "project").mkdir()
    record_finding(Finding("AISP-SUPPLY-MODIFIED", "critical", "changed", str(tmp_path / "project" / "m.pt"),
                           {"path": "m.pt", "change": "modified"}))
'''


def _entries(path) -> list[dict]:
    return json.loads((path / "aisp-findings.json").read_text())["entries"]


def test_distinct_findings_get_distinct_fingerprints_that_repeat_across_runs_and_xdist(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_collide=COLLIDING)
    pytester.runpytest("--aisp-report-dir=one", "--aisp-sarif=one/a.sarif").assert_outcomes(passed=3)
    pytester.runpytest_subprocess("-n", "2", "--aisp-report-dir=two").assert_outcomes(passed=3)
    one, two = _entries(pytester.path / "one"), _entries(pytester.path / "two")
    assert len(one) == 9
    assert len({e["fingerprint"] for e in one}) == 9
    assert sorted(e["fingerprint"] for e in one) == sorted(e["fingerprint"] for e in two)
    sarif = json.loads((pytester.path / "one" / "a.sarif").read_text())["runs"][0]["results"]
    hashes = [r["partialFingerprints"]["primaryLocationLineHash"] for r in sarif]
    assert len(set(hashes)) == 9 and set(hashes) == {e["fingerprint"] for e in one}


def test_locations_in_tmp_path_are_reported_relative_to_it_everywhere(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    pytester.makepyfile(test_collide=COLLIDING)
    pytester.runpytest("-k", "tamper", "--aisp-report-dir=out", "--aisp-sarif=out/a.sarif", "--junitxml=out/j.xml",
                       "--html=out/r.html", "--self-contained-html", "--aisp-html=out/aisp.html")
    (entry,) = _entries(pytester.path / "out")
    assert entry["finding"]["location"] == "{tmp_path}/project/m.pt"
    sarif = (pytester.path / "out" / "a.sarif").read_text()
    assert "{tmp_path}/project/m.pt" in sarif and "pytest-of-" not in sarif
    for report in ("j.xml", "r.html", "aisp.html"):
        text = (pytester.path / "out" / report).read_text()
        assert "{tmp_path}/project/m.pt" in text, report
        assert "pytest-of-" not in text.split("test_locations_in_tmp_path")[0] or report == "r.html", report


def test_stable_location_folds_temporary_folders_and_the_identity_folds_loopback_ports() -> None:
    roots = (("/tmp/pytest-of-ci/pytest-7/test_swap0", "{tmp_path}"), ("/repo", ""))
    inside = "/tmp/pytest-of-ci/pytest-7/test_swap0/p/m.pt:data.pkl"
    assert stable_location(inside, roots) == "{tmp_path}/p/m.pt:data.pkl"
    assert stable_location("/repo/models/cnn.pt", roots) == "models/cnn.pt"
    assert stable_location("/tmp/pytest-of-bob/pytest-12/popen-gw1/supply0/req.txt:3") == "{basetemp}/supply0/req.txt:3"
    assert identity_location("http://127.0.0.1:38821/v1:injection") == "http://127.0.0.1:{port}/v1:injection"
    assert identity_location("https://api.example.com:8443/v1") == "https://api.example.com:8443/v1"


def test_identity_keeps_what_tells_findings_apart_and_drops_what_is_measured() -> None:
    base = Finding("AISP-SCAN-PICKLE-GLOBAL", "high", "unknown global a.b", "m.pt:data.pkl",
                   {"global": "a.b", "offset": 10})
    moved = Finding("AISP-SCAN-PICKLE-GLOBAL", "critical", "other words", "m.pt:data.pkl",
                    {"global": "a.b", "offset": 99})
    other = Finding("AISP-SCAN-PICKLE-GLOBAL", "high", "unknown global a.c", "m.pt:data.pkl", {"global": "a.c"})
    assert fingerprint_of(base, "t::a") == fingerprint_of(moved, "t::a")
    assert fingerprint_of(base, "t::a") != fingerprint_of(other, "t::a")
    assert fingerprint_of(base, "t::a") != fingerprint_of(base, "t::b")
    bound = Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt", {"eps": 0.03}, {"robust_acc": 0.4, "min_acc": 0.7})
    looser = Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt", {"eps": 0.03}, {"robust_acc": 0.3, "min_acc": 0.5})
    worse = Finding("AISP-ROBUST-EVASION", "high", "weak", "m.pt", {"eps": 0.03}, {"robust_acc": 0.2, "min_acc": 0.7})
    assert fingerprint_of(bound, "t") == fingerprint_of(worse, "t") != fingerprint_of(looser, "t")
    twins = number_occurrences([(base, "t"), (moved, "t")])
    assert twins[0] == fingerprint_of(base, "t") and twins[0] != twins[1]


def test_merge_history_and_cli_keep_every_finding(pytester: pytest.Pytester, tmp_path) -> None:
    pytester.makepyfile(test_collide=COLLIDING)
    pytester.runpytest("--aisp-sarif=out/a.sarif", "--aisp-history=out/h.db", "--aisp-report-dir=out")
    merged = tmp_path / "m.sarif"
    assert main(["report", "merge", str(merged), str(pytester.path / "out" / "a.sarif")]) == 0
    assert len(json.loads(merged.read_text())["runs"][0]["results"]) == 9
    with sqlite3.connect(pytester.path / "out" / "h.db") as db:
        assert db.execute("SELECT count(DISTINCT fingerprint) FROM findings").fetchone()[0] == 9
    assert main(["history", "ingest", "--db", str(tmp_path / "h2.db"), str(pytester.path / "out")]) == 0
    with sqlite3.connect(tmp_path / "h2.db") as db:
        assert db.execute("SELECT count(DISTINCT fingerprint) FROM findings").fetchone()[0] == 9


def test_entries_without_fingerprints_are_numbered_in_order() -> None:
    finding = Finding("AISP-MON-DRIFT", "medium", "drift", "/predict:client=*", {"detector": "drift"})
    entries = with_fingerprints([ReportedFinding(finding, "t::d"), ReportedFinding(finding, "t::d")])
    assert entries[0].fingerprint != entries[1].fingerprint
    results = build_sarif(entries)["runs"][0]["results"]
    assert len({r["partialFingerprints"]["aispFinding/v2"] for r in results}) == 2
