"""GPU pool, CPU thread share and per-xdist-worker assignment.

Each xdist worker ``gwN`` gets ``pool[N % len(pool)]`` as its own ``CUDA_VISIBLE_DEVICES``, set
before any conftest can import torch. GPU ids are opaque strings: indexes, UUIDs and MIG ids work.

Each worker also gets its share of the CPU: ``cores // workers`` threads (at least one) for torch,
OpenMP and the BLAS libraries, so ``-n 2`` on two cores runs two single-threaded workers instead of
two workers fighting over four threads. A thread variable the caller set is left alone, and an
``OMP_NUM_THREADS`` of the caller's sets the unset others.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping, Sequence

_WORKER = re.compile(r"^gw(\d+)$")


def gpu_pool(configured: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The GPUs to spread workers over: ``--aisp-gpus`` if given, else the caller's CUDA_VISIBLE_DEVICES."""
    if configured:
        return tuple(configured)
    environ = os.environ if environ is None else environ
    raw = environ.get("CUDA_VISIBLE_DEVICES", "")
    return tuple(part.strip() for part in raw.split(",") if part.strip() and part.strip() != "-1")


def worker_index(environ: Mapping[str, str] | None = None) -> int | None:
    """The xdist worker number (``gw3`` -> 3), or None in the controller or without xdist."""
    environ = os.environ if environ is None else environ
    match = _WORKER.match(environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else None


def gpu_for_worker(pool: Sequence[str], index: int | None) -> str | None:
    """The GPU of worker ``index``: ``pool[index % len(pool)]``; None without a pool or a worker."""
    if not pool or index is None:
        return None
    return pool[index % len(pool)]


def assign_worker_gpu(pool: Sequence[str], environ: MutableMapping[str, str] | None = None) -> str | None:
    """Export this worker's GPU as its CUDA_VISIBLE_DEVICES; return it (None when nothing was set)."""
    environ = os.environ if environ is None else environ
    gpu = gpu_for_worker(pool, worker_index(environ))
    if gpu is not None:
        environ["CUDA_VISIBLE_DEVICES"] = gpu
        environ["AISP_ASSIGNED_GPU"] = gpu
    return gpu


# The variables OpenMP, the BLAS builds numpy and torch link (OpenBLAS, MKL, Accelerate) and numexpr read at load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def worker_count(environ: Mapping[str, str] | None = None) -> int | None:
    """How many xdist workers run (``PYTEST_XDIST_WORKER_COUNT``), or None without xdist."""
    environ = os.environ if environ is None else environ
    raw = environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def thread_share(cores: int, workers: int | None) -> int | None:
    """Threads each worker may use: ``cores // workers``, at least 1; None without workers."""
    if not workers:
        return None
    return max(1, cores // workers)


def assign_worker_threads(environ: MutableMapping[str, str] | None = None, cores: int | None = None) -> int | None:
    """Export this worker's thread share to the thread variables the caller left unset, and apply it to
    torch when something already imported it; return the share (None outside an xdist worker)."""
    environ = os.environ if environ is None else environ
    if worker_index(environ) is None:
        return None
    share = thread_share(cores or available_cores(), worker_count(environ))
    if share is None:
        return None
    # a count the caller set for OpenMP stands for all of them (torch also reads MKL's)
    explicit = environ.get("OMP_NUM_THREADS", "")
    threads = explicit if explicit.isdigit() and int(explicit) > 0 else str(share)
    for name in THREAD_VARIABLES:
        environ.setdefault(name, threads)
    torch = sys.modules.get("torch")
    if torch is not None:  # imported before this hook (by another plugin): the variables came too late
        torch.set_num_threads(int(environ["OMP_NUM_THREADS"]))
    return share


def default_device() -> str:
    """``"cuda:0"`` when torch sees a GPU (the worker's own, after assignment), else ``"cpu"``.

    torch is consulted only when it is installed; this never installs or requires it.
    """
    if "torch" not in sys.modules:
        try:
            import torch
        except ImportError:
            return "cpu"
    torch = sys.modules["torch"]
    return "cuda:0" if torch.cuda.is_available() else "cpu"
