"""Leak checks: create/use/destroy loops of every memkit type keep neither memory nor references.

Each body below makes objects of one type, uses every part of the API that holds memory or
references (exports, scopes, guards, error paths), and drops them. After warm-up rounds
(free lists, caches and lazily made objects settle), more rounds must leave:

- no growth in what memkit's own allocator hook counts (``memkit.alloc.track("all")
  .net_bytes``: every PyMem/PyObject allocation - Python objects,
  pybind11 instances, lists and dicts the bindings build);
- no growth in the C heap (glibc's ``mallinfo2``: the C++ side - ``new``, ``malloc``,
  ``posix_memalign`` - which the hook does not see) nor in mapped memory (``VmSize``:
  large buffers and arena chunks come straight from ``mmap``);
- for bodies that store a sentinel object, its ``sys.getrefcount`` back where it started.

Finally the allocator hook's own bookkeeping must not grow with uninstall/install cycles.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import memkit
from memkit import (
    AlignedBuffer,
    Arena,
    AtomicBool,
    AtomicInt,
    AtomicIntArray,
    BorrowError,
    BufferPool,
    Cell,
    Condvar,
    Cow,
    Layout,
    Mutex,
    OnceCell,
    Ordering,
    PoisonError,
    RefCell,
    RwLock,
    ShardedCounter,
    SlotMap,
    SoA,
    alloc,
    lock_all,
)
from memkit._core import alloc as _alloc
from memkit._core import info as _info
from memkit.layout import Array, Bytes, f64, struct, u8, u16, u32

WARMUP = 30
ROUNDS = 200
# What a loop may keep without leaking. Measured noise: under 1 KiB of Python objects (a
# cache dict growing), under 3 KiB of C heap (glibc's per-thread bookkeeping), no mappings.
# A leak of one object per round is ROUNDS * 32 bytes or more; of one mapping, 4 KiB or more
# for each of the ROUNDS // 4 rounds of the mapped-memory pass.
PY_TOLERANCE = 4096
C_TOLERANCE = 8 * 1024
MAPPED_TOLERANCE = 4 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> Callable[[], int] | None:
    fn = getattr(ctypes.CDLL(None), "mallinfo2", None)  # glibc 2.33+
    if fn is None:
        return None
    fn.restype = _MallInfo2

    def heap_in_use() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return heap_in_use


# AddressSanitizer holds freed memory in a quarantine and maps its own heap, so under it
# the C heap and mapped memory say nothing about leaks (LeakSanitizer's job); what the hook
# counts and reference counts still do.
SANITIZED = "address" in str(_info.BUILD["sanitizers"])
C_HEAP = None if SANITIZED else _mallinfo2()


def mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * 4096


@pytest.fixture(autouse=True)
def _restore_hook() -> Iterator[None]:
    was = alloc.installed()
    yield
    if alloc.installed() != was:
        (alloc.install if was else alloc.uninstall)()


def _growth(body: Callable[[], object], rounds: int) -> list[str]:
    """What ``rounds`` more rounds of ``body`` kept, as failure messages (none: nothing)."""
    failures = []
    c_before = C_HEAP() if C_HEAP is not None else 0
    # threads="all": a thread's state is allocated by the thread that starts it and freed by
    # the thread itself, so a current-thread tracker would see only half of it.
    with alloc.track("all") as tracker:
        for _ in range(rounds):
            body()
        gc.collect()
    c_grown = (C_HEAP() if C_HEAP is not None else 0) - c_before
    if tracker.net_bytes > PY_TOLERANCE:
        failures.append(f"{rounds} rounds kept {tracker.net_bytes} bytes of Python objects")
    if c_grown > C_TOLERANCE:
        failures.append(f"{rounds} rounds grew the C heap by {c_grown} bytes")
    # Mapped memory with the hook out of the way: its shadow map is mapped lazily, 32 MiB
    # at a time, as the heap reaches addresses it has not described yet.
    alloc.uninstall()
    if not SANITIZED:
        mapped_before = mapped_bytes()
        for _ in range(rounds // 4):
            body()
        gc.collect()
        mapped_grown = mapped_bytes() - mapped_before
        if mapped_grown > MAPPED_TOLERANCE:
            failures.append(f"{rounds // 4} rounds grew mapped memory by {mapped_grown} bytes")
    return failures


def assert_no_growth(body: Callable[[], object], rounds: int = ROUNDS, attempts: int = 10) -> None:
    """Runs ``body`` WARMUP times, then ``rounds`` more, measuring what the latter keep.

    A leak keeps memory in every attempt; warm-up effects fade. (On Python 3.12 and 3.13,
    exceptions raised through an extension's functions keep some kilobytes of objects for
    the first several hundred to a few thousand rounds and then no more: 25-50 KiB in the
    first attempt, under 4 KiB by the third to sixth. A leak of one small object per round
    keeps ROUNDS * 32 bytes in all ten.) The message lists every attempt's findings.
    """
    with alloc.track():  # the hook installed and its shadow map set up before measuring
        for _ in range(WARMUP):
            body()
        gc.collect()
    seen: list[str] = []
    for attempt in range(attempts):
        failures = _growth(body, rounds)
        if not failures:
            return
        seen.append(f"attempt {attempt + 1}: " + "; ".join(failures))
    raise AssertionError(" | ".join(seen))


def assert_refcount_restored(value: object, body: Callable[[object], object], rounds: int = 100) -> None:
    """``body(value)`` stores and drops ``value`` many ways; its refcount must come back."""
    body(value)  # warm-up: lazily created objects, free lists
    gc.collect()
    before = sys.getrefcount(value)
    for _ in range(rounds):
        body(value)
    gc.collect()
    assert sys.getrefcount(value) == before, f"{rounds} rounds kept {sys.getrefcount(value) - before} references"


def expect(exc: type[BaseException], fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Calls fn and swallows the expected exception (error paths must not leak either)."""
    try:
        fn(*args, **kwargs)
    except exc:
        return
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


# ---- memkit.buffers -------------------------------------------------------------------------------


def aligned_buffer_round() -> None:
    for nbytes, align in ((100, 64), (4096, 4096), (1 << 20, 64), (0, 8)):  # 1 MiB: mapped
        buf = AlignedBuffer(nbytes, align, zero=False)
        with memoryview(buf) as view:
            expect(BufferError, buf.release)
            expect(BufferError, buf.resize, 10)
            len(view)
        buf.resize(100 if nbytes > 100 else 2 << 20)  # mapped <-> heap
        repr(buf)
        buf.release()
        buf.release()
        expect(ValueError, lambda b=buf: b.address)
    with AlignedBuffer(256, zero=False) as buf:
        buf.nbytes  # noqa: B018
    AlignedBuffer.from_layout(Layout(48, 16))
    expect(ValueError, AlignedBuffer, -1)
    expect(ValueError, AlignedBuffer, 16, 3)
    expect(TypeError, AlignedBuffer, "16")
    expect(OverflowError, AlignedBuffer, 2**64)
    expect(MemoryError, AlignedBuffer, 2**62)


def arena_round() -> None:
    arena = Arena(4096, max_bytes=1 << 20)
    keep = [arena.alloc(n, align) for n, align in ((10, 8), (100, 64), (5000, 16), (0, 1))]
    with arena.scope() as a:
        inner = a.alloc(64)
        with a.scope():
            a.alloc(8000)
        view = memoryview(inner)
        view.release()
    with memoryview(keep[1]) as view:
        expect(BufferError, arena.reset)
    scope = arena.scope()
    scope.__enter__()
    arena.alloc(32)
    scope.close()
    expect(MemoryError, arena.alloc, 2 << 20)
    expect(ValueError, arena.alloc, 8, 3)
    keep[0].release()
    arena.reset()
    expect(ValueError, len, keep[2])
    repr(arena)
    Arena().alloc(10)  # dropped with a live buffer: the buffer keeps the arena alive


def pool_round() -> None:
    pool = BufferPool((64, 4096), max_cached_bytes=8192)
    bufs = [pool.acquire(n) for n in (10, 64, 100, 4096, 10000)]
    with memoryview(bufs[1]) as view:
        expect(BufferError, bufs[1].release)
        view[0]
    for b in bufs[:3]:
        b.release()
    with pool.acquire(50, zero=False) as b:
        b.capacity  # noqa: B018
    pool.clear()
    repr(pool)
    expect(ValueError, BufferPool, ())
    expect(TypeError, BufferPool, 64)
    BufferPool().acquire(3 << 20)  # a mapped block, dropped with the pool's last reference


# ---- memkit.atomic --------------------------------------------------------------------------------


def atomic_round() -> None:
    a = AtomicInt(5)
    a.fetch_add(3)
    a.compare_exchange(8, 9, Ordering.ACQ_REL)
    a.fetch_update(lambda v: v + 1)
    a.fetch_update(lambda v: None)
    a += 2
    int(a), repr(a)
    expect(OverflowError, a.store, 2**64)
    expect(ValueError, a.load, Ordering.RELEASE)
    expect(TypeError, a.fetch_update, 1)
    expect(ZeroDivisionError, a.fetch_update, lambda v: 1 // 0)
    flag = AtomicBool()
    flag.compare_exchange(False, True)
    flag.fetch_xor(True)
    arr = AtomicIntArray(8, padded=True)
    arr.fetch_add(3, 2)
    arr.fetch_update(1, lambda v: v - 1)
    arr.tolist()
    expect(IndexError, arr.load, 8)
    counter = ShardedCounter()
    counter.add(5)
    counter += 1
    counter.value()
    for backing in (bytearray(64), AlignedBuffer(64), AlignedBuffer(2 << 20)):
        shared = AtomicInt.from_buffer(backing, 8)
        shared.fetch_add(1)
        shared.release()
        expect(ValueError, shared.load)
        array = AtomicIntArray.from_buffer(backing, 4, 8)
        array.store(0, 1)
        del array  # collection ends the export too
        expect(ValueError, AtomicInt.from_buffer, backing, 3)
    expect(BufferError, AtomicInt.from_buffer, b"read-only")


# ---- memkit.cell ----------------------------------------------------------------------------------


def cell_round() -> None:
    c = Cell([1])
    c.set([2])
    c.replace([3])
    c.take()
    c.swap(Cell(4))
    repr(c)
    r = RefCell({"k": 1})
    with r.borrow() as ref:
        ref.value["k"]
        expect(memkit.BorrowMutError, r.borrow_mut)
        r.try_borrow_mut()
    with r.borrow_mut() as m:
        m.value = {"k": 2}
        expect(BorrowError, r.borrow)
        r.try_borrow()
        r.borrow_state  # noqa: B018
    r.replace({})
    r.take({})
    r.swap(RefCell(None))
    ref = r.borrow()
    ref.release()
    expect(ValueError, lambda: ref.value)
    once: OnceCell[list[int]] = OnceCell()
    once.get_or_init(lambda: [1])
    expect(ValueError, once.set, [2])
    expect(ZeroDivisionError, OnceCell().get_or_init, lambda: 1 // 0)


def debug_borrows_round() -> None:
    previous = memkit.debug_borrows(True)
    try:
        r = RefCell(0)
        held = r.borrow_mut()
        try:
            r.borrow()
        except BorrowError as exc:
            str(exc)
        held.release()
        with r.borrow(), r.borrow():
            pass
    finally:
        memkit.debug_borrows(previous)


# ---- memkit.sync ----------------------------------------------------------------------------------


def sync_round() -> None:
    m = Mutex({"n": 0})
    with m.lock() as g:
        g.value = {"n": 1}
        expect(RuntimeError, m.lock)
        m.try_lock()
        repr(m), repr(g)
    with m.lock(timeout=0.1):
        pass
    try:
        with m.lock():
            raise KeyError("poison")
    except KeyError:
        pass
    try:
        m.lock()
    except PoisonError as exc:
        exc.guard.value  # noqa: B018
        exc.guard.release()
    m.clear_poison()
    expect(ValueError, m.lock, timeout=-1)
    rw = RwLock([1])
    with rw.read() as r1, rw.read() as r2:
        r1.value, r2.value  # noqa: B018
        expect(RuntimeError, rw.write)
        rw.try_write()
    with rw.write() as w:
        w.value = [2]
    cv = Condvar()
    with m.lock() as g:
        cv.wait(g, timeout=0)
        cv.wait_while(g, lambda v: False)
        cv.wait_while(g, lambda v: True, timeout=0)
        cv.notify_all()
    with lock_all(Mutex(1), rw, m, timeout=1) as guards:
        len(guards)
    expect(TypeError, lock_all, 1)


# ---- memkit.slotmap, guard, cow -----------------------------------------------------------------


def slotmap_round() -> None:
    sm: SlotMap[object] = SlotMap()
    keys = [sm.insert([i]) for i in range(50)]
    for k in keys[::3]:
        del sm[k]
    for k in keys[1::3]:
        sm.remove(k)
    sm[keys[2]] = "replaced"
    stale = keys[0]
    expect(KeyError, sm.__getitem__, stale)
    expect(KeyError, sm.remove, stale)
    sm.get(stale, None)
    sm.insert_with_key(lambda key: ("self", key))
    expect(ZeroDivisionError, sm.insert_with_key, lambda key: 1 // 0)
    list(sm), list(sm.values()), list(sm.items()), repr(sm)
    ["x"] in sm.values(), (keys[2], "replaced") in sm.items()
    it = iter(sm)
    sm.insert(0)
    expect(RuntimeError, next, it)
    expect(TypeError, sm.__getitem__, "key")
    sm.clear()


class _Target:
    attr = 0


def guard_and_cow_round() -> None:
    log: list[int] = []
    with memkit.defer(log.append, 1):
        pass
    with memkit.on_success(log.append, 2), memkit.on_error(log.append, 3):
        pass
    memkit.defer(log.append, 4)  # runs when collected
    target = _Target()
    with memkit.restoring(target, "attr", [1]), memkit.restoring_item({}, "k", [2]):
        pass
    guard = memkit.defer(log.clear)
    guard.disarm()
    cow = Cow(b"bytes")
    cow.to_mut().extend(b"!")
    Cow([1, 2]).into_owned()
    Cow.owned(bytearray(4)).to_mut()


# ---- memkit.layout ---------------------------------------------------------------------------------


@struct
class _Inner:
    a: u16
    b: u8


@struct
class _Record:
    x: u32
    y: f64
    values: Array(u8, 4)  # type: ignore[valid-type]
    name: Bytes(6)  # type: ignore[valid-type]
    inner: _Inner


def layout_round() -> None:
    rec = _Record(1, 2.5)
    rec.values[1] = 7
    rec.values.tolist()
    rec.name = b"abcdef"
    rec.inner.a = 3
    bytes(rec), repr(rec), memkit.layout.asdict(rec)
    buf = AlignedBuffer(memkit.size_of(_Record) * 4)
    view = _Record.view(buf, memkit.size_of(_Record))
    view.x = 9
    expect(BufferError, buf.release)
    del view
    array = _Record.array_view(buf, 4)
    array[2].y = 1.5
    [r.x for r in array]
    del array
    buf.release()
    expect(ValueError, _Record.view, bytearray(4))
    expect(TypeError, _Record.view, 12)
    soa = SoA(_Record, 16)
    soa[3].x = 5
    soa.column("inner.a")[2] = 1
    soa.to_aos()
    SoA(_Record, 8, numpy=False)[1].y = 2.0
    memkit.describe(_Record), memkit.optimize(_Record)
    Layout(24, 8).extend(Layout(1, 1))
    expect(ValueError, Layout, 8, 3)


def alloc_round() -> None:
    with alloc.track() as outer, alloc.track("all"):
        data = [bytes(100) for _ in range(10)]
        outer.net_bytes  # noqa: B018
    del data
    try:
        with alloc.limit("64 KiB"):
            bytearray(1 << 20)
    except alloc.MemoryLimitError as exc:
        str(exc)
    alloc.stats()
    alloc.Tracker()  # made and dropped without entering


@pytest.mark.parametrize(
    "body",
    [
        aligned_buffer_round,
        arena_round,
        pool_round,
        atomic_round,
        cell_round,
        debug_borrows_round,
        sync_round,
        slotmap_round,
        guard_and_cow_round,
        layout_round,
        alloc_round,
    ],
    ids=lambda f: f.__name__.removesuffix("_round"),
)
def test_create_use_destroy_loops_keep_no_memory(body: Callable[[], object]) -> None:
    assert_no_growth(body)


# ---- references to stored values --------------------------------------------------------------------


def cell_holds(value: object) -> None:
    c = Cell(value)
    c.get()
    c.set(value)
    c.replace(value)
    c.take(value)
    c.swap(Cell(value))
    r = RefCell(value)
    with r.borrow() as ref:
        ref.value  # noqa: B018
        expect(memkit.BorrowMutError, r.borrow_mut)
    with r.borrow_mut() as m:
        m.value = value
    r.replace(value)
    r.take(value)
    once: OnceCell[object] = OnceCell()
    once.set(value)
    once.get()
    expect(ValueError, once.set, value)
    OnceCell().get_or_init(lambda: value)


def sync_holds(value: object) -> None:
    m = Mutex(value)
    with m.lock() as g:
        g.value = value
    m.try_lock()
    try:
        with m.lock() as g:
            raise KeyError(value)
    except KeyError:
        pass
    try:
        m.lock()
    except PoisonError as exc:
        exc.guard.value = value
        exc.guard.release()
    rw = RwLock(value)
    with rw.write() as w:
        w.value = value
    with rw.read() as r:
        r.value  # noqa: B018
    cv = Condvar()
    with Mutex(value).lock() as g:
        cv.wait_while(g, lambda v: v is not value)
        cv.wait_while(g, lambda v: v is value, timeout=0)


def slotmap_holds(value: object) -> None:
    sm: SlotMap[object] = SlotMap()
    keys = [sm.insert(value) for _ in range(10)]
    sm[keys[0]] = value
    sm.get(keys[1])
    sm.remove(keys[2])
    del sm[keys[3]]
    sm.insert_with_key(lambda key: value)
    list(sm.values()), list(sm.items())
    value in sm.values()  # noqa: B015
    (keys[4], value) in sm.items()  # noqa: B015
    repr(sm)
    sm.clear()
    sm.insert(value)  # dropped with the map


def guard_cow_atomic_holds(value: object) -> None:
    memkit.defer(lambda v: None, value).run()
    with memkit.on_error(print, value):
        pass
    memkit.restoring_item({}, "k", value).run()
    Cow(value).value  # noqa: B018
    Cow.owned(value).into_owned()
    AtomicInt(3).fetch_update(lambda v: (value, 4)[1])
    SlotMap().get(2**70, value)


def key_holds(key: object) -> None:
    # Keys that miss raise KeyError(key): the exception must not keep the key.
    sm: SlotMap[int] = SlotMap()
    expect(KeyError, sm.__getitem__, key)
    expect(KeyError, sm.remove, key)
    expect(KeyError, sm.__delitem__, key)
    sm.get(key)
    key in sm  # noqa: B015


@pytest.mark.parametrize(
    "body", [cell_holds, sync_holds, slotmap_holds, guard_cow_atomic_holds], ids=lambda f: f.__name__
)
def test_stored_values_are_released(body: Callable[[object], object]) -> None:
    assert_refcount_restored(object(), body)


def test_missing_keys_are_not_kept_by_key_errors() -> None:
    assert_refcount_restored(10**30, key_holds)


def test_owners_are_released_by_their_handles_and_views() -> None:
    # Handles keep their owner alive, and only while they live.
    arena = Arena(1024)

    def use_arena(a: object) -> None:
        assert isinstance(a, Arena)
        bufs = [a.alloc(16) for _ in range(5)]
        with a.scope() as s:
            s.alloc(8)
        memoryview(bufs[0]).release()
        del bufs

    assert_refcount_restored(arena, use_arena)
    pool = BufferPool((64,))

    def use_pool(p: object) -> None:
        assert isinstance(p, BufferPool)
        with p.acquire(10):
            pass
        p.acquire(100)

    assert_refcount_restored(pool, use_pool)

    def export(buf: object) -> None:
        memoryview(buf).release()
        AtomicInt.from_buffer(buf, 8).release()
        AtomicIntArray.from_buffer(buf, 2)
        _Record.view(buf).x = 1
        SoA.from_aos(_Record.array_view(buf, 1))

    for backing in (AlignedBuffer(256), bytearray(256)):
        assert_refcount_restored(backing, export)


def test_the_checks_catch_a_leak_of_each_kind() -> None:
    kept: list[object] = []
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    prot_read, map_private_anonymous = 1, 0x02 | 0x20

    leaks: list[tuple[str, Callable[[], object]]] = [("Python objects", lambda: kept.append([]))]
    if not SANITIZED:
        leaks.append(("mapped memory", lambda: libc.mmap(None, 1 << 20, prot_read, map_private_anonymous, -1, 0)))
    if C_HEAP is not None:
        leaks.append(("C heap", lambda: libc.malloc(64)))
    for what, leak in leaks:
        with pytest.raises(AssertionError, match=what):
            assert_no_growth(leak)
        alloc.uninstall()
    kept.clear()


# ---- the allocator hook's own bookkeeping ----------------------------------------------------------


def test_uninstall_install_cycles_keep_the_hook_bookkeeping_bounded() -> None:
    # install() over memkit's own pass-through layer reuses it (a new layer is made only over
    # a different allocator, and there is room for 16): a hundred cycles must all succeed.
    # Each cycle starts a session; every 15 the shadow map is wiped rather than grown. What
    # the map and the layers take shows in the process's mapped and resident memory.
    def cycle() -> None:
        alloc.install()
        churn = [bytes(n) for n in range(0, 3000, 7)]
        address = _alloc._allocate("raw", 1000)
        alloc.uninstall()
        _alloc._free("raw", address)  # freed after uninstall: still right, not counted
        del churn

    for _ in range(20):
        cycle()
    gc.collect()
    kept_before = _alloc._bookkeeping()
    with open("/proc/self/statm") as f:
        size_before, resident_before = (int(x) * 4096 for x in f.read().split()[:2])
    for _ in range(100):
        cycle()
    gc.collect()
    # Directly: no new layer; and no new shadow-map leaf, since the cycles reuse the same
    # addresses (except under AddressSanitizer, whose quarantine keeps moving them on).
    kept_after = _alloc._bookkeeping()
    assert kept_after["layers"] == kept_before["layers"] and all(n >= 1 for n in kept_after["layers"])
    if not SANITIZED:
        assert kept_after["leaves"] == kept_before["leaves"], (kept_before, kept_after)
    with open("/proc/self/statm") as f:
        size_after, resident_after = (int(x) * 4096 for x in f.read().split()[:2])
    if not SANITIZED:  # AddressSanitizer's own heap grows meanwhile
        mapped, resident = size_after - size_before, resident_after - resident_before
        assert mapped <= 8 << 20, f"mapped memory grew by {mapped} bytes"
        assert resident <= 8 << 20, f"resident memory grew by {resident} bytes"
    # And the hook still counts exactly after all those sessions.
    alloc.install()
    try:
        before = alloc.stats().by_domain["raw"].current_bytes
        address = _alloc._allocate("raw", 1000)
        assert alloc.stats().by_domain["raw"].current_bytes - before == 1000
        _alloc._free("raw", address)
        assert alloc.stats().by_domain["raw"].current_bytes == before
    finally:
        alloc.uninstall()


def test_trackers_and_limits_release_their_records() -> None:
    # Each Tracker owns a C++ record that the hook charges; entered or not, exited or
    # abandoned, dropping the tracker frees it (the C heap check of assert_no_growth).
    def body() -> None:
        with alloc.track(), alloc.track("all"):
            pass
        t = alloc.track()
        t.__enter__()  # abandoned inside: collection ends it
        del t
        alloc.limit(1 << 20)
        worker = threading.Thread(target=lambda: alloc.track().__enter__())
        worker.start()
        worker.join()

    assert_no_growth(body, rounds=100)
