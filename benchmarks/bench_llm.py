"""LLM probing throughput with an injected 50 ms answer latency, and native probes vs garak.

Table 1, per concurrency (1, 8, 32), the injection family (5 probes; an attack and a control
request per attempt):
  ideal     requests * latency / concurrency (the goal: within 1.3x of it)
  engine    our probes against an in-process model that sleeps 50 ms (no HTTP): the engine's own cost
  http      our probes against the reference app over HTTP (the app runs in its own process)
  raw       the anchor: the same number of bare httpx requests to the same app at the same
            concurrency, with no probe logic: the floor this machine and server allow
Table 2: the same number of injection requests through garak (``run_garak``) and through the native
probes, as wall time, when garak can be run (importable here, or a Python that has it named by
``AISP_GARAK_PYTHON``).

    python benchmarks/bench_llm.py --quick     # under 2 minutes
    python benchmarks/bench_llm.py             # full sizes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_aisp.findings import AispError  # noqa: E402
from pytest_aisp.llm.endpoint import LLMEndpoint  # noqa: E402
from pytest_aisp.llm.probing import probe_llm  # noqa: E402

LATENCY_S = 0.050


@contextlib.contextmanager
def app_process(latency_ms: float) -> Iterator[str]:
    """The reference app in its own process (so its threads do not share our interpreter lock)."""
    process = subprocess.Popen([sys.executable, "-m", "pytest_aisp.cli", "llm", "serve-reference", "--port", "0",
                                "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("listening on "):
            raise SystemExit(f"the reference app did not start: {line!r}")
        yield line.split()[2]  # "listening on http://127.0.0.1:PORT (weaknesses: ...); chat URL ..."
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _sleeping_model(messages: list[dict[str, str]]) -> str:
    await asyncio.sleep(LATENCY_S)
    return "I'm Acme's assistant. I can help with questions about Acme products."


def timed_probe(endpoint: LLMEndpoint, attempts: int) -> tuple[float, int]:
    started = time.perf_counter()
    result = probe_llm(endpoint, "injection", attempts=attempts)
    return time.perf_counter() - started, result.requests


def raw_httpx(url: str, requests: int, concurrency: int) -> float:
    """Seconds for ``requests`` bare chat requests at ``concurrency`` (the anchor)."""
    import httpx

    async def run() -> float:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            async def one() -> None:
                async with gate:
                    response = await client.post(url, json={"messages": [{"role": "user", "content": "hi"}]})
                    response.json()

            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
            return time.perf_counter() - started

    return asyncio.run(run())


def garak_python() -> str | None:
    from pytest_aisp.llm.garak_bridge import garak_python as configured

    try:
        return configured()
    except AispError:
        return None


def garak_versus_native(base: str, prompts: int) -> tuple[float, float, int] | None:
    """(garak seconds, native seconds, requests each) for ``prompts`` injection prompts at concurrency 8."""
    python = garak_python()
    if python is None:
        return None
    from pytest_aisp.llm.garak_bridge import run_garak

    rest = LLMEndpoint(url=base + "/api/chat", api="rest", request_template={"message": "$INPUT"},
                       response_path="$.reply.text", concurrency=8)
    started = time.perf_counter()
    run_garak(rest, ["promptinject.HijackHateHumans"], max_prompts=prompts, python=python)
    garak_seconds = time.perf_counter() - started
    started = time.perf_counter()
    # Each native attempt is an attack and its control: half the attempts, the same requests.
    native = probe_llm(rest, "injection.direct", attempts=max(1, prompts // 2))
    native_seconds = time.perf_counter() - started
    return garak_seconds, native_seconds, native.requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    args = parser.parse_args()
    # More attempts at higher concurrency, so that every run spans several waves of requests.
    attempts = {1: 4, 8: 16, 32: 32} if args.quick else {1: 20, 8: 80, 32: 160}
    prompts = 16 if args.quick else 64
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"LLM probe throughput with {LATENCY_S * 1000:.0f} ms answer latency (injection family)")
    print(f"{'conc':>4} {'requests':>8} {'ideal s':>8} {'engine s':>8} {'x ideal':>7} {'http s':>7} "
          f"{'raw s':>7} {'http/raw':>8} {'x ideal':>7} {'attempts/s':>10}")
    with app_process(LATENCY_S * 1000) as base:
        url = base + "/v1/chat/completions"
        for concurrency, per_probe in attempts.items():
            engine_s, requests = timed_probe(LLMEndpoint.from_callable(_sleeping_model, concurrency=concurrency),
                                             per_probe)
            http_s, _ = timed_probe(LLMEndpoint(url=url, concurrency=concurrency), per_probe)
            raw_s = raw_httpx(url, requests, concurrency)
            ideal = requests * LATENCY_S / concurrency
            print(f"{concurrency:>4} {requests:>8} {ideal:>8.2f} {engine_s:>8.2f} {engine_s / ideal:>7.2f} "
                  f"{http_s:>7.2f} {raw_s:>7.2f} {http_s / raw_s:>8.2f} {http_s / ideal:>7.2f} "
                  f"{requests / 2 / http_s:>10.1f}")
        print()
        compared = garak_versus_native(base, prompts)
    if compared is None:
        print("garak vs native: garak is not installed here (set AISP_GARAK_PYTHON); not measured")
    else:
        garak_seconds, native_seconds, requests = compared
        print(f"garak vs native: {requests} injection requests at concurrency 8, {LATENCY_S * 1000:.0f} ms latency")
        print(f"{'runner':>8} {'seconds':>8} {'ratio':>6}")
        print(f"{'native':>8} {native_seconds:>8.2f} {1.0:>6.2f}")
        print(f"{'garak':>8} {garak_seconds:>8.2f} {garak_seconds / native_seconds:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
