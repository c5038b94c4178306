"""A symbolic pickle machine: reads a pickle stream the way ``pickle.Unpickler`` does, without running it.

Every opcode of protocols 0-5 is decoded with the unpickler's own argument rules; values are kept
symbolically (constants as themselves, globals as :class:`GlobalRef`, calls as :class:`Call`), so the
scanner knows which callables a stream would import and call, which names are computed at load time,
and which bytes are handed to a nested deserializer. Frames are read as the C unpickler reads them: a
``FRAME`` only checks that its bytes exist, and opcodes simply continue across its end.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_U8 = struct.Struct("<Q").unpack_from
_U4 = struct.Struct("<I").unpack_from
_I4 = struct.Struct("<i").unpack_from
_U2 = struct.Struct("<H").unpack_from
_F8 = struct.Struct(">d").unpack_from

HIGHEST_PROTOCOL = 5
PICKLE_OPCODES = frozenset(b"()*.0123FGIJKLMNPQRSTUVXabcdeghijlopqrstu}]\x80\x81\x82\x83\x84\x85\x86\x87"
                           b"\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98BC")
# String and bytes constants at least this long are handed to the machine's ``on_data`` hook: the
# shortest pickle that imports and calls something with an argument is longer.
MIN_DATA_LENGTH = 12
KEEP_ITEMS = 256  # container items kept for analysis; bigger containers are summarised
JOBLIB_WRAPPERS = frozenset({
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
})


class PickleError(Exception):
    """The stream is not a pickle the unpickler would finish; ``offset`` is where it broke."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class LimitExceeded(PickleError):
    """The stream needs more stack, memo or nesting than the limits allow."""


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


class Blob:
    """A bytes constant, kept as a span of the source buffer (never copied unless scanned)."""

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end

    def __len__(self) -> int:
        return self.end - self.start


class GlobalRef:
    """A global the stream imports (``GLOBAL``, ``STACK_GLOBAL``, ``INST``, ``EXT*``)."""

    __slots__ = ("module", "name", "offset", "opcode")

    def __init__(self, module: str, name: str, offset: int, opcode: str) -> None:
        self.module, self.name, self.offset, self.opcode = module, name, offset, opcode

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}" if self.module else self.name


class Call:
    """The result of calling ``func`` on ``args`` (``REDUCE``, ``NEWOBJ``, ``INST``, ``OBJ`` ...)."""

    __slots__ = ("args", "func", "offset", "opcode", "state")

    def __init__(self, func: Any, args: Any, offset: int, opcode: str) -> None:
        self.func, self.args, self.offset, self.opcode = func, args, offset, opcode
        self.state: Any = None


class Container:
    """A list, dict or set; the first ``KEEP_ITEMS`` items are kept, the rest only counted."""

    __slots__ = ("count", "items", "kind")

    def __init__(self, kind: str, items: list[Any] | None = None) -> None:
        self.kind = kind
        self.items: list[Any] = (items or [])[:KEEP_ITEMS]
        self.count = len(items or ())

    def extend(self, values: list[Any]) -> None:
        room = KEEP_ITEMS - len(self.items)
        if room > 0:
            self.items.extend(values[:room])
        self.count += len(values)


@dataclass
class CallSite:
    """A callable invoked at load time with its argument value (for nested-deserializer analysis)."""

    func: Any
    args: Any
    offset: int
    opcode: str


@dataclass
class StreamReport:
    """What one pickle stream does: globals imported, calls made, and how the read ended."""

    start: int
    end: int = 0
    protocol: int = 0
    opcodes: int = 0
    complete: bool = False
    globals: list[GlobalRef] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    dynamic_globals: list[tuple[int, str]] = field(default_factory=list)
    ext_codes: list[tuple[int, int]] = field(default_factory=list)
    frame_overruns: list[int] = field(default_factory=list)
    persistent_ids: int = 0
    skipped_array_bytes: int = 0
    inner_streams: list[StreamReport] = field(default_factory=list)
    error: str | None = None
    error_offset: int | None = None
    value: Any = None  # what STOP returned, when it is a constant, tuple or global


def _py2_names(module: str, name: str) -> tuple[str, str]:
    """The names ``fix_imports`` maps a Python 2 global to (``__builtin__`` -> ``builtins`` ...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _line(data: Any, pos: int, end: int) -> tuple[bytes, int]:
    """One ``\\n``-terminated argument line (without the newline) and the position after it."""
    nl = data.find(b"\n", pos, end)
    if nl < 0:
        raise PickleError("pickle data was truncated (no newline)", pos)
    return bytes(data[pos:nl]), nl + 1


def _decode_line_str(raw: bytes, pos: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PickleError("undecodable name in GLOBAL/INST", pos) from None


def _dtype_layout(dtype: Any) -> tuple[bool, int] | None:
    """(has objects, item size) of a pickled ``numpy.dtype`` call, or None when it cannot be told."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    code = dtype.args[0]
    state = dtype.state
    if not isinstance(code, str) or not code:
        return None
    flags = state[7] if isinstance(state, tuple) and len(state) > 7 and isinstance(state[7], int) else 0
    if isinstance(state, tuple) and len(state) > 2 and state[2] is not None:
        return None  # subarray dtype
    has_objects = code.startswith("O") or bool(flags & 1)
    size = state[5] if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) else -1
    if size <= 0:
        digits = "".join(ch for ch in code if ch.isdigit())
        if not digits:
            return None
        size = int(digits)
    return has_objects, size


def _joblib_array_span(wrapper: Call) -> tuple[bool, int, bool] | None:
    """(has objects, data bytes, alignment byte present) for a joblib ``NumpyArrayWrapper``."""
    state = wrapper.state
    if not isinstance(state, Container) or state.kind != "dict":
        return None
    values = dict(item for item in state.items if isinstance(item, tuple) and isinstance(item[0], str))
    layout = _dtype_layout(values.get("dtype"))
    shape = values.get("shape")
    if layout is None or not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    count = 1
    for dim in shape:
        count *= dim
    has_objects, itemsize = layout
    aligned = values.get("numpy_array_alignment_bytes") is not None
    return has_objects, count * itemsize, aligned


class PickleMachine:
    """Runs one or more pickle streams in ``data[start:end]`` symbolically.

    ``joblib`` makes ``BUILD`` of a ``NumpyArrayWrapper`` skip the array bytes that joblib writes inline,
    as joblib's unpickler does. ``on_data(offset, value)`` sees every string constant and every bytes
    constant (as a :class:`Blob`) of at least ``MIN_DATA_LENGTH`` characters: payloads carried as data.
    """

    def __init__(self, data: Any, *, max_stack: int = 10_000_000, max_memo: int = 10_000_000,
                 joblib: bool = True, max_inner: int = 10_000, file_mode: bool = False,
                 on_data: Callable[[int, Any], None] | None = None) -> None:
        self.data = data
        self.file_mode = file_mode
        self.on_data = on_data
        self.max_stack = max_stack
        self.max_memo = max_memo
        self.joblib = joblib
        self.max_inner = max_inner

    def run(self, start: int, end: int) -> StreamReport:
        """Read one stream from ``start`` up to its ``STOP``; never raises on bad data."""
        report = StreamReport(start=start)
        try:
            self._run(report, start, end)
        except PickleError as exc:
            report.error = str(exc)
            report.error_offset = exc.offset
        except (ValueError, OverflowError, IndexError, KeyError, TypeError, struct.error, RecursionError,
                MemoryError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            report.error_offset = report.end
        return report

    # The loop is long on purpose: one function with local names is several times faster in CPython
    # than a dispatch table of methods, and a million-object pickle goes through it millions of times.
    def _run(self, report: StreamReport, pos: int, end: int) -> None:
        data = self.data
        stack: list[Any] = []
        metastack: list[list[Any]] = []
        memo: dict[int, Any] = {}
        globals_seen = report.globals
        calls = report.calls
        frame_end = -1
        proto = 0
        opcodes = 0
        max_stack, max_memo = self.max_stack, self.max_memo

        file_mode = self.file_mode
        on_data = self.on_data
        min_data = MIN_DATA_LENGTH if on_data is not None else 1 << 62  # one comparison in the hot loop

        def need(n: int, at: int) -> None:
            if at + n > end:
                raise PickleError("pickle data was truncated", at)

        # File mode: the C unpickler reading a file object without peek() (a BytesIO, as torch.load
        # gives it data.pkl) keeps a FRAME in a buffer; a read that does not fit in what is left of it
        # drops the rest and reads from the file after the frame. ``frame_end`` is then the buffer's end.
        def fix(p: int, n: int) -> int:
            nonlocal frame_end
            if frame_end >= 0:
                if p >= frame_end:
                    frame_end = -1
                elif p + n > frame_end:
                    p, frame_end = frame_end, -1
            return p

        def read_line(p: int) -> tuple[bytes, int]:
            nonlocal frame_end
            if file_mode and frame_end >= 0:
                if p >= frame_end:
                    frame_end = -1
                elif data.find(b"\n", p, frame_end) < 0:
                    p, frame_end = frame_end, -1
            return _line(data, p, end)

        def pop_mark(at: int) -> list[Any]:
            nonlocal stack
            if not metastack:
                raise PickleError("could not find MARK", at)
            items = stack
            stack = metastack.pop()
            return items

        def top(at: int) -> Any:
            if not stack:
                raise PickleError("unpickling stack underflow", at)
            return stack[-1]

        def pop(at: int) -> Any:
            if not stack:
                raise PickleError("unpickling stack underflow", at)
            return stack.pop()

        def add_global(module: str, name: str, at: int, opcode: str) -> GlobalRef:
            if proto < 3:
                mapped = _py2_names(module, name)
                if mapped != (module, name):
                    # fix_imports (on by default) makes the unpickler import the Python 3 name instead
                    module, name, opcode = mapped[0], mapped[1], f"{opcode} (Python 2 name {module}.{name})"
            ref = GlobalRef(module, name, at, opcode)
            globals_seen.append(ref)
            return ref

        def call(func: Any, args: Any, at: int, opcode: str) -> Call:
            calls.append(CallSite(func, args, at, opcode))
            return Call(func, args, at, opcode)

        at = pos
        try:
            while True:
                if frame_end >= 0 and pos >= frame_end:
                    if pos > frame_end and not file_mode:  # an opcode started inside the frame, ended outside
                        report.frame_overruns.append(pos)
                    frame_end = -1  # opcodes between frames are legal (protocol 5 writes large bytes there)
                if pos >= end:
                    report.end, report.opcodes = pos, opcodes
                    raise PickleError("pickle data was truncated (no STOP)", pos)
                at = pos
                op = data[pos]
                pos += 1
                opcodes += 1
                if not opcodes & 0x3FF:
                    report.end, report.opcodes = at, opcodes
                    if len(stack) > max_stack or len(metastack) > max_stack:
                        raise LimitExceeded("stack deeper than the limit", at)
                # --- most frequent opcodes first, checks inlined: this loop runs millions of times --
                if op == 0x94:  # MEMOIZE
                    if not stack:
                        raise PickleError("unpickling stack underflow", at)
                    n = len(memo)
                    if n >= max_memo:
                        raise LimitExceeded("memo larger than the limit", at)
                    memo[n] = stack[-1]
                elif op == 0x8C:  # SHORT_BINUNICODE
                    if pos >= end:
                        raise PickleError("pickle data was truncated", pos)
                    n = data[pos]
                    if file_mode:
                        pos = fix(pos + 1, n) - 1
                    pos += 1 + n
                    if pos > end:
                        raise PickleError("pickle data was truncated", at + 2)
                    stack.append(str(data[pos - n:pos], "utf-8", "surrogatepass"))
                    if n >= min_data:
                        on_data(at, stack[-1])
                elif op == 0x71:  # BINPUT q
                    if file_mode:
                        pos = fix(pos, 1)
                    need(1, pos)
                    if len(memo) >= max_memo:
                        raise LimitExceeded("memo larger than the limit", at)
                    memo[data[pos]] = top(at)
                    pos += 1
                elif op == 0x68:  # BINGET h
                    if file_mode:
                        pos = fix(pos, 1)
                    need(1, pos)
                    idx = data[pos]
                    if idx not in memo:
                        raise PickleError(f"memo value not found at index {idx}", at)
                    stack.append(memo[idx])
                    pos += 1
                elif op == 0x4B:  # BININT1 K
                    if pos >= end:
                        raise PickleError("pickle data was truncated", pos)
                    stack.append(data[pos])
                    pos += 1
                elif op == 0x4A:  # BININT J
                    if file_mode:
                        pos = fix(pos, 4)
                    if pos + 4 > end:
                        raise PickleError("pickle data was truncated", pos)
                    stack.append(_I4(data, pos)[0])
                    pos += 4
                elif op == 0x4D:  # BININT2 M
                    if file_mode:
                        pos = fix(pos, 2)
                    need(2, pos)
                    stack.append(_U2(data, pos)[0])
                    pos += 2
                elif op == 0x28:  # MARK (
                    metastack.append(stack)
                    stack = []
                    if len(metastack) > max_stack:
                        raise LimitExceeded("too many nested MARKs", at)
                elif op == 0x75:  # SETITEMS u
                    items = pop_mark(at)
                    target = top(at)
                    if len(items) % 2:
                        raise PickleError("odd number of items for SETITEMS", at)
                    if isinstance(target, Container):
                        if len(target.items) < KEEP_ITEMS:
                            target.extend([(items[i], items[i + 1]) for i in range(0, len(items), 2)])
                        else:
                            target.count += len(items) // 2
                elif op == 0x65:  # APPENDS e
                    items = pop_mark(at)
                    target = top(at)
                    if isinstance(target, Container):
                        target.extend(items)
                elif op == 0x58:  # BINUNICODE X
                    if file_mode:
                        pos = fix(pos, 4)
                    need(4, pos)
                    n = _U4(data, pos)[0]
                    if file_mode:
                        pos = fix(pos + 4, n) - 4
                    need(n, pos + 4)
                    stack.append(str(data[pos + 4:pos + 4 + n], "utf-8", "surrogatepass"))
                    if n >= min_data:
                        on_data(at, stack[-1])
                    pos += 4 + n
                elif op == 0x47:  # BINFLOAT G
                    if file_mode:
                        pos = fix(pos, 8)
                    if pos + 8 > end:
                        raise PickleError("pickle data was truncated", pos)
                    stack.append(_F8(data, pos)[0])
                    pos += 8
                elif op == 0x4E:  # NONE N
                    stack.append(None)
                elif op == 0x88:  # NEWTRUE
                    stack.append(True)
                elif op == 0x89:  # NEWFALSE
                    stack.append(False)
                elif op == 0x85:  # TUPLE1
                    stack.append((pop(at),))
                elif op == 0x86:  # TUPLE2
                    b = pop(at)
                    a = pop(at)
                    stack.append((a, b))
                elif op == 0x87:  # TUPLE3
                    c = pop(at)
                    b = pop(at)
                    a = pop(at)
                    stack.append((a, b, c))
                elif op == 0x29:  # EMPTY_TUPLE )
                    stack.append(())
                elif op == 0x74:  # TUPLE t
                    items = pop_mark(at)
                    stack.append(tuple(items))
                elif op == 0x5D:  # EMPTY_LIST ]
                    stack.append(Container("list"))
                elif op == 0x7D:  # EMPTY_DICT }
                    stack.append(Container("dict"))
                elif op == 0x72:  # LONG_BINPUT r
                    if file_mode:
                        pos = fix(pos, 4)
                    need(4, pos)
                    if len(memo) >= max_memo:
                        raise LimitExceeded("memo larger than the limit", at)
                    memo[_U4(data, pos)[0]] = top(at)
                    pos += 4
                elif op == 0x6A:  # LONG_BINGET j
                    if file_mode:
                        pos = fix(pos, 4)
                    need(4, pos)
                    idx = _U4(data, pos)[0]
                    if idx not in memo:
                        raise PickleError(f"memo value not found at index {idx}", at)
                    stack.append(memo[idx])
                    pos += 4
                elif op == 0x43:  # SHORT_BINBYTES C
                    if file_mode:
                        pos = fix(pos, 1)
                    need(1, pos)
                    n = data[pos]
                    if file_mode:
                        pos = fix(pos + 1, n) - 1
                    need(n, pos + 1)
                    stack.append(Blob(pos + 1, pos + 1 + n))
                    if n >= min_data:
                        on_data(at, stack[-1])
                    pos += 1 + n
                elif op in (0x42, 0x8E, 0x96):  # BINBYTES B, BINBYTES8, BYTEARRAY8
                    width = 4 if op == 0x42 else 8
                    if file_mode:
                        pos = fix(pos, width)
                    need(width, pos)
                    n = _U4(data, pos)[0] if width == 4 else _U8(data, pos)[0]
                    if file_mode:
                        pos = fix(pos + width, n) - width
                    need(n, pos + width)
                    stack.append(Blob(pos + width, pos + width + n))
                    if n >= min_data:
                        on_data(at, stack[-1])
                    pos += width + n
                elif op == 0x52:  # REDUCE R
                    args = pop(at)
                    func = top(at)
                    stack[-1] = call(func, args, at, "REDUCE")
                elif op == 0x62:  # BUILD b
                    state = pop(at)
                    inst = top(at)
                    if isinstance(inst, Call):
                        inst.state = state
                        if (self.joblib and isinstance(inst.func, GlobalRef) and inst.func.full in JOBLIB_WRAPPERS):
                            pos = self._skip_joblib_array(inst, pos, end, report)
                            frame_end = -1  # joblib ends the frame before writing array bytes
                    elif isinstance(inst, GlobalRef):
                        calls.append(CallSite(inst, state, at, "BUILD"))
                elif op == 0x81:  # NEWOBJ
                    args = pop(at)
                    cls = pop(at)
                    stack.append(call(cls, args, at, "NEWOBJ"))
                elif op == 0x92:  # NEWOBJ_EX
                    kwargs = pop(at)
                    args = pop(at)
                    cls = pop(at)
                    stack.append(call(cls, (args, kwargs), at, "NEWOBJ_EX"))
                elif op == 0x93:  # STACK_GLOBAL
                    name = pop(at)
                    module = pop(at)
                    if isinstance(module, str) and isinstance(name, str):
                        stack.append(add_global(module, name, at, "STACK_GLOBAL"))
                    else:
                        report.dynamic_globals.append((at, f"{_describe(module)} . {_describe(name)}"))
                        stack.append(UNKNOWN)
                elif op == 0x63:  # GLOBAL c
                    raw_module, pos = read_line(pos)
                    raw_name, pos = read_line(pos)
                    stack.append(add_global(_decode_line_str(raw_module, at), _decode_line_str(raw_name, at),
                                            at, "GLOBAL"))
                elif op == 0x69:  # INST i
                    raw_module, pos = read_line(pos)
                    raw_name, pos = read_line(pos)
                    cls = add_global(_decode_line_str(raw_module, at), _decode_line_str(raw_name, at), at, "INST")
                    args = tuple(pop_mark(at))
                    stack.append(call(cls, args, at, "INST"))
                elif op == 0x6F:  # OBJ o
                    items = pop_mark(at)
                    if not items:
                        raise PickleError("OBJ without a class", at)
                    stack.append(call(items[0], tuple(items[1:]), at, "OBJ"))
                elif op == 0x80:  # PROTO
                    if file_mode:
                        pos = fix(pos, 1)
                    need(1, pos)
                    proto = data[pos]
                    if proto > HIGHEST_PROTOCOL:
                        raise PickleError(f"unsupported pickle protocol: {proto}", at)
                    report.protocol = max(report.protocol, proto)
                    pos += 1
                elif op == 0x95:  # FRAME
                    if file_mode:
                        pos = fix(pos, 8)
                    need(8, pos)
                    size = _U8(data, pos)[0]
                    pos += 8
                    if file_mode and frame_end >= 0 and pos + size <= frame_end:
                        pass  # the frame is already in the buffer: the buffer's end stays where it was
                    else:
                        if file_mode and frame_end >= 0 and pos < frame_end:
                            pos = frame_end  # the rest of the buffer is dropped, the frame read from the file
                        need(size, pos)  # the C unpickler only checks the frame is all there ...
                        frame_end = pos + size  # ... and reads on across its end; we note where it does
                elif op == 0x2E:  # STOP .
                    value = pop(at)
                    report.value = value if isinstance(value, (int, str, tuple, GlobalRef)) else None
                    report.complete = True
                    report.end, report.opcodes = pos, opcodes
                    return
                elif op == 0x30:  # POP 0
                    if stack:
                        stack.pop()
                    else:
                        pop_mark(at)
                elif op == 0x31:  # POP_MARK 1
                    pop_mark(at)
                elif op == 0x32:  # DUP 2
                    stack.append(top(at))
                elif op == 0x61:  # APPEND a
                    value = pop(at)
                    target = top(at)
                    if isinstance(target, Container):
                        target.extend([value])
                elif op == 0x73:  # SETITEM s
                    value = pop(at)
                    key = pop(at)
                    target = top(at)
                    if isinstance(target, Container):
                        target.extend([(key, value)])
                elif op == 0x64:  # DICT d
                    items = pop_mark(at)
                    stack.append(Container("dict", [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]))
                elif op == 0x6C:  # LIST l
                    items = pop_mark(at)
                    stack.append(Container("list", items))
                elif op == 0x8F:  # EMPTY_SET
                    stack.append(Container("set"))
                elif op == 0x90:  # ADDITEMS
                    items = pop_mark(at)
                    target = top(at)
                    if isinstance(target, Container):
                        target.extend(items)
                elif op == 0x91:  # FROZENSET
                    items = pop_mark(at)
                    stack.append(Container("frozenset", items))
                elif op == 0x8D:  # BINUNICODE8
                    if file_mode:
                        pos = fix(pos, 8)
                    need(8, pos)
                    n = _U8(data, pos)[0]
                    if file_mode:
                        pos = fix(pos + 8, n) - 8
                    need(n, pos + 8)
                    stack.append(str(data[pos + 8:pos + 8 + n], "utf-8", "surrogatepass"))
                    if n >= min_data:
                        on_data(at, stack[-1])
                    pos += 8 + n
                elif op == 0x55:  # SHORT_BINSTRING U
                    if file_mode:
                        pos = fix(pos, 1)
                    need(1, pos)
                    n = data[pos]
                    if file_mode:
                        pos = fix(pos + 1, n) - 1
                    need(n, pos + 1)
                    stack.append(bytes(data[pos + 1:pos + 1 + n]).decode("latin-1"))
                    if n >= min_data:
                        on_data(at, stack[-1])
                    pos += 1 + n
                elif op == 0x54:  # BINSTRING T
                    if file_mode:
                        pos = fix(pos, 4)
                    need(4, pos)
                    n = _I4(data, pos)[0]
                    if n < 0:
                        raise PickleError("BINSTRING pickle has negative byte count", at)
                    if file_mode:
                        pos = fix(pos + 4, n) - 4
                    need(n, pos + 4)
                    stack.append(bytes(data[pos + 4:pos + 4 + n]).decode("latin-1"))
                    if n >= min_data:
                        on_data(at, stack[-1])
                    pos += 4 + n
                elif op == 0x8A:  # LONG1
                    if file_mode:
                        pos = fix(pos, 1)
                    need(1, pos)
                    n = data[pos]
                    if file_mode:
                        pos = fix(pos + 1, n) - 1
                    need(n, pos + 1)
                    stack.append(int.from_bytes(data[pos + 1:pos + 1 + n], "little", signed=True))
                    pos += 1 + n
                elif op == 0x8B:  # LONG4
                    if file_mode:
                        pos = fix(pos, 4)
                    need(4, pos)
                    n = _I4(data, pos)[0]
                    if n < 0:
                        raise PickleError("LONG pickle has negative byte count", at)
                    if file_mode:
                        pos = fix(pos + 4, n) - 4
                    need(n, pos + 4)
                    stack.append(int.from_bytes(data[pos + 4:pos + 4 + n], "little", signed=True)
                                 if n <= 64 else UNKNOWN)
                    pos += 4 + n
                elif op in (0x49, 0x4C):  # INT I, LONG L
                    raw, pos = read_line(pos)
                    text = raw.decode("ascii", "replace").rstrip("L")
                    if raw == b"00":
                        stack.append(False)
                    elif raw == b"01":
                        stack.append(True)
                    elif len(text) > 64:
                        stack.append(UNKNOWN)  # int() of a huge decimal string is quadratic: do not parse it
                    else:
                        try:
                            stack.append(int(text))
                        except ValueError:
                            raise PickleError("invalid literal for INT/LONG", at) from None
                elif op == 0x46:  # FLOAT F
                    raw, pos = read_line(pos)
                    try:
                        stack.append(float(raw))
                    except ValueError:
                        raise PickleError("invalid literal for FLOAT", at) from None
                elif op == 0x53:  # STRING S
                    raw, pos = read_line(pos)
                    if len(raw) >= 2 and raw[0] == raw[-1] and raw[:1] in (b"'", b'"'):
                        raw = raw[1:-1]
                    else:
                        raise PickleError("the STRING opcode argument must be quoted", at)
                    stack.append(codecs.escape_decode(raw)[0].decode("latin-1"))
                    if len(stack[-1]) >= min_data:
                        on_data(at, stack[-1])
                elif op == 0x56:  # UNICODE V
                    raw, pos = read_line(pos)
                    stack.append(raw.decode("raw-unicode-escape"))
                    if len(stack[-1]) >= min_data:
                        on_data(at, stack[-1])
                elif op in (0x67, 0x70):  # GET g, PUT p
                    raw, pos = read_line(pos)
                    try:
                        idx = int(raw)
                    except ValueError:
                        raise PickleError("invalid memo index", at) from None
                    if op == 0x67:
                        if idx not in memo:
                            raise PickleError(f"memo value not found at index {idx}", at)
                        stack.append(memo[idx])
                    else:
                        if idx < 0:
                            raise PickleError("negative PUT argument", at)
                        if len(memo) >= max_memo:
                            raise LimitExceeded("memo larger than the limit", at)
                        memo[idx] = top(at)
                elif op in (0x50, 0x51):  # PERSID P, BINPERSID Q
                    if op == 0x50:
                        _, pos = read_line(pos)
                    else:
                        pop(at)
                    report.persistent_ids += 1
                    stack.append(UNKNOWN)
                elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
                    width = {0x82: 1, 0x83: 2, 0x84: 4}[op]
                    if file_mode:
                        pos = fix(pos, width)
                    need(width, pos)
                    code = int.from_bytes(data[pos:pos + width], "little", signed=(width == 4))
                    pos += width
                    if code <= 0:
                        raise PickleError("EXT code must be positive", at)
                    report.ext_codes.append((at, code))
                    stack.append(UNKNOWN)
                elif op == 0x97:  # NEXT_BUFFER
                    raise PickleError("pickle stream refers to out-of-band data but no buffers were given", at)
                elif op == 0x98:  # READONLY_BUFFER
                    top(at)
                else:
                    raise PickleError(f"invalid load key, {bytes([op])!r}", at)
        except BaseException:
            report.end, report.opcodes = max(report.end, at), opcodes
            raise


    def _skip_joblib_array(self, wrapper: Call, pos: int, end: int, report: StreamReport) -> int:
        """Skip (or scan, for object arrays) the array data joblib writes right after a wrapper's BUILD."""
        span = _joblib_array_span(wrapper)
        if span is None:
            raise PickleError("joblib array wrapper with a layout that cannot be read statically", wrapper.offset)
        has_objects, nbytes, aligned = span
        if has_objects:
            if len(report.inner_streams) >= self.max_inner:
                raise LimitExceeded("too many nested object arrays", pos)
            inner = self.run(pos, end)
            report.inner_streams.append(inner)
            if not inner.complete:
                raise PickleError(f"nested object-array pickle is broken: {inner.error}", pos)
            return inner.end
        if aligned:
            if pos >= end:
                raise PickleError("pickle data was truncated (joblib padding)", pos)
            pos += 1 + self.data[pos]
        if pos + nbytes > end:
            raise PickleError("joblib array data runs past the end of the file", pos)
        report.skipped_array_bytes += nbytes
        return pos + nbytes


def probe_pickle(data: Any, start: int = 0, end: int | None = None) -> StreamReport:
    """Run one stream without judging it: used to tell a protocol 0/1 pickle from other bytes."""
    end = len(data) if end is None else end
    return PickleMachine(data, max_stack=100_000, max_memo=100_000).run(start, end)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:60])
    if isinstance(value, GlobalRef):
        return value.full
    if isinstance(value, Call):
        return f"result of calling {_describe(value.func)}"
    return type(value).__name__.lstrip("_").lower()


def embedded_payloads(data: Any, value: Any, depth: int = 0) -> list[bytes]:
    """Every bytes-like constant reachable in a call's arguments (through tuples and nested calls).

    ``_codecs.encode(text, "latin1")`` counts as the bytes it makes: protocol 2 pickles write bytes that way.
    """
    if depth > 6:
        return []
    if isinstance(value, Blob):
        return [bytes(data[value.start:value.end])]
    if isinstance(value, str) and len(value) > 2:
        return [value.encode("latin-1", "replace")]
    if isinstance(value, tuple):
        return [b for item in value for b in embedded_payloads(data, item, depth + 1)]
    if isinstance(value, Call):
        return embedded_payloads(data, value.args, depth + 1)
    if isinstance(value, Container):
        return [b for item in value.items for b in embedded_payloads(data, item, depth + 1)]
    return []


def callable_name(value: Any) -> str | None:
    """The dotted name of a call target when it is a global."""
    return value.full if isinstance(value, GlobalRef) else None
