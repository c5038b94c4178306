"""Supply-chain hashing and verification speed, beside openssl and OpenSSF model-signing.

    python benchmarks/bench_supply.py --quick     # 256 MiB file, 1,000 x 16 KiB files
    python benchmarks/bench_supply.py             # 1 GiB file, 1,000 x 64 KiB files

Every row is measured in this run: ours, the anchor on the same data, and ours / anchor (below 1
is faster than the anchor). Times are the best of ``--repeat`` runs with the files in the page
cache. Peak memory is the max RSS of the whole ``aisp manifest create`` process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_aisp.supply.hashing import digest_file, digest_files  # noqa: E402
from pytest_aisp.supply.manifest import create_manifest, save_manifest  # noqa: E402
from pytest_aisp.supply.signing import generate_keypair  # noqa: E402
from pytest_aisp.supply.verify import verify_manifest  # noqa: E402

MiB = 1 << 20


def _fixtures():
    spec = importlib.util.spec_from_file_location(
        "supply_make_artifacts", ROOT / "fixtures/supply/make_artifacts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")


def run_rss(cmd: list[str]) -> tuple[float, float]:
    """Wall time and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run(cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.perf_counter() - started, max(after, before) / 1024


AISP = [sys.executable, "-m", "pytest_aisp.cli", "manifest", "create"]
MODEL_SIGNING = [sys.executable, "-m", "model_signing", "--log-level", "ERROR", "sign", "key"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB and 1,000 x 16 KiB (under 2 minutes)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    big_size = (256 if args.quick else 1024) * MiB
    small_size = (16 if args.quick else 64) * 1024
    make = _fixtures()
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="aisp-bench-"))
    rows: list[tuple[str, str, float, str, float]] = []
    notes: list[str] = []
    try:
        big_dir = scratch / "big"
        big = make.make_big_file(big_dir / "model.bin", big_size)
        small_dir = make.make_small_files(scratch / "small", 1000, small_size)
        small_files = sorted(str(p) for p in small_dir.rglob("*.bin"))
        key, _ = generate_keypair(scratch / "ec.pem", scratch / "ec.pub.pem", "ecdsa-p256-sha256")
        label_big = f"{big_size // MiB} MiB file"
        label_small = f"1000 x {small_size // 1024} KiB"
        has_ms = importlib.util.find_spec("model_signing") is not None
        openssl = shutil.which("openssl")

        # 1. one large file, sha256, in process, one core (a single file cannot be split for sha256)
        ours = best(lambda: digest_file(big, "sha256"), args.repeat)
        if openssl:
            anchor = best(lambda: run([openssl, "dgst", "-sha256", str(big)]), args.repeat)
            rows.append((f"sha256 {label_big}", "hashlib.file_digest", ours, "openssl dgst -sha256", anchor))
        # 2. blake3 (all cores) against our own sha256
        b3 = best(lambda: digest_file(big, "blake3", threads=os.cpu_count() or 1), args.repeat)
        rows.append((f"blake3 {label_big}", f"blake3 ({os.cpu_count()} threads)", b3, "our sha256", ours))
        b3_one = best(lambda: digest_file(big, "blake3", threads=1), args.repeat)
        rows.append((f"blake3 {label_big}", "blake3 (1 thread)", b3_one, "our sha256", ours))
        # 3. whole process: aisp manifest create vs model_signing sign key
        out = scratch / "m.json"
        aisp_big = best(lambda: run([*AISP, str(big_dir), "-o", str(out)]), args.repeat)
        if has_ms:
            ms_big = best(
                lambda: run(
                    [
                        *MODEL_SIGNING,
                        str(big_dir),
                        "--private_key",
                        str(key),
                        "--signature",
                        str(scratch / "ms.sig"),
                    ]
                ),
                args.repeat,
            )
            rows.append(
                (f"process {label_big}", "aisp manifest create", aisp_big, "model_signing sign key", ms_big)
            )
        # 4. many small files
        ours_small = best(lambda: create_manifest(small_dir), args.repeat)
        if openssl:
            anchor_small = best(lambda: run([openssl, "dgst", "-sha256", *small_files]), args.repeat)
            rows.append(
                (
                    f"sha256 {label_small}",
                    "create_manifest",
                    ours_small,
                    "openssl dgst (1 proc)",
                    anchor_small,
                )
            )
        # 5. several large files: hashed in parallel across cores vs one at a time
        shards = [
            make.make_big_file(scratch / "shards" / f"shard{i}.bin", big_size // 4, seed=i) for i in range(4)
        ]
        parallel = best(lambda: digest_files(shards, "sha256"), args.repeat)
        serial = best(lambda: digest_files(shards, "sha256", workers=1), args.repeat)
        rows.append(
            (
                f"sha256 4 x {big_size // 4 // MiB} MiB",
                f"digest_files, {os.cpu_count()} workers",
                parallel,
                "digest_files, 1 worker",
                serial,
            )
        )
        aisp_small = best(lambda: run([*AISP, str(small_dir), "-o", str(out)]), args.repeat)
        if has_ms:
            ms_small = best(
                lambda: run(
                    [
                        *MODEL_SIGNING,
                        str(small_dir),
                        "--private_key",
                        str(key),
                        "--signature",
                        str(scratch / "ms.sig"),
                    ]
                ),
                args.repeat,
            )
            rows.append(
                (
                    f"process {label_small}",
                    "aisp manifest create",
                    aisp_small,
                    "model_signing sign key",
                    ms_small,
                )
            )
        # 6. verify: intact (hash everything) vs every size changed (hash nothing)
        manifest_path = scratch / "small.json"
        save_manifest(create_manifest(small_dir, manifest_path=manifest_path), manifest_path)
        intact = best(lambda: verify_manifest(manifest_path), args.repeat)
        for path in small_files:
            with open(path, "ab") as fh:
                fh.write(b"!")
        result = verify_manifest(manifest_path)
        changed = best(lambda: verify_manifest(manifest_path), args.repeat)
        rows.append((f"verify {label_small}", "all sizes changed", changed, "intact (hashes all)", intact))
        notes.append(
            f"verify with all 1000 sizes changed: {len(result.changes)} changes, "
            f"{int(result.metrics['files_hashed'])} files hashed, "
            f"{int(result.metrics['bytes_hashed'])} bytes hashed"
        )
        # 7. memory: peak RSS of the create process for the big file
        _, rss = run_rss([*AISP, str(big_dir), "-o", str(out)])
        notes.append(f"peak RSS of `aisp manifest create` on the {label_big}: {rss:.0f} MiB")
        if not openssl:
            notes.append("openssl not found: its rows are left out")
        if not has_ms:
            notes.append(
                "model-signing not installed: its rows are left out (pip install 'pytest-aisp[sign]')"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"cores: {os.cpu_count()}  repeat: best of {args.repeat}  python {sys.version.split()[0]}")
    header = (
        f"{'case':<28} {'ours':<28} {'s':>8}  {'anchor':<26} {'s':>8}  {'ours/anchor':>11}  {'MB/s ours':>9}"
    )
    print(header)
    print("-" * len(header))
    for case, ours_name, ours_s, anchor_name, anchor_s in rows:
        size = big_size if "MiB" in case else 1000 * small_size
        print(
            f"{case:<28} {ours_name:<28} {ours_s:8.3f}  {anchor_name:<26} {anchor_s:8.3f}  "
            f"{ours_s / anchor_s:11.2f}  {size / MiB / ours_s:9.0f}"
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
