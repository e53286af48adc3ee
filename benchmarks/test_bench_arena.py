"""Arena.alloc beside the allocations a user would otherwise make, in one run.

Each round makes CALLS allocations of 64 bytes and drops them; the arena is reset at the
end of each round, as a request-scoped arena is (the reset is part of its cost).

    pytest benchmarks/test_bench_arena.py --benchmark-enable
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import pytest
from _bench import baseline

from memkit import Arena

np = pytest.importorskip("numpy")

CALLS = 1000
GROUP = f"allocate 64 bytes, {CALLS} times"


@pytest.mark.benchmark(group=GROUP)
def test_bytearray_64(benchmark: Any) -> None:
    baseline(benchmark)

    def run() -> None:
        for _ in repeat(None, CALLS):
            bytearray(64)

    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_arena_alloc_64(benchmark: Any) -> None:
    arena = Arena()

    def run() -> None:
        for _ in repeat(None, CALLS):
            arena.alloc(64)
        arena.reset()

    benchmark(run)
    assert arena.allocation_count == 0 and arena.chunk_count == 1


@pytest.mark.benchmark(group=GROUP)
def test_arena_alloc_64_in_scope(benchmark: Any) -> None:
    arena = Arena()

    def run() -> None:
        with arena.scope():
            for _ in repeat(None, CALLS):
                arena.alloc(64)

    benchmark(run)
    assert arena.allocation_count == 0


@pytest.mark.benchmark(group=GROUP)
def test_numpy_empty_64(benchmark: Any) -> None:
    empty, uint8 = np.empty, np.uint8

    def run() -> None:
        for _ in repeat(None, CALLS):
            empty(64, uint8)

    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_pyarrow_allocate_buffer_64(benchmark: Any) -> None:
    pa = pytest.importorskip("pyarrow")
    allocate = pa.allocate_buffer

    def run() -> None:
        for _ in repeat(None, CALLS):
            allocate(64)

    benchmark(run)
