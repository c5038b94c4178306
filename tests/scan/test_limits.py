"""Bombs and hostile sizes hit limits with clear findings instead of eating memory or time."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from pathlib import Path

from pytest_aisp.scan import ScanLimits, ScanPolicy, scan_artifact
from pytest_aisp.scan.engine import scan_bytes
from pytest_aisp.scan.policy import default_policy


def _policy(**limits: int) -> ScanPolicy:
    base = default_policy()
    return ScanPolicy(allow=base.allow, limits=ScanLimits(**limits))


def _rules(result) -> set[str]:
    return {f.rule_id for f in result.findings}


def test_zip_bomb_member_hits_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("payload.pkl", b"\0" * (64 * 2**20))
    started = time.perf_counter()
    result = scan_artifact(path, policy=_policy(max_decompressed_bytes=8 * 2**20))
    assert "AISP-SCAN-LIMIT" in _rules(result)
    assert time.perf_counter() - started < 10


def test_gzip_bomb_hits_the_size_limit() -> None:
    import gzip

    data = gzip.compress(b"\0" * (32 * 2**20))
    result = scan_bytes(data, "model.pkl.gz", policy=_policy(max_decompressed_bytes=4 * 2**20))
    assert "AISP-SCAN-LIMIT" in _rules(result)


def test_deeply_nested_zips_stop_at_the_depth_limit() -> None:
    data = b"\x80\x02cos\nsystem\nq\x00."
    for level in range(8):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"level{level}.zip" if level else "evil.pkl", data)
        data = buffer.getvalue()
    result = scan_bytes(data, "nest.zip", policy=_policy(max_container_depth=4))
    assert "AISP-SCAN-LIMIT" in _rules(result)


def test_huge_memo_index_and_memo_flood_are_bounded() -> None:
    huge_index = b"\x80\x02N" + b"r" + struct.pack("<I", 0xFFFFFFFF) + b"."
    assert scan_bytes(huge_index, "a.pkl").findings == ()
    flood = b"\x80\x04N" + b"\x94" * 5000 + b"."
    result = scan_bytes(flood, "b.pkl", policy=_policy(max_memo=1000))
    assert "AISP-SCAN-LIMIT" in _rules(result)


def test_stack_flood_is_bounded() -> None:
    flood = b"\x80\x02" + b"N" * 5000 + b"."
    result = scan_bytes(flood, "c.pkl", policy=_policy(max_stack=1000))
    assert "AISP-SCAN-LIMIT" in _rules(result)


def test_billion_entry_gguf_and_member_count_limits() -> None:
    gguf = b"GGUF" + struct.pack("<IQQ", 3, 10**12, 10**12)
    assert "AISP-SCAN-LIMIT" in _rules(scan_bytes(gguf, "m.gguf"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(50):
            archive.writestr(f"a{i}.npy", b"")
    result = scan_bytes(buffer.getvalue(), "many.npz", policy=_policy(max_members=10))
    assert "AISP-SCAN-UNSCANNABLE" in _rules(result)


def test_huge_long_literal_is_not_parsed() -> None:
    started = time.perf_counter()
    data = b"L" + b"9" * 2_000_000 + b"L\n."
    result = scan_bytes(data, "long.pkl")
    assert time.perf_counter() - started < 5
    assert result.format == "pickle"


def test_symlink_out_of_a_model_directory_is_not_followed(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.npy").write_bytes(b"")
    os.symlink("/etc/hostname", folder / "config.json")
    result = scan_artifact(folder)
    assert "AISP-SCAN-SYMLINK" in _rules(result)
