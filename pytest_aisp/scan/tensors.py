"""Tensor containers that carry no code by design, checked for the ways they still can go wrong:
numpy ``.npy`` (object arrays are pickles), safetensors headers, GGUF headers and chat templates."""

from __future__ import annotations

import ast
import io
import json
import re
import struct
import tokenize
from typing import Any

from pytest_aisp.scan import rules
from pytest_aisp.scan.context import ScanContext
from pytest_aisp.scan.data import check_value, walk_strings
from pytest_aisp.scan.pickles import scan_pickle

# --- numpy -----------------------------------------------------------------------------------


def scan_npy(ctx: ScanContext, data: Any, location: str, depth: int) -> None:
    """Read the ``.npy`` header as numpy does; an object array's data is a pickle and is scanned."""
    if len(data) < 10:
        ctx.unscannable(location, "npy file shorter than its header")
        return
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            ctx.unscannable(location, "npy file shorter than its header")
            return
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        ctx.unscannable(location, f"unsupported npy format version {major}")
        return
    if hlen > 1_000_000 or start + hlen > len(data):
        ctx.unscannable(location, f"npy header length {hlen} runs past the file")
        return
    raw = bytes(data[start:start + hlen])
    ctx.bytes_read += start + hlen
    try:
        header = _npy_header(raw.decode("utf-8" if major == 3 else "latin-1"), major)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError, tokenize.TokenError) as exc:
        ctx.unscannable(location, f"npy header is not a Python literal: {type(exc).__name__}")
        return
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        ctx.unscannable(location, "npy header lacks descr/fortran_order/shape")
        return
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        ctx.unscannable(location, f"npy shape {shape!r} is not a tuple of sizes")
        return
    body = start + hlen
    if _descr_has_objects(header["descr"]):
        ctx.add(rules.NUMPY_OBJECT, "object array: numpy.load needs allow_pickle=True; its pickle was scanned",
                location, {"descr": repr(header["descr"])})
        pickled = data[body:].tobytes() if isinstance(data, memoryview) else data
        scan_pickle(ctx, pickled, location, start=0 if pickled is not data else body, depth=depth, single=True)
        return
    itemsize = _descr_itemsize(header["descr"])
    if itemsize is None:
        ctx.unscannable(location, f"npy dtype {header['descr']!r} is not understood")
        return
    count = 1
    for dim in shape:
        count *= dim
    if body + count * itemsize > len(data):
        ctx.unscannable(location, f"npy data is {len(data) - body} bytes, the header promises {count * itemsize}")
    elif body + count * itemsize < len(data):
        ctx.add(rules.PICKLE_TRAILING, f"{len(data) - body - count * itemsize} bytes after the npy array data",
                location, {"offset": body + count * itemsize})


def _npy_header(text: str, major: int) -> Any:
    """The header dict, read as ``numpy.lib.format`` reads it: a literal, and for versions 1 and 2 (which
    Python 2 wrote) with the ``L`` of long literals (``(2L, 3L)``) dropped when the literal does not parse."""
    try:
        return ast.literal_eval(text)
    except SyntaxError:
        if major > 2:
            raise
        return ast.literal_eval(_drop_long_suffixes(text))


def _drop_long_suffixes(text: str) -> str:
    """numpy's ``_filter_header``: remove an ``L`` name token that directly follows a number token."""
    tokens = []
    after_number = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if after_number and token.type == tokenize.NAME and token.string == "L":
            continue
        tokens.append(token)
        after_number = token.type == tokenize.NUMBER
    return tokenize.untokenize(tokens)


def _descr_has_objects(descr: Any) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):
        return any(_descr_has_objects(field[1]) for field in descr if isinstance(field, tuple) and len(field) > 1)
    if isinstance(descr, tuple) and descr:
        return _descr_has_objects(descr[0])
    return True


# numpy type codes with a fixed item size, and those whose size follows the code (``<U10``, ``|S5``).
_FIXED_SIZES = {"?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
                "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "O": 8, "p": 8, "P": 8}
_SIZED_KINDS = {"b": 1, "u": 1, "i": 1, "f": 1, "c": 1, "S": 1, "a": 1, "V": 1, "U": 4, "m": 1, "M": 1, "O": 1}
_TYPESTR = re.compile(r"([<>|=]?)([a-zA-Z?])(\d*)(\[[A-Za-z0-9]+\])?")


def _descr_itemsize(descr: Any, depth: int = 0) -> int | None:
    """The item size of a ``.npy`` ``descr`` (a type string or a structured field list), computed from
    its text as ``numpy.lib.format.descr_to_dtype`` reads it; None when it is not understood."""
    if depth > 32:
        return None
    if isinstance(descr, str):
        match = _TYPESTR.fullmatch(descr)
        if match is None:
            return None
        kind, digits = match.group(2), match.group(3)
        if digits:
            return int(digits) * _SIZED_KINDS[kind] if kind in _SIZED_KINDS else None
        return _FIXED_SIZES.get(kind)
    if isinstance(descr, tuple) and len(descr) == 2 and isinstance(descr[1], (tuple, int)):
        size = _descr_itemsize(descr[0], depth + 1)  # (base, shape): a subarray
        shape = descr[1] if isinstance(descr[1], tuple) else (descr[1],)
        if size is None or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        for dim in shape:
            size *= dim
        return size
    if isinstance(descr, list):
        total = 0
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                return None
            size = _descr_itemsize(field[1], depth + 1)
            if size is None:
                return None
            if len(field) == 3:
                shape = field[2] if isinstance(field[2], tuple) else (field[2],)
                if not all(isinstance(d, int) and d >= 0 for d in shape):
                    return None
                for dim in shape:
                    size *= dim
            total += size
        return total
    return None


# --- safetensors -----------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
                      "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
                      "C64": 8, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1}
SAFETENSORS_MAX_HEADER = 100_000_000


def scan_safetensors(ctx: ScanContext, data: Any, location: str) -> None:
    """Check the header: length in the file, JSON, names unique, dtypes known, offsets sane and contiguous."""

    def bad(why: str, **evidence: Any) -> None:
        ctx.add(rules.SAFETENSORS_HEADER, f"safetensors header: {why}", location, {"reason": why, **evidence})

    if len(data) < 8:
        bad("file shorter than the 8-byte header length")
        return
    (hlen,) = struct.unpack_from("<Q", data, 0)
    if hlen > SAFETENSORS_MAX_HEADER or 8 + hlen > len(data):
        bad(f"header length {hlen} runs past the file ({len(data)} bytes) or the 100 MB limit")
        return
    raw = bytes(data[8:8 + hlen])
    ctx.bytes_read += 8 + hlen
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        duplicates.extend(k for k in set(keys) if keys.count(k) > 1)
        return dict(items)

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        bad(f"header is not valid JSON ({type(exc).__name__})")
        return
    if not isinstance(header, dict):
        bad("header is not a JSON object")
        return
    if duplicates:
        bad(f"duplicate tensor names {sorted(duplicates)[:5]}")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        bad("__metadata__ must map strings to strings")
    for where, text in walk_strings({"__metadata__": metadata, **{k: None for k in header}}):
        check_value(ctx, text, location, where, 0)
    body = len(data) - 8 - hlen
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            bad(f"tensor {name!r} lacks dtype/shape/data_offsets", tensor=name)
            continue
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SAFETENSORS_DTYPES:
            bad(f"tensor {name!r} has unknown dtype {dtype!r}", tensor=name)
            continue
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            bad(f"tensor {name!r} has an invalid shape", tensor=name)
            continue
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            bad(f"tensor {name!r} has invalid data_offsets {offsets!r}", tensor=name)
            continue
        count = 1
        for dim in shape:
            count *= dim
        expected = count * SAFETENSORS_DTYPES[dtype]
        if dtype in ("F4",):
            expected = (count + 1) // 2
        elif dtype.startswith("F6"):
            expected = (count * 6 + 7) // 8
        if offsets[1] - offsets[0] != expected:
            bad(f"tensor {name!r} spans {offsets[1] - offsets[0]} bytes, its shape and dtype need {expected}",
                tensor=name)
        if offsets[1] > body:
            bad(f"tensor {name!r} ends at {offsets[1]}, past the {body}-byte data section", tensor=name)
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin < cursor:
            bad(f"tensor {name!r} overlaps the tensor before it", tensor=name)
        elif begin > cursor:
            bad(f"{begin - cursor} bytes before tensor {name!r} belong to no tensor (hidden data)", tensor=name)
        cursor = max(cursor, end)
    if spans and cursor < body:
        bad(f"{body - cursor} bytes after the last tensor belong to no tensor (hidden data)")


# --- GGUF ------------------------------------------------------------------------------------

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                12: "<d"}
# Jinja reaching Python internals: the server-side template injection payloads seen in the wild.
TEMPLATE_DANGER = re.compile(
    r"__(class|subclasses|globals|builtins|mro|base|bases|init|import|getattribute|dict|code|reduce|loader"
    r"|spec)__|\bimport\b|\bpopen\b|\bos\.system\b|\bsubprocess\b|\beval\s*\(|\bexec\s*\(|\blipsum\b"
    r"|\bcycler\b|\bjoiner\b|\brequest\.application\b|\bself\._TemplateReference|\bconfig\.from_",
)


class _GgufReader:
    def __init__(self, data: Any, limit: int) -> None:
        self.data, self.pos, self.limit = data, 0, limit

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("GGUF header runs past the end of the file")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.take("<Q")
        if length > self.limit or self.pos + length > len(self.data):
            raise ValueError(f"GGUF string of {length} bytes runs past the file")
        value = bytes(self.data[self.pos:self.pos + length]).decode("utf-8", "replace")
        self.pos += length
        return value

    def value(self, kind: int, depth: int = 0) -> Any:
        if kind in GGUF_SCALARS:
            return self.take(GGUF_SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9 and depth < 4:
            item_kind, count = self.take("<I"), self.take("<Q")
            if count > self.limit:
                raise OverflowError(f"GGUF array of {count} entries")
            if item_kind in GGUF_SCALARS:  # skip numeric arrays without building them
                width = struct.calcsize(GGUF_SCALARS[item_kind])
                if self.pos + width * count > len(self.data):
                    raise ValueError("GGUF array runs past the end of the file")
                self.pos += width * count
                return None
            return [self.value(item_kind, depth + 1) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {kind}")


def scan_gguf(ctx: ScanContext, data: Any, location: str) -> None:
    """Read the GGUF header within limits and check every chat template for Python internals."""
    limit = ctx.limits.max_header_entries
    reader = _GgufReader(data, max(limit, 1 << 26))
    try:
        reader.take("<I")
        version = reader.take("<I")
        if version not in (1, 2, 3):
            ctx.add(rules.GGUF_HEADER, f"unsupported GGUF version {version}", location, {"version": version})
            return
        tensors, kv_count = reader.take("<Q"), reader.take("<Q")
        if tensors > limit or kv_count > limit:
            ctx.limit(location, f"GGUF header declares {tensors} tensors and {kv_count} keys", tensors=tensors,
                      keys=kv_count)
            return
        for _ in range(kv_count):
            key = reader.string()
            kind = reader.take("<I")
            value = reader.value(kind)
            if key.startswith("tokenizer.chat_template") and isinstance(value, str):
                _check_template(ctx, key, value, location)
            for where, text in walk_strings(value, key):
                check_value(ctx, text, location, where, 0)
        for _ in range(tensors):
            reader.string()
            dims = reader.take("<I")
            if dims > 8:
                raise ValueError(f"tensor with {dims} dimensions")
            for _ in range(dims):
                reader.take("<Q")
            reader.take("<I")
            offset = reader.take("<Q")
            if offset > len(data):
                ctx.add(rules.GGUF_HEADER, f"tensor data offset {offset} is past the end of the file", location,
                        {"offset": offset})
    except (ValueError, OverflowError, struct.error) as exc:
        if isinstance(exc, OverflowError):
            ctx.limit(location, str(exc))
        else:
            ctx.add(rules.GGUF_HEADER, f"GGUF header is malformed: {exc}", location, {"offset": reader.pos})
    finally:
        ctx.bytes_read += reader.pos


def _check_template(ctx: ScanContext, key: str, template: str, location: str) -> None:
    match = TEMPLATE_DANGER.search(template)
    if match:
        ctx.add(rules.GGUF_TEMPLATE, f"chat template {key} reaches Python internals ({match.group(0)!r})",
                location, {"key": key, "match": match.group(0),
                           "context": template[max(0, match.start() - 40):match.end() + 40]})
