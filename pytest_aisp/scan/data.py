"""Payloads carried as data: string and bytes values that decode to a pickle, or hold Python code.

Loading a file does not run such a value; a later step does (``pickle.loads(bytes.fromhex(d["blob"]))``,
``exec(metadata["init"])``). Every string and bytes value of a pickle, and every string of safetensors,
GGUF and JSON headers, is decoded layer after layer (hex, base64, base32, base85, Ascii85, Python
escapes, zlib/gzip/bz2/xz/lzma), within a depth and a byte budget. What a layer turns out to be:

- a pickle (or a zip or ``.npy`` holding one): scanned like a file of its own; what it would import is
  reported one severity lower than if the file itself ran it (``AISP-SCAN-DATA-PICKLE``);
- Python source that parses and calls something that runs code or commands (``exec``, ``os.system``,
  ``subprocess``, ``__import__`` ...): ``AISP-SCAN-DATA-CODE`` (medium).

Values that decode to anything else (random bytes, JSON, an image) are data and say nothing.
Nothing is unpickled or executed: pickles go through the symbolic machine, code through ``ast.parse``.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import re
import textwrap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_aisp.findings import Finding, Severity
from pytest_aisp.scan import rules
from pytest_aisp.scan.context import LOADS_NAME, ScanContext, short
from pytest_aisp.scan.pickle_vm import MIN_DATA_LENGTH, Blob, GlobalRef, probe_pickle

MAX_DECODINGS_PER_VALUE = 64  # decode attempts for one value, across all its layers
CODE_MAX_CHARS = 4_000_000  # longer text is not parsed as code (counted against the byte budget first)
PROBE_BYTES = 4096  # a value is first probed as a pickle on this prefix; random bytes fail within it
KEEP_SEEN_BYTES = 1 << 20  # decoded values up to this size are remembered, so each is decoded once
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
# A pickle stream can only begin with an opcode that pushes (every other opcode needs the stack, a
# mark or the memo, which are empty); those that read a newline-ended argument need a newline.
_FIRST_OPCODES = frozenset(b"c(]})NIJKLMFGSVXUTCBP\x80\x95\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x96\x82\x83\x84")
_LINE_OPCODES = frozenset(b"cIFLSVP")
_MAGICS = (_ZIP_MAGIC, _NPY_MAGIC, b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00\x00", b"\x78\x01", b"\x78\x5e",
           b"\x78\x9c", b"\x78\xda")
_MAGIC_TEXT = tuple(magic.decode("latin-1") for magic in _MAGICS)  # bytes that protocols 0-2 keep as str

# Encoded text: the alphabets, with line breaks where encoders wrap lines (and spaces or colons between
# hex pairs). Values shorter than ENCODED_MIN_CHARS cannot encode a pickle that imports and calls anything.
ENCODED_MIN_CHARS = 20
_HEX = re.compile(r"(?:0[xX])?(?:[0-9A-Fa-f]{2}[\s:]?)+")
_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]+={0,2}\s*")
_BASE64_URL = re.compile(r"[A-Za-z0-9_\-\r\n]+={0,2}\s*")
_BASE32 = re.compile(r"[A-Z2-7\r\n]+=*\s*|[a-z2-7\r\n]+=*\s*")
_BASE85 = re.compile(r"[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~\r\n]+")
_ASCII85 = re.compile(r"(?:<~)?[!-uz\r\n]+(?:~>)?")
_ESCAPED = re.compile(r"(?:\\x[0-9A-Fa-f]{2}|\\[nrt0'\"\\]|[ -~])+")
_WHITESPACE = re.compile(r"\s+")
_PICKLE_FIRST_CHARS = "c(]})NIJKLMFGSVXUTCBP\x80\x95\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x96\x82\x83\x84"
# --- what counts as running code, in Python source --------------------------------------------

CODE_BUILTINS = frozenset({"exec", "eval", "compile", "__import__", "execfile", "breakpoint"})
# Modules any call into which runs code, a command, a connection or a loader.
CODE_MODULES = frozenset({
    "subprocess", "_posixsubprocess", "pty", "socket", "ctypes", "importlib", "runpy", "marshal", "pickle",
    "_pickle", "cPickle", "dill", "cloudpickle", "commands", "popen2", "code", "codeop", "webbrowser",
    "multiprocessing", "builtins", "__builtin__",
})
OS_MODULES = frozenset({"os", "posix", "nt"})
OS_CALLS = frozenset({
    "system", "popen", "popen2", "popen3", "popen4", "execl", "execle", "execlp", "execlpe", "execv", "execve",
    "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "posix_spawn", "posix_spawnp", "fork", "forkpty", "kill", "killpg", "startfile", "remove", "unlink", "rmdir",
    "removedirs", "truncate", "putenv",
})
OTHER_CALLS = frozenset({"shutil.rmtree"})
INTERNALS = frozenset({"__builtins__", "__globals__", "__subclasses__", "__import__", "__code__"})
# Text worth parsing as code names one of the above: source that the checks below flag always does (an
# alias is made by an import statement that names the module). Underscores separate words here, so that
# "posix_spawn" names "spawn" too.
_CODE_WORDS = sorted(CODE_BUILTINS | CODE_MODULES | OS_MODULES | OS_CALLS | INTERNALS | {"open", "getattr"}
                     | {part for name in OTHER_CALLS for part in name.split(".")}, key=len, reverse=True)
_CODE_HINT = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, _CODE_WORDS)) + r")(?![A-Za-z0-9])")


def dangerous_code(text: str) -> tuple[str, ...]:
    """What ``text``, read as Python source, calls that runs code or commands; () when it does not parse
    or calls nothing of the kind. The source is parsed, never compiled to bytecode or run."""
    if "(" not in text or not _CODE_HINT.search(text):
        return ()  # source that calls nothing runs nothing
    try:
        tree = ast.parse(text.strip("\x00").replace("\r\n", "\n"))
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        try:
            tree = ast.parse(textwrap.dedent(text))
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return ()
    try:
        return _CodeReader().read(tree)
    except RecursionError:
        return ("source nested too deeply to read",)


# Module names that are also everyday variable names: they count as the module only when imported.
IMPORT_NEEDED = frozenset({"code", "codeop", "commands"})


class _CodeReader:
    """Resolves names through the source's own imports and collects the dangerous calls. A name the
    source binds itself (assignment, argument, loop variable ...) is never taken for a module."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.bound: set[str] = set()
        self.found: list[str] = []

    def read(self, tree: ast.AST) -> tuple[str, ...]:
        nodes = list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.bound.add(node.id)
            elif isinstance(node, ast.arg):
                self.bound.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)):
                self.bound.add(node.name or "")
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if alias.name != "*":
                        self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for node in nodes:
            if isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, ast.Name) and node.id in INTERNALS:
                self._add(node.id)
            elif isinstance(node, ast.Attribute) and node.attr in INTERNALS:
                self._add(f"...{node.attr}")
            elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
                # a reference counts as well as a call: ``f = eval; f(text)``, ``map(os.system, commands)``
                name = self.name_of(node)
                if name is not None and _runs_code(name):
                    self._add(name)
        return tuple(dict.fromkeys(self.found))[:8]

    def _add(self, what: str) -> None:
        self.found.append(what)

    def name_of(self, node: ast.AST) -> str | None:
        """The dotted name an expression refers to, through the source's imports (``__import__('os')``
        counts as ``os``); None when it is not a plain name."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in self.bound or node.id in IMPORT_NEEDED:
                return f"<local {node.id}>"
            return node.id
        if isinstance(node, ast.Attribute):
            base = self.name_of(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call) and self.name_of(node.func) in ("__import__", "builtins.__import__",
                                                                      "importlib.import_module"):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return first.value
        return None

    def _call(self, node: ast.Call) -> None:
        name = self.name_of(node.func)
        if name is None:
            return
        if _runs_code(name):
            self._add(name)
        elif name in ("open", "builtins.open", "io.open") and _writes(node):
            self._add(f"{name}(..., write mode)")
        elif name == "getattr" and node.args:
            target = self.name_of(node.args[0]) or ""
            if target.split(".")[0] in CODE_MODULES | OS_MODULES:
                self._add(f"getattr({target}, ...)")


def _runs_code(name: str) -> bool:
    """Calling ``name`` runs code, a command, a connection or a loader (``exec``, ``os.system`` ...)."""
    parts = name.split(".")
    if name in CODE_BUILTINS or name in OTHER_CALLS:
        return True
    if len(parts) == 2 and parts[0] in ("builtins", "__builtin__"):
        return parts[1] in CODE_BUILTINS
    return (parts[0] in CODE_MODULES and len(parts) > 1) or (parts[0] in OS_MODULES and parts[-1] in OS_CALLS)


def _writes(node: ast.Call) -> bool:
    mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


# --- decoding layers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """What a data value turned out to hold after the decodings in ``chain``."""

    kind: str  # "pickle" (also a zip or .npy holding pickles) or "code"
    chain: tuple[str, ...]
    data: bytes = b""
    calls: tuple[str, ...] = ()


@dataclass
class DataBudget:
    """Bytes that decoding data values may still produce for one top-level file."""

    bytes_left: int
    exhausted: bool = False


@dataclass
class _Walk:
    budget: DataBudget
    max_layers: int
    attempts: int = 0
    deepest: bool = False
    unparsed: bool = False  # code text too long to parse
    seen: set[bytes] = field(default_factory=set)
    found: list[Payload] = field(default_factory=list)


# Argument of each opcode: fixed size, a little-endian length of this many bytes then that many bytes,
# or newline-ended lines (GLOBAL and INST take two) of the characters allowed in them.
_FIXED_ARGUMENT = {**dict.fromkeys(b"()]}N.012abdelostuRQ\x85\x86\x87\x88\x89\x81\x92\x93\x94\x8f\x90\x91\x97\x98", 0),
                   ord("K"): 1, ord("M"): 2, ord("J"): 4, ord("G"): 8, ord("q"): 1, ord("r"): 4, ord("h"): 1,
                   ord("j"): 4, 0x80: 1, 0x82: 1, 0x83: 2, 0x84: 4, 0x95: 8}
_SIZED_ARGUMENT = {ord("U"): 1, ord("C"): 1, 0x8C: 1, 0x8A: 1, ord("T"): 4, ord("X"): 4, ord("B"): 4, 0x8B: 4,
                   0x8D: 8, 0x8E: 8, 0x96: 8}
_NAME = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
_PRINTABLE = frozenset(range(0x20, 0x7F))
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_LINE_ARGUMENT = {ord("c"): (_NAME, 2), ord("i"): (_NAME, 2), ord("I"): (frozenset(b"0123456789-+ "), 1),
                  ord("L"): (frozenset(b"0123456789-+L "), 1), ord("F"): (frozenset(b"0123456789-+.eEinfaINFA "), 1),
                  ord("S"): (_PRINTABLE, 1), ord("V"): (frozenset(range(0x20, 0x100)), 1), ord("P"): (_PRINTABLE, 1),
                  ord("g"): (frozenset(b"0123456789"), 1), ord("p"): (frozenset(b"0123456789"), 1)}
OPENING_OPCODES = 4  # how many opcodes the cheap test walks


def opens_like_pickle(head: bytes, total: int) -> bool:
    """``head`` (the first bytes of ``total``) opens with opcodes a stream can start with, whose arguments
    fit: the first of up to ``OPENING_OPCODES`` pushes, and each is a real opcode. Random bytes and text
    almost always fail within two opcodes; a real pickle never does."""
    if not head or head[0] not in _FIRST_OPCODES:
        return False
    pos = 0
    for _ in range(OPENING_OPCODES):
        if pos >= len(head):
            return True
        op = head[pos]
        if op == 0x2E:  # STOP
            return pos > 0
        if op in _FIXED_ARGUMENT:
            if op == 0x80 and pos + 1 < len(head) and head[pos + 1] > 5:
                return False
            pos += 1 + _FIXED_ARGUMENT[op]
        elif op in _SIZED_ARGUMENT:
            width = _SIZED_ARGUMENT[op]
            if pos + 1 + width > len(head):
                return pos + 1 + width <= total
            length = int.from_bytes(head[pos + 1:pos + 1 + width], "little", signed=op in (ord("T"), 0x8B))
            if length < 0 or pos + 1 + width + length > total:
                return False
            pos += 1 + width + length
        elif op in _LINE_ARGUMENT:
            allowed, lines = _LINE_ARGUMENT[op]
            pos += 1
            for _line in range(lines):
                end = head.find(b"\n", pos)
                if not all(byte in allowed for byte in head[pos:end if end >= 0 else len(head)]):
                    return False
                if end < 0:
                    return True
                pos = end + 1
        else:
            return False
    return True


def looks_like_pickle(buffer: bytes | memoryview) -> bool:
    """``buffer`` is a pickle ``pickle.loads`` would run: it completes, or calls a global before it breaks.

    Probed on its first ``PROBE_BYTES`` first; only a prefix that is still a pickle at its end is read
    in full (tensor bytes fail within a few opcodes and are never copied).
    """
    if len(buffer) < MIN_DATA_LENGTH or buffer[0] not in _FIRST_OPCODES:
        return False
    head = bytes(buffer[:PROBE_BYTES])
    if not opens_like_pickle(head[:64], len(buffer)) or (buffer[0] in _LINE_OPCODES and b"\n" not in head):
        return False
    report = probe_pickle(head)
    if len(buffer) > len(head) and not report.complete and "truncated" in (report.error or ""):
        report = probe_pickle(bytes(buffer))
    if report.complete:
        return report.opcodes > 1
    # a stream that breaks still runs what it called before the break (random bytes call nothing named)
    return any(isinstance(site.func, GlobalRef) for site in report.calls)


def find_payloads(value: str | bytes | memoryview, budget: DataBudget,
                  max_layers: int) -> tuple[list[Payload], str]:
    """The pickles and dangerous code ``value`` holds through up to ``max_layers`` decodings, and what
    could not be checked ("" when everything was): a decoding that went on at the deepest layer, or text
    that may be code but is longer than ``CODE_MAX_CHARS``."""
    walk = _Walk(budget=budget, max_layers=max_layers)
    _layer(walk, value, ())
    unchecked = "encoded more than the depth limit" if walk.deepest else ""
    if walk.unparsed:
        unchecked = f"text of more than {CODE_MAX_CHARS} characters that may be code was not parsed"
    return walk.found, unchecked


def _layer(walk: _Walk, value: str | bytes | memoryview, chain: tuple[str, ...]) -> None:
    raw, text = _as_raw_and_text(value)
    if len(raw) < MIN_DATA_LENGTH:
        return
    if len(raw) <= KEEP_SEEN_BYTES:
        key = bytes(raw)
        if key in walk.seen:
            return
        walk.seen.add(key)
    if looks_like_pickle(raw) or bytes(raw[:6]).startswith((_ZIP_MAGIC, _NPY_MAGIC)):
        walk.found.append(Payload("pickle", chain, bytes(raw)))
    if text is not None and len(text) > CODE_MAX_CHARS and "(" in text and _CODE_HINT.search(text):
        walk.unparsed = True
    elif text is not None:
        calls = dangerous_code(text)
        if calls:
            walk.found.append(Payload("code", chain, calls=calls))
    for name, decoded in _decodings(raw, text):
        walk.attempts += 1
        if walk.attempts > MAX_DECODINGS_PER_VALUE:
            walk.deepest = True
            return
        if len(chain) >= walk.max_layers:
            walk.deepest = True
            return
        walk.budget.bytes_left -= len(decoded)
        if walk.budget.bytes_left < 0:
            walk.budget.exhausted = True
            return
        _layer(walk, decoded, (*chain, name))


def _as_raw_and_text(value: str | bytes | memoryview) -> tuple[bytes | memoryview, str | None]:
    """The value's bytes (as a string's latin-1 or UTF-8 bytes), and its text when it is text."""
    if isinstance(value, str):
        try:
            return value.encode("latin-1"), value
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass"), value
    if bytes(value[:64]).isascii():
        raw = bytes(value)
        if raw.isascii():
            return value, raw.decode("ascii")
        text = raw.decode("utf-8", "replace")
        if "\ufffd" not in text:
            return value, text
    return value, None


def _decodings(raw: bytes | memoryview, text: str | None) -> Iterator[tuple[str, bytes]]:
    """Every way ``raw`` (or its ``text``) decodes: text encodings, then compression."""
    if text is not None and len(text) >= MIN_DATA_LENGTH:
        yield from _text_decodings(text)
    yield from _decompressions(raw)


def _decoded(decode: Any, text: str, **kwargs: Any) -> bytes | None:
    """``decode(text)``, or None when the text is not in that encoding after all."""
    try:
        return bytes(decode(text, **kwargs))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _could_start_payload(head: bytes, total: int) -> bool:
    """The first decoded bytes (of ``total``) could begin a pickle, a container, a compressed stream, or more
    text (a further layer, or code): otherwise the rest need not be decoded (random bytes stop here)."""
    if not head:
        return False
    if head.startswith(_MAGICS) or opens_like_pickle(head, total):
        return True
    if head.isascii():
        return not head.translate(None, _TEXT_BYTES)  # nothing left once printable bytes are deleted
    text = head.decode("utf-8", "replace")
    if text.endswith("\ufffd"):
        text = text[:-1]  # one character may be cut at the end of the head
    return bool(text) and "\ufffd" not in text and all(ch.isprintable() or ch in "\t\n\r" for ch in text)


def _planned(name: str, decode: Any, compact: str, chars: int, ratio: float, head: Any = None,
             **kwargs: Any) -> tuple[str, Any] | None:
    """A deferred full decoding of ``compact``, or None when its first ``chars`` characters (whole groups of
    the encoding) decode to nothing worth going on with: the full text is then never decoded. ``head``
    decodes a prefix of five-character groups faster than ``decode``, first one group, then all;
    ``ratio`` is decoded bytes per character."""
    if len(compact) > chars:
        total = int(len(compact) * ratio)
        if head is not None:
            first = head(compact[:5])
            if first is None or not _could_start_payload(first, total):
                return None
        first = head(compact[:chars]) if head is not None else _decoded(decode, compact[:chars], **kwargs)
        if first is None or not _could_start_payload(first, total):
            return None
    return name, lambda: _decoded(decode, compact, **kwargs)


_B85_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
_B85_TABLE = bytes.maketrans(_B85_ALPHABET.encode(), bytes(range(85)))
_A85_TABLE = bytes.maketrans(bytes(range(33, 118)), bytes(range(85)))


def _b85_head(prefix: str) -> bytes | None:
    return _base85_head(prefix, _B85_TABLE)


def _base85_head(prefix: str, table: bytes = _A85_TABLE) -> bytes | None:
    """The bytes the whole groups of five characters at the start of ``prefix`` stand for: Ascii85 by
    default, base85 with ``_B85_TABLE`` (the caller has checked the alphabet)."""
    digits = prefix.encode("ascii", "replace").translate(table)
    out = bytearray()
    for start in range(0, len(digits) - 4, 5):
        a, b, c, d, e = digits[start:start + 5]
        value = (((a * 85 + b) * 85 + c) * 85 + d) * 85 + e
        if value > 0xFFFFFFFF:
            return None
        out += value.to_bytes(4, "big")
    return bytes(out)


def _text_plans(stripped: str) -> list[tuple[str, Any]]:
    """The encodings ``stripped`` is written in whose first groups decode to a possible payload, each with a
    deferred full decoding. Most text fits no alphabet, or its prefix decodes to random bytes."""
    if len(stripped) < ENCODED_MIN_CHARS:
        return []
    wrapped = "\n" in stripped or "\r" in stripped or " " in stripped or "\t" in stripped
    if wrapped and not (_BASE64.fullmatch(stripped) or _ASCII85.fullmatch(stripped) or _HEX.fullmatch(stripped)
                        or _BASE64_URL.fullmatch(stripped) or _BASE85.fullmatch(stripped)
                        or _BASE32.fullmatch(stripped)):
        return []  # words with spaces: the common case, no encoding takes them
    compact = _WHITESPACE.sub("", stripped) if wrapped else stripped
    plans: list[tuple[str, Any] | None] = []
    if _BASE64.fullmatch(stripped) or _BASE64_URL.fullmatch(stripped):
        body = compact.rstrip("=")
        if len(body) % 4 != 1:
            altchars = b"-_" if ("-" in body or "_" in body) else None
            padded = body + "=" * (-len(body) % 4)
            plans.append(_planned("base64", base64.b64decode, padded, 16, 0.75, altchars=altchars, validate=True))
    if _BASE85.fullmatch(stripped):
        plans.append(_planned("base85", base64.b85decode, compact, 10, 0.8, head=_b85_head))
    if _ASCII85.fullmatch(stripped):
        body = compact.removeprefix("<~").removesuffix("~>")
        if "z" not in body and "y" not in body:  # groups of five characters: a prefix cut is exact
            plans.append(_planned("ascii85", base64.a85decode, body, 10, 0.8, head=_base85_head))
        else:
            plans.append(("ascii85", lambda: _decoded(base64.a85decode, body)))
    if _HEX.fullmatch(stripped):
        digits = compact.removeprefix("0x").removeprefix("0X").replace(":", "")
        if len(digits) % 2 == 0:
            plans.append(_planned("hex", bytes.fromhex, digits, 32, 0.5))
    if _BASE32.fullmatch(stripped):
        body = compact.rstrip("=").upper()
        plans.append(_planned("base32", base64.b32decode, body + "=" * (-len(body) % 8), 16, 0.625))
    if "\\x" in stripped and _ESCAPED.fullmatch(stripped):
        body = stripped[2:-1] if stripped[:2] in ("b'", 'b"') and stripped[-1:] == stripped[1] else stripped
        plans.append(("escapes", lambda: _decoded(lambda b: codecs.escape_decode(b.encode("latin-1"))[0], body)))
    return [plan for plan in plans if plan is not None]


def _text_decodings(text: str) -> Iterator[tuple[str, bytes]]:
    for name, decode in _text_plans(text.strip()):
        decoded = decode()
        if decoded is not None:
            yield name, decoded


def _decompressions(raw: bytes | memoryview) -> Iterator[tuple[str, bytes]]:
    head = bytes(raw[:16])
    cap = 256 * 2**20
    try:
        if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
            yield "zlib", _bounded(zlib.decompressobj(), raw, cap)
        elif head.startswith(b"\x1f\x8b"):
            yield "gzip", _bounded(zlib.decompressobj(16 + zlib.MAX_WBITS), raw, cap)
        elif head.startswith(b"BZh") and head[3:4].isdigit():
            yield "bz2", _bounded(bz2.BZ2Decompressor(), raw, cap)
        elif head.startswith(b"\xfd7zXZ\x00"):
            yield "xz", _bounded(lzma.LZMADecompressor(), raw, cap)
        elif len(head) >= 13 and head[0] == 0x5D and head[1:3] == b"\x00\x00":
            yield "lzma", _bounded(lzma.LZMADecompressor(), raw, cap)
    except (zlib.error, OSError, EOFError, ValueError, lzma.LZMAError):
        return


def _bounded(decompressor: Any, raw: bytes | memoryview, cap: int) -> bytes:
    """Decompress at most ``cap`` bytes (a bomb stops there; its head is still checked)."""
    out = decompressor.decompress(raw, cap) if not isinstance(decompressor, bz2.BZ2Decompressor) else \
        decompressor.decompress(raw, max_length=cap)
    return bytes(out)


# --- findings ------------------------------------------------------------------------------------

_ONE_LOWER = {Severity.CRITICAL: Severity.HIGH, Severity.HIGH: Severity.MEDIUM, Severity.MEDIUM: Severity.LOW,
              Severity.LOW: Severity.INFO, Severity.INFO: Severity.INFO}
DATA_RULES = frozenset({rules.DATA_PICKLE, rules.DATA_CODE})
PAYLOAD_FORMATS = frozenset({"pickle", "torch-legacy", "zip", "npy"})
# Short strings found to hold nothing (names, keys, tokens recur in every file of a model directory).
CLEAN_CACHE_CHARS = 512
CLEAN_CACHE_SIZE = 65_536
_CLEAN: dict[tuple[str, int], None] = {}


@dataclass
class DataValues:
    """Data values seen while a pickle stream runs, kept when they might carry a payload."""

    candidates: dict[int, Any] = field(default_factory=dict)

    def see(self, offset: int, value: Any) -> None:
        """The pickle machine's hook for every long string or bytes constant (``Blob`` for bytes): plain
        text is dropped at once, so a pickle of a million names keeps none of them."""
        if offset not in self.candidates and not (isinstance(value, str) and _plain_text(value)):
            self.candidates[offset] = value


def _budget(ctx: ScanContext) -> DataBudget:
    if ctx.data_budget is None:
        ctx.data_budget = DataBudget(bytes_left=ctx.limits.max_data_bytes)
    return ctx.data_budget


def check_value(ctx: ScanContext, value: str | bytes | memoryview, location: str, where: str, depth: int,
                skip: frozenset[bytes] = frozenset()) -> None:
    """Decode one data value; report the pickles and dangerous code it holds. ``where`` says which value
    (``offset 120``, ``__metadata__['init']``); ``skip`` holds payloads already scanned as embedded."""
    if len(value) < MIN_DATA_LENGTH or (isinstance(value, str) and _plain_text(value)):
        return
    budget = _budget(ctx)
    if budget.exhausted:
        return
    layers_left = max(0, ctx.limits.max_data_depth - ctx.data_depth)
    key = (value, layers_left) if isinstance(value, str) and len(value) <= CLEAN_CACHE_CHARS else None
    if key is not None and key in _CLEAN:
        return
    payloads, unchecked = find_payloads(value, budget, layers_left)
    if key is not None and not payloads and not unchecked and not budget.exhausted:
        if len(_CLEAN) >= CLEAN_CACHE_SIZE:
            _CLEAN.clear()
        _CLEAN[key] = None
    if budget.exhausted:
        ctx.limit(location, f"data values decode to more than {ctx.limits.max_data_bytes} bytes",
                  where=where)
    if unchecked.startswith("encoded"):
        ctx.limit(location, f"a data value ({where}) is encoded more than {ctx.limits.max_data_depth} layers "
                  "deep", where=where)
    elif unchecked:
        ctx.limit(location, f"a data value ({where}): {unchecked}", where=where)
    for payload in payloads:
        if payload.kind == "code":
            _report_code(ctx, payload, location, where)
        elif payload.data not in skip:
            _report_pickle(ctx, payload, location, where, depth)


def _plain_text(text: str) -> bool:
    """A string that holds nothing, told cheaply: it does not open like a pickle or a container, names
    nothing code runs, and fits no encoding whose first groups decode to the start of a payload (or is too
    short to encode one). Names, words and keys stop here; the full walk runs on the rest."""
    if text[0] in _PICKLE_FIRST_CHARS:
        head = text[:64].encode("latin-1", "replace")
        if opens_like_pickle(head, len(text)):
            return False
    if text.startswith(_MAGIC_TEXT) or "\\x" in text or ("(" in text and _CODE_HINT.search(text)):
        return False
    return not _text_plans(text.strip())


def _chain_text(chain: tuple[str, ...]) -> str:
    return " > ".join(chain) if chain else "raw"


def _report_code(ctx: ScanContext, payload: Payload, location: str, where: str) -> None:
    calls = ", ".join(payload.calls)
    path = f"{where}: {_chain_text(payload.chain)}"
    ctx.add(rules.DATA_CODE, f"a data value ({path}) is Python code that calls {calls}: nothing runs it on "
            "load, but a later exec or eval of it does", location, {"path": path, "calls": calls})


def _report_pickle(ctx: ScanContext, payload: Payload, location: str, where: str, depth: int) -> None:
    inner_location = f"{location}#data@{where.removeprefix('offset ')}" if where.startswith("offset ") else \
        f"{location}#{where}"
    if ctx.data_depth + len(payload.chain) + 1 > ctx.limits.max_data_depth:
        ctx.limit(location, f"a data value ({where}) holds pickles nested more than {ctx.limits.max_data_depth} "
                  "stages deep", where=where)
        return
    probe = ScanContext(path=ctx.path, policy=ctx.policy, nested=ctx.nested, data_budget=ctx.data_budget,
                        data_depth=ctx.data_depth + len(payload.chain) + 1)
    assert ctx.nested is not None
    fmt = ctx.nested(probe, payload.data, inner_location, depth + 1, LOADS_NAME)
    worst = _worst(probe.findings) if fmt in PAYLOAD_FORMATS else None
    if worst is None:
        return
    finding, severity = worst
    # the path from this value to the finding, through every stage: "offset 48: base64 | offset 16: hex"
    path = f"{where}: {_chain_text(payload.chain)}"
    if finding.rule_id in DATA_RULES:
        path = f"{path} | {finding.evidence.get('path', '')}"
    evidence: dict[str, Any] = {"path": path, "inner_rule": finding.rule_id,
                                "inner": finding.evidence.get("inner", finding.message)}
    for key in ("global", "calls"):
        if key in finding.evidence:
            evidence[key] = finding.evidence[key]
    if "global" in evidence:
        what = f"a pickle that would import {evidence['global']}"
    elif "calls" in evidence:
        what = f"a pickle holding Python code that calls {evidence['calls']}"
    else:
        what = f"a pickle with {finding.rule_id} ({short(finding.message, 120)})"
    stages = path.count("|") + 1
    ctx.add(rules.DATA_PICKLE, f"a data value holds {what} ({path}{'' if stages == 1 else f'; {stages} stages'}): "
            "nothing runs it on load, but unpickling the value later does", inner_location, evidence,
            severity=severity)


def _worst(findings: list[Finding]) -> tuple[Finding, Severity] | None:
    """The inner finding that matters most, and its severity one notch lower (nothing runs it on load);
    findings that are themselves about data values keep theirs (they were lowered once already)."""
    best: tuple[Finding, Severity] | None = None
    for finding in findings:
        severity = finding.severity if finding.rule_id in DATA_RULES else _ONE_LOWER[finding.severity]
        if severity > Severity.INFO and (best is None or severity > best[1]):
            best = (finding, severity)
    return best


def check_pickle_values(ctx: ScanContext, data: Any, values: DataValues, location: str, depth: int,
                        skip: frozenset[bytes]) -> None:
    """Check every candidate value a pickle stream pushed (strings as they are, bytes from the buffer)."""
    view = memoryview(data) if any(isinstance(v, Blob) for v in values.candidates.values()) else None
    try:
        for offset, value in sorted(values.candidates.items()):
            if isinstance(value, Blob):
                assert view is not None
                value = view[value.start:value.end]
            check_value(ctx, value, location, f"offset {offset}", depth, skip)
    finally:
        if view is not None:
            view.release()


def walk_strings(value: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like value (keys and values), with where it sits."""
    if depth > 64:
        return
    if isinstance(value, str):
        yield path or "value", value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) >= MIN_DATA_LENGTH:
                yield f"{path}[key]", key
            yield from walk_strings(item, f"{path}[{key!r}]" if path else repr(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{path}[{index}]", depth + 1)
