"""AlignedBuffer beside what a user would otherwise allocate, in one run.

Each row makes CALLS allocations (or exports) per round; see _bench.repeated.

    pytest benchmarks/test_bench_buffers.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import baseline, repeated

from memkit import AlignedBuffer

np = pytest.importorskip("numpy")

SIZE = 4096
CALLS = 100
ALLOC = f"allocate {SIZE} bytes, {CALLS} times"
EXPORT = f"memoryview of a {SIZE}-byte buffer, {CALLS} times"


@pytest.mark.benchmark(group=ALLOC)
def test_alloc_bytearray(benchmark: Any) -> None:
    baseline(benchmark)
    benchmark(repeated(bytearray, CALLS, SIZE))


@pytest.mark.benchmark(group=ALLOC)
def test_alloc_aligned_buffer(benchmark: Any) -> None:
    assert len(AlignedBuffer(SIZE)) == SIZE
    benchmark(repeated(AlignedBuffer, CALLS, SIZE))


@pytest.mark.benchmark(group=ALLOC)
def test_alloc_aligned_buffer_unzeroed(benchmark: Any) -> None:
    benchmark(repeated(AlignedBuffer, CALLS, SIZE, zero=False))


@pytest.mark.benchmark(group=ALLOC)
def test_alloc_numpy_empty(benchmark: Any) -> None:
    benchmark(repeated(np.empty, CALLS, SIZE, np.uint8))


@pytest.mark.benchmark(group=ALLOC)
def test_alloc_numpy_zeros(benchmark: Any) -> None:
    benchmark(repeated(np.zeros, CALLS, SIZE, np.uint8))


@pytest.mark.benchmark(group=EXPORT)
def test_memoryview_bytearray(benchmark: Any) -> None:
    baseline(benchmark)
    benchmark(repeated(memoryview, CALLS, bytearray(SIZE)))


@pytest.mark.benchmark(group=EXPORT)
def test_memoryview_aligned_buffer(benchmark: Any) -> None:
    benchmark(repeated(memoryview, CALLS, AlignedBuffer(SIZE)))
