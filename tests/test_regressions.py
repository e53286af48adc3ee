"""One test per bug, named after what broke, grouped by how it was found: the bad-input
audit (tests/test_audit.py) and its sanitizer runs, the fuzz harnesses (fuzz/), and the
allocation-failure sweep (tests/test_alloc_failure.py).

Each test reproduces the failing call the way it was found; before its fix each one crashed
the interpreter, read or wrote freed memory, or raised the wrong exception.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import memkit
from memkit import (
    AlignedBuffer,
    ArrayView,
    AtomicInt,
    AtomicIntArray,
    BufferPool,
    Cell,
    Condvar,
    Mutex,
    RefCell,
    RwLock,
    SoA,
)
from memkit._core import layout as raw_layout
from memkit.layout import Array, struct, u8, u32


@pytest.fixture(autouse=True)
def hook_left_as_found() -> Iterator[None]:
    """Tests that use limit() or track() install the allocator hook; leave it as it was, so
    later tests (the hook benchmarks among them) start from the state they expect."""
    was_installed = memkit.alloc.installed()
    yield
    if not was_installed:
        memkit.alloc.uninstall()


def _atomic_over_a_mapping() -> tuple[AtomicInt, AlignedBuffer]:
    buf = AlignedBuffer(1 << 20)  # mapped: once released, its pages are gone and a stray write faults
    return AtomicInt.from_buffer(buf, 8), buf


def _array_over_a_mapping() -> tuple[AtomicIntArray, AlignedBuffer]:
    buf = AlignedBuffer(1 << 20)
    return AtomicIntArray.from_buffer(buf, 4, 8), buf


class _ReleasesOnIndex:
    """An int-like whose __index__ ends the atomic's export and frees the buffer under it."""

    def __init__(self, atomic: Any, buf: AlignedBuffer) -> None:
        self.atomic, self.buf = atomic, buf

    def __index__(self) -> int:
        self.atomic.release()
        self.buf.release()
        return 7


ATOMIC_INT_OPS: list[Callable[[AtomicInt, Any], object]] = [
    lambda a, v: a.store(v),
    lambda a, v: a.swap(v),
    lambda a, v: a.fetch_add(v),
    lambda a, v: a.fetch_sub(n=v),
    lambda a, v: a.fetch_or(v),
    lambda a, v: a.fetch_max(v),
    lambda a, v: a.compare_exchange(0, v),
    lambda a, v: a.compare_exchange_weak(v, 1),
]

ARRAY_OPS: list[Callable[[AtomicIntArray, Any], object]] = [
    lambda a, v: a.store(1, v),
    lambda a, v: a.swap(1, v),
    lambda a, v: a.fetch_add(1, v),
    lambda a, v: a.fetch_and(1, v),
    lambda a, v: a.compare_exchange(1, 0, v),
    lambda a, v: a.compare_exchange_weak(1, v, 0),
]


@pytest.mark.parametrize("op", ATOMIC_INT_OPS)
def test_atomic_int_argument_that_releases_the_atomic_does_not_write_freed_memory(
    op: Callable[[AtomicInt, Any], object],
) -> None:
    # The cell was looked up before the arguments were converted; __index__ then freed it.
    atomic, buf = _atomic_over_a_mapping()
    with pytest.raises(ValueError, match="AtomicInt has been released"):
        op(atomic, _ReleasesOnIndex(atomic, buf))
    assert atomic.released and buf.released


@pytest.mark.parametrize("op", ARRAY_OPS)
def test_atomic_array_argument_that_releases_the_array_does_not_write_freed_memory(
    op: Callable[[AtomicIntArray, Any], object],
) -> None:
    array, buf = _array_over_a_mapping()
    with pytest.raises(ValueError, match="AtomicIntArray has been released"):
        op(array, _ReleasesOnIndex(array, buf))
    assert array.released and buf.released


def test_atomic_argument_conversion_still_works_when_it_releases_nothing() -> None:
    class Seven:
        def __index__(self) -> int:
            return 7

    atomic, _buf = _atomic_over_a_mapping()
    assert atomic.fetch_add(Seven()) == 0 and atomic.load() == 7
    array, _abuf = _array_over_a_mapping()
    assert array.swap(2, Seven()) == 0 and array[2] == 7


@pytest.mark.parametrize("wait", ["wait", "wait_while"])
def test_condvar_timeout_that_releases_the_guard_raises_instead_of_crashing(wait: str) -> None:
    # The guard was checked before the timeout was converted; an int subclass's __float__
    # then released it, and the wait used the released guard's (null) mutex.
    m = Mutex(0)
    cv = Condvar()
    guard = m.lock()

    class Sly(int):
        def __float__(self) -> float:
            guard.release()
            return 0.0

    with pytest.raises(ValueError, match="MutexGuard has been released"):
        if wait == "wait":
            cv.wait(guard, timeout=Sly(0))
        else:
            cv.wait_while(guard, lambda v: True, timeout=Sly(0))
    assert not m.locked()


_SIGNAL_DURING_WAIT = """
import signal, threading, time
from memkit import Condvar, Mutex

cv = Condvar()
guard = Mutex(["data"]).lock()  # the guard holds the only reference to its Mutex
seen = []

def handler(signum, frame):
    for attempt in (guard.release, lambda: guard.value, lambda: guard.__exit__(None, None, None)):
        try:
            attempt()
        except Exception as exc:
            seen.append(exc)
    seen.append(repr(guard))
    cv.notify_all()  # ends the wait

main = threading.get_ident()

def signal_the_waiter():
    # Once the wait has begun (repr says so; before the fix it never did, and the signal
    # goes after 5 s, still well inside the wait).
    deadline = time.monotonic() + 5
    while repr(guard) != "<MutexGuard waiting>" and time.monotonic() < deadline:
        time.sleep(0.001)
    signal.pthread_kill(main, signal.SIGUSR1)

signal.signal(signal.SIGUSR1, handler)
sender = threading.Thread(target=signal_the_waiter)
sender.start()
woke = cv.wait(guard, timeout=30)
sender.join()
assert woke is True, woke
assert len(seen) == 4, seen
assert all(isinstance(e, RuntimeError) and "waiting in Condvar.wait" in str(e) for e in seen[:3]), seen
assert seen[3] == "<MutexGuard waiting>", seen
# The wait ended with the mutex held again by the guard, which works as before.
assert guard.value == ["data"]
guard.value = ["repaired"]
guard.release()
assert guard.released
print("ok")
"""


def test_signal_handler_cannot_release_a_guard_while_condvar_wait_has_its_mutex_unlocked() -> None:
    # While Condvar.wait waits, the mutex is unlocked and signal handlers run. A handler that
    # released the guard unlocked a mutex nobody held and dropped the guard's reference to
    # it - the last one - so the wait relocked freed memory (and could spin on it forever):
    # hence a subprocess with a timeout.
    env = dict(os.environ)
    root = str(Path(memkit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SIGNAL_DURING_WAIT], capture_output=True, text=True, env=env, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the waiter never came back from Condvar.wait", pytrace=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


@pytest.mark.parametrize("make", [Cell, RefCell, Mutex, RwLock], ids=lambda t: t.__name__)
def test_deeply_nested_values_are_freed_without_overflowing_the_c_stack(make: Callable[[object], object]) -> None:
    # Freeing Cell(Cell(...)) a hundred thousand deep recursed once per level in C and
    # overflowed the stack (a segfault); lists and dicts use CPython's trashcan, and so do
    # these now. A thread with a 1 MiB stack overflows within a few thousand levels without it.
    errors: list[BaseException] = []

    def build_and_drop() -> None:
        try:
            value: object = None
            for _ in range(100_000):
                value = make(value)
            del value
        except BaseException as exc:
            errors.append(exc)

    old_size = threading.stack_size(1 << 20)
    try:
        worker = threading.Thread(target=build_and_drop)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(old_size)
    assert not errors


def test_buffer_pool_does_not_write_zeros_over_a_fresh_mapping() -> None:
    # acquire() zeroed every block it handed out, so acquire(2**31) wrote 2 GiB of zeros over
    # pages the kernel had just mapped zeroed: seconds of work and the whole size resident.
    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    pool = BufferPool((4096,))
    before = resident()
    with pool.acquire(256 << 20) as big:  # above the largest class: a fresh exact mapping
        grown = resident() - before
        view = memoryview(big)
        assert view[0] == 0 and view[len(view) // 2] == 0 and view[-1] == 0
        view.release()
    assert grown < 64 << 20, f"acquire made {grown} bytes resident"
    # Reused (cached) blocks are still zeroed: only fresh mappings skip it.
    with pool.acquire(100) as small:
        memoryview(small)[:] = b"\xff" * 100
    with pool.acquire(100) as again:
        assert bytes(again) == bytes(100)


def test_array_view_constructor_rejects_wrong_arguments_with_type_and_value_errors() -> None:
    # A direct ArrayView(...) call with a wrong array type raised AttributeError.
    @struct
    class Row:
        values: Array(u8, 4)  # type: ignore[valid-type]

    row = Row()
    with pytest.raises(TypeError, match="array type"):
        ArrayView(row, 0, 4, "values")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="label must be a str"):
        ArrayView(row, 0, Array(u8, 4), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="do not fit"):
        ArrayView(row, 2, Array(u8, 4), "values")
    assert ArrayView(row, 0, Array(u8, 4), "values").tolist() == [0, 0, 0, 0]


def test_soa_column_with_a_non_string_path_raises_type_error() -> None:
    # soa.column(None) raised AttributeError ("no column None").
    @struct
    class Particle:
        id: u32

    soa = SoA(Particle, 2)
    with pytest.raises(TypeError, match="str"):
        soa.column(None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        soa.column("mass")


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

    from memkit.layout import SoA, struct

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


# ---- Under memory pressure: found by the allocation-failure sweep (tests/test_alloc_failure.py) ----
#
# Each test fails the operation's allocation points one at a time (tests/_faults.FailAt: a
# limit() budget that refuses exactly that point) and checks what broke before the fix.


def _each_failure(op: Callable[[], object], limit: int = 200) -> list[bool]:
    """Run ``op`` once per allocation point, that point refused; for each run, whether it
    raised MemoryError (False: the operation absorbed the failure). Anything else propagates.
    No exception is kept: its traceback would keep the operation's objects alive."""
    from _faults import FailAt, unraisable_checked

    outcomes: list[bool] = []
    for k in range(limit):
        raised = False
        with unraisable_checked():
            try:
                with FailAt(k) as f:
                    op()
            except MemoryError:
                raised = True
        if f.failed_at < 0:
            return outcomes
        outcomes.append(raised)
    raise AssertionError(f"more than {limit} allocation points")


@pytest.mark.parametrize(
    "make",
    [
        lambda: AlignedBuffer(64),
        lambda: memkit.Arena(4096),
        lambda: BufferPool((256,)),
        lambda: AtomicInt(1),
        lambda: memkit.AtomicBool(True),
        lambda: AtomicIntArray(4),
        lambda: memkit.ShardedCounter(),
        lambda: memkit.Arena.__new__(memkit.Arena),
        lambda: memkit.alloc.track(),
    ],
    ids=[
        "AlignedBuffer",
        "Arena",
        "BufferPool",
        "AtomicInt",
        "AtomicBool",
        "AtomicIntArray",
        "ShardedCounter",
        "Arena.__new__",
        "track",
    ],
)
def test_pybind11_class_whose_instance_cannot_be_allocated_raises_memory_error(make: Callable[[], object]) -> None:
    # pybind11's instance creation used tp_alloc's NULL: a segfault.
    assert any(_each_failure(make))


def test_from_buffer_with_keyword_arguments_under_memory_pressure() -> None:
    # pybind11's dispatcher dereferenced NULL when a keyword's name could not be interned.
    buf = bytearray(64)
    outcomes = _each_failure(lambda: AtomicIntArray.from_buffer(buf, 4, offset=16, padded=False))
    outcomes += _each_failure(lambda: AtomicInt.from_buffer(buf, offset=8))
    assert any(outcomes)
    buf.append(0)  # no export was left behind


def test_arena_alloc_whose_handle_cannot_be_allocated_changes_nothing() -> None:
    # The arena allocated first and counted an allocation nobody held.
    arena = memkit.Arena(4096)
    keep = [arena.alloc(8) for _ in range(140)]  # takes the handles' free list: the next one is allocated
    slot: list[object] = [None]
    before = (arena.allocation_count, arena.bytes_used)

    def alloc() -> None:
        slot[0] = arena.alloc(24)

    for raised in _each_failure(alloc):
        if slot[0] is None:
            assert raised
            assert (arena.allocation_count, arena.bytes_used) == before
        slot[0] = None
        gc_young()
        before = (arena.allocation_count, arena.bytes_used)
    assert all(not b.released for b in keep)


def test_pool_acquire_whose_handle_cannot_be_allocated_counts_nothing() -> None:
    # The pool lent a block (a hit or a miss) before the handle failed.
    pool = BufferPool((256,))
    keep = [pool.acquire(16) for _ in range(140)]
    slot: list[object] = [None]

    def acquire() -> None:
        slot[0] = pool.acquire(100)

    before = (pool.hits, pool.misses)
    for raised in _each_failure(acquire):
        if slot[0] is None:
            assert raised
            assert (pool.hits, pool.misses) == before and pool.outstanding == len(keep)
        slot[0] = None
        before = (pool.hits, pool.misses)


def test_limit_block_ends_its_budget_even_when_its_exit_cannot_allocate() -> None:
    # Limit.__exit__ called super() - an allocation - before ending the budget; when that
    # allocation was refused the budget stayed on, charging and refusing after the block.
    limits: list[memkit.alloc.Limit] = []

    def block() -> None:
        with memkit.alloc.limit("64 MiB") as lim:
            limits.append(lim)

    _each_failure(block)
    for lim in limits:
        charged = lim.allocations
        data = [bytearray(100) for _ in range(10)]
        assert lim.allocations == charged, "a limit() block still charged after it ended"
        del data


@pytest.mark.parametrize(
    "read",
    [
        lambda: memkit.alloc.stats(),
        lambda: AtomicIntArray(3).tolist(),
        lambda: BufferPool((1 << 40, 1 << 41)).size_classes,
        lambda: _tracker_with_big_numbers().allocated_bytes,
    ],
    ids=["stats", "tolist", "size_classes", "Tracker.allocated_bytes"],
)
def test_results_that_cannot_be_allocated_raise_memory_error(read: Callable[[], object]) -> None:
    # They raised TypeError ("Unable to convert function return value") or RuntimeError
    # ("Could not allocate dict object!"): pybind11's reports of a failed allocation.
    assert any(_each_failure(read))


def _tracker_with_big_numbers() -> memkit.alloc.Tracker:
    with memkit.alloc.track() as t:
        bytearray(100_000)
    return t


def test_scope_guard_and_once_cell_under_memory_pressure_raise_memory_error_and_keep_no_lock() -> None:
    # defer() and OnceCell() raised RuntimeError ("can't allocate lock"), a half-built guard's
    # __del__ raised AttributeError, and a `with lock:` whose exit could not allocate left the
    # lock held: the guard or cell then hung every later caller.
    fired: list[int] = []

    def guard() -> None:
        with memkit.defer(fired.append, 1):
            pass

    cells = []

    def once() -> None:
        cell: memkit.OnceCell[int] = memkit.OnceCell()
        cells.append(cell)
        cell.get_or_init(lambda: 5)

    _each_failure(guard)
    _each_failure(once)
    gc_young()

    def later() -> None:
        memkit.defer(fired.append, 2).run()
        for cell in cells:
            assert cell.get_or_init(lambda: 5) == 5

    t = threading.Thread(target=later, daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "a lock stayed held after a failed exit"
    assert fired.count(2) == 1


def test_struct_declared_under_memory_pressure_raises_memory_error_not_type_error() -> None:
    # A MemoryError while resolving a string annotation (this module's annotations are
    # strings) became TypeError ("cannot resolve the annotation"); on 3.11 eval() may even
    # report the refused allocation as SystemError.
    from _faults import class_creation_survives

    if not class_creation_survives():
        pytest.skip(f"CPython {sys.version.split()[0]} crashes creating a class under memory pressure")

    def declare() -> None:
        @struct
        class Pair:
            a: u8
            b: u32

    _each_failure(declare)


def test_array_view_indexing_that_fails_releases_its_buffer() -> None:
    # ArrayView.__getitem__ held a comprehension (for slices), which makes a cell of `self`
    # on entry; on 3.11, when that cell could not be allocated, CPython leaked the call's
    # arguments: the view, and the export of the buffer under it, which then could never be
    # resized or released.
    @struct
    class Point:
        x: u32

    buf = AlignedBuffer(64)

    def index() -> None:
        view = Point.array_view(buf, 4)
        view[1].x = 9
        assert [p.x for p in view[0:2]] == [0, 9]

    for _ in range(3):
        index()  # warm: 3.11 then calls __getitem__ through its specialised, inlined path
    _each_failure(index)
    gc_young()
    buf.resize(128)


@pytest.mark.parametrize("domain", ["raw", "mem", "object"])
def test_allocation_helpers_whose_result_cannot_be_allocated_raise_memory_error_and_keep_nothing(domain: str) -> None:
    # _allocate and _realloc built the int holding the address under the budget that had
    # just granted the block: when a limit() refused that int, pybind11 raised TypeError
    # ("Unable to convert function return value") and the block was lost.
    from _faults import FailAt

    from memkit._core import alloc as _alloc

    size = 100_000
    memkit.alloc.install()
    before = memkit.alloc.stats().by_domain[domain].current_bytes
    address = [0]
    raised = 0
    for resize in (False, True):
        for k in range(100):
            old = _alloc._allocate(domain, 64) if resize else 0
            address[0] = 0
            try:
                with FailAt(k) as f:
                    address[0] = _alloc._realloc(domain, old, size) if resize else _alloc._allocate(domain, size)
            except MemoryError:
                raised += 1
            if address[0]:
                _alloc._free(domain, address[0])
            elif old:
                _alloc._free(domain, old)  # refused: the block is untouched and still the caller's
            if f.failed_at < 0:
                break
        else:
            raise AssertionError("more than 100 allocation points")
    assert raised >= 2  # the allocation itself, refused
    assert memkit.alloc.stats().by_domain[domain].current_bytes - before < size, "a block was lost"


def test_churn_helpers_whose_result_cannot_be_allocated_raise_memory_error() -> None:
    # pybind11 built their int results under the budget, and reported a refused one as
    # TypeError. (Results above the small ints CPython keeps made: nanoseconds, 300 blocks.)
    from memkit._core import alloc as _alloc

    _each_failure(lambda: _alloc._object_churn(2, 1))
    _each_failure(lambda: _alloc._raw_churn(1, 300))


def gc_young() -> None:
    import gc

    gc.collect(0)


# ---- memkit.alloc: budgets for every thread (found by the thread stress tests) -----------------


def test_all_threads_limit_refuses_only_the_requests_that_do_not_fit() -> None:
    # reserve_global() added a request to every threads="all" budget first and took it
    # back if it did not fit: in between, other threads saw the inflated net and were
    # refused requests that fit (the first such refusal tripped the budget), and a
    # concurrent free could record the refused request in the budget's peak. An outer
    # budget that took a request an inner one refused must get it back.
    from memkit._core import alloc as _alloc

    budget, grace = 1 << 20, 1 << 20  # the grace memkit.alloc.limit documents
    huge = 4 * (budget + grace)  # never fits, tripped or not
    small = 4096  # three at once fit many times over
    iterations = 50_000
    with memkit.alloc.limit("1 GiB", threads="all") as outer, memkit.alloc.limit(budget, threads="all") as lim:
        refused = _alloc._raw_requests([huge, small, small, small], iterations)
    assert refused == [iterations, 0, 0, 0], "a request that fitted was refused"
    assert lim.refused == huge
    assert lim.peak_bytes <= budget  # three small blocks and some bookkeeping at most
    assert outer.refused is None
    assert outer.net_bytes < 64 * 1024  # every huge request it took was given back


def test_the_thread_helpers_refuse_too_many_threads_before_starting_any() -> None:
    # Unbounded counts once reached std::thread creation: a refused thread with others
    # already running ended the process (a joinable std::thread destroyed).
    from memkit._core import alloc as _alloc

    for call in (lambda: _alloc._raw_churn(65, 1), lambda: _alloc._raw_requests([8] * 65, 1)):
        with pytest.raises(ValueError, match="at most 64 threads, got 65"):
            call()
    with pytest.raises(ValueError, match="at most 64 threads"):
        _alloc._raw_churn(2**63, 1)
    assert _alloc._raw_churn(0, 10) == 0
    assert _alloc._raw_requests([8, 16], 10) == [0, 0]
