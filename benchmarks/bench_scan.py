"""Benchmarks of the model scanner, each row beside modelscan measured in the same run.

Rows (each followed by what both sides did):
- whole process, `aisp scan FILE` against `modelscan -p FILE` (defaults, and tuned: quiet log and a JSON
  report to a file), on a small pickle and on a large PyTorch checkpoint (1 GiB; 64 MiB with --quick),
  as the fraction of modelscan's time (goal: at most 0.5 on both), with peak resident memory;
- in-process scan of the checkpoint (``scan_artifact`` against ``ModelScan().scan``);
- a pickle of one million small objects (100 000 with --quick), in-process and whole process;
- the labelled corpus (``fixtures/scan/make_corpus.py``): per label, how many files each side flagged,
  passed, or did not check (modelscan's skipped files and scan errors count as not checked, never as
  passes or detections; ours has no such outcome: what it cannot read is a finding).

Run: ``python benchmarks/bench_scan.py --quick`` (a few minutes) or without ``--quick`` (full sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "fixtures" / "scan")]

from pytest_aisp.scan.engine import scan_artifact  # noqa: E402
from pytest_aisp.scan.pickle_vm import PickleMachine  # noqa: E402

STARTUP_GOAL = 0.5  # aisp scan's whole-process time as a fraction of modelscan's, on both files


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


def _aisp_cli() -> list[str]:
    """The installed ``aisp`` command (what users run), else the module."""
    exe = Path(sys.executable).with_name("aisp")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pytest_aisp.cli"]


# The scan subcommand alone in a process: what `aisp scan` costs once the command imports only the
# subcommand it runs (pytest_aisp/cli.py imports every module's subcommand today).
ENGINE_ONLY = ("import argparse, sys; from pytest_aisp.scan import cli; parser = argparse.ArgumentParser(); "
               "cli.register(parser.add_subparsers()); args = parser.parse_args(sys.argv[1:]); "
               "sys.exit(args.func(args))")


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


def _interleaved(commands: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median wall time and peak RSS of each command, run in turn ``repeat`` times (noise hits all alike)."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            samples[name].append(_run(command))
    return {name: (statistics.median(s[0] for s in runs), max(s[1] for s in runs)) for name, runs in samples.items()}


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
    return f"{label:<70} {ours:10.3f} {anchor_text}  {ratio}  {unit}"


def did(lines: list[str], ours: str, anchor: str) -> None:
    """What both sides did for the row above."""
    lines.append(f"    ours: {ours}")
    lines.append(f"    modelscan: {anchor}")


def _checkpoint(tmp: Path, size_mib: int) -> Path:
    import torch

    path = tmp / "checkpoint.pt"
    tensors = max(1, size_mib // 64)
    per = size_mib * 2**20 // tensors // 4
    torch.save({f"layer{i}.weight": torch.zeros(per) for i in range(tensors)}, path)
    return path


def bench_startup(tmp: Path, checkpoint: Path, lines: list[str], repeat: int) -> None:
    """`aisp scan` against `modelscan -p`, whole process, as the fraction of modelscan's time."""
    small = tmp / "small.pkl"
    small.write_bytes(pickle.dumps({"weights": [0.5] * 64, "epoch": 3, "name": "small"}, protocol=4))
    cli = _modelscan_cli()
    for label, path in (("small pickle", small), (f"{checkpoint.stat().st_size / 2**20:.0f} MiB checkpoint",
                                                  checkpoint)):
        commands = {"ours": [*_aisp_cli(), "scan", str(path)],
                    "engine": [sys.executable, "-c", ENGINE_ONLY, "scan", str(path)]}
        if cli:
            commands["modelscan"] = [*cli, "-p", str(path)]
            commands["modelscan tuned"] = [*cli, "-l", "ERROR", "-r", "json", "-o", os.devnull, "-p", str(path)]
        timings = _interleaved(commands, repeat)
        if cli:
            engine, anchor = timings["engine"][0], timings["modelscan"][0]
            lines.append(row(f"{label}, scan subcommand alone (baseline) vs modelscan", engine, anchor))
            lines.append(f"    the scan engine and its subcommand alone take {engine / anchor:.2f} of modelscan's "
                         "time; the whole `aisp scan` adds only the command's own start (it imports no other "
                         "subcommand)")
        ours = timings["ours"][0]
        for anchor_name in ("modelscan", "modelscan tuned"):
            anchor = timings.get(anchor_name, (None, None))[0]
            lines.append(row(f"{label}, whole process vs {anchor_name}", ours, anchor))
            if anchor:
                fraction = ours / anchor
                verdict = "met" if fraction <= STARTUP_GOAL else "NOT met"
                lines.append(f"    ours takes {fraction:.2f} of {anchor_name}'s time (goal <= {STARTUP_GOAL}: "
                             f"{verdict}); median of {repeat} interleaved runs")
        lines.append(row(f"{label}, peak RSS of the process", timings["ours"][1],
                         timings.get("modelscan", (None, None))[1], "MiB"))
        did(lines, f"`{' '.join(Path(c).name for c in commands['ours'][:1])} scan FILE`: start, identify the "
                   "file, read the zip directory and data.pkl (or the pickle), judge every global, print the text "
                   "report, exit",
            "`modelscan -p FILE` (defaults: every scanner, console report; tuned: `-l ERROR -r json -o "
            "/dev/null`): start, pick scanners by extension, scan the pickle(s), report, exit")


def bench_checkpoint(path: Path, lines: list[str]) -> None:
    ours_in = _best(lambda: scan_artifact(path).duration_s)
    file = scan_artifact(path).files[0]
    lines.append(f"checkpoint: {path.stat().st_size / 2**20:.0f} MiB, {file.bytes_read} bytes read by our scan "
                 f"({file.bytes_read / path.stat().st_size:.2e} of the file), findings: {len(file.findings)}")
    anchor_in = _best(lambda: _in_process_modelscan(path)[0]) if _modelscan_available() else None
    lines.append(row("checkpoint, in-process scan", ours_in, anchor_in))
    did(lines, "scan_artifact: zip central directory, every member's name and CRC, data.pkl run symbolically, "
               "tensor members read for 16 bytes each; best of 3",
        "ModelScan().scan: zip opened with zipfile, data.pkl scanned with pickletools, other members skipped "
        "as not supported; best of 3")


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
    lines.append(f"{'':<70} ours {report.opcodes / ours / 1e6:.2f} M opcodes/s")
    did(lines, "every opcode run symbolically (stack, memo, globals, calls), every string and bytes constant "
               "of 12+ characters checked for payloads carried as data",
        "every opcode decoded by pickletools.genops, GLOBAL/STACK_GLOBAL names matched to its unsafe list")
    commands = {"ours": [*_aisp_cli(), "scan", str(path)]}
    cli = _modelscan_cli()
    if cli:
        commands["modelscan"] = [*cli, "-p", str(path)]
    timings = _interleaved(commands, 1)
    lines.append(row(f"{count} objects, whole process", timings["ours"][0], timings.get("modelscan", (None,))[0]))
    lines.append(row(f"{count} objects, peak RSS of the process", timings["ours"][1],
                     timings.get("modelscan", (None, None))[1], "MiB"))


def modelscan_outcome(path: Path) -> str:
    """``flagged``, ``passed``, ``partly skipped`` (some members not scanned, nothing found), ``skipped``
    (nothing scanned) or ``error`` (the scan failed); ``n/a`` when modelscan is not installed."""
    if not _modelscan_available():
        return "n/a"
    _, report = _in_process_modelscan(path)
    summary = report["summary"]
    if summary["total_issues"]:
        return "flagged"
    if report["errors"]:
        return "error"
    if not summary["scanned"]["total_scanned"]:
        return "skipped"
    return "partly skipped" if summary["skipped"]["total_skipped"] else "passed"


def bench_corpus(tmp: Path, lines: list[str]) -> None:
    import make_corpus

    folder = tmp / "corpus"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = make_corpus.build_corpus(folder)
    for sample in samples[:: max(1, len(samples) // 10)]:  # warm both (imports, caches) before timing
        scan_artifact(folder / sample.name)
        modelscan_outcome(folder / sample.name)
    started = time.perf_counter()
    ours = {s.name: ("flagged" if not scan_artifact(folder / s.name).ok else "passed") for s in samples}
    ours_time = time.perf_counter() - started
    started = time.perf_counter()
    anchor = {s.name: modelscan_outcome(folder / s.name) for s in samples}
    anchor_time = time.perf_counter() - started
    have_anchor = _modelscan_available()
    for label in ("malicious", "benign"):
        names = [s.name for s in samples if s.label == label]
        mine, theirs = Counter(ours[n] for n in names), Counter(anchor[n] for n in names)
        not_checked = theirs["skipped"] + theirs["error"] + theirs["partly skipped"]
        word = "detected" if label == "malicious" else "flagged (false positives)"
        lines.append(row(f"corpus {label} ({len(names)}): {word}", mine["flagged"],
                         theirs["flagged"] if have_anchor else None, "files", better="none"))
        lines.append(row(f"corpus {label}: passed as clean", mine["passed"],
                         theirs["passed"] if have_anchor else None, "files", better="none"))
        lines.append(row(f"corpus {label}: not checked (skipped, partly, error)", 0,
                         not_checked if have_anchor else None, "files", better="none"))
        if have_anchor:
            lines.append(f"    modelscan not checked: {theirs['skipped']} skipped (no scanner for the file), "
                         f"{theirs['partly skipped']} partly skipped (members not scanned, nothing found), "
                         f"{theirs['error']} scan errors")
    lines.append(row("corpus: scan time, in-process", ours_time, anchor_time if have_anchor else None))
    did(lines, "scan_artifact per file, default policy (allowlist built from reference files of its own, never "
               "from this corpus); a file counts as flagged when a finding reaches medium",
        "ModelScan().scan per file, default settings; flagged when it reports an issue; a file it skipped "
        "or failed on is 'not checked', never a pass")
    differences = [f"  {name}: ours {ours[name]}, modelscan {anchor[name]}" for name in ours
                   if have_anchor and (ours[name] == "flagged") != (anchor[name] == "flagged")]
    if differences:
        lines.append("files where one side flags and the other does not:")
        for line in differences:
            lines.append(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--only", choices=("startup", "checkpoint", "million", "corpus"), action="append",
                        help="run only these rows (repeatable)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    only = set(args.only or ("startup", "checkpoint", "million", "corpus"))
    lines: list[str] = Lines()
    lines.append(f"{'row':<70} {'ours':>10} {'modelscan':>10}  {'ratio':>9}  unit")
    lines.append("ratio: how many times better ours is (time and memory: modelscan/ours; throughput: ours/modelscan)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if only & {"startup", "checkpoint"}:
            checkpoint = _checkpoint(tmp, 64 if args.quick else 1024)
            if "startup" in only:
                bench_startup(tmp, checkpoint, lines, 3 if args.quick else 5)
            if "checkpoint" in only:
                bench_checkpoint(checkpoint, lines)
        if "million" in only:
            bench_million(tmp, 100_000 if args.quick else 1_000_000, lines)
        if "corpus" in only:
            bench_corpus(tmp, lines)
    print(json.dumps({"quick": args.quick, "modelscan": _modelscan_available()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
