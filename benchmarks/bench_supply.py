"""Supply-chain hashing, signing and verification speed, beside openssl, sha256sum and OpenSSF model-signing.

    python benchmarks/bench_supply.py --quick     # 256 MiB file; 1,000 x 16 KiB; 100,000 x 1 KiB
    python benchmarks/bench_supply.py             # 1 GiB file;   1,000 x 64 KiB; 100,000 x 4 KiB

Every row is measured in this run and states the work both sides do. ``anchor`` rows compare with
another tool doing the same work on the same files; ``baseline`` rows compare our code with our own
code (another algorithm, thread count or input) and are not anchors. Times are the best of
``--repeat`` runs with the files in the page cache; a ratio below 1 means ours took less time.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_aisp.supply.hashing import default_workers, digest_file, digest_files  # noqa: E402
from pytest_aisp.supply.manifest import create_manifest, save_manifest, walk  # noqa: E402
from pytest_aisp.supply.signing import generate_keypair, sign_manifest  # noqa: E402
from pytest_aisp.supply.verify import verify_manifest  # noqa: E402

MiB = 1 << 20
GOAL_SMALL_FILES = 1.0  # sha256 of many small files: at most one openssl process's time


@dataclass(frozen=True)
class Row:
    """One comparison: ours and the other side, the work both do, and whether the other is an anchor."""

    case: str
    ours: str
    ours_s: float
    other: str
    other_s: float
    kind: str  # "anchor" | "baseline"
    work: str
    other_start_up_s: float = 0.0  # the other side's process start-up, measured on an empty input

    @property
    def ratio(self) -> float:
        return self.ours_s / self.other_s

    @property
    def ratio_without_start_up(self) -> float:
        return self.ours_s / max(self.other_s - self.other_start_up_s, 1e-9)


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _big_argv_limit() -> None:
    """In the child: a larger stack, so the kernel accepts 100,000 file names on one command line."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 256 * MiB if hard == resource.RLIM_INFINITY else min(hard, 256 * MiB)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))


def run(cmd: Sequence[str], cwd: Path | None = None) -> None:
    done = subprocess.run(
        list(cmd),
        capture_output=True,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        preexec_fn=_big_argv_limit,
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed: {done.stderr.decode()[-500:]}")


_REPORT_PEAK = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('VmHWM', line.split()[1], file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv = ['aisp', *sys.argv[1:]]\n"
    "runpy.run_module('pytest_aisp.cli', run_name='__main__')\n"
)


def peak_rss(aisp_args: list[str]) -> float | None:
    """Peak RSS (MiB) of an ``aisp`` process, as its own VmHWM at exit (Linux). Not the child's
    rusage: that carries the RSS of this large parent process over fork and exec."""
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, *aisp_args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    for line in done.stderr.splitlines():
        if line.startswith("VmHWM "):
            return int(line.split()[1]) / 1024
    return None


AISP = [sys.executable, "-m", "pytest_aisp.cli", "manifest"]
MODEL_SIGNING = [sys.executable, "-m", "model_signing", "--log-level", "ERROR"]


def small_file_rows(
    label: str, directory: Path, repeat: int, openssl: str | None, sha256sum: str | None
) -> list[Row]:
    """sha256 of every file of ``directory``: ours in process, the tools in one process over all files."""
    names = [n.path for n in walk(directory, ())]
    rows = []
    ours = best(lambda: digest_files(names, "sha256", root=directory), repeat)
    manifest = best(lambda: create_manifest(directory), repeat)
    work = (
        f"sha256 of the same {len(names):,} files, each opened, read to its end and closed; the tool is one "
        "process given every path (its start-up included), ours runs in this process"
    )
    for tool, path in (("openssl dgst -sha256", openssl), ("sha256sum", sha256sum)):
        if path is None:
            continue
        command = [path, *(["dgst", "-sha256"] if "openssl" in tool else [])]
        theirs = best(lambda command=command: run([*command, *names], cwd=directory), repeat)
        start_up = best(lambda command=command: run([*command, os.devnull]), repeat)
        rows.append(
            Row(f"sha256 {label}", "digest_files", ours, f"{tool} (1 process)", theirs, "anchor", work, start_up)
        )
        rows.append(
            Row(
                f"manifest {label}",
                "create_manifest",
                manifest,
                f"{tool} (1 process)",
                theirs,
                "anchor",
                "time to a manifest: ours also walks the tree, classifies each file and reads git "
                "state (more work than the tool's hashing)",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="256 MiB file, 1,000 x 16 KiB, 100,000 x 1 KiB (a few minutes)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    big_size = (256 if args.quick else 1024) * MiB
    small_size = (16 if args.quick else 64) * 1024
    tiny_size = (1 if args.quick else 4) * 1024
    from tests.fixture_scripts import load_fixture_script  # the scripts the tests use

    make = load_fixture_script("supply/make_artifacts.py", "supply_make_artifacts")
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="aisp-bench-"))
    rows: list[Row] = []
    notes: list[str] = []
    repeat = args.repeat
    try:
        big_dir = scratch / "big"
        big = make.make_big_file(big_dir / "model.bin", big_size)
        small_dir = make.make_small_files(scratch / "small", 1000, small_size)
        tiny_dir = make.make_small_files(scratch / "tiny", 100_000, tiny_size)
        key, pub = generate_keypair(scratch / "ec.pem", scratch / "ec.pub.pem", "ecdsa-p256-sha256")
        label_big = f"{big_size // MiB} MiB file"
        label_small = f"1,000 x {small_size // 1024} KiB"
        label_tiny = f"100,000 x {tiny_size // 1024} KiB"
        has_ms = importlib.util.find_spec("model_signing") is not None
        openssl, sha256sum = shutil.which("openssl"), shutil.which("sha256sum")
        cores = default_workers()

        # 1. One large file, sha256: one core on both sides (sha256 of one file cannot be split).
        ours = best(lambda: digest_file(big, "sha256"), repeat)
        for tool, argv in (
            ("openssl dgst -sha256", [openssl, "dgst", "-sha256", str(big)] if openssl else None),
            ("sha256sum", [sha256sum, str(big)] if sha256sum else None),
        ):
            if argv is not None:
                theirs = best(lambda argv=argv: run(argv), repeat)
                rows.append(
                    Row(f"sha256 {label_big}", "digest_file", ours, tool, theirs, "anchor",
                        "sha256 of the same file, one core; the tool's process start-up included")
                )
        # 2. blake3 beside our own sha256: another algorithm, so a baseline.
        b3_one = best(lambda: digest_file(big, "blake3", threads=1), repeat)
        b3_all = best(lambda: digest_file(big, "blake3", threads=cores), repeat)
        rows.append(Row(f"blake3 {label_big}", "blake3, 1 thread", b3_one, "our sha256, 1 thread", ours,
                        "baseline", "the same file hashed with another algorithm"))
        rows.append(Row(f"blake3 {label_big}", f"blake3, {cores} threads", b3_all, "blake3, 1 thread", b3_one,
                        "baseline", "the same file and algorithm on more threads"))

        # 3. Many small files, against one openssl process and one sha256sum process.
        rows += small_file_rows(label_small, small_dir, repeat, openssl, sha256sum)
        rows += small_file_rows(label_tiny, tiny_dir, repeat, openssl, sha256sum)

        # 4. Whole process, equal work: hash every file and sign, ECDSA P-256 on both sides.
        out, bundle = scratch / "m.json", scratch / "ms-verify.sig"
        for label, directory in ((label_big, big_dir), (label_small, small_dir)):
            ours_s = best(lambda d=directory: run([*AISP, "create", str(d), "-o", str(out), "--key", str(key)]),
                          repeat)
            if has_ms:
                theirs = best(
                    lambda d=directory: run([*MODEL_SIGNING, "sign", "key", str(d), "--private_key", str(key),
                                             "--signature", str(scratch / "ms.sig")]),
                    repeat,
                )
                rows.append(
                    Row(f"sign {label}", "aisp manifest create --key", ours_s, "model_signing sign key", theirs,
                        "anchor", "one process each: hash every file, sign with the same ECDSA P-256 key "
                        "(ours writes a JSON manifest + signature, theirs a Sigstore bundle)")
                )
            # verify what was signed: hash every file again and check the signature
            save_manifest(create_manifest(directory, manifest_path=out), out)
            sign_manifest(out, key)
            ours_v = best(lambda: run([*AISP, "verify", str(out), "--pubkey", str(pub)]), repeat)
            if has_ms:
                run([*MODEL_SIGNING, "sign", "key", str(directory), "--private_key", str(key),
                     "--signature", str(bundle)])
                theirs = best(
                    lambda d=directory: run([*MODEL_SIGNING, "verify", "key", str(d), "--signature", str(bundle),
                                             "--public_key", str(pub)]),
                    repeat,
                )
                rows.append(
                    Row(f"verify {label}", "aisp manifest verify --pubkey", ours_v, "model_signing verify key",
                        theirs, "anchor", "one process each: check the signature, hash every file again, "
                        "compare")
                )

        # 5. Several large files: our pool of threads against our own single thread.
        shards = [
            make.make_big_file(scratch / "shards" / f"shard{i}.bin", big_size // 4, seed=i) for i in range(4)
        ]
        parallel = best(lambda: digest_files(shards, "sha256"), repeat)
        serial = best(lambda: digest_files(shards, "sha256", workers=1), repeat)
        rows.append(Row(f"sha256 4 x {big_size // 4 // MiB} MiB", f"digest_files, {cores} workers", parallel,
                        "digest_files, 1 worker", serial, "baseline", "the same four files, threads vs one"))

        # 6. Verify cost when every size changed (nothing hashed) against intact (everything hashed).
        manifest_path = scratch / "small.json"
        save_manifest(create_manifest(small_dir, manifest_path=manifest_path), manifest_path)
        intact = best(lambda: verify_manifest(manifest_path, allow_unsigned=True), repeat)
        for path in small_dir.rglob("*.bin"):
            with open(path, "ab") as fh:
                fh.write(b"!")
        result = verify_manifest(manifest_path, allow_unsigned=True)
        changed = best(lambda: verify_manifest(manifest_path, allow_unsigned=True), repeat)
        rows.append(Row(f"verify {label_small}", "every size changed", changed, "intact (hashes all)", intact,
                        "baseline", "our verify on two states of the same tree (digests only, no signature)"))
        notes.append(
            f"verify with every size changed: {len(result.changes)} changes, "
            f"{int(result.metrics['files_hashed'])} files hashed, {int(result.metrics['bytes_hashed'])} bytes hashed"
        )
        # 7. Memory: peak RSS of the create process for the large file.
        rss = peak_rss(["manifest", "create", str(big_dir), "-o", str(scratch / "m.json")])
        if rss is not None:
            notes.append(f"peak RSS of `aisp manifest create` on the {label_big}: {rss:.0f} MiB")
        if not openssl:
            notes.append("openssl not found: its rows are left out (apt-get install openssl)")
        if not sha256sum:
            notes.append("sha256sum not found: its rows are left out (coreutils)")
        if not has_ms:
            notes.append("model-signing not installed: its rows are left out (pip install 'pytest-aisp[sign]')")
    finally:
        if args.dir is None:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"cores: {os.cpu_count()}  repeat: best of {repeat}  python {sys.version.split()[0]}  "
          f"load average: {os.getloadavg()[0]:.1f}")
    header = f"{'case':<28} {'ours':<30} {'s':>8}  {'compared with':<32} {'s':>8}  {'ratio':>6}  kind"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row.case:<28} {row.ours:<30} {row.ours_s:8.3f}  {row.other:<32} {row.other_s:8.3f}  "
              f"{row.ratio:6.2f}  {row.kind}")
        print(f"    work: {row.work}")
        if row.other_start_up_s:
            print(
                f"    same work without the tool's start-up ({row.other_start_up_s * 1000:.1f} ms on an empty "
                f"input): ratio {row.ratio_without_start_up:.2f}"
            )
    for note in notes:
        print(note)
    goal_rows = [r for r in rows if r.case.startswith("sha256") and "KiB" in r.case and r.other.startswith("openssl")]
    for row in goal_rows:
        verdict = "met" if row.ratio <= GOAL_SMALL_FILES else "NOT met"
        print(
            f"goal: {row.case} at most {GOAL_SMALL_FILES:.1f}x one openssl process: {row.ratio:.2f}x, {verdict} "
            f"({row.ratio_without_start_up:.2f}x openssl's time less its start-up)"
        )


if __name__ == "__main__":
    main()
