"""AtomicInt, AtomicBool, AtomicIntArray, ShardedCounter and Ordering (API.md, memkit.atomic)."""

from __future__ import annotations

import itertools
import mmap
import multiprocessing
import sys
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

import pytest

from memkit import (
    CACHE_PAD,
    AlignedBuffer,
    AtomicBool,
    AtomicInt,
    AtomicIntArray,
    Ordering,
    ShardedCounter,
    cache_line_size,
)
from memkit._core import atomic as _atomic

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
ORDERS = list(Ordering)

# ---- Ordering -----------------------------------------------------------------------------------


def test_ordering_is_rusts_enum() -> None:
    assert [o.name for o in Ordering] == ["RELAXED", "ACQUIRE", "RELEASE", "ACQ_REL", "SEQ_CST"]
    assert int(Ordering.SEQ_CST) == 4


# Rust: loads reject Release/AcqRel, stores reject Acquire/AcqRel, failure orderings reject
# Release/AcqRel; read-modify-writes take anything.
LOAD_OK = {Ordering.RELAXED, Ordering.ACQUIRE, Ordering.SEQ_CST}
STORE_OK = {Ordering.RELAXED, Ordering.RELEASE, Ordering.SEQ_CST}
FAILURE_OK = {Ordering.RELAXED, Ordering.ACQUIRE, Ordering.SEQ_CST}


@pytest.mark.parametrize("order", ORDERS)
def test_load_orderings_follow_rust(order: Ordering) -> None:
    for atomic in (AtomicInt(3), AtomicBool(True)):
        if order in LOAD_OK:
            assert atomic.load(order) == atomic.load(order=order)
        else:
            with pytest.raises(ValueError, match="no such thing as a"):
                atomic.load(order)


@pytest.mark.parametrize("order", ORDERS)
def test_store_orderings_follow_rust(order: Ordering) -> None:
    a = AtomicInt()
    if order in STORE_OK:
        a.store(7, order)
        assert a.load() == 7
    else:
        with pytest.raises(ValueError, match="store"):
            a.store(7, order=order)
        assert a.load() == 0


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("op", ["swap", "fetch_add", "fetch_sub", "fetch_and", "fetch_or", "fetch_xor", "fetch_max"])
def test_read_modify_writes_take_every_ordering(op: str, order: Ordering) -> None:
    a = AtomicInt(6)
    assert getattr(a, op)(3, order) == 6
    assert getattr(a, op)(3, order=order) != 6 or op in ("fetch_and", "fetch_or", "fetch_max")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("failure", [*ORDERS, None])
def test_compare_exchange_failure_orderings_follow_rust(order: Ordering, failure: Ordering | None) -> None:
    for weak in (False, True):
        a = AtomicInt(1)
        cas = a.compare_exchange_weak if weak else a.compare_exchange
        if failure is not None and failure not in FAILURE_OK:
            with pytest.raises(ValueError, match="failure ordering"):
                cas(1, 2, order, failure)
            assert a.load() == 1
            continue
        ok, previous = cas(5, 9, order, failure)
        assert (ok, previous, a.load()) == (False, 1, 1)
        for _ in range(100):  # the weak form may fail spuriously
            ok, previous = cas(1, 2, order=order, failure=failure)
            if ok:
                break
        assert (ok, previous, a.load()) == (True, 1, 2)


@pytest.mark.parametrize("bad", [5, -1, 2**70])
def test_orderings_outside_the_enum_are_value_errors(bad: int) -> None:
    with pytest.raises(ValueError, match=r"order must be an Ordering \(0..4\)"):
        AtomicInt().fetch_add(1, bad)


@pytest.mark.parametrize("bad", [4.0, "SEQ_CST", None])
def test_orderings_of_the_wrong_type_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError, match="order must be an Ordering"):
        AtomicInt().load(bad)  # type: ignore[arg-type]


# ---- AtomicInt -----------------------------------------------------------------------------------


def test_every_operation_returns_the_previous_value() -> None:
    a = AtomicInt(0b1100)
    assert a.fetch_add() == 12 and a.load() == 13
    assert a.fetch_add(7) == 13 and a.load() == 20
    assert a.fetch_sub() == 20 and a.fetch_sub(4) == 19 and a.load() == 15
    assert a.fetch_and(0b0110) == 15 and a.load() == 0b0110
    assert a.fetch_or(0b1001) == 6 and a.load() == 15
    assert a.fetch_xor(0b0101) == 15 and a.load() == 10
    assert a.fetch_max(3) == 10 and a.load() == 10
    assert a.fetch_max(30) == 10 and a.load() == 30
    assert a.fetch_min(40) == 30 and a.load() == 30
    assert a.fetch_min(-5) == 30 and a.load() == -5
    assert a.swap(99) == -5 and a.load() == 99
    a.store(-1)
    assert int(a) == -1 and repr(a) == "AtomicInt(-1)"


def test_arithmetic_wraps_like_rust() -> None:
    a = AtomicInt(I64_MAX)
    assert a.fetch_add(1) == I64_MAX
    assert a.load() == I64_MIN
    assert a.fetch_sub(1) == I64_MIN
    assert a.load() == I64_MAX
    b = AtomicInt(I64_MIN)
    b.fetch_add(-1)
    assert b.load() == I64_MAX


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**100])
def test_python_ints_outside_64_bits_raise_overflow_error(value: int) -> None:
    a = AtomicInt(1)
    for call in (
        lambda: AtomicInt(value),
        lambda: a.store(value),
        lambda: a.fetch_add(value),
        lambda: a.swap(value),
        lambda: a.compare_exchange(value, 0),
        lambda: a.compare_exchange(1, value),
    ):
        with pytest.raises(OverflowError, match="does not fit in a signed 64-bit integer"):
            call()
    assert a.load() == 1


@pytest.mark.parametrize("bad", [1.0, "1", None, b"1", [1]])
def test_non_integers_raise_type_error(bad: object) -> None:
    a = AtomicInt()
    for call in (lambda: a.fetch_add(bad), lambda: a.store(bad), lambda: AtomicInt(bad)):
        with pytest.raises(TypeError, match="must be an int"):
            call()


def test_index_protocol_and_bools_are_integers() -> None:
    import numpy as np

    a = AtomicInt(np.int64(5))  # type: ignore[arg-type]
    a.fetch_add(True)
    assert a.load() == 6


def test_argument_errors() -> None:
    a = AtomicInt()
    with pytest.raises(TypeError, match=r"store\(\) missing required argument 'v'"):
        a.store()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"at most 2 positional"):
        a.fetch_add(1, 4, 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'ordering'"):
        a.load(ordering=4)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="at most 1 positional"):
        AtomicInt(1, 2)  # type: ignore[call-arg]


def test_in_place_operators_are_atomic_and_keep_the_object() -> None:
    a = AtomicInt(10)
    same = a
    a += 5
    a -= 3
    a &= 0b1110
    a |= 0b0001
    a ^= 0b1000
    assert a is same
    assert a.load() == ((12 & 0b1110) | 1) ^ 0b1000


def test_fetch_update() -> None:
    a = AtomicInt(10)
    assert a.fetch_update(lambda v: v * 3) == (True, 10)
    assert a.load() == 30
    assert a.fetch_update(lambda v: None) == (False, 30)
    assert a.fetch_update(lambda v: v + 1, Ordering.ACQ_REL, Ordering.ACQUIRE) == (True, 30)
    with pytest.raises(ValueError, match="release failure ordering"):
        a.fetch_update(lambda v: v, failure=Ordering.RELEASE)


def test_fetch_update_retries_when_the_value_changes_under_it() -> None:
    a = AtomicInt(1)
    calls: list[int] = []

    def interfere(v: int) -> int:
        calls.append(v)
        if len(calls) == 1:
            a.store(100)  # another writer gets in between
        return v + 1

    assert a.fetch_update(interfere) == (True, 100)
    assert calls == [1, 100]
    assert a.load() == 101


def test_fetch_update_errors_leave_the_value_alone() -> None:
    a = AtomicInt(5)
    with pytest.raises(ZeroDivisionError):
        a.fetch_update(lambda v: v // 0)
    with pytest.raises(TypeError, match="fn's result must be an int"):
        a.fetch_update(lambda v: "six")  # type: ignore[arg-type, return-value]
    with pytest.raises(OverflowError):
        a.fetch_update(lambda v: 2**64)
    with pytest.raises(TypeError, match="fn must be callable"):
        a.fetch_update(5)  # type: ignore[arg-type]
    assert a.load() == 5


def test_atomics_refuse_pickling() -> None:
    import pickle

    # A pickled copy would silently stop sharing: refuse instead.
    for obj in (AtomicInt(), AtomicBool(), AtomicIntArray(2), ShardedCounter()):
        with pytest.raises(TypeError):
            pickle.dumps(obj)


def test_uninitialised_instances_are_refused() -> None:
    for cls in (AtomicInt, AtomicBool, AtomicIntArray, ShardedCounter):
        bare = cls.__new__(cls)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="not initialized"):
            repr(bare)


# ---- AtomicBool ----------------------------------------------------------------------------------


def test_atomic_bool_operations() -> None:
    f = AtomicBool()
    assert f.load() is False and bool(f) is False and repr(f) == "AtomicBool(False)"
    assert f.swap(True) is False and f.load() is True
    assert f.fetch_and(False) is True and f.load() is False
    assert f.fetch_or(True) is False and f.load() is True
    assert f.fetch_xor(True) is True and f.load() is False
    assert f.compare_exchange(True, False) == (False, False)
    assert f.compare_exchange(False, True) == (True, False)
    f.store(False, Ordering.RELEASE)
    assert AtomicBool(True).load(Ordering.ACQUIRE) is True
    assert AtomicBool(1).load() is True  # truthiness, as Python flags take it


# ---- threads -------------------------------------------------------------------------------------


def test_threads_incrementing_one_atomic_get_the_exact_total(run_concurrently: Callable[..., list[Any]]) -> None:
    a = AtomicInt()
    per_thread = 20_000

    def worker(index: int) -> None:
        nonlocal a
        for _ in range(per_thread):
            a.fetch_add(1)
        for _ in range(per_thread // 2):
            a += 2

    run_concurrently(worker, 4)
    assert a.load() == 4 * 2 * per_thread


def test_threads_racing_compare_exchange_loops(run_concurrently: Callable[..., list[Any]]) -> None:
    a = AtomicInt()

    def worker(index: int) -> int:
        won = 0
        for _ in range(5000):
            current = a.load()
            while True:
                ok, current = a.compare_exchange_weak(current, current + 1)
                if ok:
                    won += 1
                    break
        return won

    assert sum(run_concurrently(worker, 4)) == a.load() == 20_000


def test_sharded_counter_exact_after_writers_finish(run_concurrently: Callable[..., list[Any]]) -> None:
    c = ShardedCounter()

    def worker(index: int) -> None:
        nonlocal c
        for _ in range(10_000):
            c.add()
        c.add(n=index)
        c += 1

    run_concurrently(worker, 8)
    assert c.value() == int(c) == 8 * 10_001 + sum(range(8))
    assert c.shards >= 4 and c.shards & (c.shards - 1) == 0
    assert repr(c) == f"ShardedCounter({c.value()})"


def test_sharded_counter_wraps_and_checks_input() -> None:
    c = ShardedCounter(I64_MAX)
    c.add()
    assert c.value() == I64_MIN
    with pytest.raises(OverflowError):
        c.add(2**63)
    with pytest.raises(TypeError):
        c.add("1")  # type: ignore[arg-type]


# ---- AtomicIntArray ------------------------------------------------------------------------------


@pytest.mark.parametrize("padded", [False, True])
def test_array_operations_take_the_index_first(padded: bool) -> None:
    arr = AtomicIntArray(5, padded=padded)
    assert len(arr) == 5 and arr.tolist() == [0] * 5
    assert arr.fetch_add(2) == 0 and arr.fetch_add(2, 5) == 1
    arr.store(0, -4)
    assert arr.swap(1, 9) == 0
    assert arr.fetch_max(4, 7) == 0 and arr.fetch_min(4, 3) == 7
    assert arr.fetch_and(1, 8) == 9 and arr.fetch_or(1, 1) == 8 and arr.fetch_xor(1, 1) == 9
    assert arr.fetch_sub(2, 2) == 6
    assert arr.compare_exchange(0, -4, 1) == (True, -4)
    assert arr.fetch_update(3, lambda v: v + 42) == (True, 0)
    assert arr.tolist() == [1, 8, 4, 42, 3]
    assert arr[3] == arr.load(3, Ordering.ACQUIRE) == 42
    with pytest.raises(ValueError, match="release load"):
        arr.load(0, Ordering.RELEASE)


@pytest.mark.parametrize("padded", [False, True])
def test_padding_distances(padded: bool) -> None:
    arr = AtomicIntArray(8, padded=padded)
    stride = CACHE_PAD if padded else 8
    assert arr.stride == stride and arr.padded is padded
    addresses = [arr.address_of(i) for i in range(8)]
    assert all(b - a == stride for a, b in itertools.pairwise(addresses))
    assert addresses[0] % CACHE_PAD == 0  # owned memory starts on a padding unit


def test_cache_pad_table_and_cache_line() -> None:
    import platform

    expected = {"x86_64": 128, "AMD64": 128, "aarch64": 128, "arm64": 128, "s390x": 256}.get(platform.machine(), 64)
    if platform.machine().startswith("ppc64"):
        expected = 128
    assert expected == CACHE_PAD
    line = cache_line_size()
    assert line == 0 or (line & (line - 1) == 0 and line <= CACHE_PAD)


@pytest.mark.parametrize("index", [-1, 5, 2**70])
def test_array_index_out_of_range(index: int) -> None:
    arr = AtomicIntArray(5)
    with pytest.raises(IndexError, match="out of range for length 5"):
        arr.fetch_add(index)
    with pytest.raises(IndexError):
        arr[index]


def test_array_bad_input() -> None:
    arr = AtomicIntArray(2)
    with pytest.raises(TypeError, match="index must be an int"):
        arr.load("0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="missing required argument 'index'"):
        arr.load()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="length must be >= 0"):
        AtomicIntArray(-1)
    with pytest.raises((OverflowError, MemoryError)):
        AtomicIntArray(2**60, padded=True)
    assert len(AtomicIntArray(0)) == 0


def test_contention_kernel_counts_exactly_and_checks_input() -> None:
    for padded in (False, True):
        arr = AtomicIntArray(4, padded=padded)
        ns = _atomic._contend(arr, 3, 10_000)
        assert ns > 0
        assert arr.tolist() == [10_000, 10_000, 10_000, 0]
    arr = AtomicIntArray(2)
    for bad in (0, 3):
        with pytest.raises(ValueError, match="nthreads must be between 1 and len"):
            _atomic._contend(arr, bad, 10)
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        _atomic._contend(arr, 1, -1)


# ---- from_buffer ---------------------------------------------------------------------------------


def test_from_buffer_shares_the_memory_and_holds_the_export() -> None:
    m = mmap.mmap(-1, 64)
    a = AtomicInt.from_buffer(m, 8)
    a.fetch_add(258)
    assert int.from_bytes(m[8:16], sys.byteorder, signed=True) == 258
    with pytest.raises(BufferError):
        m.close()
    a.release()
    a.release()  # a second release is a no-op
    assert a.released
    m.close()
    for use in (a.load, lambda: a.fetch_add(1), lambda: int(a), lambda: a.fetch_update(lambda v: v)):
        with pytest.raises(ValueError, match="AtomicInt has been released"):
            use()
    assert repr(a) == "<AtomicInt released>"


def test_from_buffer_over_an_aligned_buffer_pins_it() -> None:
    buf = AlignedBuffer(64)
    arr = AtomicIntArray.from_buffer(buf, 4, 0, True) if CACHE_PAD <= 16 else AtomicIntArray.from_buffer(buf, 8)
    arr.fetch_add(1, 5)
    with pytest.raises(BufferError):
        buf.release()
    arr.release()
    buf.release()


def test_from_buffer_checks_alignment_bounds_and_writability() -> None:
    buf = bytearray(64)
    with pytest.raises(ValueError, match="8-byte aligned"):
        AtomicInt.from_buffer(AlignedBuffer(16), 4)
    with pytest.raises(ValueError, match="needs 8 bytes at offset 60"):
        AtomicInt.from_buffer(buf, 60)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        AtomicInt.from_buffer(buf, -8)
    with pytest.raises(BufferError):
        AtomicInt.from_buffer(b"\0" * 16)  # read-only
    with pytest.raises(TypeError):
        AtomicInt.from_buffer(42)
    with pytest.raises(ValueError, match="needs"):
        AtomicIntArray.from_buffer(AlignedBuffer(CACHE_PAD * 2), 3, padded=True)
    empty = AtomicIntArray.from_buffer(bytearray(0), 0)
    assert len(empty) == 0
    # A failed from_buffer leaves no export behind.
    assert len(buf) == 64
    buf.extend(b"x")


def test_array_from_buffer_layout_matches_the_memory() -> None:
    buf = AlignedBuffer(CACHE_PAD * 3)
    arr = AtomicIntArray.from_buffer(buf, 3, padded=True)
    arr.store(2, 7)
    assert int.from_bytes(bytes(memoryview(buf)[CACHE_PAD * 2 : CACHE_PAD * 2 + 8]), sys.byteorder) == 7
    del arr
    buf.release()  # collection ended the export


def test_contention_kernel_refuses_a_released_array() -> None:
    buf = AlignedBuffer(64)
    arr = AtomicIntArray.from_buffer(buf, 2)
    arr.release()
    with pytest.raises(ValueError, match="has been released"):
        _atomic._contend(arr, 1, 10)


# ---- processes -----------------------------------------------------------------------------------


def _increment_shared(name: str, times: int) -> None:
    # Children started by multiprocessing share the parent's resource tracker, so
    # attaching registers nothing new and the parent's unlink() cleans up.
    shm = shared_memory.SharedMemory(name=name)
    counter = AtomicInt.from_buffer(shm.buf)
    array = AtomicIntArray.from_buffer(shm.buf, 2, offset=CACHE_PAD, padded=True)
    for _ in range(times):
        counter.fetch_add(1)
        array.fetch_add(1, 2)
    counter.release()
    array.release()
    shm.close()


def test_processes_share_one_counter_exactly() -> None:
    shm = shared_memory.SharedMemory(create=True, size=CACHE_PAD * 4)
    try:
        shm.buf[:] = bytes(len(shm.buf))
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_increment_shared, args=(shm.name, 5000)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0]
        total = AtomicInt.from_buffer(shm.buf)
        array = AtomicIntArray.from_buffer(shm.buf, 2, offset=CACHE_PAD, padded=True)
        assert total.load() == 15_000
        assert array.tolist() == [0, 30_000]
        with pytest.raises(BufferError):
            shm.close()  # the atomics still hold exports of shm.buf
        total.release()
        array.release()
    finally:
        shm.close()
        shm.unlink()
