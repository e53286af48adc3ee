"""AlignedBuffer: allocating and exporting buffers beside bytearray and NumPy.

The rows of ``python -m memkit bench --filter buffers`` and of benchmarks/test_bench_buffers.py.
"""

from __future__ import annotations

from ..buffers import AlignedBuffer
from .model import Case, Group, Params, Prepared, expect, repeated

BUFFER_SIZE = 4096


def _buf_bytearray(p: Params) -> Prepared:
    return Prepared(repeated(bytearray, p["calls"], BUFFER_SIZE))


def _buf_aligned(p: Params) -> Prepared:
    expect(len(AlignedBuffer(BUFFER_SIZE)) == BUFFER_SIZE, "len(AlignedBuffer(n)) == n")
    return Prepared(repeated(AlignedBuffer, p["calls"], BUFFER_SIZE))


def _buf_aligned_unzeroed(p: Params) -> Prepared:
    return Prepared(repeated(AlignedBuffer, p["calls"], BUFFER_SIZE, zero=False))


def _buf_numpy_empty(p: Params) -> Prepared:
    import numpy as np

    return Prepared(repeated(np.empty, p["calls"], BUFFER_SIZE, np.uint8))


def _buf_numpy_zeros(p: Params) -> Prepared:
    import numpy as np

    return Prepared(repeated(np.zeros, p["calls"], BUFFER_SIZE, np.uint8))


def _mv_bytearray(p: Params) -> Prepared:
    return Prepared(repeated(memoryview, p["calls"], bytearray(BUFFER_SIZE)))


def _mv_aligned(p: Params) -> Prepared:
    return Prepared(repeated(memoryview, p["calls"], AlignedBuffer(BUFFER_SIZE)))


_BUFFERS_ALLOC = Group(
    key="buffers.alloc",
    area="buffers",
    title=f"allocate {BUFFER_SIZE:,} bytes, {{calls}} times",
    op="allocation",
    ops="calls",
    params={"calls": 100},
    cases=(
        Case("bytearray", f"bytearray({BUFFER_SIZE})", _buf_bytearray, baseline=True),
        Case("aligned", f"AlignedBuffer({BUFFER_SIZE})", _buf_aligned),
        Case("aligned_unzeroed", f"AlignedBuffer({BUFFER_SIZE}, zero=False)", _buf_aligned_unzeroed),
        Case("numpy_empty", f"numpy.empty({BUFFER_SIZE}, uint8)", _buf_numpy_empty, requires=("numpy",)),
        Case("numpy_zeros", f"numpy.zeros({BUFFER_SIZE}, uint8)", _buf_numpy_zeros, requires=("numpy",)),
    ),
)

_BUFFERS_EXPORT = Group(
    key="buffers.memoryview",
    area="buffers",
    title=f"memoryview of a {BUFFER_SIZE:,}-byte buffer, {{calls}} times",
    op="export",
    ops="calls",
    params={"calls": 100},
    cases=(
        Case("bytearray", "memoryview(bytearray)", _mv_bytearray, baseline=True),
        Case("aligned", "memoryview(AlignedBuffer)", _mv_aligned),
    ),
)


GROUPS: tuple[Group, ...] = (_BUFFERS_ALLOC, _BUFFERS_EXPORT)
