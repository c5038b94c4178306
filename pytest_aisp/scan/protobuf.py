"""Protobuf models read from the wire format directly: TensorFlow SavedModel graphs and ONNX models.

Neither TensorFlow nor onnx is needed: only the few fields that matter for safety are followed
(node op types, ONNX domains and external data entries), by field number.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_aisp.findings import Severity
from pytest_aisp.scan import rules
from pytest_aisp.scan.context import ScanContext

MAX_NESTING = 64


class WireError(Exception):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field; length-delimited values are (start, end) spans."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise WireError("length-delimited field runs past its message")
            value, pos = (pos, pos + length), pos + length
        elif wire == 5:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield number, wire, value


def _sub(data: bytes, span: tuple[int, int], number: int) -> Iterator[tuple[int, int]]:
    for num, wire, value in fields(data, *span):
        if num == number and wire == 2:
            yield value


def _text(data: bytes, span: tuple[int, int], number: int) -> str | None:
    for value in _sub(data, span, number):
        return data[value[0]:value[1]].decode("utf-8", "replace")
    return None


def is_message(data: bytes) -> bool:
    """True when the whole buffer parses as protobuf fields."""
    try:
        for _ in fields(data):
            pass
    except WireError:
        return False
    return bool(data)


# --- TensorFlow ------------------------------------------------------------------------------

# Ops that run Python in the loading process.
TF_PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
# Ops that read or write files or directories named in the graph.
TF_FILE_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Save", "SaveSlices", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "TextLineReader", "TextLineReaderV2",
    "WholeFileReader", "WholeFileReaderV2", "LMDBReader", "IdentityReader", "ReaderReadV2", "DebugIdentityV2",
    "WriteAudioSummary", "WriteGraphSummary", "WriteImageSummary", "WriteRawProtoSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteSummary", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
    "LoadAndRemapMatrix", "ExperimentalDatasetToTFRecord", "DatasetToTFRecord", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "PrintV2",
})


def _graph_ops(data: bytes, graph: tuple[int, int]) -> Iterator[tuple[str, str]]:
    """(node name, op) of a GraphDef: its nodes (field 1) and its function library's nodes."""
    for node in _sub(data, graph, 1):
        yield _text(data, node, 1) or "", _text(data, node, 2) or ""
    for library in _sub(data, graph, 2):
        for function in _sub(data, library, 1):
            fname = ""
            for signature in _sub(data, function, 1):
                fname = _text(data, signature, 1) or ""
            for node in _sub(data, function, 3):
                yield f"{fname}/{_text(data, node, 1) or ''}", _text(data, node, 2) or ""


def scan_tf_graph(ctx: ScanContext, data: bytes, location: str) -> None:
    """Scan a SavedModel (``saved_model.pb``) or a frozen GraphDef for dangerous ops."""
    buffer = bytes(data)
    ctx.bytes_read += len(buffer)
    try:
        top = list(fields(buffer))
        graphs: list[tuple[int, int]] = []
        if any(num == 2 and wire == 2 for num, wire, _ in top) and any(num == 1 and wire == 0 for num, wire, _ in top):
            for _, _, meta in ((n, w, v) for n, w, v in top if n == 2 and w == 2):
                graphs.extend(_sub(buffer, meta, 2))  # SavedModel.meta_graphs -> MetaGraphDef.graph_def
        else:
            graphs.append((0, len(buffer)))  # a bare GraphDef
        ops = [(name, op) for graph in graphs for name, op in _graph_ops(buffer, graph)]
    except WireError as exc:
        ctx.unscannable(location, f"TensorFlow graph does not parse: {exc}")
        return
    if not ops:
        ctx.unscannable(location, "no TensorFlow graph nodes found in this protobuf")
        return
    for name, op in ops:
        if op in TF_PYTHON_OPS:
            ctx.add(rules.TF_OP, f"op {op} (node {name}) runs Python in the loading process", location,
                    {"op": op, "node": name}, severity=Severity.CRITICAL)
        elif op in TF_FILE_OPS:
            ctx.add(rules.TF_OP, f"op {op} (node {name}) reads or writes files", location,
                    {"op": op, "node": name})


# --- ONNX ------------------------------------------------------------------------------------

ONNX_STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
                                   "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
                                   "ai.onnx.contrib"})


def _tensor_externals(data: bytes, tensor: tuple[int, int]) -> Iterator[tuple[str, dict[str, str]]]:
    name = _text(data, tensor, 8) or ""
    entries: dict[str, str] = {}
    for entry in _sub(data, tensor, 13):
        key, value = _text(data, entry, 1), _text(data, entry, 2)
        if key is not None:
            entries[key] = value or ""
    if entries:
        yield name, entries


def _graph_walk(data: bytes, graph: tuple[int, int], depth: int,
                out_ext: list[tuple[str, dict[str, str]]], out_nodes: list[tuple[str, str, str]]) -> None:
    if depth > MAX_NESTING:
        raise WireError("graphs nested too deeply")
    for tensor in _sub(data, graph, 5):  # initializer
        out_ext.extend(_tensor_externals(data, tensor))
    for sparse in _sub(data, graph, 15):  # sparse_initializer: values, indices
        for number in (1, 2):
            for tensor in _sub(data, sparse, number):
                out_ext.extend(_tensor_externals(data, tensor))
    for node in _sub(data, graph, 1):
        out_nodes.append((_text(data, node, 3) or "", _text(data, node, 4) or "", _text(data, node, 7) or ""))
        for attribute in _sub(data, node, 5):
            for number in (5, 10):  # t, tensors
                for tensor in _sub(data, attribute, number):
                    out_ext.extend(_tensor_externals(data, tensor))
            for number in (6, 11):  # g, graphs
                for sub in _sub(data, attribute, number):
                    _graph_walk(data, sub, depth + 1, out_ext, out_nodes)


def scan_onnx(ctx: ScanContext, data: Any, location: str, model_path: Path | None) -> None:
    """Scan an ONNX ModelProto: external data paths and sizes, custom operator domains."""
    buffer = bytes(data)
    ctx.bytes_read += len(buffer)
    externals: list[tuple[str, dict[str, str]]] = []
    nodes: list[tuple[str, str, str]] = []
    domains: list[str] = []
    try:
        top = list(fields(buffer))
        graphs = [v for n, w, v in top if n == 7 and w == 2]
        if not graphs:
            raise WireError("no graph (field 7) in the model")
        for graph in graphs:
            _graph_walk(buffer, graph, 0, externals, nodes)
        for opset in (v for n, w, v in top if n == 8 and w == 2):
            domains.append(_text(buffer, opset, 1) or "")
        for function in (v for n, w, v in top if n == 25 and w == 2):
            for node in _sub(buffer, function, 7):
                nodes.append((_text(buffer, node, 3) or "", _text(buffer, node, 4) or "",
                              _text(buffer, node, 7) or ""))
    except WireError as exc:
        ctx.unscannable(location, f"ONNX model does not parse: {exc}")
        return
    function_domains = {_text(buffer, f, 2) or "" for n, w, f in top if n == 25 and w == 2}
    for domain in sorted({d for d in domains} | {node[2] for node in nodes}):
        if domain not in ONNX_STANDARD_DOMAINS and domain not in function_domains:
            ops = sorted({op for _, op, d in nodes if d == domain})[:10]
            ctx.add(rules.ONNX_DOMAIN, f"custom operator domain {domain!r} (ops: {', '.join(ops) or 'none'})",
                    location, {"domain": domain, "ops": ops})
    base = model_path.parent if model_path is not None else None
    for tensor, entries in externals:
        _check_external(ctx, tensor, entries, base, location)


def _check_external(ctx: ScanContext, tensor: str, entries: dict[str, str], base: Path | None,
                    location: str) -> None:
    target = entries.get("location", "")
    evidence = {"tensor": tensor, "location": target}
    norm = target.replace("\\", "/")
    if not target or os.path.isabs(target) or norm.startswith("/") or (len(target) > 1 and target[1] == ":") \
            or ".." in norm.split("/"):
        ctx.add(rules.ONNX_EXTERNAL_PATH, f"tensor {tensor!r} reads external data from {target!r}, outside "
                "the model directory", location, evidence)
        return
    if base is None:
        ctx.unscannable(location, f"tensor {tensor!r} has external data {target!r} that cannot be checked "
                        "inside a container", **evidence)
        return
    path = base / target
    try:
        resolved = path.resolve()
        inside = resolved.is_relative_to(base.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        ctx.add(rules.ONNX_EXTERNAL_PATH, f"tensor {tensor!r} external data {target!r} resolves outside the "
                "model directory (a symlink)", location, evidence)
        return
    if not path.is_file():
        ctx.add(rules.ONNX_EXTERNAL_DATA, f"tensor {tensor!r} external data file {target!r} is missing",
                location, evidence)
        return
    try:
        offset = int(entries.get("offset", "0") or 0)
        length = int(entries["length"]) if entries.get("length") else None
    except ValueError:
        ctx.add(rules.ONNX_EXTERNAL_DATA, f"tensor {tensor!r} has a non-numeric external offset/length",
                location, evidence)
        return
    size = path.stat().st_size
    if offset < 0 or offset > size or (length is not None and (length < 0 or offset + length > size)):
        ctx.add(rules.ONNX_EXTERNAL_DATA, f"tensor {tensor!r} external data [{offset}, +{length}] is out of "
                f"bounds of {target!r} ({size} bytes)", location, {**evidence, "offset": offset, "size": size})


def onnx_external_locations(data: bytes) -> list[str]:
    """The external data locations an ONNX model names (empty when it does not parse)."""
    externals: list[tuple[str, dict[str, str]]] = []
    try:
        for number, wire, graph in fields(data):
            if number == 7 and wire == 2:
                _graph_walk(data, graph, 0, externals, [])
    except WireError:
        return []
    return [entries.get("location", "") for _, entries in externals]
