"""Thread stress: every thread-safe type, hammered by several threads at once, with exact invariants.

Each test starts ``THREADS`` threads behind a barrier (conftest's ``run_concurrently``) and
checks what must hold exactly afterwards - counts, balances, no lost update, no two holders
of an exclusive borrow or lock at once, one run of each ``OnceCell`` initialiser, one owner
per pooled buffer, slot-map keys that are unique and never valid again once removed. While
a body runs, ``sys.setswitchinterval`` is a microsecond, so the GIL changes hands every few
bytecodes and the threads' operations interleave as finely as this 2-core machine allows.

The default run does each body once (the whole file takes a few seconds). A soak run repeats
every body until ``MEMKIT_SOAK_SECONDS`` have passed, per test::

    MEMKIT_SOAK_SECONDS=300 python -m pytest tests/test_stress.py -p no:cacheprovider
"""

from __future__ import annotations

import gc
import os
import random
import sys
import threading
import time
from collections import Counter, deque
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
    BorrowMutError,
    BufferPool,
    Cell,
    Condvar,
    Mutex,
    OnceCell,
    RefCell,
    RwLock,
    ShardedCounter,
    SlotMap,
    alloc,
    lock_all,
)
from memkit._core import alloc as _alloc

THREADS = 4
SOAK_SECONDS = float(os.environ.get("MEMKIT_SOAK_SECONDS") or 0)

RunConcurrently = Callable[..., list[Any]]


def switch() -> None:
    """Hand the GIL to another thread now. A tiny switch interval alone switches only every
    few hundred microseconds here (the waiting thread has to wake up first), so inside each
    critical section the tests call this between a read and its write: without exclusion,
    that loses updates nearly every time."""
    time.sleep(0)


@pytest.fixture
def stress() -> Iterator[Callable[[Callable[[], None]], int]]:
    """``stress(body)``: run ``body`` with the GIL switching every microsecond - once, or
    again and again until ``MEMKIT_SOAK_SECONDS`` have passed. Returns the rounds run."""
    previous = sys.getswitchinterval()

    def repeat(body: Callable[[], None]) -> int:
        deadline = time.monotonic() + SOAK_SECONDS
        rounds = 0
        sys.setswitchinterval(1e-6)
        try:
            while True:
                body()
                rounds += 1
                if time.monotonic() >= deadline:
                    return rounds
        finally:
            sys.setswitchinterval(previous)

    yield repeat
    assert sys.getswitchinterval() == previous


# ---- atomics -----------------------------------------------------------------------------------


def test_atomic_int_loses_no_update_and_hands_out_each_value_once(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 1500

    def body() -> None:
        a = AtomicInt(0)

        def worker(t: int) -> list[int]:
            seen = []  # the previous values our increments observed
            x = a
            for i in range(per_thread):
                kind = (i + t) % 5
                if kind == 0:
                    seen.append(a.fetch_add(1))
                elif kind == 1:
                    while True:
                        current = a.load()
                        ok, _ = a.compare_exchange_weak(current, current + 1)
                        if ok:
                            seen.append(current)
                            break
                elif kind == 2:  # fn gives the GIL away: others change the value, fetch_update retries
                    ok, previous = a.fetch_update(lambda v, i=i: (switch(), v + 1)[1] if i % 10 == 2 else v + 1)
                    assert ok
                    seen.append(previous)
                elif kind == 3:
                    x += 1  # in place: one atomic fetch_add, and x stays the same object
                else:
                    seen.append(a.fetch_sub(-1))
            assert x is a
            return seen

        seen = [v for part in run_concurrently(worker, THREADS) for v in part]
        total = THREADS * per_thread
        assert a.load() == total  # no lost update
        assert len(set(seen)) == len(seen)  # each increment saw a value nobody else saw
        assert all(0 <= v < total for v in seen)

    stress(body)


def test_atomic_bool_as_a_spinlock_admits_one_thread_at_a_time(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 400

    def body() -> None:
        flag = AtomicBool(False)
        inside = AtomicInt(0)
        entries = [0]  # a plain int: only the holder touches it, so a lost update means two holders
        toggles = AtomicBool(False)

        def worker(t: int) -> int:
            trues = 0
            for _ in range(per_thread):
                while not flag.compare_exchange(False, True)[0]:
                    time.sleep(0)
                assert inside.fetch_add(1) == 0, "two threads hold the spinlock"
                count = entries[0]
                switch()
                entries[0] = count + 1
                assert inside.fetch_sub(1) == 1
                assert flag.swap(False) is True
                trues += toggles.fetch_xor(True)
            return trues

        trues = sum(run_concurrently(worker, THREADS))
        assert entries[0] == THREADS * per_thread
        assert not flag.load()
        assert toggles.load() is False  # an even number of toggles
        assert trues == THREADS * per_thread // 2  # every other toggle saw True

    stress(body)


def _over(buf: Any, n: int, padded: bool) -> tuple[AtomicIntArray, Any]:
    return AtomicIntArray.from_buffer(buf, n, offset=0, padded=padded), buf


ARRAY_LAYOUTS = [
    pytest.param(lambda n: (AtomicIntArray(n), None), id="owned"),
    pytest.param(lambda n: (AtomicIntArray(n, padded=True), None), id="owned-padded"),
    pytest.param(lambda n: _over(bytearray(8 * n), n, False), id="from_buffer-bytearray"),
    pytest.param(lambda n: _over(AlignedBuffer(memkit.CACHE_PAD * n), n, True), id="from_buffer-padded"),
]


@pytest.mark.parametrize("make", ARRAY_LAYOUTS)
def test_atomic_int_array_counts_every_element_exactly(
    make: Callable[[int], tuple[AtomicIntArray, Any]], stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    length = 6
    per_thread = 1200

    def body() -> None:
        arr, buf = make(length)

        def worker(t: int) -> None:
            for i in range(per_thread):
                index = (i * (t + 1)) % length
                if i % 3 == 0:
                    arr.fetch_add(index, 2)
                elif i % 3 == 1:
                    while not arr.compare_exchange_weak(index, current := arr.load(index), current + 2)[0]:
                        pass
                else:
                    arr.fetch_sub(index, -2)
                arr.fetch_max(length - 1, -1)  # never changes a non-negative element

        run_concurrently(worker, THREADS)
        expected = [0] * length
        for t in range(THREADS):
            for i in range(per_thread):
                expected[(i * (t + 1)) % length] += 2
        assert arr.tolist() == expected
        if buf is not None:  # the memory really is the buffer's, and the export ends on release()
            stride = arr.stride
            raw = bytes(memoryview(buf))
            cells = [raw[i * stride : i * stride + 8] for i in range(length)]
            assert [int.from_bytes(c, sys.byteorder, signed=True) for c in cells] == expected
            arr.release()
            if isinstance(buf, bytearray):
                buf.append(0)  # resizable again

    stress(body)


def test_atomic_int_array_release_racing_with_operations(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    def body() -> None:
        buf = bytearray(64)
        arr = AtomicIntArray.from_buffer(buf, 4)

        def worker(t: int) -> int:
            done = 0
            if t == 0:
                for _ in range(200):
                    arr.fetch_add(0, 1)
                    done += 1
                arr.release()
                return done
            while True:
                try:
                    arr.fetch_add(0, 1)
                except ValueError as exc:  # released under us: from now on, always
                    assert "released" in str(exc)
                    with pytest.raises(ValueError):
                        arr.load(0)
                    return done
                done += 1

        done = sum(run_concurrently(worker, THREADS))
        assert arr.released
        buf.extend(b"x")  # the export ended
        assert int.from_bytes(buf[:8], sys.byteorder) == done  # every add that returned landed

    stress(body)


def test_sharded_counter_is_exact_and_reads_never_go_backwards(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 2000

    def body() -> None:
        c = ShardedCounter(7)

        def worker(t: int) -> int:
            if t == 0:  # a reader: positive adds only, so the sum it sees only grows
                last = c.value()
                for _ in range(per_thread):
                    now = c.value()
                    assert now >= last
                    last = now
                return 0
            x = c
            for i in range(per_thread):
                if i % 2:
                    c.add(3)
                else:
                    x += 3
            return 3 * per_thread

        expected = 7 + sum(run_concurrently(worker, THREADS))
        # More threads than shards, each new: threads beyond the shard count share shards.
        short_lived = [threading.Thread(target=c.add, args=(5,)) for _ in range(c.shards + 3)]
        for th in short_lived:
            th.start()
        for th in short_lived:
            th.join()
        assert c.value() == int(c) == expected + 5 * len(short_lived)

    stress(body)


# ---- cells -------------------------------------------------------------------------------------


def test_cell_replace_hands_each_value_to_exactly_one_thread(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 1000

    def body() -> None:
        first = object()
        cell: Cell[object] = Cell(first)
        tokens = [[object() for _ in range(per_thread)] for _ in range(THREADS)]
        a, b = Cell("a"), Cell("b")

        def worker(t: int) -> list[object]:
            got = []
            for i, token in enumerate(tokens[t]):
                got.append(cell.replace(token) if i % 2 else cell.take(token))
                if i % 5 == 0 and t % 2:  # swaps in both directions: address-ordered locks, no deadlock
                    a.swap(b)
                elif i % 5 == 0:
                    b.swap(a)
            return got

        got = [v for part in run_concurrently(worker, THREADS) for v in part]
        everything = [first] + [tok for part in tokens for tok in part]
        assert Counter(map(id, [*got, cell.get()])) == Counter(map(id, everything))  # none lost, none twice
        assert {a.get(), b.get()} == {"a", "b"}

    stress(body)


def test_refcell_never_has_two_writers_or_a_writer_and_a_reader(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 800

    def body() -> None:
        cell = RefCell([0])
        writers = AtomicInt(0)
        readers = AtomicInt(0)

        def worker(t: int) -> tuple[int, int]:
            wrote = conflicts = 0
            for i in range(per_thread):
                if (i + t) % 3 == 0:
                    try:
                        g = cell.borrow_mut() if i % 2 else cell.try_borrow_mut()
                    except BorrowMutError:
                        g = None
                    if g is None:
                        conflicts += 1
                        continue
                    with g:
                        assert writers.fetch_add(1) == 0 and readers.load() == 0, "a second borrow beside a RefMut"
                        value = g.value[0]
                        switch()
                        g.value[0] = value + 1  # a lost update here would mean two writers
                        writers.fetch_sub(1)
                    wrote += 1
                else:
                    try:
                        r = cell.borrow()
                    except BorrowError:
                        conflicts += 1
                        continue
                    with r:
                        readers.fetch_add(1)
                        if i % 4 == 1:
                            switch()  # others try to borrow meanwhile
                        assert writers.load() == 0, "a RefMut beside a Ref"
                        assert r.value[0] >= 0
                        readers.fetch_sub(1)
            return wrote, conflicts

        results = run_concurrently(worker, THREADS)
        assert cell.borrow_state == ("unborrowed", 0)
        with cell.borrow() as r:
            assert r.value[0] == sum(w for w, _ in results)

    stress(body)


def test_once_cell_runs_one_initialiser_per_cell(stress: Callable[..., int], run_concurrently: RunConcurrently) -> None:
    cells_per_round = 40

    def body() -> None:
        cells: list[OnceCell[object]] = [OnceCell() for _ in range(cells_per_round)]
        runs = [AtomicInt(0) for _ in cells]
        failures = [AtomicInt(0) for _ in cells]

        def worker(t: int) -> list[object]:
            got = []
            for i, cell in enumerate(cells):
                def init(i: int = i) -> object:
                    switch()  # the others arrive meanwhile and must wait, not run their own
                    if i % 4 == 0 and failures[i].fetch_add(1) == 0:
                        raise KeyError("the first initialiser of every fourth cell fails")
                    runs[i].fetch_add(1)
                    return object()

                try:
                    got.append(cell.get_or_init(init))
                except KeyError:
                    got.append(cell.get_or_init(init))  # the cell stayed empty: try again
            return got

        results = run_concurrently(worker, THREADS)
        for i, cell in enumerate(cells):
            assert runs[i].load() == 1, f"cell {i}: {runs[i].load()} initialisers returned a value"
            assert all(part[i] is cell.get() for part in results)  # everyone got the same object

        settable: OnceCell[int] = OnceCell()

        def setter(t: int) -> bool:
            try:
                settable.set(t)
            except ValueError:
                return False
            return True

        assert sum(run_concurrently(setter, THREADS)) == 1

    stress(body)


# ---- locks -------------------------------------------------------------------------------------


def test_mutex_admits_one_holder_and_loses_no_update(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 600

    def body() -> None:
        m = Mutex([0])
        inside = AtomicInt(0)

        def worker(t: int) -> int:
            done = 0
            for i in range(per_thread):
                if i % 3 == 0:
                    g = m.try_lock()
                    if g is None:
                        continue
                else:
                    g = m.lock(timeout=30) if i % 3 == 1 else m.lock()
                with g:
                    assert inside.fetch_add(1) == 0, "two threads hold the mutex"
                    value = g.value[0]
                    switch()
                    g.value[0] = value + 1
                    inside.fetch_sub(1)
                done += 1
            return done

        done = sum(run_concurrently(worker, THREADS))
        assert not m.locked() and not m.is_poisoned()
        with m.lock() as g:
            assert g.value[0] == done

    stress(body)


def test_rwlock_readers_never_see_a_half_write(stress: Callable[..., int], run_concurrently: RunConcurrently) -> None:
    per_thread = 500

    def body() -> None:
        rw = RwLock([0, 0])
        readers = AtomicInt(0)
        writers = AtomicInt(0)

        def worker(t: int) -> int:
            wrote = 0
            for i in range(per_thread):
                if (i + t) % 4 == 0:
                    g = rw.write(timeout=30) if i % 2 else rw.try_write()
                    if g is None:
                        continue
                    with g:
                        assert writers.fetch_add(1) == 0 and readers.load() == 0, "a writer beside another holder"
                        g.value[0] += 1
                        switch()
                        g.value[1] += 1  # two steps: a reader in between would see them differ
                        writers.fetch_sub(1)
                    wrote += 1
                else:
                    r = rw.read(timeout=30) if i % 2 else rw.try_read()
                    if r is None:
                        continue
                    with r:
                        readers.fetch_add(1)
                        assert writers.load() == 0
                        a = r.value[0]
                        switch()
                        assert a == r.value[1], "a reader saw half a write"
                        readers.fetch_sub(1)
            return wrote

        wrote = sum(run_concurrently(worker, THREADS))
        with rw.read() as r:
            assert r.value == [wrote, wrote]
        assert not rw.is_poisoned()

    stress(body)


def test_condvar_queue_delivers_every_item_exactly_once(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    items_per_producer = 300
    capacity = 8
    done = object()

    def body() -> None:
        queue: Mutex[deque[object]] = Mutex(deque())
        not_empty, not_full = Condvar(), Condvar()

        def worker(t: int) -> list[object]:
            if t % 2 == 0:  # a producer
                for i in range(items_per_producer):
                    with queue.lock() as g:
                        assert not_full.wait_while(g, lambda q: len(q) >= capacity, timeout=30)
                        g.value.append((t, i))
                        not_empty.notify_one()
                with queue.lock() as g:
                    g.value.append(done)  # FIFO: after all of this producer's items
                    not_empty.notify_all()
                return []
            got = []  # a consumer: takes items until it takes an end marker
            while True:
                with queue.lock() as g:
                    while not g.value:
                        assert not_empty.wait(g, timeout=30) or g.value, "a consumer waited 30 s"
                    item = g.value.popleft()
                    not_full.notify_all()
                if item is done:
                    return got
                got.append(item)

        got = [item for part in run_concurrently(worker, THREADS) for item in part]
        producers = range(0, THREADS, 2)
        assert sorted(got) == sorted((t, i) for t in producers for i in range(items_per_producer))
        with queue.lock() as g:
            assert not g.value

    stress(body)


def test_lock_all_transfers_keep_the_total_and_never_deadlock(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    transfers = 400

    def body() -> None:
        accounts: list[Any] = [Mutex(100) for _ in range(4)] + [RwLock(100)]
        total = 100 * len(accounts)

        def worker(t: int) -> int:
            rng = random.Random(t)
            audits = 0
            for i in range(transfers):
                if t == 0 and i % 10 == 0:  # an auditor: all accounts at once, a consistent snapshot
                    with lock_all(*accounts, timeout=30) as guards:
                        assert sum(g.value for g in guards) == total
                    audits += 1
                    continue
                x, y = rng.sample(accounts, 2)  # any order: lock_all orders them itself
                with lock_all(x, y, timeout=30) as (gx, gy):
                    amount = rng.randint(0, 10)
                    gx.value -= amount
                    switch()  # mid-transfer: the money is in neither account
                    gy.value += amount
            return audits

        assert sum(run_concurrently(worker, THREADS)) == transfers // 10
        with lock_all(*accounts) as guards:
            assert sum(g.value for g in guards) == total
        assert not any(a.is_poisoned() for a in accounts)

    stress(body)


# ---- slot map ----------------------------------------------------------------------------------


def test_slotmap_keys_are_unique_and_removed_keys_stay_stale(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    per_thread = 1500

    def body() -> None:
        sm: SlotMap[tuple[int, int]] = SlotMap()

        def worker(t: int) -> tuple[list[int], list[int], dict[int, tuple[int, int]]]:
            issued: list[int] = []
            removed: list[int] = []
            kept: dict[int, tuple[int, int]] = {}
            for i in range(per_thread):
                value = (t, i)
                # insert_with_key's fn gives the GIL away while its slot is reserved
                key = sm.insert(value) if i % 4 else sm.insert_with_key(lambda k, v=value: (switch(), v)[1])
                issued.append(key)
                assert sm[key] is value
                if i % 2:
                    assert sm.remove(key) is value
                    removed.append(key)
                    assert key not in sm and sm.get(key) is None
                else:
                    kept[key] = value
                if i % 50 == 0:
                    for old in removed[-20:]:  # slots get reused, old keys stay dead
                        assert old not in sm
                        with pytest.raises(KeyError):
                            sm[old]
                    try:
                        n = sum(1 for _ in sm.items())
                    except RuntimeError:  # changed during iteration: allowed, never a wrong answer
                        n = -1
                    assert n == -1 or n <= THREADS * per_thread
            return issued, removed, kept

        results = run_concurrently(worker, THREADS)
        issued = [k for part, _, _ in results for k in part]
        assert len(issued) == len(set(issued)) == THREADS * per_thread
        kept = {k: v for _, _, part in results for k, v in part.items()}
        assert len(sm) == len(kept) and dict(sm.items()) == kept
        for _, removed, _ in results:
            assert not any(k in sm for k in removed)

    stress(body)


# ---- arenas and pools ----------------------------------------------------------------------------


def test_arena_allocations_and_scopes_from_several_threads_never_overlap(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    rounds = 250

    def body() -> None:
        arena = Arena(chunk_size=2048)

        def worker(t: int) -> int:
            held: list[tuple[Any, memoryview, bytes]] = []
            pending_scopes = []
            for i in range(rounds):
                if i % 25 == 0:  # open a scope; the arena's scope stack is shared by every thread
                    scope = arena.scope()
                    scope.__enter__()
                    pending_scopes.append(scope)
                buf = arena.alloc(1 + (i * 13 + t) % 300, 1 << (i % 6))
                if i % 3 == 0:
                    switch()  # another thread may end the scope this buffer landed in
                try:
                    view = memoryview(buf)  # pins the buffer: no scope exit can free it now
                except ValueError:  # it landed in another thread's scope, which just ended
                    assert buf.released
                    continue
                assert buf.address % buf.align == 0
                pattern = bytes([(t * 31 + i) % 251 + 1]) * len(buf)
                view[:] = pattern
                held.append((buf, view, pattern))
                if len(held) > 8:
                    _, old_view, old_pattern = held.pop(0)
                    assert old_view.tobytes() == old_pattern, "another thread's allocation overlapped ours"
                    old_view.release()
                if i % 25 == 24 and pending_scopes:
                    try:
                        pending_scopes[-1].close()  # may free other threads' buffers: only unpinned ones
                        pending_scopes.pop()
                    except BufferError:
                        pass  # someone's view pins memory inside it: close it later
            for _, view, pattern in held:
                assert view.tobytes() == pattern
                view.release()
            return len(pending_scopes)

        run_concurrently(worker, THREADS)
        arena.reset()  # every view is gone: everything can be freed
        assert (arena.bytes_used, arena.allocation_count, arena.depth) == (0, 0, 0)
        assert arena.alloc(10).address % 8 == 0

    stress(body)


def test_every_pooled_buffer_has_one_owner_at_a_time(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    rounds = 400
    max_cached = 16 * 1024

    def body() -> None:
        pool = BufferPool((256, 4096), max_cached_bytes=max_cached)
        owners: dict[int, int] = {}
        owners_lock = threading.Lock()

        def worker(t: int) -> int:
            held = []
            for i in range(rounds):
                buf = pool.acquire((i * 37 + t) % 5000, zero=bool(i % 2))
                with owners_lock:
                    assert owners.setdefault(buf.address, t) == t, "a pooled buffer handed to two threads"
                memoryview(buf)[:] = bytes([t + 1]) * len(buf)
                switch()
                held.append(buf)
                if len(held) > 3:
                    old = held.pop(0)
                    assert bytes(old) == bytes([t + 1]) * len(old), "someone wrote into our buffer"
                    with owners_lock:
                        del owners[old.address]
                    old.release()
            for buf in held:
                with owners_lock:
                    del owners[buf.address]
                buf.release()
            return rounds

        acquired = sum(run_concurrently(worker, THREADS))
        assert pool.outstanding == 0 and not owners
        assert pool.hits + pool.misses == acquired
        assert pool.cached_bytes <= max_cached

    stress(body)


# ---- guards --------------------------------------------------------------------------------------


def test_scope_guards_fire_exactly_once(stress: Callable[..., int], run_concurrently: RunConcurrently) -> None:
    guards_per_round = 200

    def body() -> None:
        fired = [AtomicInt(0) for _ in range(guards_per_round)]

        def fire(i: int, n: int) -> None:
            fired[i].fetch_add(n)
            switch()  # the others reach the guard while it fires

        guards = [memkit.defer(fire, i, 1) for i in range(guards_per_round)]
        disarmable = [memkit.defer(fire, i, 100) for i in range(guards_per_round)]

        def worker(t: int) -> None:
            order = list(range(guards_per_round))
            random.Random(t).shuffle(order)
            for i in order:
                if t % 2:
                    guards[i].run()
                else:
                    guards[i].__exit__(None, None, None)
                if (i + t) % 2:
                    disarmable[i].disarm()
                else:
                    disarmable[i].run()

        run_concurrently(worker, THREADS)
        for i, count in enumerate(fired):
            assert count.load() in (1, 101), f"guard {i}: {count.load()}"  # once; the other once or never
        assert not any(g.armed for g in guards + disarmable)

    stress(body)


# ---- the allocator hook ----------------------------------------------------------------------------


@pytest.fixture
def hook_restored() -> Iterator[None]:
    was = alloc.installed()
    yield
    if not was:
        alloc.uninstall()


@pytest.mark.usefixtures("hook_restored")
def test_all_threads_tracker_counts_every_allocation_of_threads_without_the_gil(
    stress: Callable[..., int],
) -> None:
    def body() -> None:
        with alloc.track(threads="all") as t:
            made = _alloc._raw_churn(THREADS, 3000)  # OS threads, no GIL, racing on the counters
        # Every block the threads made (the int holding the result is built uncounted): no
        # lost update.
        assert made == THREADS * 3000
        assert t.allocations == made
        assert t.allocated_bytes - t.freed_bytes == t.net_bytes

    stress(body)


@pytest.mark.usefixtures("hook_restored")
def test_current_thread_trackers_and_limits_see_only_their_own_thread(
    stress: Callable[..., int], run_concurrently: RunConcurrently
) -> None:
    blocks, size = 40, 10_000
    budget = blocks * size + 64 * 1024  # this thread's blocks fit; the others' would not

    def body() -> None:
        def worker(t: int) -> tuple[int, int | None, int]:
            addresses = []
            with alloc.limit(budget) as lim:
                for _ in range(blocks):
                    addresses.append(_alloc._allocate("mem", size))
                for a in addresses:
                    _alloc._free("mem", a)
            assert lim.refused is None, "another thread's allocations were charged to this budget"
            assert blocks * size <= lim.allocated_bytes < budget
            held = []
            try:
                with alloc.limit(3 * size + 4096):
                    while True:
                        held.append(_alloc._allocate("raw", size))
            except alloc.MemoryLimitError as exc:
                refused = exc.request
            finally:
                for a in held:
                    _alloc._free("raw", a)
            return lim.allocations, refused, len(held)

        for allocations, refused, got in run_concurrently(worker, THREADS):
            assert allocations >= blocks
            assert refused == size and got == 3  # refused at this thread's own fourth block

    stress(body)


@pytest.mark.usefixtures("hook_restored")
def test_all_threads_limit_is_shared_and_trackers_come_and_go_under_load(stress: Callable[..., int]) -> None:
    size = 64 * 1024
    budget = 2 * 1024 * 1024
    grace = 1024 * 1024  # kGrace: one grace for the budget, shared by every thread (docs/alloc.md)
    # OS threads churning raw blocks without the GIL all along: the budget counts every
    # thread, so their blocks are charged too. Each churn thread holds at most 8 blocks,
    # one grown to at most 3000 bytes before its free and 7 of at most 2000 bytes
    # (_raw_churn): what they hold inside the block, or free inside it having allocated it
    # before, is within this many bytes either way.
    churn_threads = 2
    churn_in_flight = churn_threads * (7 * 2000 + 3000)
    assert churn_in_flight < size
    room = 2 * (budget + grace) // size  # more blocks than any worker can get

    def body() -> None:
        churn = threading.Thread(target=_alloc._raw_churn, args=(churn_threads, 100_000))
        churn.start()  # about 50 ms of churn: it runs across the limit() block below
        try:
            for _ in range(20):  # all-thread scopes entering and leaving while they run
                with alloc.track(threads="all") as t:
                    pass
                assert t.allocated_bytes - t.freed_bytes == t.net_bytes

            # Inside the block nothing should allocate but the workers' requests: everything
            # below is made before it, and the threads start before it and end after it
            # (starting and ending a thread allocates and frees). Plain locks pass the
            # threads along (acquiring and releasing one allocates nothing), the workers
            # store into lists made big enough beforehand, and the main thread waits over
            # an iterator made beforehand. The garbage collector is off: a collection inside
            # the block would free objects allocated before it, and the budget would count
            # those frees as room.
            held = [[0] * room for _ in range(THREADS)]
            counts = [0] * THREADS
            errors: list[BaseException] = []
            start, leave = threading.Lock(), threading.Lock()
            start.acquire()
            leave.acquire()
            finished = [threading.Lock() for _ in range(THREADS)]
            for lock in finished:
                lock.acquire()
            waits = iter(finished)

            def fill(mine: list[int]) -> int:
                # Each worker stops at its own MemoryError, and only there. Nothing here may
                # unwind through a cleanup handler (finally, with, except ... as): CPython
                # (3.11 and later) unwinding into one allocates an int for the instruction
                # offset past the first 256 and, when that is refused, tries again forever.
                n = 0
                try:
                    while True:
                        mine[n] = _alloc._allocate("raw", size)  # the address int is never charged
                        n += 1
                except MemoryError:
                    return n

            def worker(i: int) -> None:
                # Through the gates one after the other. Plain calls, not `with`: that
                # allocates (the bound __exit__), and a worker may get here when the others
                # have left no room.
                start.acquire()
                start.release()
                try:
                    counts[i] = fill(held[i])
                except BaseException as exc:  # re-raised in the main thread below
                    errors.append(exc)
                finished[i].release()
                leave.acquire()
                leave.release()

            workers = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
            for w in workers:
                w.start()
            gc.disable()
            try:
                with alloc.limit(budget, threads="all") as lim:
                    start.release()
                    for lock in waits:
                        lock.acquire()
            finally:
                gc.enable()
                leave.release()
                for w in workers:
                    w.join()
            if errors:
                raise errors[0]
            got = sum(counts) * size
            # One budget and one grace for all of them: the first refusal trips the budget
            # and stops the worker it refused; the others go on until a block would take
            # the budget past budget + grace, so the last one stops with less than a block
            # of room, and the budget's net is never above budget + grace. That net is `got`
            # plus the churn's bytes (within churn_in_flight either way) plus a few hundred
            # bytes of Python bookkeeping (the workers' tracebacks). `got` and budget +
            # grace are whole numbers of blocks, and the churn and the bookkeeping together
            # stay under one block, so these bounds are the exact ones, budget + grace -
            # size <= got <= budget + grace, written with the churn's margin.
            assert budget + grace - size - churn_in_flight <= got <= budget + grace + churn_in_flight, (got, counts)
            assert lim.peak_bytes <= budget + grace  # the budget's net never passes its ceiling
            assert lim.refused is not None
            for mine, n in zip(held, counts, strict=True):
                for a in mine[:n]:
                    _alloc._free("raw", a)
        finally:
            churn.join()

    stress(body)
