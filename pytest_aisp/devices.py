"""GPU pool and per-xdist-worker assignment.

Each xdist worker ``gwN`` gets ``pool[N % len(pool)]`` as its own ``CUDA_VISIBLE_DEVICES``, set
before any conftest can import torch. GPU ids are opaque strings: indexes, UUIDs and MIG ids work.
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
