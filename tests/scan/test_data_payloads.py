"""Payloads carried as data: pickles and code hidden in string and bytes values, through any encoding.

The malicious inputs here are generated (Hypothesis) over encodings, nestings, containers and pickle
protocols, not copied from the corpus; the benign ones are values that merely look encoded or like code.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import pickle
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_aisp.findings import Severity
from pytest_aisp.scan import scan_artifact, scan_bytes
from pytest_aisp.scan.data import dangerous_code
from pytest_aisp.scan.policy import ScanPolicy, default_allowlist, policy_from_mapping

POLICY = ScanPolicy(allow=default_allowlist())


def _payload(protocol: int, module: str, name: str, argument: str) -> bytes:
    """A pickle that calls ``module.name(argument)`` when unpickled (written opcode by opcode, never run)."""
    if protocol < 2:
        return f"c{module}\n{name}\n(V{argument}\ntR.".encode()
    def text(value: str) -> bytes:
        raw = value.encode()
        return b"\x8c" + bytes([len(raw)]) + raw
    head = b"\x80" + bytes([protocol])
    if protocol >= 4:
        return head + text(module) + text(name) + b"\x93" + text(argument) + b"\x85R."
    return head + f"c{module}\n{name}\n".encode() + text(argument) + b"\x85R."


ENCODERS = {
    "hex": lambda b: b.hex(),
    "HEX spaced": lambda b: " ".join(f"{x:02X}" for x in b),
    "base64": lambda b: base64.b64encode(b).decode(),
    "base64 lines": lambda b: base64.encodebytes(b).decode(),
    "base64 urlsafe unpadded": lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
    "base32": lambda b: base64.b32encode(b).decode(),
    "base85": lambda b: base64.b85encode(b).decode(),
    "ascii85 adobe": lambda b: base64.a85encode(b, adobe=True).decode(),
    "escapes": lambda b: "".join(f"\\x{x:02x}" for x in b),
    "zlib": zlib.compress,
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "bz2": bz2.compress,
    "xz": lzma.compress,
}
DANGEROUS = [("os", "system"), ("posix", "popen"), ("subprocess", "check_output"), ("builtins", "exec"),
             ("nt", "system"), ("pty", "spawn"), ("webbrowser", "open")]


def _encode(value: bytes, chain: list[str]) -> str | bytes:
    out: str | bytes = value
    for name in chain:
        raw = out.encode("latin-1") if isinstance(out, str) else out
        out = ENCODERS[name](raw)
    return out


def _wrap(value: object, shape: str, protocol: int) -> bytes:
    """``value`` inside an ordinary-looking outer pickle, in one of several container shapes."""
    containers = {
        "dict": {"weights": [0.5, 0.25], "blob": value},
        "nested": {"meta": {"training": {"extra": [1, {"cache": value}]}}},
        "list": ["run-17", 3, value],
        "tuple": ("v2", (value,)),
        "set": {value} if isinstance(value, (str, bytes)) else {1},
    }
    return pickle.dumps(containers[shape], protocol=protocol)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(DANGEROUS), inner_protocol=st.integers(0, 5), outer_protocol=st.integers(0, 5),
       chain=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=0, max_size=3),
       shape=st.sampled_from(["dict", "nested", "list", "tuple", "set"]), as_bytes=st.booleans())
def test_encoded_pickles_in_data_values_are_flagged(target: tuple[str, str], inner_protocol: int,
                                                    outer_protocol: int, chain: list[str], shape: str,
                                                    as_bytes: bool) -> None:
    inner = _payload(inner_protocol, *target, "echo staged")
    value = _encode(inner, chain)
    if as_bytes and isinstance(value, str):
        value = value.encode("latin-1")
    result = scan_bytes(_wrap(value, shape, outer_protocol), "data.pkl", policy=POLICY)
    data = [f for f in result.findings if f.rule_id == "AISP-SCAN-DATA-PICKLE"]
    assert data, (chain, [f.one_line() for f in result.findings])
    assert data[0].severity is Severity.HIGH  # one below critical: nothing runs it on load
    assert data[0].evidence["global"].endswith(target[1])
    assert not result.ok


@settings(max_examples=40, deadline=None)
@given(stages=st.lists(st.tuples(st.sampled_from(sorted(ENCODERS)), st.integers(0, 5)), min_size=2, max_size=4))
def test_multi_stage_payloads_keep_their_severity_at_every_depth(stages: list[tuple[str, int]]) -> None:
    blob: bytes = _payload(2, "os", "system", "echo deep")
    for encoding, protocol in stages:
        blob = pickle.dumps({"next": _encode(blob, [encoding])}, protocol=protocol)
    result = scan_bytes(blob, "stages.pkl", policy=POLICY)
    (finding,) = [f for f in result.findings if f.rule_id == "AISP-SCAN-DATA-PICKLE"]
    assert finding.severity is Severity.HIGH
    assert finding.evidence["path"].count("|") == len(stages) - 1


@settings(max_examples=150, deadline=None)
@given(noise=st.binary(min_size=12, max_size=400), chain=st.lists(st.sampled_from(sorted(ENCODERS)), max_size=3),
       protocol=st.integers(0, 5))
def test_encoded_random_bytes_are_data(noise: bytes, chain: list[str], protocol: int) -> None:
    result = scan_bytes(pickle.dumps({"v": _encode(noise, chain)}, protocol=protocol), "noise.pkl", policy=POLICY)
    assert not [f.one_line() for f in result.findings if f.severity > Severity.INFO]


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.text(min_size=12, max_size=300), min_size=1, max_size=8), protocol=st.integers(0, 5))
def test_arbitrary_text_values_are_data(texts: list[str], protocol: int) -> None:
    result = scan_bytes(pickle.dumps({"texts": texts}, protocol=protocol), "texts.pkl", policy=POLICY)
    assert not [f.one_line() for f in result.findings if f.severity > Severity.INFO]


LOOKALIKES = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # sha256 of nothing
    "0x7f3a9c2e41d08b5566e0f1a2b3c4d5e6",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # an IPFS content id
    "dGhpcyBpcyBqdXN0IGEgc2VudGVuY2UgaW4gYmFzZTY0",  # base64 of an English sentence
    base64.b64encode(json.dumps({"epochs": 30, "optimizer": "adamw"}).encode()).decode(),
    "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "layer4.2.downsample.0.running_mean",
    "https://example.org/models/resnet50-0676ba61.pth",
    "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPIYTEMZUGU3DOOBZGA",  # base32 of an alphabet
    "/var/lib/models/checkpoints/epoch=12-step=4000.ckpt",
    "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    "\\x00\\x01\\x02\\x03 escaped-looking bytes \\x04\\x05",
    "def forward(self, x):\n    return self.head(torch.relu(self.body(x)))\n",
    "model.eval()\nwith torch.no_grad():\n    logits = model(batch)\n",
    "state = torch.load(path, map_location='cpu')",
    "import os\nos.makedirs(os.path.join(root, 'runs'), exist_ok=True)\n",
    "pattern = re.compile(r'\\d+')\nvalues = json.loads(text)\n",
    "print('use exec() with care')  # subprocess is mentioned only here",
    "The system prompt is compiled from eval results and popen notes.",
    "code = tokenizer.decode(ids)\nprint(code.strip())",
    "def run(os, cmd):\n    return os.system(cmd)  # 'os' is a parameter here, not the module",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalike_values_are_not_flagged(text: str) -> None:
    for protocol in (0, 2, 4, 5):
        result = scan_bytes(pickle.dumps({"v": text, "b": text.encode()}, protocol=protocol), "v.pkl", policy=POLICY)
        assert not [f.one_line() for f in result.findings if f.severity > Severity.INFO], (text, protocol)


CODE_SHAPES = [
    ("__import__('subprocess').check_output(['id'])", "__import__"),
    ("import subprocess as sp\nsp.run('id', shell=True)\n", "subprocess.run"),
    ("from os import system as run_it; run_it('id')", "os.system"),
    ("eval(compile('1+1', 'x', 'eval'))", "eval"),
    ("getattr(__import__('os'), 'system')('id')", "__import__"),
    ("cb = lambda: os.popen('uname -a').read()", "os.popen"),
    ("exec(base64.b64decode(blob))", "exec"),
    ("[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == 'Popen']", "__subclasses__"),
    ("import builtins\nbuiltins.exec('x = 1')", "builtins.exec"),
    ("open('/etc/cron.d/job', 'w').write('* * * * * root id')", "write mode"),
    ("    if True:\n        import pty\n        pty.spawn('/bin/sh')\n", "pty.spawn"),
    ("importlib.import_module('os').system('id')", "os.system"),
    ("run = eval\nrun(payload)", "eval"),
    ("list(map(os.system, ['id', 'uname']))", "os.system"),
    ("os.posix_spawn('/bin/sh', ['sh'], {})", "os.posix_spawn"),
]


@pytest.mark.parametrize(("code", "call"), CODE_SHAPES)
def test_code_shapes_are_recognised(code: str, call: str) -> None:
    assert any(call in found for found in dangerous_code(code)), dangerous_code(code)


@pytest.mark.parametrize(("code", "call"), CODE_SHAPES[:6])
@pytest.mark.parametrize("encoding", ["raw", "base64", "hex", "zlib+base85"])
def test_code_in_pickle_values_is_medium(code: str, call: str, encoding: str) -> None:
    chain = {"raw": [], "base64": ["base64"], "hex": ["hex"], "zlib+base85": ["zlib", "base85"]}[encoding]
    result = scan_bytes(pickle.dumps({"hook": _encode(code.encode(), chain)}, protocol=4), "c.pkl", policy=POLICY)
    (finding,) = [f for f in result.findings if f.rule_id == "AISP-SCAN-DATA-CODE"]
    assert finding.severity is Severity.MEDIUM and call in finding.evidence["calls"]


def _safetensors(metadata: dict[str, str]) -> bytes:
    header = json.dumps({"__metadata__": metadata, "t": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + b"\x00" * 4


def _gguf(key: str, value: str) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw
    kvs = s("general.architecture") + struct.pack("<I", 8) + s("llama") + s(key) + struct.pack("<I", 8) + s(value)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kvs


def test_headers_of_tensor_formats_are_checked(tmp_path: Path) -> None:
    staged = base64.b64encode(_payload(4, "os", "system", "id")).decode()
    cases = {
        "meta.safetensors": (_safetensors({"note": staged}), "AISP-SCAN-DATA-PICKLE"),
        "code.safetensors": (_safetensors({"post": "import subprocess; subprocess.call('id')"}),
                             "AISP-SCAN-DATA-CODE"),
        "model.gguf": (_gguf("general.description", _payload(2, "os", "system", "id").hex()),
                       "AISP-SCAN-DATA-PICKLE"),
        "code.gguf": (_gguf("general.source.url", "__import__('os').system('id')"), "AISP-SCAN-DATA-CODE"),
        "config.json": (json.dumps({"model_type": "bert", "extra": {"init": staged}}).encode(),
                        "AISP-SCAN-DATA-PICKLE"),
    }
    for name, (data, rule_id) in cases.items():
        (tmp_path / name).write_bytes(data)
        result = scan_artifact(tmp_path / name, policy=POLICY)
        assert rule_id in {f.rule_id for f in result.findings}, (name, [f.one_line() for f in result.findings])
        assert not result.ok
    (tmp_path / "plain.safetensors").write_bytes(_safetensors({"format": "pt", "sha": LOOKALIKES[0],
                                                                "cfg": LOOKALIKES[4], "fn": LOOKALIKES[12]}))
    assert scan_artifact(tmp_path / "plain.safetensors", policy=POLICY).findings == ()


def test_encoding_depth_is_bounded_and_reported() -> None:
    value: str = "harmless text that is only encoded many times over"
    for _ in range(12):
        value = base64.b64encode(value.encode()).decode()
    result = scan_bytes(pickle.dumps({"v": value}), "deep.pkl", policy=POLICY)
    assert "AISP-SCAN-LIMIT" in {f.rule_id for f in result.findings}
    shallow = policy_from_mapping({"limits": {"max_data_depth": 20}})
    assert scan_bytes(pickle.dumps({"v": value}), "deep.pkl", policy=shallow).findings == ()


def test_decoded_bytes_are_bounded_per_file() -> None:
    bomb = zlib.compress(b"\x00" * 50_000_000)
    small = policy_from_mapping({"limits": {"max_data_bytes": 1_000_000}})
    result = scan_bytes(pickle.dumps({"v": bomb, "w": bomb + b"x"}), "bomb.pkl", policy=small)
    assert [f.rule_id for f in result.findings] == ["AISP-SCAN-LIMIT"]
    assert scan_bytes(pickle.dumps({"v": bomb}), "bomb.pkl", policy=POLICY).findings == ()


def test_bytes_given_to_a_deserializer_are_reported_once() -> None:
    inner = _payload(2, "os", "system", "id")
    outer = b"\x80\x04\x8c\x06pickle\x8c\x05loads\x93C" + bytes([len(inner)]) + inner + b"\x85R."
    rules_found = [f.rule_id for f in scan_bytes(outer, "e.pkl", policy=POLICY).findings]
    assert "AISP-SCAN-PICKLE-EMBEDDED" in rules_found and "AISP-SCAN-DATA-PICKLE" not in rules_found


def test_escaped_text_and_numpy_arrays_carry_payloads_too() -> None:
    import numpy as np

    inner = _payload(3, "os", "system", "id")
    escaped = repr(inner)  # b'\x80\x03...' as text, for a later ast.literal_eval
    assert "AISP-SCAN-DATA-PICKLE" in {f.rule_id for f in scan_bytes(pickle.dumps({"v": escaped}), "r.pkl",
                                                                        policy=POLICY).findings}
    carrier = np.frombuffer(inner, dtype=np.uint8).copy()
    result = scan_bytes(pickle.dumps({"arr": carrier}, protocol=5), "a.pkl", policy=POLICY)
    assert "AISP-SCAN-DATA-PICKLE" in {f.rule_id for f in result.findings}


def test_resolver_calls_are_judged_by_the_name_they_resolve() -> None:
    def resolver(module: str, name: str) -> bytes:
        return (b"\x80\x02cnumpy.core\n_ufunc_reconstruct\n" + b"X" + struct.pack("<I", len(module))
                + module.encode() + b"X" + struct.pack("<I", len(name)) + name.encode() + b"\x86R.")

    dangerous = scan_bytes(resolver("os", "system"), "u.pkl", policy=POLICY).findings
    assert [f.rule_id for f in dangerous] == ["AISP-SCAN-PICKLE-DANGEROUS"]
    assert dangerous[0].evidence["global"] == "os.system"
    assert scan_bytes(resolver("numpy", "ndarray"), "u.pkl", policy=POLICY).findings == ()
    computed = b"\x80\x02cnumpy.core\n_ufunc_reconstruct\n)R."  # called without constant names
    assert [f.rule_id for f in scan_bytes(computed, "u.pkl", policy=POLICY).findings] == \
        ["AISP-SCAN-PICKLE-DANGEROUS"]


def test_control_characters_in_names_are_escaped() -> None:
    name = "system\x1b[2K\r\u202e"
    data = b"\x80\x04\x8c\x02os\x8c" + bytes([len(name.encode())]) + name.encode() + b"\x93."
    (finding,) = scan_bytes(data, "esc.pkl", policy=POLICY).findings
    text = finding.one_line() + json.dumps(finding.evidence)
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "\\x1b[2K\\r" in finding.evidence["global"]



def test_code_text_too_long_to_parse_is_reported_not_skipped() -> None:
    from pytest_aisp.scan.data import CODE_MAX_CHARS

    padded = "# " + "x" * CODE_MAX_CHARS + "\nexec(payload)\n"
    result = scan_bytes(pickle.dumps({"hook": padded}), "long.pkl", policy=POLICY)
    assert [f.rule_id for f in result.findings] == ["AISP-SCAN-LIMIT"]
    assert "not parsed" in result.findings[0].message
