"""Benchmarks of the model scanner, each row beside modelscan measured in the same run.

Rows: a large PyTorch checkpoint (1 GiB; 64 MiB with --quick), a pickle of one million small objects
(100k with --quick), and the labelled corpus (detections and false positives). Timings are in-process
(``scan_artifact`` vs ``ModelScan().scan``) and whole-process (``aisp scan`` vs ``modelscan -p``), with
peak resident memory of the whole-process runs.

Run: ``python benchmarks/bench_scan.py --quick`` (under 2 minutes) or without ``--quick`` (full sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "fixtures" / "scan")]

from pytest_aisp.scan.engine import scan_artifact  # noqa: E402
from pytest_aisp.scan.pickle_vm import PickleMachine  # noqa: E402


def _modelscan_available() -> bool:
    try:
        import modelscan  # noqa: F401
    except ImportError:
        return False
    return True


def _modelscan_cli() -> list[str] | None:
    exe = shutil.which("modelscan") or str(Path(sys.executable).with_name("modelscan"))
    if Path(exe).exists():
        return [exe]
    other = os.environ.get("AISP_MODELSCAN")  # modelscan installed in an environment of its own
    return [other] if other and Path(other).exists() else None


def _run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process, measured by /usr/bin/time when present."""
    timer = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        prefix = [timer, "-f", "%M", "-o", rss.name] if Path(timer).exists() else []
        started = time.perf_counter()
        subprocess.run([*prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=tempfile.gettempdir(), check=False)
        elapsed = time.perf_counter() - started
        text = Path(rss.name).read_text().strip().splitlines()
    peak = float(text[-1]) / 1024 if text and text[-1].strip().isdigit() else float("nan")
    return elapsed, peak


def _ours_cli(path: Path) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pytest_aisp.cli import main; "
            f"sys.exit(main(['scan', {str(path)!r}]))")
    return [sys.executable, "-c", code]


def _in_process_modelscan(path: Path) -> tuple[float, dict]:
    from modelscan.modelscan import ModelScan

    started = time.perf_counter()
    report = ModelScan().scan(str(path))
    return time.perf_counter() - started, report


def _best(fn, repeat: int = 3) -> float:
    return min(fn() for _ in range(repeat))


class Lines(list):
    """Report lines, printed as they come (a full run takes minutes)."""

    def append(self, line: str) -> None:  # type: ignore[override]
        print(line, flush=True)
        super().append(line)


def row(label: str, ours: float, anchor: float | None, unit: str = "s", better: str = "lower") -> str:
    """One table row; ratio is how many times better ours is (``better``: lower, higher, or none)."""
    if anchor is None or not ours or better == "none":
        ratio = "     n/a"
    else:
        ratio = f"{(anchor / ours if better == 'lower' else ours / anchor):8.2f}x"
    anchor_text = f"{anchor:10.3f}" if anchor is not None else "       n/a"
    return f"{label:<52} {ours:10.3f} {anchor_text}  {ratio}  {unit}"


def bench_checkpoint(tmp: Path, size_mib: int, lines: list[str]) -> None:
    import torch

    path = tmp / "checkpoint.pt"
    tensors = max(1, size_mib // 64)
    per = size_mib * 2**20 // tensors // 4
    torch.save({f"layer{i}.weight": torch.zeros(per) for i in range(tensors)}, path)
    del torch
    ours_in = _best(lambda: scan_artifact(path).duration_s)
    file = scan_artifact(path).files[0]
    lines.append(f"checkpoint: {path.stat().st_size / 2**20:.0f} MiB, {file.bytes_read} bytes read by our scan "
                 f"({file.bytes_read / path.stat().st_size:.2e} of the file), findings: {len(file.findings)}")
    anchor_in = _best(lambda: _in_process_modelscan(path)[0]) if _modelscan_available() else None
    lines.append(row(f"{size_mib} MiB checkpoint, in-process scan", ours_in, anchor_in))
    ours_proc, ours_rss = _run(_ours_cli(path))
    cli = _modelscan_cli()
    anchor_proc, anchor_rss = _run([*cli, "-p", str(path)]) if cli else (None, None)
    lines.append(row(f"{size_mib} MiB checkpoint, whole process", ours_proc, anchor_proc))
    lines.append(row(f"{size_mib} MiB checkpoint, peak RSS of the process", ours_rss, anchor_rss, "MiB"))


def bench_million(tmp: Path, count: int, lines: list[str]) -> None:
    path = tmp / "million.pkl"
    path.write_bytes(pickle.dumps({f"k{i}": [i, i * 0.5] for i in range(count)}, protocol=4))
    data = path.read_bytes()
    size_mb = len(data) / 1e6
    report = PickleMachine(data).run(0, len(data))
    ours = _best(lambda: scan_artifact(path).duration_s)
    anchor = _best(lambda: _in_process_modelscan(path)[0], 2) if _modelscan_available() else None
    lines.append(f"pickle of {count} small objects: {size_mb:.1f} MB, {report.opcodes} opcodes")
    lines.append(row(f"{count} objects, in-process scan time", ours, anchor))
    lines.append(row(f"{count} objects, throughput", size_mb / ours, size_mb / anchor if anchor else None,
                     "MB/s", better="higher"))
    lines.append(f"{'':<52} ours {report.opcodes / ours / 1e6:.2f} M opcodes/s")
    ours_proc, ours_rss = _run(_ours_cli(path))
    cli = _modelscan_cli()
    anchor_proc, anchor_rss = _run([*cli, "-p", str(path)]) if cli else (None, None)
    lines.append(row(f"{count} objects, whole process", ours_proc, anchor_proc))
    lines.append(row(f"{count} objects, peak RSS of the process", ours_rss, anchor_rss, "MiB"))


def modelscan_flags(path: Path) -> bool | None:
    """True when modelscan reports an issue for ``path``; None when it is not installed."""
    if not _modelscan_available():
        return None
    _, report = _in_process_modelscan(path)
    return bool(report["summary"]["total_issues"])


def bench_corpus(tmp: Path, lines: list[str]) -> None:
    import make_corpus

    folder = tmp / "corpus"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = make_corpus.build_corpus(folder)
    counts = {"ours": [0, 0], "modelscan": [0, 0]}
    for sample in samples[:: max(1, len(samples) // 10)]:  # warm both (imports, caches) before timing
        scan_artifact(folder / sample.name)
        modelscan_flags(folder / sample.name)
    differences = []
    started = time.perf_counter()
    ours_verdicts = {s.name: not scan_artifact(folder / s.name).ok for s in samples}
    ours_time = time.perf_counter() - started
    started = time.perf_counter()
    anchor_verdicts = {s.name: modelscan_flags(folder / s.name) for s in samples}
    anchor_time = time.perf_counter() - started
    malicious = [s for s in samples if s.label == "malicious"]
    benign = [s for s in samples if s.label == "benign"]
    for sample in samples:
        index = 0 if sample.label == "malicious" else 1
        counts["ours"][index] += bool(ours_verdicts[sample.name])
        counts["modelscan"][index] += bool(anchor_verdicts[sample.name])
        if anchor_verdicts[sample.name] is not None and anchor_verdicts[sample.name] != ours_verdicts[sample.name]:
            differences.append(f"  {sample.name}: ours {'flags' if ours_verdicts[sample.name] else 'passes'}, "
                               f"modelscan {'flags' if anchor_verdicts[sample.name] else 'passes'}")
    have_anchor = _modelscan_available()
    lines.append(row(f"corpus: malicious detected (of {len(malicious)})", counts["ours"][0],
                     counts["modelscan"][0] if have_anchor else None, "files", better="none"))
    lines.append(row(f"corpus: benign flagged, false positives (of {len(benign)})", counts["ours"][1],
                     counts["modelscan"][1] if have_anchor else None, "files", better="none"))
    lines.append(row("corpus: scan time, in-process", ours_time, anchor_time if have_anchor else None))
    if differences:
        lines.append("where the two differ:")
        for line in differences:
            lines.append(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    lines: list[str] = Lines()
    lines.append(f"{'row':<52} {'ours':>10} {'modelscan':>10}  {'ratio':>9}  unit")
    lines.append("ratio: how many times better ours is (time and memory: modelscan/ours; throughput: ours/modelscan)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bench_checkpoint(tmp, 64 if args.quick else 1024, lines)
        bench_million(tmp, 100_000 if args.quick else 1_000_000, lines)
        bench_corpus(tmp, lines)
    print(json.dumps({"quick": args.quick, "modelscan": _modelscan_available()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
