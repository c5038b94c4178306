"""Benchmark of the runtime monitor, on loopback only, bounded in count and time.

1. Throughput and p50/p99 latency of a small ASGI model app under a load generator on 127.0.0.1,
   bare (the anchor) and behind AispMonitorMiddleware with the rate, errors and extraction
   detectors reading the request and response bodies.
2. Memory after N events from N distinct clients (1M, or 100k with --quick): the monitor's
   bounded state against the anchor, a plain per-client dict of timestamps.
3. A detector that raises on every request: every request must still be answered.

Run: python benchmarks/bench_monitor.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from pytest_aisp.serving import read_body  # noqa: E402

DIM = 64


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


def build_app(kind: str):  # type: ignore[no-untyped-def]
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
        json_field,
    )

    logging.getLogger("pytest_aisp.monitor").setLevel(logging.CRITICAL)
    detectors = [RateDetector(rate_per_s=1e6, burst=10**6), ErrorDetector(), ExtractionDetector()]
    if kind == "raising":
        detectors.insert(0, Exploding())
    return AispMonitorMiddleware(model_app, monitor=Monitor(detectors, metrics=MonitorMetrics()),
                                 features=json_field("inputs"), prediction=json_field("scores"))


def serve(kind: str, port_file: Path) -> None:
    """Child process: serve one app kind on a free loopback port and write the port to ``port_file``."""
    import uvicorn

    from pytest_aisp.serving import _bind

    sock = _bind("127.0.0.1", 0)
    port_file.write_text(str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn.Config(build_app(kind), log_level="critical", access_log=False,
                                  lifespan="off")).run(sockets=[sock])


def start_server(kind: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    port_file = tmp / f"{kind}.port"
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port-file", str(port_file)], env=env)
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


def load(base: str, requests: int, concurrency: int, max_seconds: float) -> dict[str, float]:
    """Send ``requests`` POSTs from ``concurrency`` threads; latency percentiles in ms and throughput."""
    rng = np.random.default_rng(1)
    bodies = [json.dumps({"inputs": rng.uniform(0, 1, DIM).round(4).tolist()}).encode() for _ in range(256)]
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
                response = client.post("/predict", content=bodies[(index * 31 + i) % len(bodies)])
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


def bench_http(quick: bool, tmp: Path) -> list[tuple[str, float, float, str]]:
    """Bare and monitored servers run side by side; rounds alternate between them so that load
    from elsewhere on the machine hits both alike. Each figure is the median over rounds."""
    rounds = 3 if quick else 5
    requests = 1000 if quick else 4000
    concurrency = 4
    servers = {kind: start_server(kind, tmp) for kind in ("bare", "monitored")}
    results: dict[str, list[dict[str, float]]] = {"bare": [], "monitored": []}
    try:
        for _, base in servers.values():
            load(base, 200, concurrency, 30)  # warm-up
        for _ in range(rounds):
            for kind, (_, base) in servers.items():
                results[kind].append(load(base, requests, concurrency, 60 if quick else 120))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    total = sum(r["requests"] for r in results["monitored"])
    rows = [("throughput (req/s)", median("monitored", "rps"), median("bare", "rps"),
             f"{rounds} rounds x {requests} requests, {concurrency} clients")]
    rows.append(("latency p50 (ms)", median("monitored", "p50_ms"), median("bare", "p50_ms"), ""))
    added = median("monitored", "p99_ms") - median("bare", "p99_ms")
    rows.append(("latency p99 (ms)", median("monitored", "p99_ms"), median("bare", "p99_ms"),
                 f"added p99 {added:+.2f} ms over {total} monitored requests"))
    return rows


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc), or 0 where unavailable."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory_child(kind: str, events: int) -> None:
    """Child process: feed ``events`` events from as many clients; print RSS growth and events/s."""
    from pytest_aisp.monitor import ErrorDetector, Event, ExtractionDetector, Monitor, RateDetector

    features = tuple(float(v) for v in np.random.default_rng(0).uniform(0, 1, 8))
    before = rss_bytes()
    started = time.perf_counter()
    if kind == "ours":
        monitor = Monitor([RateDetector(), ErrorDetector(), ExtractionDetector()])
        for i in range(events):
            monitor.observe(Event(ts=i * 1e-4, client=f"c{i}", endpoint="/predict", status=200, latency_s=0.001,
                                  features=features, prediction=i % 10))
    else:
        naive: dict[str, list[float]] = {}
        for i in range(events):
            naive.setdefault(f"c{i}", []).append(i * 1e-4)
    elapsed = time.perf_counter() - started
    print(json.dumps({"bytes": rss_bytes() - before, "events_per_s": events / elapsed}))


def bench_memory(quick: bool) -> list[tuple[str, float, float, str]]:
    events = 100_000 if quick else 1_000_000
    measured = {}
    for kind in ("ours", "anchor"):
        done = subprocess.run([sys.executable, __file__, "--memory", kind, "--events", str(events)],
                              capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
                                  "PYTHONPATH", "")])})
        measured[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    ours, anchor = measured["ours"], measured["anchor"]
    return [(f"RSS growth after {events:,} clients (MB)", ours["bytes"] / 1e6, anchor["bytes"] / 1e6,
             f"anchor: dict of per-client timestamps; ours {ours['events_per_s']:,.0f} events/s "
             "(rate, errors, extraction)")]


def bench_raising(quick: bool, tmp: Path) -> list[tuple[str, float, float, str]]:
    requests = 500 if quick else 5000
    process, base = start_server("raising", tmp)
    try:
        result = load(base, requests, 4, 60)
        metrics = httpx.get(base + "/metrics").text
    finally:
        process.terminate()
        process.wait(10)
    failures = next((float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith('aisp_detector_errors_total{detector="exploding"}')), 0.0)
    return [("raising detector: requests answered 200", result["ok"], result["requests"],
             f"detector errors counted: {failures:.0f}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under two minutes)")
    parser.add_argument("--serve", choices=("bare", "monitored", "raising"), help=argparse.SUPPRESS)
    parser.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--memory", choices=("ours", "anchor"), help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory:
        memory_child(args.memory, args.events)
        return 0
    if args.serve:
        serve(args.serve, args.port_file)
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = bench_http(args.quick, tmp) + bench_memory(args.quick) + bench_raising(args.quick, tmp)
    print(f"{'measure':44s} {'ours':>12s} {'anchor':>12s} {'ratio':>7s}  note")
    for name, ours, anchor, note in rows:
        ratio = ours / anchor if anchor else float("nan")
        print(f"{name:44s} {ours:12.2f} {anchor:12.2f} {ratio:7.3f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
