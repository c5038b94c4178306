"""Detector state shared by replicas through a real Redis server (started by the ``redis_url`` fixture)."""

from __future__ import annotations

import itertools
import logging
import time
import uuid

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_aisp import AispError
from pytest_aisp.cli import main
from pytest_aisp.monitor import (
    AispMonitorMiddleware,
    ErrorDetector,
    Event,
    ExtractionDetector,
    Monitor,
    MonitorMetrics,
    RateDetector,
    RedisState,
    json_field,
    monitor_from_config,
    read_events,
    replay,
)
from pytest_aisp.monitor.middleware import header
from pytest_aisp.serving import background_server


@pytest.fixture
def state(redis_url):
    """A shared state under a key prefix of its own (tests share one server)."""
    shared = RedisState(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    yield shared
    shared.close()


def by_header(scope) -> str:
    return header(scope, "x-client") or "anon"


def alternate(events, detectors):
    """Feed the events to the replicas' detectors in turn (a round-robin load balancer)."""
    alerts = []
    for event, detector in zip(events, itertools.cycle(detectors)):
        alerts.extend(detector.observe(event))
    return alerts


def signature(alerts):
    return [(a.detector, a.client, a.ts, a.severity.value, a.message) for a in alerts]


# --- the PRADA thief across two replicas, over real HTTP -------------------------------------------------------------

def test_a_thief_split_over_two_replicas_is_caught_only_with_shared_state(traffic, traffic_script, redis_url):
    """Two middleware instances (two ASGI apps on two servers) in front of the same model. A PRADA
    thief sends 200 synthetic queries, alternating between them, each replica seeing fewer than
    PRADA's 100 distances. With shared state the replicas together catch it; alone, neither does."""
    model = traffic_script.Mlp.load(traffic["model"])
    recorded = list(read_events(traffic["extraction_synthetic"]))
    thief = [e for e in recorded if e.client == "thief-synthetic"][:200]
    users = [e for e in recorded if e.client in ("user-0", "user-1")]
    requests = sorted(thief + users, key=lambda e: e.ts)

    def run(shared: RedisState | None) -> tuple[list, list[ExtractionDetector]]:
        detectors = [ExtractionDetector(shared=shared) for _ in range(2)]
        apps = [AispMonitorMiddleware(traffic_script.model_app(model), monitor=Monitor([d]), client_key=by_header,
                                      features=json_field("inputs"), prediction=json_field("scores"))
                for d in detectors]
        with background_server(apps[0]) as first, background_server(apps[1]) as second:
            clients = [httpx.Client(base_url=base, timeout=10) for base in (first, second)]
            for event, client in zip(requests, itertools.cycle(clients)):
                response = client.post("/predict", json={"inputs": list(event.features)},
                                       headers={"x-client": event.client, "x-api-key": traffic_script.API_KEY})
                assert response.status_code == 200
            for client in clients:
                client.close()
            assert all(app.background == (shared is not None) and app.drain(60) for app in apps)
        return [a for app in apps for a in app.monitor.alerts], detectors

    shared_state = RedisState(redis_url, prefix=f"prada-{uuid.uuid4().hex[:8]}")
    shared_alerts, _ = run(shared_state)
    isolated_alerts, isolated = run(None)
    shared_state.close()

    assert {(a.detector, a.client) for a in shared_alerts} == {("extraction", "thief-synthetic")}
    assert shared_alerts[0].evidence["w"] < 0.85
    assert isolated_alerts == []
    assert all(len(d._clients.peek("thief-synthetic").distances) < d.min_distances for d in isolated)


# --- the replicas together give one monitor's verdicts ------------------------------------------------------------

@pytest.mark.parametrize("log", ["extraction_synthetic", "extraction_random"])
def test_shared_prada_gives_the_verdicts_of_one_monitor(traffic, reference, state, log):
    events = list(read_events(traffic[log]))
    one = ExtractionDetector(reference=reference)
    expected = [a for e in events for a in one.observe(e)]
    replicas = [ExtractionDetector(reference=reference, shared=state) for _ in range(3)]
    got = alternate(events, replicas)
    assert expected and signature(got) == signature(expected)
    client = expected[0].client
    assert replicas[0].statistic(client) == one.statistic(client)


events_strategy = st.lists(
    st.tuples(st.floats(0.0, 2.0), st.sampled_from(["a", "b", "c"]), st.sampled_from([200, 200, 401, 403, 500])),
    min_size=1, max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events_strategy, st.integers(1, 3))
def test_shared_rate_and_auth_state_give_the_verdicts_of_one_monitor(state, steps, replicas):
    """Token buckets and 401/403 windows in Redis agree with the in-process ones to the last bit."""
    prefix = uuid.uuid4().hex[:8]
    ts, events = 1_767_225_600.0, []
    for gap, client, status in steps:
        ts += gap
        events.append(Event(ts=ts, client=f"{prefix}-{client}", endpoint="/p", status=status))

    def detectors(shared):
        return [RateDetector(rate_per_s=2, burst=3, spike_min_requests=10**9, shared=shared),
                ErrorDetector(auth_failures=2, auth_window_s=3, min_events=10**9, shared=shared)]

    one = Monitor(detectors(None), cooldown_s=0)
    expected = [a for e in events for a in one.observe(e)]
    fleet = [Monitor(detectors(state), cooldown_s=0) for _ in range(replicas)]
    got = [a for e, m in zip(events, itertools.cycle(fleet)) for a in m.observe(e)]
    assert signature(got) == signature(expected)


# --- split floods and credential stuffing ----------------------------------------------------------------------------

def test_a_flood_and_credential_stuffing_split_over_replicas(state):
    flood = [Event(ts=1000 + i / 15, client="flooder", endpoint="/p") for i in range(300)]  # 15/s for 20 s
    stuffing = [Event(ts=2000 + i, client="stuffer", endpoint="/p", status=401) for i in range(14)]

    def fleet(shared):
        return [Monitor([RateDetector(rate_per_s=10, burst=20, shared=shared),
                         ErrorDetector(auth_failures=10, auth_window_s=60, shared=shared)]) for _ in range(2)]

    for shared, caught in ((state, {"flooder", "stuffer"}), (None, set())):
        monitors = fleet(shared)
        alerts = [a for e, m in zip(flood + stuffing, itertools.cycle(monitors)) for a in m.observe(e)]
        assert {a.client for a in alerts} == caught, shared


# --- bounds, failures and configuration ------------------------------------------------------------------------------

def test_every_key_expires_and_none_grows_without_bound(state):
    rng = np.random.default_rng(0)
    detectors = [RateDetector(shared=state), ErrorDetector(shared=state),
                 ExtractionDetector(shared=state, max_distances=50, max_points_per_class=20, min_distances=20)]
    monitor = Monitor(detectors)
    for i in range(300):
        monitor.observe(Event(ts=float(i), client=f"c{i % 3}", endpoint="/p", status=401 if i % 7 else 200,
                              features=tuple(rng.uniform(0, 1, 4)), prediction=int(rng.integers(3))))
    keys = state.client.keys(f"{state.prefix}:*")
    assert len(keys) > 10
    sizes = {"distances": 0, "points": 0, "zset": 0}
    for key in keys:
        assert state.client.pttl(key) > 0, key
        if key.endswith(b":prada:distances"):
            sizes["distances"] = max(sizes["distances"], state.client.strlen(key))
        elif b":prada:points:" in key:
            sizes["points"] = max(sizes["points"], state.client.strlen(key))
        elif state.client.type(key) == b"zset":
            sizes["zset"] = max(sizes["zset"], state.client.zcard(key))
    # At their bounds: 50 distances, 10 + 1 auth failures; at most 20 points of 4 float64s a class.
    assert sizes["distances"] == 50 * 8 and sizes["zset"] == 11 and 0 < sizes["points"] <= 20 * 4 * 8
    assert all(b"c0" not in key for key in keys)  # client ids are hashed into the key names


def test_an_unreachable_redis_fails_closed_without_holding_up_requests(caplog):
    """Redis down: every request is still answered at once; each event counts as unchecked."""
    caplog.set_level(logging.CRITICAL)
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://:hunter2@127.0.0.1:{sock.getsockname()[1]}/0"
    shared = RedisState(dead, timeout_s=0.05, retry_after_s=30)
    monitor = Monitor([RateDetector(shared=shared)], metrics=MonitorMetrics())

    async def ok(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = AispMonitorMiddleware(ok, monitor=monitor, background=False)  # requests wait on the monitor
    with background_server(app) as base, httpx.Client(base_url=base) as client:
        started = time.perf_counter()
        statuses = [client.get("/p").status_code for _ in range(30)]
        elapsed = time.perf_counter() - started
    assert statuses == [200] * 30
    assert monitor.detector_errors == {"rate": 30}
    assert elapsed < 5  # one connection timeout, then the circuit stays open
    result = replay(Monitor([RateDetector(shared=shared)]), [Event(ts=0.0, client="c", endpoint="/p")])
    assert [f.rule_id for f in result.findings] == ["AISP-MON-UNCHECKED"]
    with pytest.raises(AispError, match="does not answer") as info:
        shared.check()
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_configuration_builds_the_shared_state(redis_url, monkeypatch, capsys):
    monitor = monitor_from_config({"shared": {"url": redis_url, "prefix": "cfg"}})
    shared = {d.name: getattr(d, "shared", None) for d in monitor.detectors}
    assert all(shared[name] is not None for name in ("rate", "errors", "extraction"))
    assert shared["rate"] is shared["extraction"] and shared["uninspected"] is None
    local = monitor_from_config({"shared": {"url": redis_url}}, shared=False)
    assert all(getattr(d, "shared", None) is None for d in local.detectors)
    monkeypatch.setenv("AISP_TEST_REDIS", redis_url)
    assert monitor_from_config({"shared": {"url_env": "AISP_TEST_REDIS"}}).detector("rate").shared is not None
    monkeypatch.delenv("AISP_TEST_REDIS")
    with pytest.raises(AispError, match=r"AISP_TEST_REDIS.*not set"):
        monitor_from_config({"shared": {"url_env": "AISP_TEST_REDIS"}})
    with pytest.raises(AispError, match="unknown keys"):
        monitor_from_config({"shared": {"host": "x"}})
    with pytest.raises(AispError, match="needs url or url_env"):
        monitor_from_config({"shared": {"prefix": "x"}})
    assert main(["monitor", "serve", "--upstream", "http://127.0.0.1:9", "--detectors", "rate",
                 "--shared-state", "redis://:hunter2@127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert "does not answer" in err and "hunter2" not in err
