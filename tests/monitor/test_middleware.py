"""The ASGI middleware on real HTTP (uvicorn on 127.0.0.1): events, metrics, failures, policy, sinks."""

from __future__ import annotations

import json
import logging
import threading

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pytest_aisp.findings import Severity
from pytest_aisp.monitor import (
    AispMonitorMiddleware,
    Alert,
    EventLog,
    JsonLinesSink,
    Monitor,
    MonitorMetrics,
    RateDetector,
    ResponsePolicy,
    WebhookSink,
    json_field,
    read_events,
)
from pytest_aisp.monitor.middleware import header
from pytest_aisp.serving import background_server, read_body


async def predict(request: Request) -> JSONResponse:
    inputs = (await request.json())["inputs"]
    if len(inputs) != 3:
        raise ValueError("expected three inputs")
    total = sum(inputs) or 1.0
    return JSONResponse({"scores": [v / total for v in inputs]})


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


class Exploding:
    """A detector with a bug: it raises on every event."""

    name = "boom"

    def observe(self, event):
        raise RuntimeError("detector bug")


def by_header(scope) -> str:
    return header(scope, "x-client") or "anon"


@pytest.fixture
def recorded(tmp_path):
    return tmp_path / "events.jsonl"


def test_requests_become_events_and_metrics(recorded):
    monitor = Monitor([RateDetector()], metrics=MonitorMetrics())
    log = EventLog(recorded)
    app = AispMonitorMiddleware(starlette_app(), monitor=monitor, client_key=by_header,
                                features=json_field("inputs"), prediction=json_field("scores"), event_sinks=[log])
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        for i in range(5):
            response = client.post("/predict", json={"inputs": [1.0, 2.0, float(i)]}, headers={"x-client": "alice"})
            assert response.status_code == 200
        metrics = client.get("/metrics")
    log.close()
    events = list(read_events(recorded))
    assert [e.client for e in events] == ["alice"] * 5
    assert events[4].features == (1.0, 2.0, 4.0) and events[4].prediction[2] == pytest.approx(4 / 7)
    assert all(e.latency_s > 0 for e in events)
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'aisp_requests_total{endpoint="/predict",status="200"} 5.0' in text
    assert 'aisp_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 5.0' in text
    assert "alice" not in text  # never a client id as a label


def test_a_raising_detector_loses_no_request(caplog):
    caplog.set_level(logging.CRITICAL)
    monitor = Monitor([Exploding(), RateDetector(rate_per_s=1, burst=2)], metrics=MonitorMetrics())
    app = AispMonitorMiddleware(starlette_app(), monitor=monitor, client_key=by_header)
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        statuses = [client.post("/predict", json={"inputs": [1, 1, 1]}).status_code for _ in range(20)]
        metrics = client.get("/metrics").text
    assert statuses == [200] * 20
    assert monitor.detector_errors == {"boom": 20}
    assert 'aisp_detector_errors_total{detector="boom"} 20.0' in metrics
    assert [a.detector for a in monitor.alerts] == ["rate"]  # the healthy detector still ran


def test_an_app_exception_is_recorded_as_500(recorded):
    log = EventLog(recorded)
    app = AispMonitorMiddleware(starlette_app(), monitor=Monitor([]), event_sinks=[log])
    with background_server(app, log_level="critical") as base, httpx.Client(base_url=base) as client:
        assert client.post("/predict", json={"inputs": [1]}).status_code == 500
    log.close()
    assert [e.status for e in read_events(recorded)] == [500]


def test_policy_answers_429_to_a_flooding_client_only():
    monitor = Monitor([RateDetector(rate_per_s=0.5, burst=5)], metrics=MonitorMetrics())
    app = AispMonitorMiddleware(starlette_app(), monitor=monitor, client_key=by_header,
                                policy=ResponsePolicy(block_floods=True, block_s=60))
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        flood = [client.post("/predict", json={"inputs": [1, 1, 1]}, headers={"x-client": "bot"}).status_code
                 for _ in range(10)]
        other = client.post("/predict", json={"inputs": [1, 1, 1]}, headers={"x-client": "human"}).status_code
        metrics = client.get("/metrics").text
    assert flood[:5] == [200] * 5 and flood[6:] == [429] * 4
    assert other == 200
    assert 'aisp_policy_actions_total{action="block"} 4.0' in metrics


def test_log_only_policy_never_blocks():
    monitor = Monitor([RateDetector(rate_per_s=0.5, burst=2)])
    app = AispMonitorMiddleware(starlette_app(), monitor=monitor, client_key=by_header)
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        statuses = {client.post("/predict", json={"inputs": [1, 1, 1]}).status_code for _ in range(10)}
    assert statuses == {200} and monitor.alerts


@pytest.mark.parametrize(("mode", "expected"), [("round", [0.2, 0.3, 0.5]), ("top1", [0.0, 0.0, 1.0])])
def test_policy_hardens_outputs_for_a_suspected_extractor(mode, expected):
    policy = ResponsePolicy(harden_extraction=True, harden=mode, decimals=1)
    app = AispMonitorMiddleware(starlette_app(), monitor=Monitor([]), client_key=by_header, policy=policy,
                                timestamp=lambda scope: 100.0)
    policy.update([Alert("extraction", "AISP-MON-EXTRACTION", Severity.HIGH, "thief", "/predict", 99.0, "x")])
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        body = {"inputs": [0.23, 0.31, 0.46]}
        stolen = client.post("/predict", json=body, headers={"x-client": "thief"})
        honest = client.post("/predict", json=body, headers={"x-client": "user"})
    assert stolen.json()["scores"] == expected
    assert int(stolen.headers["content-length"]) == len(stolen.content)
    assert honest.json()["scores"] == pytest.approx([0.23, 0.31, 0.46])


def test_streamed_request_body_reaches_app_and_detectors(recorded):
    log = EventLog(recorded)
    app = AispMonitorMiddleware(starlette_app(), monitor=Monitor([]), features=json_field("inputs"),
                                event_sinks=[log])
    payload = json.dumps({"inputs": [0.5, 0.25, 0.25]}).encode()

    def chunks():
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7]

    with background_server(app) as base, httpx.Client(base_url=base) as client:
        response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    log.close()
    assert response.status_code == 200 and response.json()["scores"] == [0.5, 0.25, 0.25]
    assert next(read_events(recorded)).features == (0.5, 0.25, 0.25)


def test_endpoint_labels_are_bounded():
    metrics = MonitorMetrics(max_endpoints=2)
    assert [metrics.endpoint_label(p) for p in ("/a", "/b", "/c", "/a", "/d")] == ["/a", "/b", "other", "/a", "other"]


def test_alert_sinks_json_lines_and_webhook(tmp_path):
    received: list[dict] = []
    got = threading.Event()

    async def receiver(scope, receive, send):
        body = await read_body(receive)
        received.append(json.loads(body))
        got.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with background_server(receiver) as hook:
        webhook = WebhookSink(hook + "/alerts")
        lines = JsonLinesSink(tmp_path / "alerts.jsonl")
        monitor = Monitor([RateDetector(rate_per_s=1, burst=1)], sinks=[lines, webhook])
        from pytest_aisp.monitor import Event

        monitor.observe_all(Event(ts=0.01 * i, client="bot", endpoint="/p") for i in range(5))
        assert webhook.flush(10) and got.wait(10)
        webhook.close()
    lines.close()
    logged = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["rule_id"] for a in logged] == ["AISP-MON-RATE"]
    assert received[0]["alert"]["client"] == "bot" and received[0]["source"] == "pytest-aisp"
    assert webhook.sent == 1 and webhook.failed == 0


def test_webhook_down_is_counted_not_raised(caplog):
    caplog.set_level(logging.CRITICAL)
    webhook = WebhookSink("http://127.0.0.1:9/nowhere", timeout_s=1)
    Monitor([RateDetector(rate_per_s=1, burst=1)], sinks=[webhook]).observe_all(
        __import__("pytest_aisp.monitor", fromlist=["Event"]).Event(ts=0.0, client="b", endpoint="/p")
        for _ in range(3))
    assert webhook.flush(10)
    webhook.close()
    assert webhook.failed == 1 and webhook.sent == 0


class Slow:
    """A detector that takes 200 ms an event (a shared store far away)."""

    name = "slow"

    def observe(self, event):
        import time

        time.sleep(0.2)
        return []


def test_background_monitoring_keeps_requests_off_the_detectors():
    """In the background the requests never wait on the detectors; the verdicts are those of the
    inline monitor once the worker has caught up; events beyond max_queue are counted unchecked."""
    inline = Monitor([RateDetector(rate_per_s=0.5, burst=5)])
    background = Monitor([RateDetector(rate_per_s=0.5, burst=5)])
    apps = [AispMonitorMiddleware(starlette_app(), monitor=inline, client_key=by_header, timestamp=lambda s: 1.0),
            AispMonitorMiddleware(starlette_app(), monitor=background, client_key=by_header,
                                  timestamp=lambda s: 1.0, background=True)]
    for app in apps:
        with background_server(app) as base, httpx.Client(base_url=base) as client:
            for _ in range(12):
                assert client.post("/predict", json={"inputs": [1, 1, 1]}, headers={"x-client": "bot"}).status_code \
                    == 200
        assert app.drain(10)
    assert [a.to_dict() for a in background.alerts] == [a.to_dict() for a in inline.alerts] != []

    slow = Monitor([Slow()])
    app = AispMonitorMiddleware(starlette_app(), monitor=slow, background=True, max_queue=3)
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        import time

        started = time.perf_counter()
        statuses = [client.post("/predict", json={"inputs": [1, 1, 1]}).status_code for _ in range(20)]
        elapsed = time.perf_counter() - started
    assert statuses == [200] * 20 and elapsed < 20 * 0.2 / 2  # no request waited on the slow detector
    assert app.drain(10)
    dropped = slow.detector_errors.get("queue", 0)
    assert dropped > 0 and slow.events_seen + dropped == 20
    app.close()


def test_monitoring_runs_inline_unless_state_is_shared():
    assert AispMonitorMiddleware(starlette_app(), monitor=Monitor([RateDetector()])).background is False

    class Shared(RateDetector):
        pass

    detector = Shared()
    detector.shared = object()  # any shared store
    assert AispMonitorMiddleware(starlette_app(), monitor=Monitor([detector])).background is True
