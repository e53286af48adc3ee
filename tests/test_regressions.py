"""One test per bug found after release, named after what broke, grouped by area.

Each test reproduces the failing call exactly as it was found (by the fuzz harnesses in
fuzz/, or otherwise) and asserts the fixed behaviour.
"""

from __future__ import annotations

import os
import sys

import pytest

from memkit import AtomicIntArray, BufferPool
from memkit._core import layout as raw_layout

# ---- memkit.layout (found by fuzz/fuzz_layout.py) ------------------------------------------


class _Raw(raw_layout.Record):
    __slots__ = ()


@pytest.mark.parametrize(
    ("offset", "size"),
    [
        (sys.maxsize, 1),  # offset + size wrapped to a negative number: read at ptr + 2**63 - 1
        (16, sys.maxsize - 7),  # wrapped as well, with a small offset
        (sys.maxsize, sys.maxsize),
    ],
)
def test_field_bounds_check_does_not_overflow(offset: int, size: int) -> None:
    # A Field's offset and size are any Py_ssize_t; the record bounds check computed
    # offset + size, which overflowed and let the read through (a segfault).
    field = raw_layout.Field("Raw.x", "bytes", offset, size)
    record = raw_layout.bind(_Raw, bytearray(8), 0, 8, 1, "Raw")
    with pytest.raises(ValueError, match="lies outside this 8-byte record"):
        field.__get__(record, _Raw)
    with pytest.raises(ValueError, match="lies outside this 8-byte record"):
        field.__set__(record, b"x")


def test_field_bounds_check_does_not_overflow_through_attribute_access() -> None:
    # The same check on the attribute fast path (record_getattro / record_setattro).
    class Raw(raw_layout.Record):
        __slots__ = ()

    Raw.x = raw_layout.Field("Raw.x", "u8", sys.maxsize, 1)  # type: ignore[attr-defined]
    record = raw_layout.bind(Raw, bytearray(8), 0, 8, 1, "Raw")
    with pytest.raises(ValueError, match="lies outside"):
        record.x  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ValueError, match="lies outside"):
        record.x = 1  # type: ignore[attr-defined]


def test_bind_rejects_huge_size_without_overflow() -> None:
    # bind()'s error message computed offset + size too (undefined behaviour under UBSan).
    with pytest.raises(ValueError, match="too small"):
        raw_layout.bind(_Raw, bytearray(8), 4, sys.maxsize, 1, "Raw")


# ---- memkit.buffers: BufferPool (found by fuzz/fuzz_pool.py) --------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_pool_acquire_of_fresh_mapped_block_does_not_touch_every_page() -> None:
    # acquire(n) zeroed the visible bytes with memset even when the block had just been
    # mapped from the OS (already zero): a 1 GiB acquire above the largest class made the
    # process resident 1 GiB larger and took seconds. AlignedBuffer(1 GiB) touches nothing.
    pool = BufferPool((4096,), max_cached_bytes=0)
    before = _rss_bytes()
    with pool.acquire(1 << 30) as buf:
        grown = _rss_bytes() - before
        view = memoryview(buf)
        assert view[0] == view[1 << 29] == view[-1] == 0
        view.release()
    assert grown < 64 << 20, f"acquire touched {grown >> 20} MiB of a fresh 1 GiB block"


def test_pool_reused_block_is_still_zeroed() -> None:
    # The fix must not skip zeroing a cached (dirty) block.
    pool = BufferPool((2 << 20,))
    with pool.acquire(2 << 20) as first:
        memoryview(first)[:] = b"\xab" * (2 << 20)
    with pool.acquire(2 << 20) as again:
        assert pool.hits == 1
        assert bytes(again) == bytes(2 << 20)


# ---- memkit.atomic (found by fuzz/fuzz_atomic.py) -----------------------------------------------


@pytest.mark.parametrize("length", [0, 3])
def test_released_atomic_array_raises_value_error_on_len_and_index(length: int) -> None:
    # After release() len() still answered and an empty array's index check ran first
    # (IndexError): every use of a released array raises ValueError, as documented.
    arr = AtomicIntArray.from_buffer(bytearray(64), length)
    arr.release()
    with pytest.raises(ValueError, match="released"):
        len(arr)
    with pytest.raises(ValueError, match="released"):
        arr.load(0)
    with pytest.raises(ValueError, match="released"):
        arr[0]


# ---- memkit.layout: IntEnum fields (found by fuzz/fuzz_layout.py) ----------------------------


def test_enum_field_refuses_a_float_equal_to_a_member() -> None:
    # 1.0 hashes like 1, so the member lookup found Color.RED and the write went through,
    # where an integer field refuses any float (TypeError). Every path checks the type now:
    # a view's field, an array element, and SoA records.
    import enum
    from typing import Annotated

    from memkit.layout import Array, SoA, struct, u8, u32

    class Color(enum.IntEnum):
        RED = 1
        GREEN = 2

    @struct
    class Pixel:
        color: Annotated[Color, u32]
        palette: Array(Annotated[Color, u8], 2)

    p = Pixel()
    for bad in (1.0, "RED", None, [1]):
        with pytest.raises(TypeError, match="holds a Color"):
            p.color = bad
        with pytest.raises(TypeError, match="holds a Color"):
            p.palette[0] = bad
    assert bytes(p) == bytes(len(bytes(p)))  # nothing was written
    p.color = 2
    p.palette[1] = Color.RED
    assert p.color is Color.GREEN and p.palette[1] is Color.RED

    soa = SoA(Pixel, 1, numpy=False)
    with pytest.raises(TypeError, match="holds a Color"):
        soa[0].color = 1.0
