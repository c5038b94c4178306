"""Differential fuzzing against the real C unpickler: every global it would import, we report or flag.

The real unpickler runs with ``find_class`` replaced by a recorder that returns a harmless stub, so
nothing is imported or called; Hypothesis builds opcode streams from a pickle alphabet.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import io
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_aisp.scan.pickle_vm import PickleMachine

TOKENS = [b"(", b")", b"N", b"K\x01", b"J\x02\x00\x00\x00", b"\x8c\x02os", b"\x8c\x06system", b"X\x03\x00\x00\x00pty",
          b"\x94", b"h\x00", b"h\x01", b"q\x00", b"q\x01", b"]", b"}", b"e", b"u", b"s", b"a", b"t", b"\x85", b"\x86",
          b"\x87", b"R", b"b", b"\x81", b"\x92", b"\x93", b"0", b"1", b"2", b"cos\nsystem\n", b"c__builtin__\neval\n",
          b"\x95\x04\x00\x00\x00\x00\x00\x00\x00", b"\x95\x02\x00\x00\x00\x00\x00\x00\x00",
          b"\x95\x0b\x00\x00\x00\x00\x00\x00\x00", b"\x82\x01", b"o", b"ishutil\nrmtree\n", b"\x80\x02", b"\x80\x04",
          b"Vx\n", b"S'y'\n", b"I1\n", b"p3\n", b"g3\n", b"\x88", b"C\x01z", b"\x8f", b"\x90", b"\x91", b"d", b"l",
          b"\x8a\x01\x05", b"G\x00\x00\x00\x00\x00\x00\x00\x00"]


class _Stub:
    """Stands in for every imported global: accepts any call, attribute write and container use."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs) -> _Stub:
        return _Stub()

    def __setstate__(self, state) -> None:
        pass

    def append(self, item) -> None:
        pass

    def extend(self, items) -> None:
        pass

    def __setitem__(self, key, value) -> None:
        pass

    def add(self, item) -> None:
        pass


def _real_globals(data: bytes) -> list[str]:
    requested: list[str] = []

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> type:
            requested.append(f"{module}.{name}")
            return _Stub

    with contextlib.suppress(Exception):  # a broken stream: what it asked for before the break counts
        Recorder(io.BytesIO(data)).load()
    return requested


def _mapped(full: str) -> str:
    module, _, name = full.partition(".")
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=24), st.booleans())
def test_we_report_every_global_the_real_unpickler_imports(tokens: list[bytes], stop: bool) -> None:
    data = b"".join(tokens) + (b"." if stop else b"")
    theirs = _real_globals(data)
    report = PickleMachine(data).run(0, len(data))
    as_file = PickleMachine(data, file_mode=True).run(0, len(data))
    ours = {g.full for g in report.globals} | {g.full for g in as_file.globals}
    # a name computed at load time is flagged critical: it cannot be named statically
    flagged = bool(report.dynamic_globals or as_file.dynamic_globals)
    for name in theirs:
        assert name in ours or _mapped(name) in ours or flagged, (data, theirs, sorted(ours), report.error)


def test_frame_trick_is_read_both_ways() -> None:
    # bytes the frame holds after GLOBAL's opcode are dropped by a file-based loader: it imports os.system
    data = b"\x80\x04\x95" + (4).to_bytes(8, "little") + b")cXX" + b"os\nsystem\n."
    assert _real_globals(data) == ["os.system"]
    from pytest_aisp.scan.engine import scan_bytes

    result = scan_bytes(data, "frame.pkl")
    dangerous = [f for f in result.findings if f.rule_id == "AISP-SCAN-PICKLE-DANGEROUS"]
    assert "os.system" in {f.evidence["global"] for f in dangerous}
    assert "AISP-SCAN-PICKLE-FRAME" in {f.rule_id for f in result.findings}
