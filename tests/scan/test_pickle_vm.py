"""The symbolic machine reads every protocol like the unpickler, and agrees with it on real streams."""

from __future__ import annotations

import collections
import datetime
import pickle
import pickletools

import pytest

from pytest_aisp.scan.engine import scan_bytes
from pytest_aisp.scan.pickle_vm import PickleMachine

OBJECTS = [
    {"a": [1, 2.5, None, True], "b": (b"bytes", "text", 10**30), "c": {1, 2}, "d": frozenset({3})},
    collections.OrderedDict(x=1), datetime.datetime(2026, 1, 1), [[i, str(i)] for i in range(300)],
    bytearray(b"xyz"), -(2**70), 1e300, {"nested": {"deep": [{"k": (1,)}]}},
]


def _genops_globals(data: bytes) -> list[str]:
    """Globals as pickletools sees them on an honest stream (GLOBAL args, STACK_GLOBAL string pushes)."""
    found, strings = [], []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("GLOBAL", "INST"):
            found.append(arg.replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":
            found.append(f"{strings[-2]}.{strings[-1]}")
        if isinstance(arg, str) and opcode.name.endswith("UNICODE"):
            strings.append(arg)
        elif opcode.name in ("BINGET", "LONG_BINGET", "GET"):
            strings.append("?")
    return found


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("index", range(len(OBJECTS)))
def test_every_protocol_parses_completely(protocol: int, index: int) -> None:
    data = pickle.dumps(OBJECTS[index], protocol=protocol)
    report = PickleMachine(data).run(0, len(data))
    assert report.complete and report.end == len(data) and report.error is None
    expected = [g for g in _genops_globals(data) if "?" not in g]
    seen = [g.full for g in report.globals]
    for name in expected:
        mapped = {"__builtin__.set": "builtins.set", "__builtin__.frozenset": "builtins.frozenset",
                  "__builtin__.bytearray": "builtins.bytearray", "copy_reg._reconstructor": "copyreg._reconstructor",
                  "__builtin__.object": "builtins.object"}.get(name, name)
        assert mapped in seen
    assert scan_bytes(data, "x.pkl").findings == ()


def test_memo_get_resolves_constant_stack_global_operands() -> None:
    # protocol 4 memoizes the module string; a second class from it comes through BINGET
    data = pickle.dumps([collections.OrderedDict(), collections.Counter()], protocol=4)
    report = PickleMachine(data).run(0, len(data))
    assert {"collections.OrderedDict", "collections.Counter"} <= {g.full for g in report.globals}
    assert not report.dynamic_globals


def test_concatenated_streams_and_trailing_bytes() -> None:
    two = pickle.dumps({"a": 1}) + pickle.dumps(collections.Counter("ab"))
    result = scan_bytes(two, "two.pkl")
    assert [f.rule_id for f in result.findings] == ["AISP-SCAN-PICKLE-CONCATENATED"]
    trailing = scan_bytes(pickle.dumps({"a": 1}) + b"\xff\xfe not a pickle", "t.pkl")
    assert [f.rule_id for f in trailing.findings] == ["AISP-SCAN-PICKLE-TRAILING"]
    assert trailing.ok


def test_second_stream_payload_is_found() -> None:
    evil = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
    result = scan_bytes(pickle.dumps([1, 2]) + evil, "m.pkl")
    assert "AISP-SCAN-PICKLE-DANGEROUS" in {f.rule_id for f in result.findings}


def test_frame_exactly_as_written_is_not_an_overrun() -> None:
    data = pickle.dumps(list(range(100_000)), protocol=4)
    assert b"\x95" in data
    assert scan_bytes(data, "big.pkl").findings == ()


def test_large_bytes_between_frames_are_not_an_overrun() -> None:
    data = pickle.dumps({"blob": b"x" * 300_000, "rest": list(range(50_000))}, protocol=5)
    assert scan_bytes(data, "big5.pkl").findings == ()


def test_invalid_opcode_reports_offset() -> None:
    result = scan_bytes(b"\x80\x04N\xfe", "bad.pkl")
    (finding,) = result.findings
    assert finding.rule_id == "AISP-SCAN-PICKLE-BROKEN" and finding.evidence["offset"] == 3
