"""Containers: zip (read from the central directory as PyTorch's reader does), tar, compressed streams.

The zip reader is our own: it must see what ``zipfile`` hides or refuses (duplicate names, a local
header that names another file, bad CRCs, encryption flags), and it must not read tensor data it does
not need: members are sliced out of the memory-mapped file, and only the ones scanned are read.
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any

from pytest_aisp.scan import rules
from pytest_aisp.scan.context import ScanContext

EOCD = b"PK\x05\x06"
EOCD64_LOCATOR = b"PK\x06\x07"
EOCD64 = b"PK\x06\x06"
CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
# Flag bits every ordinary writer may set: deflate options (1, 2), data descriptor (3), UTF-8 names (11).
ORDINARY_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800
ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000
CHUNK = 1 << 20


class ZipFormatError(Exception):
    """The zip structure cannot be read."""


@dataclass(frozen=True)
class ZipMember:
    """One central directory entry, with what its local header says."""

    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    local_name: str


@dataclass(frozen=True)
class ZipDirectory:
    """The central directory of a zip: its members and where the archive starts in the file."""

    members: tuple[ZipMember, ...]
    prefix: int
    directory_bytes: int


def has_zip_directory(data: Any) -> bool:
    """True when the last 64 KiB hold an end-of-central-directory record."""
    tail_start = max(0, len(data) - 65557)
    return data.rfind(EOCD, tail_start) >= 0


def read_zip_directory(data: Any, max_members: int) -> ZipDirectory:
    """Parse the end record and central directory; raise ``ZipFormatError`` when they do not hold."""
    size = len(data)
    eocd = data.rfind(EOCD, max(0, size - 65557))
    if eocd < 0 or eocd + 22 > size:
        raise ZipFormatError("no end-of-central-directory record")
    (_, _, _, _, entries, cd_size, cd_offset, _) = struct.unpack_from("<4sHHHHIIH", data, eocd)
    cd_end = eocd
    if eocd >= 20 and data[eocd - 20:eocd - 16] == EOCD64_LOCATOR:
        (eocd64,) = struct.unpack_from("<Q", data, eocd - 12)
        if eocd64 + 56 > size or data[eocd64:eocd64 + 4] != EOCD64:
            raise ZipFormatError("broken ZIP64 end record")
        entries, _, cd_size, cd_offset = struct.unpack_from("<QQQQ", data, eocd64 + 24)
        cd_end = eocd64
    if entries > max_members:
        raise ZipFormatError(f"directory lists {entries} members, more than the limit {max_members}")
    prefix = cd_end - cd_size - cd_offset
    if prefix < 0:
        raise ZipFormatError("central directory offset points past its end record")
    pos = cd_offset + prefix
    members = []
    for _ in range(entries):
        if pos + 46 > size or data[pos:pos + 4] != CENTRAL:
            raise ZipFormatError(f"central directory entry {len(members)} is broken")
        (flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _, offset) = struct.unpack_from(
            "<HHHHIIIHHHHHII", data, pos + 8)
        name = _zip_name(bytes(data[pos + 46:pos + 46 + nlen]), flags)
        extra = bytes(data[pos + 46 + nlen:pos + 46 + nlen + xlen])
        usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
        header = offset + prefix
        if header + 30 > size or data[header:header + 4] != LOCAL:
            raise ZipFormatError(f"member {name!r} has no local header at offset {header}")
        lnlen, lxlen = struct.unpack_from("<HH", data, header + 26)
        (lflags,) = struct.unpack_from("<H", data, header + 6)
        local_name = _zip_name(bytes(data[header + 30:header + 30 + lnlen]), lflags)
        members.append(ZipMember(name, flags, method, crc, csize, usize, header, header + 30 + lnlen + lxlen,
                                 local_name))
        pos += 46 + nlen + xlen + clen
    return ZipDirectory(tuple(members), prefix, (size - cd_offset - prefix))


def _zip_name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body = extra[pos + 4:pos + 4 + length]
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        pos += 4 + length
    return usize, csize, offset


def check_zip_structure(ctx: ScanContext, directory: ZipDirectory, location: str) -> None:
    """Findings about the archive itself: duplicates, name mismatches, flags, paths, prefixes."""
    seen: set[str] = set()
    for member in directory.members:
        where = f"{location}:{member.name}"
        if member.name in seen:
            ctx.add(rules.ZIP_DUPLICATE, f"member {member.name!r} appears more than once; readers pick "
                    "different copies", where, {"member": member.name})
        seen.add(member.name)
        if member.local_name != member.name:
            ctx.add(rules.ZIP_NAME_MISMATCH, f"local header names {member.local_name!r} but the central "
                    f"directory names {member.name!r}", where,
                    {"member": member.name, "local_name": member.local_name})
        odd = member.flags & ~ORDINARY_FLAGS
        if odd:
            ctx.add(rules.ZIP_FLAGS, f"member {member.name!r} has flag bits 0x{odd:04x}"
                    + (" (encrypted)" if member.flags & ENCRYPTION_FLAGS else ""), where,
                    {"member": member.name, "flags": member.flags})
        parts = member.name.replace("\\", "/").split("/")
        if member.name.startswith(("/", "\\")) or ".." in parts or (len(member.name) > 1 and member.name[1] == ":"):
            ctx.add(rules.ZIP_PATH, f"member name {member.name!r} is absolute or climbs out of the archive",
                    where, {"member": member.name})
    if directory.prefix > 0:
        ctx.add(rules.POLYGLOT, f"{directory.prefix} bytes precede the zip archive: the file is also "
                "something else to readers that start at byte 0", location, {"prefix_bytes": directory.prefix})


def read_member(ctx: ScanContext, data: Any, member: ZipMember, location: str, *,
                limit: int | None = None, check_crc: bool = True) -> bytes | None:
    """The member's bytes (at most ``limit`` of them), or None after adding an unscannable finding."""
    where = f"{location}:{member.name}"
    if member.flags & ENCRYPTION_FLAGS:
        ctx.unscannable(where, "encrypted zip member", member=member.name)
        return None
    start, stop = member.data_offset, member.data_offset + member.compressed_size
    if stop > len(data):
        ctx.unscannable(where, "member data runs past the end of the file", member=member.name)
        return None
    cap = ctx.limits.max_decompressed_bytes
    want = member.size if limit is None else min(member.size, limit)
    if member.method == 0:
        out: bytes = bytes(data[start:start + min(want, member.compressed_size)])
        ctx.bytes_read += len(out)
    elif member.method in (8, 12, 14):
        if member.size > cap or (member.compressed_size and member.size / member.compressed_size >
                                 ctx.limits.max_compression_ratio and member.size > 10 * 2**20):
            ctx.limit(where, f"member expands to {member.size} bytes (limit {cap}, ratio "
                      f"{ctx.limits.max_compression_ratio:g})", member=member.name)
            return None
        try:
            out = _inflate(data, start, stop, member.method, min(want, cap))
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            ctx.unscannable(where, f"member does not decompress: {exc}", member=member.name)
            return None
        ctx.bytes_read += member.compressed_size
    else:
        ctx.unscannable(where, f"unsupported zip compression method {member.method}", member=member.name)
        return None
    if check_crc and limit is None and zlib.crc32(out) != member.crc:
        ctx.add(rules.ZIP_CRC, f"member {member.name!r} does not match its CRC-32; scanned it anyway", where,
                {"member": member.name, "crc": f"{member.crc:08x}", "actual": f"{zlib.crc32(out):08x}"})
    return out


def _inflate(data: Any, start: int, stop: int, method: int, cap: int) -> bytes:
    if method == 8:
        inflater: Any = zlib.decompressobj(-15)
    elif method == 12:
        inflater = bz2.BZ2Decompressor()
    else:
        # zip LZMA: 2-byte version, 2-byte property size, properties, then raw LZMA1 data
        props_len = struct.unpack_from("<H", data, start + 2)[0]
        props = bytes(data[start + 4:start + 4 + props_len])
        filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)]  # type: ignore[attr-defined]
        inflater = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
        start += 4 + props_len
    out = bytearray()
    pos = start
    while pos < stop and len(out) < cap:
        chunk = bytes(data[pos:min(stop, pos + CHUNK)])
        pos += len(chunk)
        if method == 8:
            out += inflater.decompress(chunk, cap - len(out))
            while inflater.unconsumed_tail and len(out) < cap:
                out += inflater.decompress(inflater.unconsumed_tail, cap - len(out))
        else:
            out += inflater.decompress(chunk)
    return bytes(out[:cap])


STREAM_FORMATS = {"gzip", "bz2", "xz", "lzma", "zlib"}


def decompress_stream(ctx: ScanContext, data: Any, kind: str, location: str) -> bytes | None:
    """Decompress a whole gzip/bz2/xz/lzma/zlib stream within the size and ratio limits."""
    cap = ctx.limits.max_decompressed_bytes
    if kind == "gzip":
        inflater: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif kind == "zlib":
        inflater = zlib.decompressobj()
    elif kind == "bz2":
        inflater = bz2.BZ2Decompressor()
    else:
        inflater = lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)
    out = bytearray()
    pos, size = 0, len(data)
    try:
        while pos < size:
            chunk = bytes(data[pos:pos + CHUNK])
            pos += len(chunk)
            if kind in ("gzip", "zlib"):
                out += inflater.decompress(chunk, cap + 1 - len(out))
            else:
                out += inflater.decompress(chunk, max_length=cap + 1 - len(out))
            if len(out) > cap:
                break
            if getattr(inflater, "eof", False):
                break
            if len(out) > 10 * 2**20 and len(out) / pos > ctx.limits.max_compression_ratio:
                ctx.limit(location, f"compression ratio above {ctx.limits.max_compression_ratio:g}")
                return None
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        ctx.unscannable(location, f"{kind} stream does not decompress: {exc}")
        return None
    ctx.bytes_read += pos
    if len(out) > cap:
        ctx.limit(location, f"decompressed size above {cap} bytes")
        return None
    if not getattr(inflater, "eof", True) and kind != "zlib":
        ctx.unscannable(location, f"{kind} stream is truncated")
        return bytes(out)
    return bytes(out)


def scan_tar(ctx: ScanContext, data: Any, location: str, depth: int) -> None:
    """Scan every regular member of a tar archive; links and devices are reported, never followed."""
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as archive:
            _scan_tar_members(ctx, archive, location, depth)
    except (tarfile.TarError, OSError, EOFError) as exc:
        ctx.unscannable(location, f"tar archive is broken: {exc}")


def _scan_tar_members(ctx: ScanContext, archive: tarfile.TarFile, location: str, depth: int) -> None:
    count = 0
    torch_tar = is_torch_tar({info.name for info in archive.getmembers()[: ctx.limits.max_members]})
    for info in archive:
        count += 1
        if count > ctx.limits.max_members:
            ctx.limit(location, f"more than {ctx.limits.max_members} tar members")
            break
        where = f"{location}:{info.name}"
        parts = info.name.split("/")
        if info.name.startswith("/") or ".." in parts:
            ctx.add(rules.ZIP_PATH, f"tar member name {info.name!r} is absolute or climbs out", where,
                    {"member": info.name})
        if info.isdir():
            continue
        if not info.isfile():
            ctx.unscannable(where, "tar member is a link or device, not followed", member=info.name)
            continue
        handle = archive.extractfile(info)
        if handle is None:
            ctx.unscannable(where, "tar member has no data", member=info.name)
            continue
        ctx.members += 1
        member = handle.read()
        ctx.bytes_read += 512 + len(member)
        if torch_tar and info.name in TORCH_TAR_MEMBERS:
            with ctx.counted():
                scan_torch_tar_member(ctx, info.name, member, where, depth)
        else:
            ctx.scan_nested(member, where, depth + 1, info.name)


# --- PyTorch's oldest format: a tar of sys_info, pickle, storages and tensors -------------------------

TORCH_TAR_MEMBERS = frozenset({"sys_info", "pickle", "storages", "tensors"})
STORAGE_ELEMENT_SIZES = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
                         "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
                         "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16}


def is_torch_tar(names: set[str]) -> bool:
    """True for the member set ``torch.save`` wrote before version 0.1.10."""
    return names >= TORCH_TAR_MEMBERS


def scan_torch_tar_member(ctx: ScanContext, name: str, data: bytes, location: str, depth: int) -> None:
    """Read a legacy torch tar member as ``torch.load``'s legacy reader does: pickles between raw blocks."""
    from pytest_aisp.scan.pickles import scan_pickle

    def stream(pos: int) -> tuple[int, object] | None:
        scanned = scan_pickle(ctx, data, location, start=pos, depth=depth, single=True)
        return (scanned.end, scanned.value) if scanned.complete else None

    if name in ("sys_info", "pickle"):
        scan_pickle(ctx, data, location, depth=depth, single=True)
        return
    try:
        first = stream(0)
        if first is None:
            return
        pos, count = first
        if not isinstance(count, int) or not 0 <= count <= ctx.limits.max_members:
            raise ValueError(f"record count {count!r}")
        for _ in range(count):
            header = stream(pos)
            if header is None:
                return
            pos, args = header
            if name == "storages":
                kind = args[2].name if isinstance(args, tuple) and len(args) == 3 and hasattr(args[2], "name") \
                    else None
                if kind not in STORAGE_ELEMENT_SIZES:
                    raise ValueError(f"storage type {kind!r}")
                (numel,) = struct.unpack_from("<q", data, pos)
                pos += 8 + numel * STORAGE_ELEMENT_SIZES[kind]
            else:
                (ndim,) = struct.unpack_from("<i", data, pos)
                if not 0 <= ndim <= 64:
                    raise ValueError(f"tensor with {ndim} dimensions")
                pos += 8 + 16 * ndim + 8
            if pos > len(data):
                raise ValueError("raw data runs past the member")
        if name == "storages":
            stream(pos)  # the storage views
    except (ValueError, struct.error, IndexError, TypeError) as exc:
        ctx.unscannable(location, f"legacy torch tar member {name!r} does not parse: {exc}")
