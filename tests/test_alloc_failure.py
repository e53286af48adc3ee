"""Under memory pressure: an allocation-failure sweep of every memkit operation that allocates.

For each operation, ``memkit.alloc.limit()``'s budget refuses one allocation point at a
time - the first, then the second, and so on until the operation runs out of points - and
each time the operation must fail cleanly (``MemoryError``; never a crash, a ``SystemError``
or another exception) and leave its object usable: its invariants hold right after the
failure, the same operation then succeeds without a budget, and the invariants hold again.

The points are counted by ``memkit._core._testing.FaultScope`` (csrc/bindings/
register_testing_alloc.cpp): every request the calling thread makes through CPython's
allocators - refused by the budget exactly as inside a ``limit()`` block - and every
allocation memkit's core makes (aligned buffers, arena chunks, pool blocks), refused the
way the OS refuses. What is not swept: C++ ``operator new`` (the slot map's vector, arena
frame stacks, pybind11's registry), which has no injection point; a failure there is a
``std::bad_alloc``, translated to ``MemoryError`` by pybind11. Nor, on CPython 3.12 and
3.13.0, an allocation of a function object's size: those interpreters crash when a function
object cannot be allocated (tests/_faults.py, function_size_to_spare).
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _faults import FailAt, class_creation_survives, unraisable_checked

import memkit
from memkit import alloc
from memkit.layout import SoA, f64, struct, u8, u32
from memkit.slotmap import SlotMap


@dataclass
class Case:
    """An operation to sweep: ``op(state)`` runs under the failing budget, on a fresh
    ``setup()`` each time; ``check(state, done)`` asserts the object's invariants, ``done``
    telling whether the operation completed."""

    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], object]
    check: Callable[[Any, bool], None]
    allocates: bool = True  # False: the operation makes no allocation at all (checked)
    creates_classes: bool = False  # skipped where CPython crashes doing that under memory pressure


@dataclass
class SweepResult:
    points: int  # allocation points of one undisturbed run
    failed: int  # runs in which a point failed
    raised: int  # ... and the operation raised MemoryError


def sweep(case: Case, max_runs: int = 300) -> SweepResult:
    """Fail each allocation point of ``case.op`` in turn (see the module docstring)."""
    for _ in range(2):  # warm up: lazily built types, caches and free lists settle
        state = case.setup()
        case.op(state)
        case.check(state, True)
        del state
    state = case.setup()
    with FailAt(-1) as counting:
        case.op(state)
    case.check(state, True)
    del state
    result = SweepResult(points=counting.points, failed=0, raised=0)
    k = 0
    for _ in range(max_runs):
        state = case.setup()
        done = raised = False
        with unraisable_checked():
            try:
                with FailAt(k) as f:
                    case.op(state)
                    done = True
            except MemoryError:
                raised = True
        if f.failed_at < 0:
            assert done and not raised, f"{case.name}: MemoryError with no failed allocation"
            break  # every point has failed once
        result.failed += 1
        result.raised += raised
        gc.collect(0)  # what a failure left in a reference cycle (guards in a traceback's frame) goes
        case.check(state, done)  # right after the failure
        case.op(state)  # the same operation, without a budget, succeeds ...
        case.check(state, True)  # ... and leaves the invariants intact
        k = f.failed_at + 1
        del state
    else:
        pytest.fail(f"{case.name}: more than {max_runs} allocation points")
    return result


@pytest.fixture(autouse=True, scope="module")
def quiet_collector() -> Iterator[None]:
    """No automatic garbage collection during the sweeps: it would run finalisers at random
    points. The hook is left as it was found."""
    was_installed = alloc.installed()
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()
        if not was_installed:
            alloc.uninstall()


# ---- the cases ----------------------------------------------------------------------------------


def nothing(_state: object, _done: bool) -> None:
    """For operations whose object does not outlive them (a constructor's)."""


def constructors() -> list[Case]:
    def keep(make: Callable[[], object]) -> Callable[[list[object]], object]:
        def op(box: list[object]) -> object:
            box.append(make())
            return box[-1]

        return op

    @struct
    class Pair:
        a: u8
        b: f64

    makers: dict[str, Callable[[], object]] = {
        "AlignedBuffer": lambda: memkit.AlignedBuffer(256),
        "AlignedBuffer-mapped": lambda: memkit.AlignedBuffer(2 << 20, align=4096),
        "Arena": lambda: memkit.Arena(4096, max_bytes=1 << 20),
        "BufferPool": lambda: memkit.BufferPool((256, 4096), max_cached_bytes=1 << 16),
        "AtomicInt": lambda: memkit.AtomicInt(5),
        "AtomicBool": lambda: memkit.AtomicBool(True),
        "AtomicIntArray": lambda: memkit.AtomicIntArray(16),
        "AtomicIntArray-padded": lambda: memkit.AtomicIntArray(16, padded=True),
        "ShardedCounter": lambda: memkit.ShardedCounter(3),
        "Cell": lambda: memkit.Cell([1]),
        "RefCell": lambda: memkit.RefCell([1]),
        "OnceCell": lambda: memkit.OnceCell(),
        "Mutex": lambda: memkit.Mutex([1]),
        "RwLock": lambda: memkit.RwLock([1]),
        "Condvar": lambda: memkit.Condvar(),
        "SlotMap": lambda: SlotMap(),
        "Cow": lambda: memkit.Cow(b"abc"),
        "ScopeGuard": lambda: memkit.defer(int),
        "Layout": lambda: memkit.Layout(24, 8).align_to(64),
        "struct": lambda: struct(type("Dyn", (), {"__annotations__": {"a": u8, "b": u32}})),
        "struct-string-annotations": lambda: struct(type("Str", (), {"__annotations__": {"a": "u8", "b": "f64"}})),
        "SoA": lambda: SoA(Pair, 8),
        "memoryview of a struct": lambda: memoryview(Pair(a=1, b=2.0)),
    }

    def check_made(box: list[object], done: bool) -> None:
        assert len(box) == (1 if done else 0) or len(box) == 2  # the retry appends a second

    return [
        Case(f"{name}()", list, keep(make), check_made, creates_classes=name.startswith("struct"))
        for name, make in makers.items()
    ]


def buffer_cases() -> list[Case]:
    def resize_setup() -> memkit.AlignedBuffer:
        buf = memkit.AlignedBuffer(100, align=64)
        memoryview(buf)[:] = bytes(range(100))
        return buf

    def resize_check(buf: memkit.AlignedBuffer, done: bool) -> None:
        assert len(buf) in (100, 300, 40, 2 << 20)  # one of the sizes asked for; contents kept:
        view = memoryview(buf)
        assert bytes(view[:40]) == bytes(range(40))  # contents kept, failed or not
        assert buf.address % 64 == 0
        view.release()
        buf.resize(100)  # back, so the retry resizes again
        memoryview(buf)[:] = bytes(range(100))

    def grow(buf: memkit.AlignedBuffer) -> None:
        buf.resize(300)

    def shrink(buf: memkit.AlignedBuffer) -> None:
        buf.resize(40)

    def mapped_grow(buf: memkit.AlignedBuffer) -> None:
        buf.resize(2 << 20)
        buf.resize(100)

    return [
        Case("AlignedBuffer.resize(grow)", resize_setup, grow, resize_check),
        Case("AlignedBuffer.resize(shrink)", resize_setup, shrink, resize_check),
        Case("AlignedBuffer.resize(mapped)", resize_setup, mapped_grow, resize_check),
    ]


@dataclass
class ArenaState:
    arena: memkit.Arena
    keep: list[memkit.ArenaBuffer]  # live buffers: the handle free list stays empty
    stats: tuple[int, int]  # (bytes_used, allocation_count) before the operation
    made: list[memkit.ArenaBuffer | None]  # one slot, filled without allocating


def arena_cases() -> list[Case]:
    def setup(chunk: int = 4096) -> ArenaState:
        arena = memkit.Arena(chunk)
        keep = [arena.alloc(8) for _ in range(140)]
        return ArenaState(arena, keep, (arena.bytes_used, arena.allocation_count), [None])

    def check(st: ArenaState, done: bool) -> None:
        arena = st.arena
        made = [b for b in st.made if b is not None and not b.released]
        used, count = st.stats
        assert arena.allocation_count == count + len(made), "a failed alloc must not count"
        assert arena.bytes_used >= used + sum(len(b) for b in made)
        assert arena.bytes_reserved >= arena.bytes_used
        assert arena.depth == 0, "a failed scope must not stay open"
        assert all(not b.released for b in st.keep)
        for b in made:  # live and writable
            memoryview(b)[:] = b"\x07" * len(b)
        for b in made:
            b.release()
        st.made[0] = None
        st.stats = (arena.bytes_used, arena.allocation_count)

    def alloc_small(st: ArenaState) -> None:
        st.made[0] = st.arena.alloc(24, align=16)

    def alloc_new_chunk(st: ArenaState) -> None:
        st.made[0] = st.arena.alloc(4000)  # does not fit the first chunk's rest

    def alloc_oversized(st: ArenaState) -> None:
        st.made[0] = st.arena.alloc(1 << 20, zero=False)

    def scoped(st: ArenaState) -> None:
        with st.arena.scope() as a:
            inner = a.alloc(5000)
            memoryview(inner)[:3] = b"abc"
        assert inner.released

    def reset(st: ArenaState) -> None:
        st.arena.reset()

    def check_reset(st: ArenaState, done: bool) -> None:
        arena = st.arena
        if all(b.released for b in st.keep):  # the reset happened, whole
            assert (arena.bytes_used, arena.allocation_count, arena.depth) == (0, 0, 0)
            assert arena.bytes_reserved <= 4096 * 16
            st.keep[:] = [arena.alloc(8) for _ in range(140)]
        else:
            assert not any(b.released for b in st.keep)
            assert (arena.bytes_used, arena.allocation_count) == st.stats
        memoryview(arena.alloc(16))[:] = bytes(16)
        arena.alloc(16).release()
        st.stats = (arena.bytes_used, arena.allocation_count)

    def limited_setup() -> ArenaState:
        st = setup()
        st.arena = memkit.Arena(64, max_bytes=256)
        st.stats = (0, 0)
        return st

    def alloc_past_max(st: ArenaState) -> None:
        with pytest.raises(MemoryError):  # the message says max_bytes, unless memory for it ran out
            st.arena.alloc(512)

    return [
        Case("Arena.alloc", setup, alloc_small, check),
        Case("Arena.alloc(new chunk)", setup, alloc_new_chunk, check),
        Case("Arena.alloc(oversized)", setup, alloc_oversized, check),
        Case("Arena.scope()", setup, scoped, check),
        Case("Arena.reset()", setup, reset, check_reset, allocates=False),
        Case("Arena.alloc(past max_bytes)", limited_setup, alloc_past_max, check),
    ]


@dataclass
class PoolState:
    pool: memkit.BufferPool
    keep: list[memkit.PooledBuffer]
    made: list[memkit.PooledBuffer]


def pool_cases() -> list[Case]:
    def setup() -> PoolState:
        pool = memkit.BufferPool((256, 4096), max_cached_bytes=1 << 16)
        keep = [pool.acquire(16) for _ in range(140)]  # empties the handle free list
        cached = pool.acquire(200)
        cached.release()  # one 256-byte block waits in the cache
        keep.append(cached)  # (released; kept so that its handle stays off the free list)
        return PoolState(pool, keep, [])

    def check(st: PoolState, done: bool) -> None:
        pool = st.pool
        live = [b for b in st.made if not b.released]
        held = [b for b in st.keep if not b.released]
        assert pool.outstanding == len(held) + len(live), "a failed acquire must not stay outstanding"
        assert pool.cached_bytes <= pool.max_cached_bytes
        for b in live:
            memoryview(b)[:] = b"\x01" * len(b)
        for b in st.made:
            b.release()
        st.made.clear()
        assert pool.outstanding == len(held)
        if pool.cached_bytes < 256:  # the retry should find a cached block again
            pool.acquire(200).release()

    def hit(st: PoolState) -> None:
        st.made.append(st.pool.acquire(200))

    def miss(st: PoolState) -> None:
        st.made.append(st.pool.acquire(3000))

    def exact(st: PoolState) -> None:
        st.made.append(st.pool.acquire(10_000, zero=False))

    def with_block(st: PoolState) -> None:
        with st.pool.acquire(100) as buf:
            memoryview(buf)[:2] = b"hi"

    return [
        Case("BufferPool.acquire(hit)", setup, hit, check),
        Case("BufferPool.acquire(miss)", setup, miss, check),
        Case("BufferPool.acquire(exact)", setup, exact, check),
        Case("BufferPool acquire+release", setup, with_block, check),
    ]


def increment(v: int) -> int:
    return v + 1


def atomic_cases() -> list[Case]:
    def from_buffer_setup() -> dict[str, Any]:
        return {"buf": bytearray(64), "made": []}

    def int_from_buffer(st: dict[str, Any]) -> None:
        a = memkit.AtomicInt.from_buffer(st["buf"], 8)
        a.fetch_add(2)
        st["made"].append(a)

    def array_from_buffer(st: dict[str, Any]) -> None:
        arr = memkit.AtomicIntArray.from_buffer(st["buf"], 4, offset=16)
        arr.fetch_add(1, 3)
        st["made"].append(arr)

    def check_export(st: dict[str, Any], done: bool) -> None:
        for a in st["made"]:
            a.release()
        st["made"].clear()
        buf = st["buf"]
        buf.append(0)  # resizable: no export leaked by a failed from_buffer
        del buf[-1]

    def array_ops(arr: memkit.AtomicIntArray) -> None:
        arr.fetch_add(3, 1)
        assert arr.compare_exchange(2, 0, 5) == (True, 0)
        arr.store(2, 0)
        arr.tolist()

    def check_array(arr: memkit.AtomicIntArray, done: bool) -> None:
        values = arr.tolist()
        assert len(values) == len(arr) == 8
        assert values[4:] == [0, 0, 0, 0]
        assert values[2] in (0, 5)

    def fetch_update(a: memkit.AtomicInt) -> None:
        a.fetch_update(increment)  # big values: each result is a new int

    def check_int(a: memkit.AtomicInt, done: bool) -> None:
        assert a.load() >= 1 << 40

    return [
        Case("AtomicInt.from_buffer", from_buffer_setup, int_from_buffer, check_export),
        Case("AtomicIntArray.from_buffer", from_buffer_setup, array_from_buffer, check_export),
        Case("AtomicIntArray ops", lambda: memkit.AtomicIntArray(8, padded=True), array_ops, check_array),
        Case("AtomicInt.fetch_update", lambda: memkit.AtomicInt(1 << 40), fetch_update, check_int),
    ]


@dataclass
class CellState:
    cell: memkit.RefCell[list[int]]
    keep: list[Any]  # live guards of another cell: the guard free lists stay empty
    made: list[Any]


def cell_cases() -> list[Case]:
    def setup() -> CellState:
        other = memkit.RefCell(0)
        keep: list[Any] = [other.borrow() for _ in range(70)]
        spare = memkit.RefCell(0)
        for _ in range(70):  # exclusive guards: one per cell at a time
            keep.append(memkit.RefCell(0).borrow_mut())
        del spare
        return CellState(memkit.RefCell([1, 2]), keep, [])

    def check(st: CellState, done: bool) -> None:
        for g in st.made:
            g.release()
        st.made.clear()
        assert st.cell.borrow_state == ("unborrowed", 0), "a failed borrow must not stay borrowed"
        with st.cell.borrow_mut() as g:  # exclusive: proves nothing else holds it
            assert g.value[:2] == [1, 2]
            del g.value[2:]

    def borrow(st: CellState) -> None:
        st.made.append(st.cell.borrow())
        st.made.append(st.cell.borrow())

    def borrow_mut(st: CellState) -> None:
        with st.cell.borrow_mut() as g:
            g.value.append(3)

    def try_borrows(st: CellState) -> None:
        g = st.cell.try_borrow_mut()
        assert g is not None and st.cell.try_borrow() is None
        g.release()
        r = st.cell.try_borrow()
        assert r is not None
        st.made.append(r)

    def conflict(st: CellState) -> None:
        with st.cell.borrow():
            with pytest.raises(memkit.BorrowMutError):
                st.cell.borrow_mut()

    def debug_conflict(st: CellState) -> None:
        previous = memkit.debug_borrows(True)
        try:
            conflict(st)
        finally:
            memkit.debug_borrows(previous)

    def replace(st: CellState) -> None:
        old = st.cell.replace([1, 2, 9])
        assert old[:2] == [1, 2]

    def cell_ops(c: memkit.Cell[list[int]]) -> None:
        c.set([*c.replace([1]), 2])
        c.take([0])

    def check_cell(c: memkit.Cell[list[int]], done: bool) -> None:
        assert isinstance(c.get(), list)

    def once_setup() -> dict[str, Any]:
        return {"cell": memkit.OnceCell(), "runs": 0}

    def get_or_init(st: dict[str, Any]) -> None:
        def init() -> list[int]:
            value = [st["runs"] + 1]
            st["runs"] += 1  # counts the runs that returned a value
            return value

        assert st["cell"].get_or_init(init) == [st["runs"]]

    def check_once(st: dict[str, Any], done: bool) -> None:
        value = st["cell"].get()
        if value is not None:
            assert value == [st["runs"]] == [1], "the initialiser ran more than once"

    return [
        Case("RefCell.borrow", setup, borrow, check),
        Case("RefCell.borrow_mut", setup, borrow_mut, check),
        Case("RefCell.try_borrow*", setup, try_borrows, check),
        Case("RefCell conflict", setup, conflict, check),
        Case("RefCell conflict (debug_borrows)", setup, debug_conflict, check),
        Case("RefCell.replace", setup, replace, check),
        Case("Cell ops", lambda: memkit.Cell([0]), cell_ops, check_cell),
        Case("OnceCell.get_or_init", once_setup, get_or_init, check_once),
    ]


@dataclass
class LockState:
    mutex: memkit.Mutex[list[int]]
    rw: memkit.RwLock[list[int]]
    keep: list[Any]  # live guards of other mutexes: the guard free list stays empty


def lock_cases() -> list[Case]:
    def setup() -> LockState:
        keep = [memkit.Mutex(0).lock() for _ in range(70)]
        return LockState(memkit.Mutex([0]), memkit.RwLock([0]), keep)

    def check(st: LockState, done: bool) -> None:
        assert not st.mutex.locked(), "a failed lock must not stay locked"
        st.mutex.clear_poison()  # (a failure may hit between poisoning and repairing)
        st.rw.clear_poison()
        guard = st.mutex.try_lock()
        assert guard is not None
        guard.release()
        w = st.rw.try_write()
        assert w is not None, "a failed RwLock acquisition must not stay held"
        w.release()

    def lock(st: LockState) -> None:
        with st.mutex.lock() as g:
            g.value = [*g.value, 1]

    def lock_timeout(st: LockState) -> None:
        g = st.mutex.lock(timeout=1.0)
        g.value.append(1)
        g.release()

    def try_lock(st: LockState) -> None:
        g = st.mutex.try_lock()
        assert g is not None
        assert st.mutex.try_lock() is None
        g.release()

    def poisoned(st: LockState) -> None:
        with pytest.raises(KeyError):
            with st.mutex.lock():
                raise KeyError("poison")
        with pytest.raises(memkit.PoisonError) as info:
            st.mutex.lock()
        guard = info.value.guard
        del info
        guard.release()
        st.mutex.clear_poison()

    def rw_read(st: LockState) -> None:
        with st.rw.read(timeout=5) as a:
            b = st.rw.try_read()  # a second shared read by the same thread
            assert b is not None and a.value is b.value
            b.release()

    def rw_write(st: LockState) -> None:
        with st.rw.write(timeout=5) as g:
            g.value = [len(g.value)]

    def rw_poison(st: LockState) -> None:
        with pytest.raises(ValueError):
            with st.rw.write():
                raise ValueError("poison")
        with pytest.raises(memkit.PoisonError) as info:
            st.rw.read()
        info.value.guard.release()
        del info
        st.rw.clear_poison()

    def locked_pair(st: LockState) -> None:
        with memkit.lock_all(st.rw, st.mutex, timeout=5) as (w, m):
            w.value, m.value = m.value, w.value

    def wait_while(st: LockState) -> None:
        cv = memkit.Condvar()
        with st.mutex.lock() as g:
            assert cv.wait_while(g, lambda v: False, timeout=0)
            assert not cv.wait(g, timeout=0)
        cv.notify_all()

    return [
        Case("Mutex.lock", setup, lock, check),
        Case("Mutex.lock(timeout)", setup, lock_timeout, check),
        Case("Mutex.try_lock", setup, try_lock, check),
        Case("Mutex poisoned", setup, poisoned, check),
        Case("RwLock.read", setup, rw_read, check),
        Case("RwLock.write", setup, rw_write, check),
        Case("RwLock poisoned", setup, rw_poison, check),
        Case("lock_all", setup, locked_pair, check),
        Case("Condvar.wait_while", setup, wait_while, check),
    ]


@dataclass
class MapState:
    sm: SlotMap[object]
    live: dict[int, object]
    stale: list[int]
    may_remove: int = 0  # entries the operation removes (the bookkeeping may miss them)


def slotmap_cases() -> list[Case]:
    def setup(n: int = 31) -> MapState:
        sm: SlotMap[object] = SlotMap()
        live = {sm.insert(i): i for i in range(n)}  # the next insert grows the slot vector
        first = next(iter(live))
        del live[first]
        stale = [first]
        sm.remove(first)
        sm.insert_with_key(lambda k: stale.append(k) or -1)
        sm.remove(stale[-1])
        return MapState(sm, live, stale)

    def check(st: MapState, done: bool) -> None:
        sm = st.sm
        from memkit._core.slotmap import _invariant_violation  # type: ignore[attr-defined]

        assert _invariant_violation(sm) is None
        for key in list(sm):
            if key not in st.live:  # inserted by the operation
                st.live[key] = sm[key]
        gone = [key for key in st.live if key not in sm]
        assert len(gone) <= st.may_remove, "an entry vanished"
        for key in gone:  # removed by the operation: stale from now on
            del st.live[key]
            st.stale.append(key)
        assert len(sm) == len(st.live), "a failed insert must not leave an entry behind"
        for key, value in st.live.items():
            assert sm[key] == value
        for key in st.stale:
            assert key not in sm and sm.get(key) is None

    def insert(st: MapState) -> None:
        for i in range(3):
            key = st.sm.insert(("new", i))
            st.live[key] = ("new", i)

    def insert_with_key(st: MapState) -> None:
        key = st.sm.insert_with_key(lambda k: ("k", k))
        st.live[key] = ("k", key)

    def remove(st: MapState) -> None:
        st.may_remove = 1
        key = next(iter(st.live))
        value = st.sm.remove(key)
        assert value == st.live.pop(key)
        st.stale.append(key)

    def iterate(st: MapState) -> None:
        assert dict(st.sm.items()) == st.live
        assert sorted(st.sm.values(), key=repr) == sorted(st.live.values(), key=repr)
        repr(st.sm)

    def clear(st: MapState) -> None:
        st.may_remove = len(st.live)
        st.stale.extend(st.live)
        st.live.clear()
        st.sm.clear()

    return [
        Case("SlotMap.insert (growth)", setup, insert, check),
        Case("SlotMap.insert_with_key", setup, insert_with_key, check),
        Case("SlotMap.remove", setup, remove, check),
        Case("SlotMap iteration", setup, iterate, check),
        Case("SlotMap.clear", setup, clear, check),
    ]


def layout_cases() -> list[Case]:
    @struct
    class Point:
        x: u32
        y: f64

    def setup() -> dict[str, Any]:
        buf = memkit.AlignedBuffer(256)
        return {"buf": buf, "views": []}

    def view(st: dict[str, Any]) -> None:
        p = Point.view(st["buf"], 16)
        p.x, p.y = 7, 2.5
        st["views"].append(p)

    def array_view(st: dict[str, Any]) -> None:
        arr = Point.array_view(st["buf"], 4, 32)
        arr[1].x = 9
        st["views"].append(arr)

    def check(st: dict[str, Any], done: bool) -> None:
        views = st["views"]
        for i in range(len(views)):
            if isinstance(views[i], Point):
                assert (views[i].x, views[i].y) == (7, 2.5)
        views.clear()
        st["buf"].resize(256)  # no export left behind by a failed view
        p = Point.view(st["buf"], 0)
        p.x = 1
        assert p.x == 1
        del p

    def soa(st: dict[str, Any]) -> None:
        s = SoA(Point, 8)
        s[3].x = 5
        assert s.x[3] == 5
        st["views"].append(s)

    return [
        Case("Struct.view", setup, view, check),
        Case("Struct.array_view", setup, array_view, check),
        Case("SoA", setup, soa, check),
    ]


def guard_cases() -> list[Case]:
    def setup() -> dict[str, Any]:
        return {"fired": []}

    def defer_exit(st: dict[str, Any]) -> None:
        with memkit.defer(st["fired"].append, 1):
            pass

    def check(st: dict[str, Any], done: bool) -> None:
        gc.collect(0)  # a guard left armed by a failure fires when collected
        assert len(st["fired"]) <= 1, "a guard fired twice"
        st["fired"].clear()

    def cow(st: dict[str, Any]) -> None:
        c = memkit.Cow(b"abc")
        c.to_mut().append(ord("d"))
        assert c.value == bytearray(b"abcd") and c.is_owned

    return [
        Case("defer + exit", setup, defer_exit, check),
        Case("Cow.to_mut", setup, cow, nothing),
    ]


def alloc_cases() -> list[Case]:
    def track(st: list[int]) -> None:
        with alloc.track() as t:
            st.append(len(st))
        assert t.allocations >= 0

    def nested_limit(st: list[int]) -> None:
        with alloc.limit("64 MiB") as lim:
            st.append(1)
        assert lim.refused is None

    def check(st: list[int], done: bool) -> None:
        # A scope that a failure left registered with the hook would use up this thread's
        # 16 nesting levels (and be charged for ever): all 15 more must still open.
        trackers = [alloc.track() for _ in range(15)]
        for t in trackers:
            t.__enter__()
        try:
            address = memkit._core.alloc._allocate("mem", 1000)
            memkit._core.alloc._free("mem", address)
            assert trackers[-1].allocated_bytes >= 1000
        finally:
            for t in reversed(trackers):
                t.__exit__(None, None, None)

    def stats(st: list[int]) -> None:
        s = alloc.stats()
        assert s.allocations >= s.by_domain["object"].allocations

    def tracker_fields(st: list[int]) -> None:
        with alloc.track() as t:
            st.append(1)
        assert (t.allocations, t.frees, t.net_bytes, t.peak_bytes) >= (0, 0, -(1 << 62), 0)
        assert t.allocated_bytes - t.freed_bytes == t.net_bytes

    def stat_getters(st: list[int]) -> None:
        pool = memkit.BufferPool((64, 256))
        arena = memkit.Arena(1 << 40)  # its fields are ints of several digits
        values = (pool.size_classes, pool.hits, arena.chunk_size, arena.bytes_used, memkit.cache_line_size())
        assert values[0] == (64, 256) and values[2] == 1 << 40

    return [
        Case("alloc.track()", list, track, check),
        Case("alloc.limit()", list, nested_limit, check),
        Case("alloc.stats()", list, stats, check),
        Case("Tracker fields", list, tracker_fields, check),
        Case("statistics getters", list, stat_getters, nothing),
    ]


CASES = [
    *constructors(),
    *buffer_cases(),
    *arena_cases(),
    *pool_cases(),
    *atomic_cases(),
    *cell_cases(),
    *lock_cases(),
    *slotmap_cases(),
    *layout_cases(),
    *guard_cases(),
    *alloc_cases(),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_allocation_point_fails_cleanly(case: Case) -> None:
    if case.creates_classes and not class_creation_survives():
        pytest.skip(f"CPython {sys.version.split()[0]} crashes creating a class under memory pressure")
    result = sweep(case)
    if case.allocates:
        assert result.failed >= 1, f"{case.name} made no allocation that could fail ({result})"
    else:
        assert result.points == 0, f"{case.name} allocates after all ({result})"


def test_sharded_counter_add_from_a_new_thread() -> None:
    counter = memkit.ShardedCounter()
    results: list[SweepResult] = []
    errors: list[BaseException] = []
    expected = 0

    def add(_state: object) -> None:
        counter.add(5)

    def run() -> None:
        try:
            results.append(sweep(Case("ShardedCounter.add", lambda: None, add, nothing)))
        except BaseException as exc:
            errors.append(exc)

    for _ in range(3):  # each thread is new: its first add picks a shard
        t = threading.Thread(target=run)
        t.start()
        t.join()
        if errors:
            raise errors[0]
        r = results[-1]
        expected += 5 * (2 + 1 + 2 * r.failed + 1 - r.raised)
    # Adds that raised MemoryError did not count; every other one did, exactly once.
    assert counter.value() == expected


def test_fault_scope_fails_each_point_once_through_the_budget() -> None:
    def three_blocks() -> list[bytearray]:
        return [bytearray(4000 + i) for i in range(3)]

    with FailAt(-1) as counting:
        three_blocks()
    assert counting.points >= 3 and counting.refused is None
    refused: dict[int, int] = {}
    for k in range(counting.points):
        try:
            with FailAt(k) as f:
                three_blocks()
        except alloc.MemoryLimitError as exc:  # refused by the budget, as limit() refuses
            assert f.failed_at >= k  # (k itself, unless k was a realloc that did not grow)
            refused[f.failed_at] = exc.request
    blocks = sorted(size for size in refused.values() if size >= 4000)
    assert len(blocks) == 3 and blocks[2] - blocks[0] == 2  # each block's buffer failed once

    caught = False
    with FailAt(0) as f:  # one failure per scope: what follows it succeeds
        try:
            bytearray(5000)
        except MemoryError:
            caught = True
        sizes = [len(b) for b in three_blocks()]
    assert caught and f.failed_at == 0 and sizes == [4000, 4001, 4002]

    with pytest.raises(MemoryError):
        with FailAt(0):
            memkit.AlignedBuffer(64)  # the first point: the instance itself
    with FailAt(-1), pytest.raises(RuntimeError, match="another FaultScope"):
        FailAt(0).__enter__()
