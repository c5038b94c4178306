""".npy headers are read as numpy reads them, without numpy: Python 2 long literals, every dtype's size."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_aisp.scan import scan_bytes
from pytest_aisp.scan.tensors import _descr_itemsize


def _npy(header: str, body: bytes, major: int = 1) -> bytes:
    width = 2 if major == 1 else 4
    pad = -(8 + width + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<H" if major == 1 else "<I", len(text)) + text + body


@pytest.mark.parametrize(("header", "major"), [
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }", 1),
    ("{'descr': '<i4', 'fortran_order': True, 'shape': (6L,), }", 1),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }", 2),
    ("{'descr': [('a', '<f4'), ('b', '<i2', (2L,))], 'fortran_order': False, 'shape': (1L, 1L), }", 1),
])
def test_python2_long_literals_read_as_numpy_reads_them(header: str, major: int) -> None:
    data = _npy(header, b"\x00" * 48, major)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.load(io.BytesIO(data))
    body = expected.nbytes
    result = scan_bytes(_npy(header, b"\x00" * body, major), "old.npy")
    assert result.findings == (), [f.one_line() for f in result.findings]


def test_long_literals_in_a_version_3_header_are_refused_like_numpy() -> None:
    data = _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }", b"\x00" * 16, major=3)
    with pytest.raises(ValueError):
        np.load(io.BytesIO(data))
    assert "AISP-SCAN-UNSCANNABLE" in {f.rule_id for f in scan_bytes(data, "v3.npy").findings}


@settings(max_examples=200, deadline=None)
@given(dtype=st.one_of(hnp.scalar_dtypes(), hnp.nested_dtypes(max_itemsize=256)))
def test_item_sizes_match_numpy(dtype: np.dtype) -> None:
    descr = np.lib.format.dtype_to_descr(dtype)
    assert _descr_itemsize(descr) == np.lib.format.descr_to_dtype(descr).itemsize, descr
