"""File digests: sha256 through ``hashlib.file_digest``, blake3 through the ``blake3`` package.

Files are read in fixed-size chunks (memory stays flat with file size) and never through a
symbolic link: every open uses ``O_NOFOLLOW`` and checks it got a regular file, so a file that
was swapped for a link between listing and hashing is reported, not followed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError

ALGORITHMS: tuple[str, ...] = ("sha256", "blake3")
SMALL_FILE = 256 * 1024  # below this average size, hashing one file at a time is faster
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_READ = os.O_RDONLY | _O_NOFOLLOW | _O_BINARY


class NotARegularFile(AispError):
    """The path is a link, a directory or a device where a regular file was expected."""


@dataclass(frozen=True)
class FileDigest:
    """The digest of one regular file and the size that was hashed."""

    size: int
    digest: str


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if supported; raise ``AispError`` naming the supported ones otherwise."""
    if algorithm not in ALGORITHMS:
        raise AispError(f"unknown digest algorithm {algorithm!r}; use one of: {', '.join(ALGORITHMS)}")
    if algorithm == "blake3":
        require("blake3", "sign")
    return algorithm


def open_regular(path: Path | str, root: Path | None = None) -> int:
    """Open ``path`` read-only without following a final symlink; the fd must be a regular file.

    With ``root``, ``path`` is relative to it and every directory on the way is opened with
    ``O_NOFOLLOW`` too, so no link anywhere in the path (even one swapped in after the walk)
    can lead the read outside ``root``.
    """
    shown = root / path if root is not None else path
    try:
        fd = _open_beneath(root, str(path)) if root is not None else os.open(path, _READ)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) or os.path.islink(shown):
            raise NotARegularFile(f"{shown} is (or passes through) a symbolic link") from None
        raise AispError(f"cannot read {shown}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotARegularFile(f"{shown} is not a regular file")
    return fd


def _open_beneath(root: Path, relative: str) -> int:
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise AispError(f"{relative!r} is not a normalised relative path")
    directory = os.open(root, os.O_RDONLY | _O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], _READ, dir_fd=directory)
    finally:
        os.close(directory)


def digest_file(
    path: Path | str, algorithm: str = "sha256", *, threads: int = 1, root: Path | None = None
) -> FileDigest:
    """Hash one regular file (``path`` relative to ``root`` when given, see :func:`open_regular`);
    ``threads`` > 1 lets blake3 hash one large file on several cores."""
    fd = open_regular(path, root)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if algorithm == "sha256":
            if hasattr(hashlib, "file_digest"):  # Python 3.11+: the loop runs in C, at openssl speed
                return FileDigest(size, hashlib.file_digest(fh, "sha256").hexdigest())
            sha = hashlib.sha256()
            _feed(sha.update, fh, chunk=1 << 18)
            return FileDigest(size, sha.hexdigest())
        blake3 = require("blake3", "sign")
        hasher = blake3.blake3(max_threads=threads if threads > 1 else 1)
        # Multi-threaded blake3 needs large updates to spread over cores; 16 MiB stays flat.
        _feed(hasher.update, fh, chunk=(16 << 20) if threads > 1 else (1 << 20))
        return FileDigest(size, hasher.hexdigest())


def _feed(update: Callable[[memoryview], object], fh: object, chunk: int = 1 << 20) -> None:
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    while True:
        n = fh.readinto(buffer)  # type: ignore[attr-defined]
        if not n:
            return
        update(view[:n])


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """Hex digest of ``data`` (manifest root digests, symlink targets)."""
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    return require("blake3", "sign").blake3(data).hexdigest()


def default_workers() -> int:
    """How many files to hash at once: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def digest_files(
    paths: Sequence[Path | str],
    algorithm: str = "sha256",
    *,
    workers: int | None = None,
    sizes: Iterable[int] | None = None,
    root: Path | None = None,
) -> list[FileDigest | AispError]:
    """Hash ``paths`` in parallel, one thread per core (hashlib and blake3 release the GIL).

    Returns one result per path, in order: a ``FileDigest``, or the ``AispError`` that stopped
    that file (so one unreadable file does not hide the others). With a single large file and
    blake3, the file itself is hashed on all cores. With ``root``, ``paths`` are relative POSIX
    paths opened beneath it without following any link.
    """
    workers = workers or default_workers()
    if not paths:
        return []
    size_list = list(sizes) if sizes is not None else None
    if size_list and sum(size_list) < len(size_list) * SMALL_FILE:
        # Small files cost open/stat/close under the GIL, not hashing: threads only add overhead.
        workers = 1
    single_big = len(paths) == 1 or (size_list is not None and max(size_list) > 64 * sum(size_list) // 100)
    inner = workers if algorithm == "blake3" and single_big else 1

    def one(path: Path | str) -> FileDigest | AispError:
        try:
            return digest_file(path, algorithm, threads=inner, root=root)
        except AispError as exc:
            return exc

    if workers == 1 or len(paths) == 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aisp-hash") as pool:
        return list(pool.map(one, paths))
