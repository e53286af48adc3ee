"""BufferPool: a request loop's buffers from a pool beside fresh allocations.

The rows of ``python -m memkit bench --filter pool`` and of benchmarks/test_bench_pool.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from itertools import repeat

from ..buffers import AlignedBuffer, BufferPool
from .model import Case, Group, Params, Prepared, at_most, expect

REQUEST_SIZE = 16 * 1024


def _request_stream() -> io.BytesIO:
    return io.BytesIO(bytes(range(256)) * (REQUEST_SIZE // 256))


def _pool_bytearray(p: Params) -> Prepared:
    calls, source = p["calls"], _request_stream()

    def run() -> None:
        for _ in repeat(None, calls):
            buf = bytearray(REQUEST_SIZE)
            source.seek(0)
            source.readinto(buf)

    return Prepared(run)


def _pool_aligned(p: Params) -> Prepared:
    calls, source = p["calls"], _request_stream()

    def run() -> None:
        for _ in repeat(None, calls):
            buf = AlignedBuffer(REQUEST_SIZE)
            source.seek(0)
            source.readinto(buf)

    return Prepared(run)


def _pool_pool(zero: bool) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        calls, source, pool = p["calls"], _request_stream(), BufferPool()

        def run() -> None:
            for _ in repeat(None, calls):
                buf = pool.acquire(REQUEST_SIZE, zero=zero)
                source.seek(0)
                source.readinto(buf)

        def check(_: object) -> None:
            # `buf = pool.acquire(...)` acquires before the previous buffer is dropped: two blocks alternate.
            expect(pool.outstanding == 0 and pool.misses <= 2, "the pool reuses its two blocks")

        return Prepared(run, check)

    return setup


def _pool_floor(p: Params) -> Prepared:
    calls, source, buf = p["calls"], _request_stream(), bytearray(REQUEST_SIZE)

    def run() -> None:
        for _ in repeat(None, calls):
            source.seek(0)
            source.readinto(buf)

    return Prepared(run)


_POOL = Group(
    key="pool.request",
    area="pool",
    title="request loop: a 16 KiB buffer + readinto from a stream, {calls} times",
    op="request",
    ops="calls",
    params={"calls": 100},
    cases=(
        Case("bytearray", "bytearray(16384)", _pool_bytearray, baseline=True),
        Case("aligned", "AlignedBuffer(16384)", _pool_aligned),
        Case("pool", "BufferPool.acquire(16384)", _pool_pool(zero=True), bars=(at_most(0.7),)),
        Case("pool_unzeroed", "BufferPool.acquire(16384, zero=False)", _pool_pool(zero=False), bars=(at_most(0.7),)),
        Case("floor", "one reused buffer (no allocation: the floor)", _pool_floor),
    ),
    note="the loop is mostly the 16 KiB copy in readinto; the floor row allocates nothing at all",
)


GROUPS: tuple[Group, ...] = (_POOL,)
