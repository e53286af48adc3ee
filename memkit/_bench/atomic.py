"""Atomics: AtomicInt and ShardedCounter beside a lock and the ``atomics`` package, and false sharing.

The rows of ``python -m memkit bench --filter atomic`` and of benchmarks/test_bench_atomic.py.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from itertools import repeat

from ..atomic import AtomicInt, AtomicIntArray, ShardedCounter
from .model import Case, Group, Params, Prepared, at_most, call_loop, expect, faster, slower


def _lock_increment() -> Callable[[], None]:
    lock = threading.Lock()
    box = [0]

    def increment() -> None:
        with lock:
            box[0] += 1

    return increment


def _call_lock_locked(p: Params) -> Prepared:
    return Prepared(call_loop(threading.Lock().locked, p["calls"]))


def _call_fetch_add(p: Params) -> Prepared:
    a = AtomicInt()

    def check(_: object) -> None:
        expect(a.load() >= p["calls"], "fetch_add(1) counted every call")

    return Prepared(call_loop(a.fetch_add, p["calls"], 1), check)


def _call_load(p: Params) -> Prepared:
    return Prepared(call_loop(AtomicInt(10**6).load, p["calls"]))


def _call_sharded(p: Params) -> Prepared:
    return Prepared(call_loop(ShardedCounter().add, p["calls"]))


def _call_with_lock(p: Params) -> Prepared:
    return Prepared(call_loop(_lock_increment(), p["calls"]))


def _call_atomics_package(p: Params) -> Prepared:
    atomics = importlib.import_module("atomics")
    return Prepared(call_loop(atomics.atomic(width=8, atype=atomics.INT).fetch_inc, p["calls"]))


_ATOMIC_CALL = Group(
    key="atomic.call",
    area="atomic",
    title="one operation per call through a generic call loop f(*args, **kwargs), {calls} calls",
    op="call",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock_locked", "threading.Lock().locked() (builtin floor)", _call_lock_locked, baseline=True),
        Case("fetch_add", "AtomicInt.fetch_add(1)", _call_fetch_add, bars=(at_most(1.6),)),
        Case("load", "AtomicInt.load()", _call_load, bars=(at_most(1.4),)),
        Case("sharded", "ShardedCounter.add()", _call_sharded),
        Case("with_lock", "with lock: n += 1 (a function)", _call_with_lock, bars=(slower(4, "fetch_add"),)),
        Case(
            "atomics_pkg",
            "atomics package: fetch_inc()",
            _call_atomics_package,
            requires=("atomics",),
            sparse=True,
        ),
    ),
    note="the loop pytest-benchmark calls a function in: its call overhead is shared by every row",
)


def _loop_lock_locked(p: Params) -> Prepared:
    calls, lock = p["calls"], threading.Lock()

    def run() -> None:
        for _ in repeat(None, calls):
            lock.locked()

    return Prepared(run)


def _loop_fetch_add(p: Params) -> Prepared:
    calls, a = p["calls"], AtomicInt()

    def run() -> None:
        for _ in repeat(None, calls):
            a.fetch_add(1)

    def check(_: object) -> None:
        expect(a.load() >= calls, "fetch_add(1) counted every call")

    return Prepared(run, check)


def _loop_load(p: Params) -> Prepared:
    calls, a = p["calls"], AtomicInt(10**6)

    def run() -> None:
        for _ in repeat(None, calls):
            a.load()

    return Prepared(run)


def _loop_sharded(p: Params) -> Prepared:
    calls, c = p["calls"], ShardedCounter()

    def run() -> None:
        for _ in repeat(None, calls):
            c.add()

    return Prepared(run)


def _loop_with_lock(p: Params) -> Prepared:
    calls, lock = p["calls"], threading.Lock()

    def run() -> int:
        n = 0
        for _ in repeat(None, calls):
            with lock:
                n += 1
        return n

    def check(result: object) -> None:
        expect(result == calls, "the lock loop counted every call")

    return Prepared(run, check)


_ATOMIC_LOOP = Group(
    key="atomic.loop",
    area="atomic",
    title="{calls} operations in a bare loop",
    op="operation",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock_locked", "lock.locked() (builtin floor)", _loop_lock_locked, baseline=True),
        Case("fetch_add", "a.fetch_add(1)", _loop_fetch_add, bars=(at_most(1.6),)),
        Case("load", "a.load()", _loop_load, bars=(at_most(1.4),)),
        Case("sharded", "c.add() (ShardedCounter)", _loop_sharded),
        Case("with_lock", "with lock: n += 1", _loop_with_lock, bars=(slower(4, "fetch_add"),)),
    ),
    note="fetch_add and load return a new int each call, which lock.locked() (a bool) does not",
)


def _contend(padded: bool) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        from .._native import core

        arr, n = AtomicIntArray(2, padded=padded), p["increments"]
        kernel = core.atomic._contend

        def run() -> int:
            return kernel(arr, 2, n)

        def check(_: object) -> None:
            expect(arr[0] > 0 and arr[0] % n == 0 and arr[0] == arr[1], "both threads made every increment")

        return Prepared(run, check)

    return setup


_FALSE_SHARING = Group(
    key="atomic.false_sharing",
    area="atomic",
    title="false sharing: 2 threads x {increments} relaxed increments of neighbouring elements",
    op="run",
    ops=None,
    params={"increments": 2_000_000},
    cases=(
        Case("unpadded", "AtomicIntArray(2): elements share a cache line", _contend(padded=False), baseline=True),
        Case("padded", "AtomicIntArray(2, padded=True): CACHE_PAD apart", _contend(padded=True), bars=(faster(4),)),
    ),
    weight=1.5,
    pytest_rounds=9,
    note="a C++ kernel, GIL released, one thread pinned per CPU; needs 2 CPUs to show anything",
)


GROUPS: tuple[Group, ...] = (_ATOMIC_CALL, _ATOMIC_LOOP, _FALSE_SHARING)
