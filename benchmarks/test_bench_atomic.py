"""Atomics beside the builtin floor and the lock a user would otherwise take, in one run.

Two harnesses for the same calls, because they answer different questions:

- "one call": pytest-benchmark's own loop calls the bound method (`benchmark(a.fetch_add, 1)`),
  the way a user benchmarks a call with this tool. Its per-call harness cost is shared by
  every row.
- "1000 calls in a loop": a bare `for` loop makes the calls, so the call itself dominates.
  Here fetch_add and load also pay for the Python int they return, which the floor
  (`lock.locked()` returns a bool singleton) does not.

The false-sharing group runs the private C++ kernel: 2 OS threads (GIL released), each
incrementing its own element of an AtomicIntArray, unpadded (neighbours share a cache line)
vs padded (CACHE_PAD apart).

    pytest benchmarks/test_bench_atomic.py --benchmark-enable
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import repeat
from typing import Any

import pytest
from _bench import baseline

from memkit import AtomicInt, AtomicIntArray, ShardedCounter
from memkit._core import atomic as _atomic

CALLS = 1000
ONE = "atomic: one call"
LOOP = f"atomic: {CALLS} calls in a loop"
SHARING = "false sharing: 2 threads x 2M increments"


def lock_increment() -> Callable[[], None]:
    lock = threading.Lock()
    box = [0]

    def increment() -> None:
        with lock:
            box[0] += 1

    return increment


# ---- one call -----------------------------------------------------------------------------------


@pytest.mark.benchmark(group=ONE)
def test_one_builtin_lock_locked(benchmark: Any) -> None:
    baseline(benchmark)
    benchmark(threading.Lock().locked)


@pytest.mark.benchmark(group=ONE)
def test_one_fetch_add(benchmark: Any) -> None:
    a = AtomicInt()
    benchmark(a.fetch_add, 1)
    assert a.load() > 0


@pytest.mark.benchmark(group=ONE)
def test_one_load(benchmark: Any) -> None:
    benchmark(AtomicInt(10**6).load)


@pytest.mark.benchmark(group=ONE)
def test_one_sharded_add(benchmark: Any) -> None:
    benchmark(ShardedCounter().add)


@pytest.mark.benchmark(group=ONE)
def test_one_with_lock_increment(benchmark: Any) -> None:
    benchmark(lock_increment())


@pytest.mark.benchmark(group=ONE)
def test_one_atomics_package_fetch_inc(benchmark: Any) -> None:
    atomics = pytest.importorskip("atomics")
    benchmark(atomics.atomic(width=8, atype=atomics.INT).fetch_inc)


# ---- a bare loop ----------------------------------------------------------------------------------


@pytest.mark.benchmark(group=LOOP)
def test_loop_builtin_lock_locked(benchmark: Any) -> None:
    baseline(benchmark)
    lock = threading.Lock()

    def run() -> None:
        for _ in repeat(None, CALLS):
            lock.locked()

    benchmark(run)


@pytest.mark.benchmark(group=LOOP)
def test_loop_fetch_add(benchmark: Any) -> None:
    a = AtomicInt()

    def run() -> None:
        for _ in repeat(None, CALLS):
            a.fetch_add(1)

    benchmark(run)


@pytest.mark.benchmark(group=LOOP)
def test_loop_load(benchmark: Any) -> None:
    a = AtomicInt(10**6)

    def run() -> None:
        for _ in repeat(None, CALLS):
            a.load()

    benchmark(run)


@pytest.mark.benchmark(group=LOOP)
def test_loop_sharded_add(benchmark: Any) -> None:
    c = ShardedCounter()

    def run() -> None:
        for _ in repeat(None, CALLS):
            c.add()

    benchmark(run)


@pytest.mark.benchmark(group=LOOP)
def test_loop_with_lock_increment(benchmark: Any) -> None:
    lock = threading.Lock()

    def run() -> None:
        n = 0
        for _ in repeat(None, CALLS):
            with lock:
                n += 1

    benchmark(run)


# ---- false sharing --------------------------------------------------------------------------------


def contend(padded: bool) -> Callable[[], int]:
    arr = AtomicIntArray(2, padded=padded)
    return lambda: _atomic._contend(arr, 2, 2_000_000)


@pytest.mark.benchmark(group=SHARING)
def test_false_sharing_unpadded(benchmark: Any) -> None:
    baseline(benchmark)
    benchmark.pedantic(contend(padded=False), rounds=9, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group=SHARING)
def test_false_sharing_padded(benchmark: Any) -> None:
    benchmark.pedantic(contend(padded=True), rounds=9, iterations=1, warmup_rounds=1)
