"""Property: any sequence of tamper operations on a directory is detected; no operation, no finding."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_aisp.supply.manifest import create_manifest, save_manifest
from pytest_aisp.supply.verify import verify_manifest

FILES = {
    "model.bin": b"\x01" * 300,
    "data/a.csv": b"x,y\n1,2\n",
    "data/b.csv": b"x,y\n3,4\n",
    "run.py": b"pass\n",
}

operation = st.one_of(
    st.tuples(st.just("flip"), st.sampled_from(sorted(FILES)), st.integers(0, 299)),
    st.tuples(st.just("truncate"), st.sampled_from(sorted(FILES)), st.integers(0, 7)),
    st.tuples(st.just("append"), st.sampled_from(sorted(FILES)), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.sampled_from(sorted(FILES)), st.none()),
    st.tuples(st.just("add"), st.sampled_from(["new.bin", "data/c.csv", "x/y.py"]), st.binary(max_size=8)),
    st.tuples(st.just("rename"), st.sampled_from(sorted(FILES)), st.sampled_from(["r1.bin", "data/r2"])),
    st.tuples(st.just("swap"), st.sampled_from(sorted(FILES)), st.sampled_from(sorted(FILES))),
    st.tuples(st.just("link"), st.sampled_from(sorted(FILES)), st.none()),
)


def _apply(root: Path, op: tuple) -> bool:
    """Apply one operation; return whether the tree's content or names really changed."""
    kind, name, arg = op
    path = root / name
    if kind == "add":
        if path.exists() or path.is_symlink():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(arg)
        return True
    if not path.is_file() or path.is_symlink():
        return False
    data = path.read_bytes()
    if kind == "flip":
        if not data:
            return False
        i = arg % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    elif kind == "truncate":
        if arg >= len(data):
            return False
        path.write_bytes(data[:arg])
    elif kind == "append":
        path.write_bytes(data + arg)
    elif kind == "delete":
        path.unlink()
    elif kind == "rename":
        target = root / arg
        if target.exists() or target.is_symlink():
            return False
        path.rename(target)
    elif kind == "swap":
        other = root / arg
        if other == path or not other.is_file() or other.is_symlink() or other.read_bytes() == data:
            return False
        path.write_bytes(other.read_bytes())
        other.write_bytes(data)
    elif kind == "link":
        path.unlink()
        os.symlink("/dev/null", path)
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=4))
def test_tampering_is_always_detected(ops: list[tuple]) -> None:
    root = Path(tempfile.mkdtemp(prefix="aisp-prop-"))
    try:
        for name, data in FILES.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        manifest = save_manifest(create_manifest(root), root.parent / (root.name + ".json"))
        before = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        for op in ops:
            _apply(root, op)
        after = {
            p.relative_to(root).as_posix(): (b"<link>" if p.is_symlink() else p.read_bytes())
            for p in root.rglob("*")
            if p.is_file() or p.is_symlink()
        }
        result = verify_manifest(manifest, root, allow_unsigned=True)  # digests are what is tested
        assert result.ok == (before == after), (ops, [c.detail for c in result.changes])
    finally:
        shutil.rmtree(root)
        (root.parent / (root.name + ".json")).unlink(missing_ok=True)
