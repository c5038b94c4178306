"""The malicious samples are real: loaded the unsafe way in a subprocess, their payloads run (for payloads
carried as data: after the later step that decodes and unpickles or execs them)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

LOADER_SCRIPT = textwrap.dedent("""
    import base64, json, pickle, sys, warnings
    warnings.simplefilter("ignore")
    DECODE = {"hex": bytes.fromhex, "base64": base64.b64decode}

    def staged(value, stages):
        # the later step a consumer of the file would take: pick a value, decode it, unpickle or exec it
        for stage in stages:
            for key in stage["key"]:
                value = value[key]
            for encoding in stage["decode"]:
                value = DECODE[encoding](value)
            if stage["run"] == "exec":
                exec(value, {})
                return
            value = pickle.loads(value)

    samples = json.loads(sys.argv[1])
    for path, loader, stages in samples:
        try:
            if loader == "staged":
                with open(path, "rb") as handle:
                    staged(pickle.load(handle), stages)
            elif loader == "staged-safetensors":
                from safetensors import safe_open
                with safe_open(path, "np") as handle:
                    staged(handle.metadata(), stages)
            elif loader == "pickle":
                with open(path, "rb") as handle:
                    pickle.load(handle)
            elif loader == "pickle2":
                with open(path, "rb") as handle:
                    pickle.load(handle)
                    pickle.load(handle)
            elif loader == "pickle-bytesio":
                import io
                with open(path, "rb") as handle:
                    pickle.load(io.BytesIO(handle.read()))
            elif loader == "joblib":
                import joblib
                joblib.load(path)
            elif loader == "torch":
                import torch
                torch.load(path, weights_only=False)
            elif loader == "numpy":
                import numpy
                numpy.load(path, allow_pickle=True)
            elif loader == "numpy-npz":
                import numpy
                dict(numpy.load(path, allow_pickle=True))
        except Exception:
            pass  # a payload followed by a broken stream raises after it has run
""")


def test_pickle_joblib_torch_numpy_payloads_really_run(make_corpus, tmp_path: Path) -> None:
    # a private copy of the malicious samples, with private markers: other tests never see these run
    import warnings

    (tmp_path / "malicious").mkdir()
    (tmp_path / "markers").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = make_corpus.write_malicious(tmp_path / "malicious", tmp_path / "markers")
    runnable = [s for s in samples if s.loader]
    assert {s.loader for s in runnable} >= {"pickle", "pickle2", "pickle-bytesio", "joblib", "torch", "numpy",
                                            "staged", "staged-safetensors"}
    assert not list((tmp_path / "markers").iterdir())
    pairs = [(str(tmp_path / "malicious" / s.name), s.loader, s.stages) for s in runnable]
    subprocess.run([sys.executable, "-c", LOADER_SCRIPT, json.dumps(pairs)], check=True, timeout=240,
                   cwd=tmp_path, capture_output=True)
    missing = [s.name for s in runnable if not Path(s.marker).exists()]
    assert not missing, f"payloads that did not run when loaded unsafely: {missing}"
