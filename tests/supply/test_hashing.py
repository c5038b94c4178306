"""Hashing: same digests as hashlib for every size and read plan; links and FIFOs are refused."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from pytest_aisp.supply.hashing import SMALL_FILE, NotARegularFile, digest_file, digest_files


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_digests_match_the_reference_at_every_size(tmp_path: Path, algorithm: str) -> None:
    sizes = [0, 1, 4095, 4096, 65537, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1, 3 * SMALL_FILE + 7]
    rng = __import__("random").Random(0)
    names = []
    for i, size in enumerate(sizes):
        name = f"d{i % 3}/f{i}.bin"
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(rng.randbytes(size))
        names.append(name)
    if algorithm == "blake3":
        blake3 = pytest.importorskip("blake3")
        reference = lambda data: blake3.blake3(data).hexdigest()  # noqa: E731
    else:
        reference = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    for workers in (1, 2):
        results = digest_files(names, algorithm, workers=workers, root=tmp_path)
        for name, size, result in zip(names, sizes, results):
            assert result.size == size and result.digest == reference((tmp_path / name).read_bytes()), name
    absolute = digest_files([str(tmp_path / n) for n in names], algorithm)
    assert [r.digest for r in absolute] == [r.digest for r in results]
    assert digest_file(names[-1], algorithm, threads=2, root=tmp_path).digest == results[-1].digest


def test_one_bad_path_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "link").symlink_to("a")
    (tmp_path / "sub").mkdir()
    results = digest_files(["a", "link", "missing", "sub", "a"], root=tmp_path)
    assert results[0].digest == results[4].digest == hashlib.sha256(b"a").hexdigest()
    assert isinstance(results[1], NotARegularFile) and "symbolic link" in str(results[1])
    assert "cannot read" in str(results[2]) and isinstance(results[3], NotARegularFile)


def test_a_fifo_swapped_in_is_refused_without_blocking(tmp_path: Path) -> None:
    """A file replaced by a FIFO between the walk and the read must not hang the verifier."""
    os.mkfifo(tmp_path / "model.bin")
    done: list = []
    worker = threading.Thread(target=lambda: done.append(digest_files(["model.bin"], root=tmp_path)), daemon=True)
    worker.start()
    worker.join(10)
    if not done:
        # Unblock the open so the thread ends, then fail.
        fd = os.open(tmp_path / "model.bin", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("hashing blocked on a FIFO")
    (result,) = done[0]
    assert isinstance(result, NotARegularFile) and "not a regular file" in str(result)
