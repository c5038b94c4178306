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
                 '{"message": "$INPUT", "system": "$SYSTEM", "session": "$SESSION"}', "--response-path",
                 "$.reply.text", "--probes", "data-leak", "--attempts", "2", "--format", "json", "--output", str(out)])
    assert code == 1
    report = json.loads(out.read_text())
    assert report["findings"] and {f["rule_id"] for f in report["findings"]} == {"AISP-LLM-DATA-LEAK"}
    assert {p["family"] for p in report["probes"]} == {"data-leak"}


def test_json_report_holds_every_attempt_bounded_and_redacted(serve, app, tmp_path) -> None:
    # Passes are auditable: attacks and controls, hit or not, each with its prompt and answer.
    url = serve("weak-injection") + "/v1/chat/completions"
    out = tmp_path / "report.json"
    code = main(["llm", "probe", "--endpoint", url, "--probes", "injection", "system-prompt-leak", "--attempts", "2",
                 "--canary", app.SERVER_CANARY, "--secret", app.SERVER_API_KEY, "--format", "json",
                 "--output", str(out)])
    assert code == 1
    report = json.loads(out.read_text())
    for probe in report["probes"]:
        assert len(probe["transcripts"]) == 2, probe["probe"]
        for attempt in probe["transcripts"]:
            for role in ("attack", "control"):
                turns = attempt[role]["turns"]
                assert [t["role"] for t in turns][-2:] == ["user", "assistant"]
                assert all(len(t["content"]) <= 400 for t in turns)
    leak = next(p for p in report["probes"] if p["probe"] == "system-prompt-leak.direct")
    assert leak["hits"] == 0 and not any(a["attack_hit"] for a in leak["transcripts"])  # passes are there too
    text = out.read_text()
    assert app.SERVER_API_KEY not in text and app.SERVER_CANARY not in text


def test_sarif_report_validates(serve, capsys) -> None:
    url = serve("weak-insecure-output") + "/v1/chat/completions"
    assert main(["llm", "probe", "--endpoint", url, "--probes", "insecure-output", "--attempts", "1",
                 "--format", "sarif"]) == 1
    document = json.loads(capsys.readouterr().out)
    rules = {r["id"] for run in document["runs"] for r in run["tool"]["driver"]["rules"]}
    # The image and link probes also carry the planted secret code out: a system prompt leak too.
    assert rules == {"AISP-LLM-INSECURE-OUTPUT", "AISP-LLM-SYSTEM-PROMPT-LEAK"}
    assert document["version"] == "2.1.0"
    assert {r["ruleId"] for run in document["runs"] for r in run["results"]} == rules


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


def test_probe_reads_tool_aisp_llm(serve, app, tmp_path, monkeypatch) -> None:
    # The CLI and the fixture read the same configuration: attempts and canaries from pyproject.toml.
    url = serve("weak-system-prompt-leak") + "/v1/chat/completions"
    (tmp_path / "pyproject.toml").write_text(f"""
[tool.aisp]
llm_endpoint = "{url}"
fail_on = "high"

[tool.aisp.llm]
attempts = 1
canaries = ["{app.SERVER_CANARY}"]
probes = ["system-prompt-leak.direct"]
""")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AISP_LLM_ENDPOINT", raising=False)
    out = tmp_path / "report.json"
    assert main(["llm", "probe", "--format", "json", "--output", str(out)]) == 1
    report = json.loads(out.read_text())
    assert [(p["probe"], p["attempts"]) for p in report["probes"]] == [("system-prompt-leak.direct", 1)]
    # The weak app recites its server-side prompt: the configured canary is known, and redacted.
    text = out.read_text()
    assert app.SERVER_CANARY not in text and "***" in text
    # A flag wins over the file.
    assert main(["llm", "probe", "--attempts", "2", "--format", "json", "--output", str(out)]) == 1
    assert json.loads(out.read_text())["probes"][0]["attempts"] == 2


def test_probe_without_any_endpoint_is_an_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AISP_LLM_ENDPOINT", raising=False)
    assert main(["llm", "probe"]) == 2
    assert "pass --endpoint URL" in capsys.readouterr().err


def test_serve_reference_from_the_wheel(tmp_path) -> None:
    # No source checkout needed: the app is in the package, served on loopback only.
    import re

    command = [sys.executable, "-m", "pytest_aisp.cli", "llm", "serve-reference", "--port", "0", "--weak", "injection"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = process.stdout.readline()
        url = re.search(r"chat URL (\S+)", line).group(1)
        done = subprocess.run([sys.executable, "-m", "pytest_aisp.cli", "llm", "probe", "--endpoint", url,
                               "--probes", "injection.direct", "--attempts", "1"],
                              capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
        assert done.returncode == 1 and "AISP-LLM-INJECTION" in done.stdout
    finally:
        process.terminate()
        process.wait(timeout=10)
    refused = subprocess.run([*command[:-2], "--host", "0.0.0.0"], capture_output=True, text=True, timeout=30,
                             check=False)
    assert refused.returncode == 2 and "loopback address only" in refused.stderr


def test_serve_model_refuses_what_it_cannot_serve(tmp_path, capsys) -> None:
    # Checked before any model loads: a non-loopback address, a missing GGUF file.
    assert main(["llm", "serve-model", "--host", "0.0.0.0", "--gguf", str(tmp_path / "m.gguf")]) == 2
    assert "loopback address only" in capsys.readouterr().err
    assert main(["llm", "serve-model", "--port", "0", "--gguf", str(tmp_path / "m.gguf")]) == 2
    assert "m.gguf does not exist" in capsys.readouterr().err
