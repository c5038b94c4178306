"""docs/monitor.md's wiring example runs as written, and wires sinks the way the page says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from pytest_aisp.cli import main
from pytest_aisp.serving import background_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitor.md"


def python_block_after(heading: str) -> str:
    """The first ```python block after ``heading`` in docs/monitor.md."""
    text = DOC.read_text()
    start = text.index(heading)
    match = re.compile(r"```python\n(.*?)```", re.DOTALL).search(text, start)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


def test_the_middleware_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AISP_ALERT_WEBHOOK", raising=False)
    code = python_block_after("### ASGI middleware (FastAPI / Starlette)")
    namespace: dict = {"__name__": "monitor_docs_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    app, monitor = namespace["app"], namespace["monitor"]
    with background_server(app) as base, httpx.Client(base_url=base, headers={"x-api-key": "k-1"}) as client:
        statuses = [client.post("/predict", json={"inputs": [0.2, 0.3, 0.5]}).status_code for _ in range(15)]
        honest = client.post("/predict", json={"inputs": [1, 1, 2]}, headers={"x-api-key": "k-2"})
    assert statuses[:10] == [200] * 10 and statuses[-1] == 429  # the flood is blocked
    assert honest.json()["scores"] == [0.25, 0.25, 0.5]
    assert [a.detector for a in monitor.alerts] == ["rate"]
    alerts = [json.loads(line) for line in (tmp_path / "monitor/alerts.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (tmp_path / "monitor/traffic.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in alerts] == ["alert"] and len(events) == 16
    assert {e["kind"] for e in events} == {"event"}
    # With the same configuration, the traffic log replays to the alert; the alert log is refused as traffic.
    (tmp_path / "aisp.toml").write_text("[tool.aisp.monitor.rate]\nrate_per_s = 5\nburst = 10\n")
    capsys.readouterr()
    assert main(["monitor", "replay", "monitor/traffic.jsonl", "--config", "aisp.toml", "--detectors", "rate",
                 "--format", "json"]) == 1
    assert {a["rule_id"] for a in json.loads(capsys.readouterr().out)["alerts"]} == {"AISP-MON-RATE"}
    assert main(["monitor", "replay", "monitor/alerts.jsonl", "--detectors", "rate"]) == 2
    assert "is an alert record" in capsys.readouterr().err


def test_the_docs_say_where_each_sink_goes():
    text = DOC.read_text()
    assert "event_sinks=[EventLog(" in text
    assert "monitor.sinks.append(EventLog" not in text
    assert "as an event sink of the middleware, or" not in text  # the old, unclear wording
