"""The Python examples in docs/supply.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "supply.md"


def _python_blocks(containing: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if containing in b]


def test_the_python_signing_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = _python_blocks("generate_keypair(")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.safetensors").write_bytes(b"weights")
    exec(compile(block, str(DOC), "exec"), {})
    assert (tmp_path / "aisp-manifest.json.sig").is_file()
    assert (tmp_path / "keys" / "release.pem").stat().st_mode & 0o077 == 0
