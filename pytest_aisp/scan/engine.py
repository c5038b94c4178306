"""``scan_artifact`` and ``assert_safe_artifact``: identify each file by content, read it the way its real
loader does, and report what would run. Nothing in a scanned file is imported, executed or unpickled."""

from __future__ import annotations

import mmap
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_aisp.findings import AispError, Finding, Severity, UnsafeArtifact, max_severity
from pytest_aisp.recorder import record_findings, record_metric
from pytest_aisp.scan import archives, keras, protobuf, rules, tensors
from pytest_aisp.scan.context import LOADS_NAME, ScanContext
from pytest_aisp.scan.data import check_value, walk_strings
from pytest_aisp.scan.detect import EXTENSION_CLAIMS, TEXT_EXTENSIONS, detect_format
from pytest_aisp.scan.pickles import TORCH_LEGACY_STREAMS, looks_like_pickle, scan_pickle
from pytest_aisp.scan.policy import ScanPolicy, coerce_policy

# Pickle files up to this size are copied into memory before the scan (faster than the mapping).
IN_MEMORY_PICKLE_BYTES = 512 * 2**20
PolicyLike = ScanPolicy | Mapping[str, Any] | str | Path | None
# TorchScript code may call these operator namespaces without a custom library.
TORCHSCRIPT_NAMESPACES = frozenset({"aten", "prim", "quantized", "_quantized", "profiler", "_caffe2", "cuda",
                                    "mkldnn", "_nnapi", "xnnpack", "prepacked", "quantized_decomposed",
                                    "torchvision", "torchaudio", "image", "vision", "_c10d_functional"})
TORCHSCRIPT_OP = re.compile(r"\bops\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")
# Members of a PyTorch zip that hold raw bytes or short text (read only to look for hidden pickles).
TORCH_DATA_MEMBER = re.compile(r"(^|/)(data/\d+|\.data/.*|version|byteorder|\.format_version|"
                               r"\.storage_alignment|extra/.*|xl_model_weights/.*|constants/.*)$")


@dataclass(frozen=True)
class FileResult:
    """The scan of one file: its format, findings, and how much of it was really read."""

    path: str
    format: str
    findings: tuple[Finding, ...]
    bytes_read: int
    size: int
    members: int
    duration_s: float
    fail_on: Severity = Severity.MEDIUM

    @property
    def ok(self) -> bool:
        """True when no finding of this file reaches ``fail_on``."""
        return all(f.severity < self.fail_on for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "bytes_read": self.bytes_read, "size": self.size,
                "members": self.members, "duration_s": round(self.duration_s, 6),
                "findings": [_finding_json(f) for f in self.findings]}


def _finding_json(finding: Finding) -> dict[str, Any]:
    data = finding.to_dict()
    return {key: data[key] for key in ("rule_id", "severity", "message", "location", "evidence")}


@dataclass(frozen=True)
class ScanResult:
    """The scan of one or more artifacts. ``ok`` is True when no finding reaches ``fail_on``."""

    files: tuple[FileResult, ...]
    duration_s: float
    fail_on: Severity = Severity.MEDIUM

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for file in self.files for f in file.findings)

    @property
    def ok(self) -> bool:
        return all(f.severity < self.fail_on for f in self.findings)

    @property
    def bytes_read(self) -> int:
        return sum(file.bytes_read for file in self.files)

    @property
    def max_severity(self) -> Severity | None:
        return max_severity(list(self.findings))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``aisp scan --format json``."""
        worst = self.max_severity
        return {
            "files": [file.to_dict() for file in self.files],
            "summary": {"files": len(self.files), "findings": len(self.findings),
                        "max_severity": worst.value if worst else None, "duration_s": round(self.duration_s, 6),
                        "bytes_read": self.bytes_read, "bytes_total": sum(f.size for f in self.files),
                        "fail_on": self.fail_on.value, "ok": self.ok},
        }


@dataclass(frozen=True)
class _Entry:
    """Something to scan: a file (or FIFO, socket, device, link) and the directory it was found under,
    or a directory that could not be listed (``unlisted`` says why)."""

    path: Path
    root: Path | None
    unlisted: str = ""


def _iter_files(paths: Iterable[Path]) -> list[_Entry]:
    """Every entry to scan under ``paths``. Directories recurse (links to directories are not followed);
    every non-directory is an entry, so a FIFO, socket or device is reported, never silently left out."""
    entries: list[_Entry] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            found = _walk(path, path)
            if not found:
                raise AispError(f"nothing to scan: the directory {path} holds no files")
            entries.extend(found)
        elif path.exists() or path.is_symlink():
            entries.append(_Entry(path, None))
        else:
            raise AispError(f"{path} does not exist; pass model files or directories to scan")
    return entries


def _walk(folder: Path, root: Path) -> list[_Entry]:
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        return [_Entry(folder, root, unlisted=f"cannot list directory: {exc.strerror or exc}")]
    entries: list[_Entry] = []
    for child in children:
        path = Path(child.path)
        try:
            is_dir = child.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        entries.extend(_walk(path, root) if is_dir else [_Entry(path, root)])
    return entries


def _special_kind(path: Path) -> str | None:
    """What a non-regular file is (``FIFO (named pipe)``, ``socket`` ...), or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for test, kind in ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISDIR, "directory (reached through a link)")):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "special file"


def scan_artifact(path_or_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                  policy: PolicyLike = None, fail_on: Severity | str | None = None) -> ScanResult:
    """Scan model files (directories recurse) without running anything in them.

    ``policy`` is a :class:`ScanPolicy`, a ``[tool.aisp.scan]``-shaped dict, or a TOML file path; by
    default the project's ``[tool.aisp.scan]`` (``policy_from_settings()``), as ``aisp scan`` uses.
    Findings are recorded on the running test; the result never raises on a finding. A directory
    with nothing in it raises :class:`AispError`: nothing scanned is never a pass.
    """
    started = time.perf_counter()
    the_policy = coerce_policy(policy)
    threshold = Severity.parse(fail_on) if fail_on is not None else the_policy.fail_on
    raw = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not raw:
        raise AispError("scan_artifact needs at least one path")
    results = tuple(_scan_one(entry, the_policy) for entry in _iter_files([Path(p) for p in raw]))
    result = ScanResult(files=results, duration_s=time.perf_counter() - started, fail_on=threshold)
    record_findings(result.findings)
    record_metric("scan_files", len(results))
    record_metric("scan_bytes_read", result.bytes_read)
    return result


def assert_safe_artifact(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                         policy: PolicyLike = None, fail_on: Severity | str | None = None) -> ScanResult:
    """Scan ``path`` and raise :class:`UnsafeArtifact` listing each finding at or above ``fail_on``
    (default: the policy's threshold, that is ``[tool.aisp.scan] fail_on`` or ``--aisp-fail-on``)."""
    __tracebackhide__ = True
    from pytest_aisp.verdict import enforce

    result = scan_artifact(path, policy=policy, fail_on=fail_on)
    threshold = result.fail_on
    failing = [f for f in result.findings if f.severity >= threshold]
    worst = max_severity(failing)
    headline = (f"unsafe artifact: {len(failing)} finding(s) at or above {threshold.value} "
                f"in {len(result.files)} file(s)" + (f", worst {worst.value}" if worst else ""))
    details = ""
    if failing:
        first = failing[0]
        evidence = first.evidence
        where = f"offset {evidence['offset']}" if "offset" in evidence else ""
        details = f"first: {first.location} {where} {evidence.get('global', '')} -- {first.message}".strip()
    enforce(result.findings, UnsafeArtifact, headline=headline, result=result, fail_on=threshold, details=details)
    return result


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _scan_one(entry: _Entry, policy: ScanPolicy) -> FileResult:
    path, root = entry.path, entry.root
    if entry.unlisted:
        ctx = ScanContext(path=path, policy=policy)
        ctx.unscannable(str(path), f"{entry.unlisted}; nothing in it was scanned")
        return FileResult(path=str(path), format="directory", findings=tuple(ctx.findings), bytes_read=0,
                          size=0, members=0, duration_s=0.0, fail_on=policy.fail_on)
    if root is not None and path.is_symlink():
        target, base = _resolved(path), _resolved(root)
        if target is None or base is None or not target.is_relative_to(base):
            ctx = ScanContext(path=path, policy=policy)
            ctx.add(rules.SYMLINK, f"symbolic link to {os.readlink(path)!r} leaves {root}; not followed",
                    str(path), {"target": os.readlink(path)})
            return FileResult(path=str(path), format="symlink", findings=tuple(ctx.findings), bytes_read=0,
                              size=0, members=0, duration_s=0.0, fail_on=policy.fail_on)
    result = scan_file(path, policy)
    if result.format == "unknown":
        # an ONNX model beside it (or one folder up) may name it as its external tensor data
        folders = [path.parent, path.parent.parent]
        models = [m for folder in folders if folder.is_dir() for m in sorted(folder.glob("*.onnx"))[:50]]
        if _resolved(path) in _onnx_external_files(models):
            result = scan_file(path, policy, raw_tensor_data=True)
    return result


def _onnx_external_files(files: list[Path]) -> set[Path]:
    """Files that an ONNX model among ``files`` names as its external tensor data (raw bytes by design)."""
    found: set[Path] = set()
    for path in files:
        if path.suffix.lower() != ".onnx" or not path.is_file() or path.stat().st_size > 2**31:
            continue
        base = _resolved(path.parent)
        for location in protobuf.onnx_external_locations(path.read_bytes()):
            target = _resolved(path.parent / location) if location else None
            if base is not None and target is not None and target.is_relative_to(base):
                found.add(target)
    return found


def scan_file(path: Path, policy: ScanPolicy, *, raw_tensor_data: bool = False) -> FileResult:
    """Scan one file; every problem reading it becomes a finding, never an exception.

    ``raw_tensor_data`` marks a file that an ONNX model in the same scan names as external data: raw
    tensor bytes that no loader parses, so only its first bytes are read (for a disguised pickle).
    """
    started = time.perf_counter()
    ctx = ScanContext(path=path, policy=policy, nested=_scan_data)
    location = str(path)
    fmt = "unreadable"
    size = 0
    try:
        if raw_tensor_data and path.is_file():
            size = path.stat().st_size
            with path.open("rb") as handle:
                head = handle.read(16)
            ctx.bytes_read += len(head)
            fmt = "onnx-external-data"
            if looks_like_pickle(head) or head.startswith(b"PK\x03\x04"):
                fmt = _scan_whole(ctx, path, location)
        elif path.is_symlink() and not path.exists():
            ctx.unscannable(location, "dangling symbolic link")
        elif not path.is_file():
            kind = _special_kind(path) or "not a regular file"
            fmt = "special"
            ctx.unscannable(location, f"{kind}: not a regular file, so it was not read", kind=kind)
        else:
            size = path.stat().st_size
            if size > policy.limits.max_file_bytes:
                ctx.limit(location, f"file larger than {policy.limits.max_file_bytes} bytes")
            elif size == 0:
                fmt = "empty"
                ctx.unscannable(location, "empty file")
            else:
                fmt = _scan_whole(ctx, path, location)
    except OSError as exc:
        ctx.unscannable(location, f"cannot read file: {exc.strerror or exc}")
    except BufferError:  # a view of the mapping outlived the scan: the findings are still complete
        pass
    return FileResult(path=location, format=fmt, findings=tuple(ctx.findings), bytes_read=ctx.bytes_read,
                      size=size, members=ctx.members, duration_s=time.perf_counter() - started,
                      fail_on=policy.fail_on)


def _scan_whole(ctx: ScanContext, path: Path, location: str) -> str:
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        return _scan_data(ctx, view, location, 0, path.name)


def scan_bytes(data: bytes, name: str = "<bytes>", *, policy: PolicyLike = None) -> FileResult:
    """Scan an in-memory artifact (an upload, a blob from a store) named ``name``."""
    started = time.perf_counter()
    the_policy = coerce_policy(policy)
    ctx = ScanContext(path=Path(name), policy=the_policy, nested=_scan_data)
    fmt = _scan_data(ctx, data, name, 0, name) if data else "empty"
    if not data:
        ctx.unscannable(name, "empty file")
    return FileResult(path=name, format=fmt, findings=tuple(ctx.findings), bytes_read=ctx.bytes_read,
                      size=len(data), members=ctx.members, duration_s=time.perf_counter() - started,
                      fail_on=the_policy.fail_on)


def _scan_data(ctx: ScanContext, data: Any, location: str, depth: int, name: str) -> str:
    """Detect ``data``'s format and scan it; return the format name."""
    fmt = detect_format(data, name)
    suffix = Path(name).suffix.lower()
    claimed = EXTENSION_CLAIMS.get(suffix)
    if claimed is not None and fmt not in claimed and not (fmt in ("text", "json") and suffix == ".json") \
            and not (suffix == ".pb" and fmt in ("protobuf", "unknown")):
        ctx.add(rules.FORMAT_MISMATCH, f"{name} is named {suffix} but its content is {fmt}", location,
                {"extension": suffix, "format": fmt})
    try:
        _dispatch(ctx, data, location, depth, name, fmt)
    except RecursionError:
        ctx.limit(location, "structure nested too deeply")
    except MemoryError:
        ctx.limit(location, "not enough memory to scan")
    except Exception as exc:  # hostile bytes that trip a reader: fail closed with a finding, never crash
        ctx.unscannable(location, f"{fmt} reader failed: {type(exc).__name__}: {str(exc)[:120]}")
    return fmt


def _dispatch(ctx: ScanContext, data: Any, location: str, depth: int, name: str, fmt: str) -> None:
    if fmt in ("pickle", "torch-legacy"):
        if isinstance(data, mmap.mmap) and len(data) <= IN_MEMORY_PICKLE_BYTES:
            data = data[:]  # every byte of a pickle is read anyway, and bytes index faster than a mapping
        scan_pickle(ctx, data, location, depth=depth, single=name == LOADS_NAME and fmt == "pickle",
                    streams_expected=TORCH_LEGACY_STREAMS if fmt == "torch-legacy" else None)
        if archives.has_zip_directory(data):
            ctx.add(rules.POLYGLOT, "a pickle with a zip archive at its end: torch.load runs the pickle, "
                    "zip readers see the archive", location, {})
            _scan_zip(ctx, data, location, depth)
    elif fmt == "zip":
        _scan_zip(ctx, data, location, depth)
    elif fmt == "tar":
        archives.scan_tar(ctx, data, location, depth)
    elif fmt in archives.STREAM_FORMATS:
        inner = archives.decompress_stream(ctx, data, fmt, location)
        if inner is not None:
            ctx.scan_nested(inner, location, depth + 1, Path(name).stem)
    elif fmt == "npy":
        tensors.scan_npy(ctx, data, location, depth)
    elif fmt == "safetensors":
        tensors.scan_safetensors(ctx, data, location)
    elif fmt == "gguf":
        tensors.scan_gguf(ctx, data, location)
    elif fmt == "hdf5":
        keras.scan_hdf5(ctx, data, location)
    elif fmt == "onnx":
        model_path = ctx.path if depth == 0 else None
        protobuf.scan_onnx(ctx, data, location, model_path)
    elif fmt == "protobuf":
        protobuf.scan_tf_graph(ctx, data, location)
    elif fmt == "json":
        config = keras.load_json(ctx, bytes(data), location)
        ctx.bytes_read += len(data)
        if config is not None and keras.is_keras_config(config):
            keras.check_keras_config(ctx, config, location)
        if config is not None:
            for where, text in walk_strings(config):
                check_value(ctx, text, location, where, depth)
    elif fmt == "text":
        ctx.bytes_read += min(len(data), 512)
        if Path(name).suffix.lower() not in TEXT_EXTENSIONS and depth > 0 and len(data) > 4096:
            ctx.unscannable(location, "unrecognised data member (not a known model format)")
    elif fmt == "empty":
        pass
    else:
        ctx.unscannable(location, "unknown file format (not a known model, container or data format)")


def _scan_zip(ctx: ScanContext, data: Any, location: str, depth: int) -> None:
    try:
        directory = archives.read_zip_directory(data, ctx.limits.max_members)
    except archives.ZipFormatError as exc:
        ctx.unscannable(location, f"zip archive does not parse: {exc}")
        return
    except Exception as exc:  # struct errors on hostile bytes: still a finding, never a crash
        ctx.unscannable(location, f"zip archive does not parse: {type(exc).__name__}")
        return
    ctx.bytes_read += directory.directory_bytes
    archives.check_zip_structure(ctx, directory, location)
    names = [m.name for m in directory.members]
    is_torch = any(n == "data.pkl" or n.endswith("/data.pkl") for n in names)
    is_torchscript = is_torch and any("/code/" in n or n.startswith("code/") for n in names)
    is_keras = "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)
    if is_keras and not any(n == "model.weights.h5" for n in names) and not is_torch:
        pass
    total = 0
    for member in directory.members:
        ctx.members += 1
        total += member.size
        where = f"{location}:{member.name}"
        if member.name.endswith("/"):
            continue
        if total > ctx.limits.max_decompressed_bytes * 8:
            ctx.limit(location, "archive expands past the size limit")
            return
        if is_torch:
            _scan_torch_member(ctx, data, member, where, location, depth, is_torchscript)
        elif is_keras and member.name == "config.json":
            raw = archives.read_member(ctx, data, member, location)
            if raw is not None:
                config = keras.load_json(ctx, bytes(raw), where)
                if config is not None:
                    keras.check_keras_config(ctx, config, where)
        elif member.method == 0 and member.name.endswith(".npy") and not member.flags & archives.ENCRYPTION_FLAGS \
                and member.data_offset + member.compressed_size <= len(data):
            _scan_stored_npy(ctx, data, member, where, depth)
        else:
            raw = archives.read_member(ctx, data, member, location)
            if raw is not None:
                ctx.scan_nested(raw, where, depth + 1, member.name)


def _scan_stored_npy(ctx: ScanContext, data: Any, member: archives.ZipMember, where: str, depth: int) -> None:
    """An uncompressed ``.npz`` member: read its header in place, never the array bytes (unless objects)."""
    view = memoryview(data)[member.data_offset:member.data_offset + member.compressed_size]
    try:
        if bytes(view[:6]) == b"\x93NUMPY":
            tensors.scan_npy(ctx, view, where, depth + 1)
        else:
            with ctx.counted():
                ctx.scan_nested(view.tobytes(), where, depth + 1, member.name)
            ctx.bytes_read += len(view)
    finally:
        view.release()


def _scan_torch_member(ctx: ScanContext, data: Any, member: archives.ZipMember, where: str, location: str,
                       depth: int, torchscript: bool) -> None:
    base = member.name.rsplit("/", 1)[-1]
    if base.endswith((".pkl", ".debug_pkl")):
        raw = archives.read_member(ctx, data, member, location)
        if raw is None:
            return
        # torch.jit.trace stores its example inputs as traced_inputs.pkl: expected in TorchScript only.
        expected = ("data.pkl", "constants.pkl", *(("traced_inputs.pkl",) if torchscript else ()))
        if base not in expected and not base.endswith(".debug_pkl"):
            ctx.add(rules.ZIP_PICKLE_MEMBER, f"pickle member {member.name!r} outside data.pkl/constants.pkl",
                    where, {"member": member.name})
        scan_pickle(ctx, raw, where, depth=depth, torchscript=torchscript or base.endswith(".debug_pkl"),
                    single=True)
        return
    if torchscript and member.name.endswith(".py") and "/code/" in f"/{member.name}":
        raw = archives.read_member(ctx, data, member, location)
        if raw is not None:
            _check_torchscript_code(ctx, bytes(raw).decode("utf-8", "replace"), where)
        return
    if TORCH_DATA_MEMBER.search(member.name):
        # Raw tensor bytes: torch never unpickles them. Read only their first bytes, for hidden pickles.
        head = archives.read_member(ctx, data, member, location, limit=16, check_crc=False)
        if head is not None and looks_like_pickle(bytes(head)):
            raw = archives.read_member(ctx, data, member, location)
            if raw is not None:
                before = len(ctx.findings)
                probe = ScanContext(path=ctx.path, policy=ctx.policy, nested=ctx.nested)
                scanned = scan_pickle(probe, raw, where, depth=depth, single=True)
                if scanned.complete:
                    ctx.add(rules.ZIP_PICKLE_MEMBER, f"data member {member.name!r} holds a pickle", where,
                            {"member": member.name})
                    ctx.findings.extend(f for f in probe.findings if f not in ctx.findings[:before])
        return
    raw = archives.read_member(ctx, data, member, location)
    if raw is not None:
        ctx.scan_nested(raw, where, depth + 1, member.name)


def _check_torchscript_code(ctx: ScanContext, code: str, where: str) -> None:
    for match in TORCHSCRIPT_OP.finditer(code):
        namespace = match.group(1)
        if namespace not in TORCHSCRIPT_NAMESPACES:
            ctx.add(rules.TORCHSCRIPT_OP, f"TorchScript calls custom operator ops.{namespace}.{match.group(2)}",
                    where, {"namespace": namespace, "op": match.group(2)})
