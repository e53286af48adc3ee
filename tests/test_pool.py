"""BufferPool and PooledBuffer (API.md, memkit.buffers)."""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import Callable
from typing import Any

import pytest

from memkit import BufferPool, PooledBuffer

np = pytest.importorskip("numpy")

KiB = 1024
MiB = 1024 * KiB


def test_defaults() -> None:
    pool = BufferPool()
    assert pool.size_classes == (4 * KiB, 64 * KiB, MiB)
    assert pool.max_cached_bytes == 64 * MiB
    assert pool.align == 64
    assert (pool.hits, pool.misses, pool.cached_bytes, pool.outstanding) == (0, 0, 0, 0)


def test_acquire_picks_the_smallest_fitting_class() -> None:
    pool = BufferPool((4096, 65536))
    for nbytes, capacity in [(0, 4096), (1, 4096), (4096, 4096), (4097, 65536), (65536, 65536)]:
        with pool.acquire(nbytes) as buf:
            assert isinstance(buf, PooledBuffer)
            assert (len(buf), buf.nbytes, buf.capacity) == (nbytes, nbytes, capacity)
            assert buf.address % 64 == 0


def test_released_buffers_are_reused_hits_and_misses_count() -> None:
    pool = BufferPool((4096,))
    first = pool.acquire(100)
    address = first.address
    assert (pool.hits, pool.misses, pool.outstanding) == (0, 1, 1)
    first.release()
    assert (pool.cached_bytes, pool.outstanding) == (4096, 0)
    second = pool.acquire(200)
    assert second.address == address
    assert (pool.hits, pool.misses, pool.cached_bytes, pool.outstanding) == (1, 1, 0, 1)


def test_reused_buffers_are_zeroed_unless_asked_not_to() -> None:
    pool = BufferPool((4096,))
    with pool.acquire(4096) as buf:
        memoryview(buf)[:] = b"\xee" * 4096
    with pool.acquire(4096) as buf:
        assert bytes(buf) == bytes(4096)
        memoryview(buf)[:] = b"\xee" * 4096
    with pool.acquire(4096, zero=False) as buf:
        assert bytes(buf) == b"\xee" * 4096  # the caller asked for speed over hygiene


def test_larger_view_of_a_reused_block_is_zeroed_too() -> None:
    pool = BufferPool((4096,))
    with pool.acquire(10) as buf:
        memoryview(buf)[:] = b"\x01" * 10
    # The first acquire only zeroed and showed 10 bytes; the next one shows 4096, all zero.
    with pool.acquire(4096) as buf:
        assert bytes(buf) == bytes(4096)


def test_requests_above_the_largest_class_are_exact_and_never_cached() -> None:
    pool = BufferPool((4096,))
    buf = pool.acquire(10_000)
    assert (len(buf), buf.capacity) == (10_000, 10_000)
    buf.release()
    assert pool.cached_bytes == 0
    assert pool.outstanding == 0
    assert pool.misses == 1


def test_cache_never_holds_more_than_max_cached_bytes() -> None:
    pool = BufferPool((4096,), max_cached_bytes=6000)
    a, b = pool.acquire(1), pool.acquire(1)
    a.release()
    b.release()
    assert pool.cached_bytes == 4096  # the second block did not fit and was freed
    pool.acquire(1)
    assert pool.hits == 1


def test_max_cached_bytes_zero_caches_nothing() -> None:
    pool = BufferPool((4096,), max_cached_bytes=0)
    pool.acquire(8).release()
    pool.acquire(8).release()
    assert (pool.hits, pool.misses, pool.cached_bytes) == (0, 2, 0)


def test_clear_frees_the_cache() -> None:
    pool = BufferPool((4096, 8192))
    pool.acquire(1).release()
    pool.acquire(5000).release()
    assert pool.cached_bytes == 4096 + 8192
    pool.clear()
    assert pool.cached_bytes == 0


@pytest.mark.parametrize("align", [1, 8, 64, 4096, 1 << 16])
def test_alignment(align: int) -> None:
    pool = BufferPool((100, 5000), align=align)
    for n in (1, 100, 4000, 9000):
        with pool.acquire(n) as buf:
            assert buf.address % align == 0 and buf.align == align


def test_size_classes_are_sorted_and_deduplicated() -> None:
    assert BufferPool([65536, 4096, 4096]).size_classes == (4096, 65536)
    assert BufferPool(iter([8, 16])).size_classes == (8, 16)


# ---- return paths -------------------------------------------------------------------------------


def test_buffer_returns_on_with_exit_release_and_collection() -> None:
    pool = BufferPool((4096,))
    with pool.acquire(8):
        assert pool.outstanding == 1
    assert pool.outstanding == 0

    buf = pool.acquire(8)
    buf.release()
    buf.release()  # a second release is a no-op
    assert pool.outstanding == 0 and pool.cached_bytes == 4096

    buf = pool.acquire(8)
    assert pool.outstanding == 1
    del buf  # collected: back to the pool
    assert pool.outstanding == 0 and pool.cached_bytes == 4096


def test_release_while_exported_raises_and_keeps_the_buffer() -> None:
    pool = BufferPool((4096,))
    buf = pool.acquire(64)
    arr = np.frombuffer(buf, dtype=np.uint8)
    with pytest.raises(BufferError, match=r"cannot release a PooledBuffer while it is exported \(1 live"):
        buf.release()
    arr[:] = 3  # still ours: nobody else can get this block
    other = pool.acquire(64)
    assert other.address != buf.address
    del arr
    buf.release()
    assert pool.outstanding == 1


def test_with_exit_while_exported_raises_buffer_error() -> None:
    pool = BufferPool((4096,))
    with pytest.raises(BufferError):
        with pool.acquire(8) as buf:
            view = memoryview(buf)
    assert not buf.released and pool.outstanding == 1
    view.release()
    buf.release()
    assert pool.outstanding == 0


def test_a_view_keeps_the_buffer_and_so_the_block() -> None:
    pool = BufferPool((4096,))
    view = memoryview(pool.acquire(16))  # the PooledBuffer lives on inside the view
    gc.collect()
    assert pool.outstanding == 1
    view[0] = 9
    view.release()
    gc.collect()
    assert pool.outstanding == 0


def test_buffer_keeps_its_pool_alive() -> None:
    pool = BufferPool((4096,))
    buf = pool.acquire(16)
    del pool
    gc.collect()
    memoryview(buf)[:] = b"y" * 16
    assert bytes(buf) == b"y" * 16
    buf.release()


@pytest.mark.parametrize(
    "use",
    [
        lambda b: b.address,
        lambda b: b.capacity,
        lambda b: len(b),
        lambda b: memoryview(b),
        lambda b: b.__enter__(),
    ],
)
def test_every_use_after_release_raises_value_error(use: Callable[[PooledBuffer], object]) -> None:
    buf = BufferPool().acquire(8)
    buf.release()
    with pytest.raises(ValueError, match="PooledBuffer has been released"):
        use(buf)
    assert buf.released and repr(buf) == "<PooledBuffer released>"
    with pytest.raises(TypeError):  # argument clinic turns the ValueError into its TypeError
        io.BytesIO(b"x").readinto(buf)


def test_readinto_and_numpy_are_zero_copy() -> None:
    pool = BufferPool()
    with pool.acquire(16 * KiB, zero=False) as buf:
        assert io.BytesIO(b"z" * 16 * KiB).readinto(buf) == 16 * KiB
        with memoryview(buf) as view:
            assert view.tobytes() == b"z" * 16 * KiB
        arr = np.frombuffer(buf, dtype=np.uint8)
        assert arr.ctypes.data == buf.address
        del arr


def test_repr() -> None:
    pool = BufferPool((4096,))
    buf = pool.acquire(8)
    assert repr(buf) == f"<PooledBuffer nbytes=8 align=64 address={buf.address:#x}>"
    assert repr(pool) == "<BufferPool classes=1 cached_bytes=0 outstanding=1 hits=0 misses=1>"


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (((),), {}, ValueError, "size_classes must not be empty"),
        (((0,),), {}, ValueError, "size_classes items must be >= 1, got 0"),
        (((-4,),), {}, ValueError, "size_classes item must be >= 0, got -4"),
        (((2**63,),), {}, OverflowError, "size_classes item must be at most"),
        (((4.0,),), {}, TypeError, "size_classes item must be an int, got float"),
        ((4096,), {}, TypeError, "size_classes must be an iterable of ints, got int"),
        (("4096",), {}, TypeError, "size_classes must be an iterable of ints, got str"),
        ((None,), {}, TypeError, "'NoneType' object is not iterable"),
        ((), {"max_cached_bytes": -1}, ValueError, "max_cached_bytes must be >= 0"),
        ((), {"max_cached_bytes": "64 MiB"}, TypeError, "max_cached_bytes must be an int"),
        ((), {"align": 3}, ValueError, "align must be a power of two"),
        ((), {"align": 0}, ValueError, "align must be a power of two"),
        (((1,), 2), {}, TypeError, "at most 1 positional"),
    ],
)
def test_bad_constructor_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        BufferPool(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((-1,), ValueError, "nbytes must be >= 0, got -1"),
        ((2**63,), OverflowError, "nbytes must be at most"),
        (("8",), TypeError, "nbytes must be an int, got str"),
        ((None,), TypeError, "got NoneType"),
        ((), TypeError, "missing required argument 'nbytes'"),
        ((1, True, 3), TypeError, "at most 2 positional"),
    ],
)
def test_bad_acquire_arguments_change_nothing(args: tuple[Any, ...], error: type[Exception], message: str) -> None:
    pool = BufferPool()
    with pytest.raises(error, match=message):
        pool.acquire(*args)
    assert (pool.hits, pool.misses, pool.outstanding) == (0, 0, 0)


@pytest.mark.parametrize("nbytes", [2**62, sys.maxsize])
def test_impossible_request_is_memory_error_and_changes_nothing(nbytes: int) -> None:
    pool = BufferPool()
    with pytest.raises(MemoryError, match=f"could not allocate {nbytes} bytes"):
        pool.acquire(nbytes)
    assert (pool.misses, pool.outstanding) == (0, 0)


def test_handles_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError):
        PooledBuffer()  # type: ignore[call-arg]


# ---- threads -----------------------------------------------------------------------------------


def test_threads_acquiring_and_releasing_keep_every_invariant(run_concurrently: Callable[..., list[Any]]) -> None:
    pool = BufferPool((256, 4096), max_cached_bytes=32 * KiB)
    rounds = 400

    def worker(index: int) -> int:
        held = []
        for i in range(rounds):
            buf = pool.acquire((i * 37 + index) % 5000)
            assert bytes(buf) == bytes(len(buf))  # zeroed: no bytes of another thread's request
            memoryview(buf)[:] = bytes([index + 1]) * len(buf)
            held.append(buf)
            if len(held) > 3:
                old = held.pop(0)
                assert bytes(old) == bytes([index + 1]) * len(old)  # nobody got our block
                old.release()
            assert pool.cached_bytes <= 32 * KiB
        for buf in held:
            buf.release()
        return rounds

    run_concurrently(worker, 4)
    assert pool.outstanding == 0
    assert pool.hits + pool.misses == 4 * rounds
    assert pool.cached_bytes <= 32 * KiB
