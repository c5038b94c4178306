"""A baseline entry accepts the finding it was written for, as it was: not every finding of its rule, test and
location, and not the same finding once it got worse. Old (version 1) baseline files still load and match
conservatively."""

from __future__ import annotations

import json

import pytest

from pytest_aisp import Finding
from pytest_aisp.baseline import Baseline, BaselineEntry, baseline_from_findings, load_baseline
from pytest_aisp.verdict import Policy, decide

T = "tests/test_m.py::test_model"


def _global(name: str) -> Finding:
    return Finding("AISP-SCAN-PICKLE-GLOBAL", "high", f"unknown global {name}", "model.pt:archive/data.pkl",
                   {"global": name, "opcode": "GLOBAL", "offset": 7})


def _probe(probe: str, asr: float, severity: str = "high", port: int = 4111) -> Finding:
    return Finding("AISP-LLM-INJECTION", severity, f"{probe}: ASR {asr}", f"http://127.0.0.1:{port}/v1:injection",
                   {"probe": probe, "reason": "canary QZX81"}, {"attack_success_rate": asr})


def _robust(robust_acc: float, min_acc: float = 0.7) -> Finding:
    return Finding("AISP-ROBUST-EVASION", "high", "weak", "models/cnn.pt", {"attack": "pgd", "eps": 0.03},
                   {"robust_acc": robust_acc, "min_acc": min_acc})


def _policy(*accepted: tuple[str, Finding]) -> Policy:
    return Policy(baseline=baseline_from_findings(accepted))


def test_accepting_one_unknown_global_does_not_hide_the_next() -> None:
    policy = _policy((T, _global("mylib.Model")))
    assert decide([_global("mylib.Model")], nodeid=T, policy=policy).accepted
    verdict = decide([_global("mylib.Model"), _global("evil.Payload")], nodeid=T, policy=policy)
    assert [f.evidence["global"] for f, _ in verdict.accepted] == ["mylib.Model"]
    assert [f.evidence["global"] for f in verdict.failing] == ["evil.Payload"]


def test_an_accepted_probe_fails_again_when_its_success_rate_or_severity_rises() -> None:
    policy = _policy((T, _probe("injection.direct", 0.2)))
    assert decide([_probe("injection.direct", 0.2, port=5222)], nodeid=T, policy=policy).accepted  # new port
    assert decide([_probe("injection.email", 0.2)], nodeid=T, policy=policy).failing  # another probe
    worse = decide([_probe("injection.direct", 0.6)], nodeid=T, policy=policy)
    assert not worse.ok and "attack_success_rate got worse since it was accepted: 0.2 -> 0.6" in worse.refused[0][2]
    better = decide([_probe("injection.direct", 0.1)], nodeid=T, policy=policy)
    assert better.accepted
    rose = decide([_probe("injection.direct", 0.2, "critical")], nodeid=T, policy=policy)
    assert "severity rose from high to critical" in rose.refused[0][2]


def test_a_robustness_finding_fails_again_when_accuracy_drops_or_the_bound_changes() -> None:
    policy = _policy((T, _robust(0.41)))
    assert decide([_robust(0.41)], nodeid=T, policy=policy).accepted
    assert "robust_acc got worse" in decide([_robust(0.30)], nodeid=T, policy=policy).refused[0][2]
    assert decide([_robust(0.41, min_acc=0.9)], nodeid=T, policy=policy).failing  # another bound: not accepted


def test_a_refused_finding_fails_the_test_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_p='''
import pytest
from pytest_aisp import Finding, LLMVulnerability, enforce, record_finding

@pytest.mark.aisp
def test_probe():
    f = Finding("AISP-LLM-INJECTION", "high", "injection.direct: ASR 0.6", "app:injection",
                {"probe": "injection.direct"}, {"attack_success_rate": 0.6})
    enforce([record_finding(f)], LLMVulnerability, headline="injectable")
''')
    accepted = Finding("AISP-LLM-INJECTION", "high", "x", "app:injection", {"probe": "injection.direct"},
                       {"attack_success_rate": 0.2})
    Baseline((BaselineEntry.for_finding(accepted, "test_p.py::test_probe", reason="ML-7"),)).write(
        pytester.path / "b.json")
    result = pytester.runpytest("--aisp-baseline=b.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not accepted by the baseline: attack_success_rate got worse since it was "
                                 "accepted: 0.2 -> 0.6*"])


def test_version_1_files_load_and_match_conservatively(tmp_path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"version": 1, "entries": [
        {"rule_id": "AISP-SCAN-PICKLE-GLOBAL", "test": T, "location": "model.pt:archive/data.pkl",
         "reason": "our own class", "owner": "ml", "expires": "2999-01-01"}]}))
    baseline = load_baseline(path)
    policy = Policy(baseline=baseline)
    assert decide([_global("mylib.Model")], nodeid=T, policy=policy).accepted  # the one finding it named
    verdict = decide([_global("mylib.Model"), _global("evil.Payload")], nodeid=T, policy=policy)
    assert not verdict.accepted and len(verdict.refused) == 2
    assert "has no fingerprint and names 2 findings; rerun `aisp baseline update`" in verdict.refused[0][2]
    # baseline update migrates it: reason, owner and expiry kept, now with a fingerprint per finding
    migrated = baseline_from_findings([(T, _global("mylib.Model"))], previous=baseline)
    (entry,) = migrated.entries
    assert entry.fingerprint and (entry.reason, entry.owner, str(entry.expires)) == ("our own class", "ml",
                                                                                       "2999-01-01")


def test_round_trip_keeps_what_was_accepted(tmp_path) -> None:
    baseline = baseline_from_findings([(T, _robust(0.41)), ("*", _probe("injection.direct", 0.2))], reason="r")
    baseline.write(tmp_path / "b.json")
    loaded = load_baseline(tmp_path / "b.json")
    assert loaded.entries == baseline.entries
    body = json.loads((tmp_path / "b.json").read_text())
    assert body["version"] == 2
    probe = next(e for e in body["entries"] if e["rule_id"] == "AISP-LLM-INJECTION")
    assert probe["location"] == "http://127.0.0.1:{port}/v1:injection" and probe["test"] == "*"
    assert probe["metrics"] == {"attack_success_rate": 0.2} and probe["severity"] == "high"
