"""Mutex and RwLock beside threading's locks, uncontended and contended.

The rows of ``python -m memkit bench --filter sync`` and of benchmarks/test_bench_sync.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from itertools import repeat

from ..sync import Mutex, RwLock
from .model import Case, Group, Params, Prepared, at_most, expect


def _unc_lock(factory: Callable[[], AbstractContextManager[object]]) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        calls, lock = p["calls"], factory()

        def run() -> int:
            n = 0
            for _ in repeat(None, calls):
                with lock:
                    n += 1
            return n

        def check(result: object) -> None:
            expect(result == calls, "the loop counted every pass")

        return Prepared(run, check)

    return setup


def _unc_mutex(p: Params) -> Prepared:
    calls, m = p["calls"], Mutex(0)

    def run() -> None:
        for _ in repeat(None, calls):
            with m.lock() as g:
                g.value += 1

    def check(_: object) -> None:
        guard = m.try_lock()
        expect(guard is not None and guard.value >= calls, "the mutex is free and counted every pass")
        if guard is not None:
            guard.release()

    return Prepared(run, check)


def _unc_rwlock_read(p: Params) -> Prepared:
    calls, rw = p["calls"], RwLock(0)

    def run() -> None:
        for _ in repeat(None, calls):
            with rw.read() as r:
                _ = r.value

    return Prepared(run)


_SYNC_UNCONTENDED = Group(
    key="sync.uncontended",
    area="sync",
    title="uncontended lock + increment, {calls} times",
    op="lock",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock", "with threading.Lock(): n += 1", _unc_lock(threading.Lock), baseline=True),
        Case("mutex", "with m.lock() as g: g.value += 1 (Mutex)", _unc_mutex, bars=(at_most(1.0),)),
        Case("rlock", "with threading.RLock(): n += 1", _unc_lock(threading.RLock)),
        Case("rwlock_read", "with rw.read() as r: r.value (RwLock)", _unc_rwlock_read),
    ),
)


def _two_threads(increment: Callable[[], None], n: int) -> Callable[[], None]:
    def run() -> None:
        barrier = threading.Barrier(2)

        def worker() -> None:
            barrier.wait()
            for _ in repeat(None, n):
                increment()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


def _cont_lock(p: Params) -> Prepared:
    n, lock, box = p["increments"], threading.Lock(), [0]

    def increment() -> None:
        with lock:
            box[0] += 1

    def check(_: object) -> None:
        expect(box[0] > 0 and box[0] % (2 * n) == 0, "no increment was lost")

    return Prepared(_two_threads(increment, n), check)


def _cont_mutex(p: Params) -> Prepared:
    n, m = p["increments"], Mutex(0)

    def increment() -> None:
        with m.lock() as g:
            g.value += 1

    def check(_: object) -> None:
        guard = m.try_lock()
        expect(guard is not None and guard.value > 0 and guard.value % (2 * n) == 0, "no increment was lost")
        if guard is not None:
            guard.release()

    return Prepared(_two_threads(increment, n), check)


_SYNC_CONTENDED = Group(
    key="sync.contended",
    area="sync",
    title="contended counter: 2 threads x {increments} increments",
    op="run",
    ops=None,
    params={"increments": 20_000},
    cases=(
        Case("lock", "threading.Lock", _cont_lock, baseline=True),
        Case("mutex", "memkit Mutex", _cont_mutex),
    ),
    weight=1.5,
    pytest_rounds=5,
)


GROUPS: tuple[Group, ...] = (_SYNC_UNCONTENDED, _SYNC_CONTENDED)
