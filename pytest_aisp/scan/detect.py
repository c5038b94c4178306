"""Which format a file is, by its content (magic bytes and structure), never by its name alone."""

from __future__ import annotations

import struct
from typing import Any

from pytest_aisp.scan.pickles import PICKLE_OPCODES, TORCH_LEGACY_MAGIC, looks_like_pickle, probe_pickle

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# What each file name extension claims, to flag content that is something else.
EXTENSION_CLAIMS: dict[str, frozenset[str]] = {
    ".safetensors": frozenset({"safetensors"}),
    ".npy": frozenset({"npy"}),
    ".npz": frozenset({"zip"}),
    ".onnx": frozenset({"onnx"}),
    ".gguf": frozenset({"gguf"}),
    ".h5": frozenset({"hdf5"}),
    ".hdf5": frozenset({"hdf5"}),
    ".keras": frozenset({"zip", "hdf5"}),
    ".json": frozenset({"json"}),
    ".pb": frozenset({"protobuf"}),
}
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".json", ".yaml", ".yml", ".cfg", ".ini", ".toml", ".model",
                             ".vocab", ".merges", ".csv", ".tsv"})


def detect_format(data: Any, name: str = "") -> str:
    """One of: zip, tar, gzip, bz2, xz, lzma, zlib, npy, gguf, hdf5, safetensors, torch-legacy, pickle,
    onnx, protobuf, json, text, empty, unknown."""
    size = len(data)
    if size == 0:
        return "empty"
    head = bytes(data[:512])
    lower = name.lower()
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if size >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    if looks_like_pickle(head):
        return "pickle"
    if _is_safetensors(data, head):
        return "safetensors"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if len(head) >= 13 and head[0] == 0x5D and head[1:3] == b"\x00\x00" and head[12] in (0, 0xFF):
        return "lzma"
    if lower.endswith(".safetensors") and size >= 8:
        return "safetensors"  # its header is checked (and found wanting) by the safetensors reader
    if lower.endswith(".onnx"):
        return "onnx"
    if lower.endswith(".pb") or lower.endswith(".pbtxt"):
        return "protobuf"
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[") and _is_text(head):
        return "json"
    if head[0] in PICKLE_OPCODES and _parses_as_pickle(data):
        return "pickle"
    if _is_text(head):
        return "text"
    return "unknown"


def _is_safetensors(data: Any, head: bytes) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack_from("<Q", head, 0)
    return 2 <= length <= len(data) - 8 and head[8:9] == b"{"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 4  # a multi-byte character cut at the end of the sample
    return True


def _parses_as_pickle(data: Any) -> bool:
    report = probe_pickle(data, 0, len(data))
    return report.complete or bool(report.globals)
