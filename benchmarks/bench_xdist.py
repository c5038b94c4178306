"""The example suite (``examples/``, what ``tox -e demo`` runs) serial against pytest-xdist, as ratios.

Both sides run the same tests on the same inputs; only the number of worker processes differs. Rows:

- serial: one process with every core (the anchor);
- ``-n 2`` (and ``-n 4`` where there are 4 cores or more): each worker gets ``cores // workers`` threads from
  the plugin;
- ``-n 2`` with every worker on every core (``OMP_NUM_THREADS`` = cores, as before the plugin shared them),
  a baseline that shows what the share is worth.

Goal: ``-n 2`` at most 0.65 of serial on 2 cores. Run: ``python benchmarks/bench_xdist.py --quick`` (one run
per row) or without ``--quick`` (best of three).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def run_suite(workers: int, threads: int | None) -> tuple[float, str]:
    """Wall seconds of one run of the example suite, and its outcome line."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    args = [sys.executable, "-m", "pytest", "-m", "aisp", str(ROOT / "examples"), "-q", "-p", "no:cacheprovider",
            "-p", "no:randomly", f"--rootdir={ROOT}"]
    if workers:
        args += ["-n", str(workers)]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        done = subprocess.run(args, cwd=scratch, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-200:]
    if done.returncode != 0:
        raise SystemExit(f"the example suite failed ({done.returncode}): {summary}")
    return elapsed, summary


def best_of(repeats: int, workers: int, threads: int | None) -> tuple[float, str]:
    runs = [run_suite(workers, threads) for _ in range(repeats)]
    return min(r[0] for r in runs), runs[0][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run per row instead of the best of three")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    n = cores()
    rows = [("serial (anchor)", 0, None)]
    rows.append(("-n 2, cores shared by the plugin", 2, None))
    if n >= 4:
        rows.append(("-n 4, cores shared by the plugin", 4, None))
    rows.append((f"-n 2, every worker on all {n} cores (baseline)", 2, n))
    run_suite(0, None)  # warm-up: the fixture scripts cache their models and data on disk for every row alike
    print(f"example suite on {n} cores, {'one run' if repeats == 1 else f'best of {repeats}'} per row after one "
          "warm-up run; both sides run the same tests on the same cached fixtures")
    print(f"{'row':<48} {'seconds':>8} {'vs serial':>10}  outcome")
    serial = None
    for label, workers, threads in rows:
        seconds, summary = best_of(repeats, workers, threads)
        serial = serial or seconds
        print(f"{label:<48} {seconds:8.1f} {seconds / serial:9.2f}x  {summary}", flush=True)
    print("goal: -n 2 at most 0.65x serial on 2 cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
