"""Benchmark of the runtime monitor, on loopback only, bounded in count and time.

Each row says what both sides do. Rows whose other side is our own code are labelled
"baseline"; the only outside anchor is cachetools' LRUCache. Everything is measured in this run.

1. The middleware's added latency and throughput over HTTP: a small ASGI model app on 127.0.0.1
   bare, behind AispMonitorMiddleware with the rate, errors and extraction detectors reading
   both bodies (state in process, run inline), and the same with the state in Redis
   (``RedisState``, a throwaway redis-server on loopback; the middleware then runs the monitor in
   its worker thread, its default with shared state). Rounds alternate between the servers.
2. The same added latency without HTTP: the ASGI app called directly, request by request, the
   variants interleaved (also Redis state run inline on the event loop). This isolates the
   middleware's own cost from the HTTP stack and the load generator, which dominate (1) on a
   shared machine.
3. Memory of bounded per-client state, equal work: a token bucket per client for N distinct
   clients in our LruTable against cachetools.LRUCache (anchor), same capacity, same payload;
   and the monitor's detectors bounded (defaults) against the same detectors with room for
   every client (baseline).
4. A detector that raises on every request: every request must still be answered (a check).

Run: python benchmarks/bench_monitor.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from pytest_aisp.serving import read_body  # noqa: E402

DIM = 64
KINDS = ("bare", "monitored", "redis")  # the HTTP servers
DIRECT_KINDS = ("bare", "monitored", "redis-inline", "redis")  # the ASGI apps called directly
Row = tuple[str, float, float, str, str]  # measure, ours, other, other's role, what both sides do


async def model_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """A small model endpoint: scores for a 64-feature input (a fixed random linear layer)."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    x = np.asarray(json.loads(body)["inputs"])
    logits = x @ WEIGHTS
    scores = np.exp(logits - logits.max())
    payload = json.dumps({"scores": (scores / scores.sum()).round(6).tolist()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


WEIGHTS = np.random.default_rng(0).standard_normal((DIM, 10))


class Exploding:
    name = "exploding"

    def observe(self, event):  # type: ignore[no-untyped-def]
        raise RuntimeError("detector bug")


def build_app(kind: str, redis_url: str | None = None):  # type: ignore[no-untyped-def]
    """``bare``, ``monitored`` (state in process), ``redis`` (state in Redis, the monitor in the
    middleware's worker thread), ``redis-inline`` (state in Redis, the monitor on the event loop)
    or ``raising``."""
    if kind == "bare":
        return model_app
    import logging

    from pytest_aisp.monitor import (
        AispMonitorMiddleware,
        ErrorDetector,
        ExtractionDetector,
        Monitor,
        MonitorMetrics,
        RateDetector,
        RedisState,
        json_field,
    )

    logging.getLogger("pytest_aisp.monitor").setLevel(logging.CRITICAL)
    shared = RedisState(redis_url, prefix=f"bench-{os.getpid()}-{kind}") if kind.startswith("redis") else None
    detectors = [RateDetector(rate_per_s=1e6, burst=10**6, shared=shared), ErrorDetector(shared=shared),
                 ExtractionDetector(shared=shared)]
    if kind == "raising":
        detectors.insert(0, Exploding())
    return AispMonitorMiddleware(model_app, monitor=Monitor(detectors, metrics=MonitorMetrics()),
                                 features=json_field("inputs"), prediction=json_field("scores"),
                                 background=False if kind == "redis-inline" else None)


@contextlib.contextmanager
def throwaway_redis(folder: Path) -> Iterator[str | None]:
    """A redis-server on a free loopback port for the run (None when redis-server or the client is missing)."""
    binary = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        redis = None
    if binary is None or redis is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                                "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def serve(kind: str, port_file: Path, redis_url: str | None) -> None:
    """Child process: serve one app kind on a free loopback port and write the port to ``port_file``."""
    import uvicorn

    from pytest_aisp.serving import _bind

    sock = _bind("127.0.0.1", 0)
    app = build_app(kind, redis_url)
    port_file.write_text(str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off")).run(sockets=[sock])


def start_server(kind: str, tmp: Path, redis_url: str | None) -> tuple[subprocess.Popen, str]:
    port_file = tmp / f"{kind}.port"
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--serve", kind, "--port-file", str(port_file)]
    if redis_url:
        command += ["--redis", redis_url]
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_file.is_file() and port_file.read_text():
            base = f"http://127.0.0.1:{port_file.read_text()}"
            try:
                httpx.post(base + "/", json={"inputs": [0.0] * DIM}, timeout=2)
                return process, base
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def bodies(count: int = 256) -> list[bytes]:
    rng = np.random.default_rng(1)
    return [json.dumps({"inputs": rng.uniform(0, 1, DIM).round(4).tolist()}).encode() for _ in range(count)]


def load(base: str, requests: int, concurrency: int, max_seconds: float) -> dict[str, float]:
    """Send ``requests`` POSTs from ``concurrency`` threads; latency percentiles in ms and throughput."""
    payloads = bodies()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_thread = requests // concurrency
    stop_at = time.monotonic() + max_seconds

    def worker(index: int) -> None:
        mine: list[float] = []
        codes: dict[int, int] = {}
        with httpx.Client(base_url=base, timeout=10,
                          headers={"content-type": "application/json", "x-api-key": f"client-{index}"}) as client:
            for i in range(per_thread):
                if time.monotonic() > stop_at:
                    break
                started = time.perf_counter()
                response = client.post("/predict", content=payloads[(index * 31 + i) % len(payloads)])
                mine.append(time.perf_counter() - started)
                codes[response.status_code] = codes.get(response.status_code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"requests": len(ordered), "rps": len(ordered) / elapsed, "p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "ok": statuses.get(200, 0), "mean_ms": 1000 * statistics.fmean(ordered)}


def bench_http(quick: bool, tmp: Path, redis_url: str | None) -> list[Row]:
    """The servers run side by side; rounds alternate between them so that load from elsewhere on
    the machine hits all alike. Each figure is the median over rounds."""
    rounds = 5 if quick else 9
    requests = 600 if quick else 3000
    concurrency = 4
    kinds = [k for k in KINDS if k != "redis" or redis_url]
    servers = {kind: start_server(kind, tmp, redis_url) for kind in kinds}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    try:
        for _, base in servers.values():
            load(base, 200, concurrency, 30)  # warm-up
        for _ in range(rounds):
            for kind, (_, base) in servers.items():
                results[kind].append(load(base, requests, concurrency, 60 if quick else 120))
        dropped = {kind: _queue_drops(base) for kind, (_, base) in servers.items() if kind != "bare"}
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    def added(kind: str, key: str = "p99_ms") -> float:
        """The median over rounds of the difference to the bare server measured in the same round."""
        return statistics.median(m[key] - b[key] for m, b in zip(results[kind], results["bare"]))

    setup = f"{rounds} rounds x {requests} POSTs, {concurrency} clients"
    both = "both: the model app on uvicorn"
    rows: list[Row] = [
        ("HTTP throughput (req/s), in-process state", median("monitored", "rps"), median("bare", "rps"), "baseline",
         f"{both}; ours adds the middleware, rate+errors+extraction reading both bodies ({setup})"),
        ("HTTP p50 (ms), in-process state", median("monitored", "p50_ms"), median("bare", "p50_ms"), "baseline",
         both),
        ("HTTP p99 (ms), in-process state", median("monitored", "p99_ms"), median("bare", "p99_ms"), "baseline",
         f"{both}; added p99 {added('monitored'):+.2f} ms (median of the rounds' differences)"),
    ]
    if "redis" in results:
        rows += [
            ("HTTP throughput (req/s), Redis state", median("redis", "rps"), median("monitored", "rps"), "baseline",
             "both: middleware + the same detectors; ours keeps their state in Redis, the baseline in process"),
            ("HTTP p99 (ms), Redis state", median("redis", "p99_ms"), median("bare", "p99_ms"), "baseline",
             f"{both}; ours behind the middleware with Redis state: added p99 {added('redis'):+.2f} ms "
             "(median of the rounds' differences; goal < 2 ms); events the worker could not take "
             f"(queue full, counted unchecked): {dropped['redis']:.0f}"),
            ("HTTP p99 (ms), Redis vs in-process state", median("redis", "p99_ms"), median("monitored", "p99_ms"),
             "baseline", "both: middleware + the same detectors; state in Redis against in process"),
        ]
    else:
        rows.append(("HTTP, Redis state", float("nan"), float("nan"), "not run",
                     "redis-server or the redis client is missing: apt-get install redis-server; "
                     'pip install "pytest-aisp[redis]"'))
    return rows


def _queue_drops(base: str) -> float:
    """Events a server's worker could not take (``aisp_detector_errors_total{detector="queue"}``)."""
    metrics = httpx.get(base + "/metrics", timeout=10).text
    return next((float(line.split()[-1]) for line in metrics.splitlines()
                 if line.startswith('aisp_detector_errors_total{detector="queue"}')), 0.0)


def bench_asgi(quick: bool, redis_url: str | None) -> list[Row]:
    """Each variant called directly, the variants interleaved request by request; the time of one
    call includes the detectors (they run after the response is sent, before the call returns).

    Wall time on a loaded machine includes waiting for a core, for this process and, with Redis,
    for the server's; CPU time of this process and the server's own time per call
    (``INFO commandstats``) do not, so they are reported beside it."""
    count = 2000 if quick else 10000
    apps = {kind: build_app(kind, redis_url) for kind in DIRECT_KINDS if not kind.startswith("redis") or redis_url}
    payloads = bodies()
    wall: dict[str, list[float]] = {kind: [] for kind in apps}
    cpu: dict[str, list[float]] = {kind: [] for kind in apps}

    async def call(app, body: bytes, client: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        async def receive():  # type: ignore[no-untyped-def]
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):  # type: ignore[no-untyped-def]
            return None

        scope = {"type": "http", "method": "POST", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
                 "headers": [(b"content-type", b"application/json"), (b"x-api-key", f"client-{client}".encode())],
                 "client": ("127.0.0.1", 40000 + client)}
        started, started_cpu = time.perf_counter(), time.process_time()
        await app(scope, receive, send)
        return time.perf_counter() - started, time.process_time() - started_cpu

    async def run() -> None:
        for i in range(count + 200):
            for kind, app in apps.items():
                elapsed, used = await call(app, payloads[i % len(payloads)], i % 8)
                if i >= 200:  # warm-up
                    wall[kind].append(elapsed)
                    cpu[kind].append(used)

    server_before = _script_stats(redis_url)
    asyncio.run(run())
    started = time.perf_counter()
    caught_up = all(app.drain(600) for kind, app in apps.items() if kind != "bare")
    catch_up_s = time.perf_counter() - started
    server_after = _script_stats(redis_url)

    def pct(times: dict[str, list[float]], kind: str, q: float) -> float:
        ordered = sorted(times[kind])
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    rows: list[Row] = []
    for kind, label in (("monitored", "in-process state"), ("redis-inline", "Redis state, inline"),
                        ("redis", "Redis state, worker")):
        if kind not in apps:
            continue
        for name, times in (("wall", wall), ("CPU", cpu)):
            rows.append((f"ASGI call {name} p50 (ms), {label}", pct(times, kind, 0.5), pct(times, "bare", 0.5),
                         "baseline", f"both: the model app called directly, {count} requests; ours through the "
                         f"middleware (added {pct(times, kind, 0.5) - pct(times, 'bare', 0.5):+.3f} ms)"))
            rows.append((f"ASGI call {name} p99 (ms), {label}", pct(times, kind, 0.99), pct(times, "bare", 0.99),
                         "baseline", f"as above; added p99 {pct(times, kind, 0.99) - pct(times, 'bare', 0.99):+.3f} ms"
                         " (goal < 2 ms)"))
    calls = server_after[0] - server_before[0]
    if calls:
        server_us = (server_after[1] - server_before[1]) / calls
        rows.append(("Redis server time per script call (us)", server_us, float("nan"), "none",
                     f"{calls} calls, {calls / (2 * count):.2f} per request (INFO commandstats: evalsha and eval)"))
    if "redis" in apps:
        monitor = apps["redis"].monitor
        rows.append(("Redis worker: events handled", monitor.events_seen, count + 200, "check (sent)",
                     f"the worker caught up {catch_up_s:.2f} s after the last request ({caught_up=}); "
                     f"events it could not take (queue full): {monitor.detector_errors.get('queue', 0)}"))
    return rows


def _script_stats(redis_url: str | None) -> tuple[int, float]:
    """(script calls, microseconds spent in them) so far on the server."""
    if redis_url is None:
        return 0, 0.0
    import redis

    client = redis.Redis.from_url(redis_url)
    stats = client.info("commandstats")
    client.close()
    calls = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
    usec = sum(stats.get(f"cmdstat_{name}", {}).get("usec", 0) for name in ("evalsha", "eval"))
    return calls, float(usec)


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc), or 0 where unavailable."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory_child(kind: str, events: int, capacity: int) -> None:
    """Child process: per-client state for ``events`` distinct clients; print RSS growth and events/s."""
    before = rss_bytes()
    started = time.perf_counter()
    if kind in ("lru-ours", "lru-cachetools"):
        # The same work on both sides: a token bucket [tokens, last, over] per client, at most
        # ``capacity`` clients, the least recently used dropped first.
        if kind == "lru-ours":
            from pytest_aisp.monitor.state import LruTable

            table = LruTable(capacity, lambda: [50.0, float("nan"), 0.0])
            for i in range(events):
                bucket = table.get(f"c{i}")
                bucket[0] -= 1.0
                bucket[1] = i * 1e-4
        else:
            from cachetools import LRUCache

            cache: LRUCache = LRUCache(maxsize=capacity)
            for i in range(events):
                key = f"c{i}"
                bucket = cache.get(key)
                if bucket is None:
                    bucket = cache[key] = [50.0, float("nan"), 0.0]
                bucket[0] -= 1.0
                bucket[1] = i * 1e-4
    else:
        from pytest_aisp.monitor import ErrorDetector, Event, ExtractionDetector, Monitor, RateDetector

        room = {} if kind == "detectors-bounded" else {"max_clients": events + 1}
        features = tuple(float(v) for v in np.random.default_rng(0).uniform(0, 1, 8))
        monitor = Monitor([RateDetector(**room), ErrorDetector(**room), ExtractionDetector(**room)],
                          max_alert_keys=100_000)
        for i in range(events):
            monitor.observe(Event(ts=i * 1e-4, client=f"c{i}", endpoint="/predict", status=200, latency_s=0.001,
                                  features=features, prediction=i % 10))
    elapsed = time.perf_counter() - started
    print(json.dumps({"bytes": rss_bytes() - before, "events_per_s": events / elapsed}))


def measure_memory(kind: str, events: int, capacity: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--memory", kind, "--events", str(events),
                           "--capacity", str(capacity)], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
                              "PYTHONPATH", "")])})
    if done.returncode:
        raise RuntimeError(f"memory child {kind} failed: {done.stderr[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(quick: bool) -> list[Row]:
    events = 100_000 if quick else 1_000_000
    capacity = 10_000 if quick else 100_000
    rows: list[Row] = []
    try:
        import cachetools  # noqa: F401

        ours, anchor = measure_memory("lru-ours", events, capacity), measure_memory("lru-cachetools", events, capacity)
        what = (f"both: a token bucket per client for {events:,} distinct clients, at most {capacity:,} kept, "
                "least recently used dropped")
        rows += [("bounded table: RSS growth (MB)", ours["bytes"] / 1e6, anchor["bytes"] / 1e6,
                  "anchor (cachetools.LRUCache)", what),
                 ("bounded table: clients/s", ours["events_per_s"], anchor["events_per_s"],
                  "anchor (cachetools.LRUCache)", what)]
    except ImportError:
        rows.append(("bounded table", float("nan"), float("nan"), "not run",
                     "cachetools is not installed (pip install cachetools)"))
    bounded = measure_memory("detectors-bounded", events, capacity)
    unbounded = measure_memory("detectors-unbounded", events, capacity)
    what = (f"both: rate+errors+extraction over {events:,} events from as many clients; ours with the default "
            "bounds (100k rate/errors clients, 10k extraction clients), the baseline with room for every client")
    rows += [("detectors: RSS growth (MB)", bounded["bytes"] / 1e6, unbounded["bytes"] / 1e6, "baseline", what),
             ("detectors: events/s", bounded["events_per_s"], unbounded["events_per_s"], "baseline", what)]
    return rows


def bench_raising(quick: bool, tmp: Path) -> list[Row]:
    requests = 500 if quick else 5000
    process, base = start_server("raising", tmp, None)
    try:
        result = load(base, requests, 4, 60)
        metrics = httpx.get(base + "/metrics").text
    finally:
        process.terminate()
        process.wait(10)
    failures = next((float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith('aisp_detector_errors_total{detector="exploding"}')), 0.0)
    return [("raising detector: requests answered 200", result["ok"], result["requests"], "check (sent)",
             f"a detector raising on every request; detector errors counted: {failures:.0f}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about two minutes)")
    parser.add_argument("--serve", choices=("bare", "monitored", "redis", "raising"), help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--capacity", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory:
        memory_child(args.memory, args.events, args.capacity)
        return 0
    if args.serve:
        serve(args.serve, args.port_file, args.redis)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with throwaway_redis(tmp) as redis_url:
            rows = bench_http(args.quick, tmp, redis_url) + bench_asgi(args.quick, redis_url)
        rows += bench_memory(args.quick) + bench_raising(args.quick, tmp)
    print(f"{'measure':44s} {'ours':>12s} {'other':>12s} {'ratio':>7s}  other side  |  what both sides do")
    for name, ours, other, role, note in rows:
        ratio = ours / other if other else float("nan")
        print(f"{name:44s} {ours:12.3f} {other:12.3f} {ratio:7.3f}  {role}  |  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
