"""A request loop: get a 16 KiB buffer, fill it with readinto from an in-memory stream,
drop it - with a BufferPool beside what a user would otherwise allocate, in one run.

The last row is the floor: one buffer allocated up front and reused, so the round is only
the stream's seek and readinto (a 16 KiB copy). No allocation strategy can beat it.

    pytest benchmarks/test_bench_pool.py --benchmark-enable
"""

from __future__ import annotations

import io
from itertools import repeat
from typing import Any

import pytest
from _bench import baseline

from memkit import AlignedBuffer, BufferPool

SIZE = 16 * 1024
CALLS = 100
GROUP = f"request loop: 16 KiB buffer + readinto, {CALLS} times"


def stream() -> io.BytesIO:
    return io.BytesIO(bytes(range(256)) * (SIZE // 256))


@pytest.mark.benchmark(group=GROUP)
def test_request_loop_bytearray(benchmark: Any) -> None:
    baseline(benchmark)
    source = stream()

    def run() -> None:
        for _ in repeat(None, CALLS):
            buf = bytearray(SIZE)
            source.seek(0)
            source.readinto(buf)

    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_request_loop_aligned_buffer(benchmark: Any) -> None:
    source = stream()

    def run() -> None:
        for _ in repeat(None, CALLS):
            buf = AlignedBuffer(SIZE)
            source.seek(0)
            source.readinto(buf)

    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_request_loop_pool(benchmark: Any) -> None:
    pool = BufferPool()
    source = stream()

    def run() -> None:
        for _ in repeat(None, CALLS):
            buf = pool.acquire(SIZE)
            source.seek(0)
            source.readinto(buf)

    benchmark(run)
    # `buf = pool.acquire(...)` acquires before the previous buffer is dropped: two blocks alternate.
    assert pool.outstanding == 0 and pool.misses == 2


@pytest.mark.benchmark(group=GROUP)
def test_request_loop_pool_unzeroed(benchmark: Any) -> None:
    pool = BufferPool()
    source = stream()

    def run() -> None:
        for _ in repeat(None, CALLS):
            buf = pool.acquire(SIZE, zero=False)
            source.seek(0)
            source.readinto(buf)

    benchmark(run)


@pytest.mark.benchmark(group=GROUP)
def test_request_loop_floor_reused_buffer(benchmark: Any) -> None:
    source = stream()
    buf = bytearray(SIZE)

    def run() -> None:
        for _ in repeat(None, CALLS):
            source.seek(0)
            source.readinto(buf)

    benchmark(run)
