"""`aisp llm probe` and `aisp llm list`, in process and end to end."""

from __future__ import annotations

import json
import subprocess
import sys

from pytest_aisp.cli import main


def test_probe_exit_codes_follow_findings(serve, capsys) -> None:
    weak = serve("weak-injection") + "/v1/chat/completions"
    assert main(["llm", "probe", "--endpoint", weak, "--probes", "injection", "--attempts", "1"]) == 1
    out = capsys.readouterr().out
    assert "AISP-LLM-INJECTION" in out and "injection.direct" in out
    hardened = serve("hardened") + "/v1/chat/completions"
    assert main(["llm", "probe", "--endpoint", hardened, "--probes", "injection", "--attempts", "1"]) == 0
    assert "no findings" in capsys.readouterr().out


def test_fail_on_raises_the_threshold(serve) -> None:
    url = serve("weak-jailbreak") + "/v1/chat/completions"
    args = ["llm", "probe", "--endpoint", url, "--probes", "jailbreak.dan", "--attempts", "1"]
    assert main(args) == 1
    assert main([*args, "--fail-on", "high"]) == 0


def test_json_report(serve, tmp_path) -> None:
    url = serve("weak-data-leak") + "/api/chat"
    out = tmp_path / "report.json"
    code = main(["llm", "probe", "--endpoint", url, "--api", "rest", "--request-template",
                 '{"message": "$INPUT", "session": "$SESSION"}', "--response-path", "$.reply.text",
                 "--probes", "data-leak", "--attempts", "1", "--format", "json", "--output", str(out)])
    assert code == 1
    report = json.loads(out.read_text())
    assert report["findings"] and report["findings"][0]["rule_id"] == "AISP-LLM-DATA-LEAK"
    assert {p["family"] for p in report["probes"]} == {"data-leak"}


def test_sarif_report_validates(serve, capsys) -> None:
    url = serve("weak-insecure-output") + "/v1/chat/completions"
    assert main(["llm", "probe", "--endpoint", url, "--probes", "insecure-output", "--attempts", "1",
                 "--format", "sarif"]) == 1
    document = json.loads(capsys.readouterr().out)
    rules = {r["id"] for run in document["runs"] for r in run["tool"]["driver"]["rules"]}
    assert rules == {"AISP-LLM-INSECURE-OUTPUT"}
    assert document["version"] == "2.1.0"
    assert all(r["ruleId"] == "AISP-LLM-INSECURE-OUTPUT" for run in document["runs"] for r in run["results"])


def test_errors_exit_2_with_one_line(serve, capsys) -> None:
    url = serve({"broken": "garbage"}) + "/v1/chat/completions"
    assert main(["llm", "probe", "--endpoint", url, "--probes", "injection.direct", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aisp: error:") and "not JSON" in err and len(err.strip().splitlines()) == 1
    assert main(["llm", "probe", "--endpoint", url, "--probes", "nonsense"]) == 2
    assert "unknown probe 'nonsense'" in capsys.readouterr().err


def test_list(capsys) -> None:
    assert main(["llm", "list"]) == 0
    out = capsys.readouterr().out
    assert "AISP-LLM-SYSTEM-PROMPT-LEAK" in out and "LLM07:2025" in out and "encoding.unicode-tags" in out


def test_end_to_end_in_a_subprocess(serve) -> None:
    url = serve("weak-encoding") + "/v1/chat/completions"
    done = subprocess.run([sys.executable, "-m", "pytest_aisp.cli", "llm", "probe", "--endpoint", url,
                           "--probes", "encoding.base64", "encoding.unicode-tags", "--attempts", "2"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "AISP-LLM-ENCODING" in done.stdout and "2/2" in done.stdout
