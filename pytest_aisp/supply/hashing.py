"""File digests: sha256 through ``hashlib`` (OpenSSL), blake3 through the ``blake3`` package.

Small files (up to 256 KiB) are read in one call, through a directory descriptor reused for every
file of the directory; larger ones in fixed-size chunks (memory stays flat with file size). No read
goes through a symbolic link: every open uses ``O_NOFOLLOW`` (and, below a root, on every directory
on the way) and checks it got a regular file, so a file that was swapped for a link or a FIFO
between listing and hashing is reported, not followed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pytest_aisp.backends import require
from pytest_aisp.findings import AispError

ALGORITHMS: tuple[str, ...] = ("sha256", "blake3")
# Up to this size a file is read in one call and hashed in the calling thread: its cost is the
# open/fstat/read/close and the Python around them, which a thread pool cannot spread (the GIL).
SMALL_FILE = 256 << 10
# Larger files go to a thread per core only when they add up to this much: below it, starting
# threads costs more than it saves.
POOL_MIN_BYTES = 64 << 20
_CHUNK = 1 << 20
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# O_NONBLOCK: a FIFO swapped in for a file must not block the open (it is then refused by fstat).
_READ = os.O_RDONLY | _O_NOFOLLOW | _O_BINARY | getattr(os, "O_NONBLOCK", 0)


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
    directory = _open_dir_beneath(root, "/".join(parts[:-1]))
    try:
        return os.open(parts[-1], _READ, dir_fd=directory)
    finally:
        os.close(directory)


def _open_dir_beneath(root: Path, relative: str) -> int:
    """A descriptor of directory ``relative`` under ``root`` ("" for root itself), every step opened
    with ``O_NOFOLLOW`` so no link on the way is followed."""
    directory = os.open(root, os.O_RDONLY | _O_DIRECTORY)
    try:
        for part in relative.split("/") if relative else ():
            inner = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
    except BaseException:
        os.close(directory)
        raise
    return directory


def digest_file(
    path: Path | str, algorithm: str = "sha256", *, threads: int = 1, root: Path | None = None
) -> FileDigest:
    """Hash one regular file (``path`` relative to ``root`` when given, see :func:`open_regular`);
    ``threads`` > 1 lets blake3 hash one large file on several cores."""
    fd = open_regular(path, root)
    try:
        return _digest_fd(fd, os.fstat(fd).st_size, algorithm, threads)
    finally:
        os.close(fd)


def _digest_fd(fd: int, size: int, algorithm: str, threads: int = 1) -> FileDigest:
    """Hash what ``fd`` holds from its start to its end; ``size`` (from fstat) picks the read plan."""
    if size <= SMALL_FILE:
        # One read for the whole file (one byte more tells a file that grew): per-file cost, not
        # hashing speed, is what limits small files, so no file object and no buffer is made.
        hasher = hashlib.sha256() if algorithm == "sha256" else require("blake3", "sign").blake3()
        total, want = 0, size + 1
        while True:
            data = os.read(fd, want)
            if not data:
                break
            hasher.update(data)
            total += len(data)
            if len(data) < want and total == size:
                break  # a short read that ends at the size fstat gave: the end of the file
            want = _CHUNK
        return FileDigest(total, hasher.hexdigest())
    with io.FileIO(fd, "rb", closefd=False) as fh:
        if algorithm == "sha256" and hasattr(hashlib, "file_digest"):
            # Python 3.11+: hashlib.file_digest drives OpenSSL over one reused buffer, at openssl's speed.
            return FileDigest(size, hashlib.file_digest(fh, "sha256").hexdigest())  # type: ignore[arg-type]
        if algorithm == "sha256":
            sha = hashlib.sha256()
            return FileDigest(_feed(sha.update, fh), sha.hexdigest())
        hasher = require("blake3", "sign").blake3(max_threads=threads if threads > 1 else 1)
        # Multi-threaded blake3 needs large updates to spread over cores; 16 MiB stays flat.
        total = _feed(hasher.update, fh, chunk=(16 << 20) if threads > 1 else _CHUNK)
        return FileDigest(total, hasher.hexdigest())


def _feed(update: Callable[[memoryview], object], fh: io.FileIO, chunk: int = _CHUNK) -> int:
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    total = 0
    while True:
        n = fh.readinto(buffer)
        if not n:
            return total
        update(view[:n])
        total += n


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


class _Directories:
    """Opens files by path through one open directory at a time: consecutive files of a directory
    (walks list them together) share its descriptor, so each file costs one ``openat``."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.key: str | None = None
        self.fd = -1

    def open(self, path: Path | str) -> int:
        """A read-only descriptor of ``path``'s final component, never through a final link."""
        text = str(path)
        if self.root is not None:
            parent, _, name = text.rpartition("/")
            parts = text.split("/")
            if "" in parts or "." in parts or ".." in parts:
                raise AispError(f"{text!r} is not a normalised relative path")
        else:
            parent, name = os.path.split(text)
            parent = parent or "."
        try:
            if parent != self.key:
                self.close()
                self.fd = (
                    _open_dir_beneath(self.root, parent)
                    if self.root is not None
                    else os.open(parent, os.O_RDONLY | _O_DIRECTORY)
                )
                self.key = parent
            return os.open(name, _READ, dir_fd=self.fd)
        except OSError as exc:
            shown = self.root / text if self.root is not None else Path(text)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) or os.path.islink(shown):
                raise NotARegularFile(f"{shown} is (or passes through) a symbolic link") from None
            raise AispError(f"cannot read {shown}: {exc.strerror}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.key = -1, None

    def __enter__(self) -> _Directories:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def digest_files(
    paths: Sequence[Path | str],
    algorithm: str = "sha256",
    *,
    workers: int | None = None,
    root: Path | None = None,
) -> list[FileDigest | AispError]:
    """Hash ``paths``; one result per path, in order: a ``FileDigest``, or the ``AispError`` that
    stopped that file (so one unreadable file does not hide the others).

    Files up to ``SMALL_FILE`` are hashed here, one after the other, each opened through its
    directory's reused descriptor, checked with one ``fstat`` and read in one call. Larger files
    are hashed afterwards, on a thread per core when they add up to ``POOL_MIN_BYTES`` or more
    (hashlib and blake3 release the GIL), and a single large blake3 file on all cores. With
    ``root``, ``paths`` are relative POSIX paths opened beneath it without following any link.
    """
    workers = workers or default_workers()
    results: list[FileDigest | AispError | None] = [None] * len(paths)
    large: list[tuple[int, int]] = []
    with _Directories(root) as directories:
        for index, path in enumerate(paths):
            try:
                fd = directories.open(path)
            except AispError as exc:
                results[index] = exc
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    shown = root / str(path) if root is not None else path
                    results[index] = NotARegularFile(f"{shown} is not a regular file")
                elif st.st_size > SMALL_FILE:
                    large.append((index, st.st_size))  # hashed below, maybe in parallel
                else:
                    results[index] = _digest_fd(fd, st.st_size, algorithm)
            except OSError as exc:
                results[index] = AispError(f"cannot read {path}: {exc.strerror or exc}")
            finally:
                os.close(fd)
    if large:
        parallel = workers > 1 and len(large) > 1 and sum(s for _, s in large) >= POOL_MIN_BYTES
        inner = workers if algorithm == "blake3" and len(large) == 1 else 1

        def one(index: int) -> FileDigest | AispError:
            try:
                return digest_file(paths[index], algorithm, threads=inner, root=root)
            except AispError as exc:
                return exc

        indexes = [i for i, _ in large]
        if parallel:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aisp-hash") as pool:
                done = list(pool.map(one, indexes))
        else:
            done = [one(i) for i in indexes]
        for index, result in zip(indexes, done):
            results[index] = result
    return results  # type: ignore[return-value]
