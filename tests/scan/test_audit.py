"""The scanner never executes, imports or unpickles what it reads: proven with sys.addaudithook."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

AUDIT_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[3])
    from pytest_aisp.scan import scan_artifact
    import pytest_aisp.scan.engine, pytest_aisp.scan.keras, pytest_aisp.scan.tensors, pytest_aisp.scan.protobuf
    import h5py, numpy, json as _json, ast, zipfile, tarfile, gzip, bz2, lzma  # what the scanner itself uses
    for codec in ("raw-unicode-escape", "cp437", "latin-1", "utf-8", "ascii"):  # codecs it decodes with
        b"x".decode(codec)
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    events = []
    watching = False
    def hook(event, args):
        if not watching:
            return
        if event in ("exec", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn",
                     "pickle.find_class", "marshal.loads", "ctypes.dlopen", "socket.connect"):
            events.append([event, repr(args)[:200]])
        elif event == "import":
            events.append([event, str(args[0])])
        elif event == "open":
            mode = args[1] if len(args) > 1 else "r"
            flags = args[2] if len(args) > 2 else 0
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE):
                events.append([event, repr(args)[:200]])
    before = set(sys.modules)
    sys.addaudithook(hook)
    watching = True
    result = scan_artifact(sys.argv[1])
    watching = False
    risky = ("subprocess", "pty", "commands", "runpy", "webbrowser", "pdb", "timeit")
    new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in risky)
    print(json.dumps({"events": events, "files": len(result.files), "findings": len(result.findings),
                      "modules": new}))
""")


def test_scanning_every_malicious_sample_runs_nothing(corpus_dir: Path, labels: list[dict]) -> None:
    markers = [Path(s["marker"]) for s in labels if s["marker"]]
    for marker in markers:
        marker.unlink(missing_ok=True)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", AUDIT_SCRIPT, str(corpus_dir / "malicious"), "", str(root)],
                          check=True, capture_output=True, text=True, timeout=240)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["files"] >= 50 and report["findings"] >= 50
    imports = [name for event, name in report["events"] if event == "import"]
    assert not imports, f"the scan imported modules while scanning: {imports}"
    assert not [e for e in report["events"] if e[0] != "import"], report["events"]
    assert not report["modules"], report["modules"]
    assert not [m for m in markers if m.exists()], "a payload marker appeared during the scan"
