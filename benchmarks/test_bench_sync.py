"""Owning locks beside threading's locks, in one run.

- uncontended: `with m.lock() as g: g.value += 1` vs `with threading.Lock(): n += 1` (baseline)
  vs `with threading.RLock(): n += 1`, and `with rw.read() as r: r.value`;
- contended: 2 threads x 20000 increments of one counter, memkit.Mutex vs threading.Lock.

    pytest benchmarks/test_bench_sync.py --benchmark-enable
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from itertools import repeat
from typing import Any

import pytest
from _bench import baseline

from memkit import Mutex, RwLock

CALLS = 1000
UNCONTENDED = f"uncontended lock + increment, {CALLS} times"
CONTENDED = "contended counter: 2 threads x 20000 increments"


@pytest.mark.benchmark(group=UNCONTENDED)
def test_uncontended_threading_lock(benchmark: Any) -> None:
    baseline(benchmark)
    lock = threading.Lock()

    def run() -> None:
        n = 0
        for _ in repeat(None, CALLS):
            with lock:
                n += 1

    benchmark(run)


@pytest.mark.benchmark(group=UNCONTENDED)
def test_uncontended_memkit_mutex(benchmark: Any) -> None:
    m = Mutex(0)

    def run() -> None:
        for _ in repeat(None, CALLS):
            with m.lock() as g:
                g.value += 1

    benchmark(run)


@pytest.mark.benchmark(group=UNCONTENDED)
def test_uncontended_threading_rlock(benchmark: Any) -> None:
    lock = threading.RLock()

    def run() -> None:
        n = 0
        for _ in repeat(None, CALLS):
            with lock:
                n += 1

    benchmark(run)


@pytest.mark.benchmark(group=UNCONTENDED)
def test_uncontended_rwlock_read(benchmark: Any) -> None:
    rw = RwLock(0)

    def run() -> None:
        for _ in repeat(None, CALLS):
            with rw.read() as r:
                _ = r.value

    benchmark(run)


def two_threads(increment: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        barrier = threading.Barrier(2)

        def worker() -> None:
            barrier.wait()
            for _ in repeat(None, 20000):
                increment()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


@pytest.mark.benchmark(group=CONTENDED)
def test_contended_threading_lock(benchmark: Any) -> None:
    baseline(benchmark)
    lock = threading.Lock()
    box = [0]

    def increment() -> None:
        with lock:
            box[0] += 1

    benchmark.pedantic(two_threads(increment), rounds=5, iterations=1)
    assert box[0] % 40000 == 0


@pytest.mark.benchmark(group=CONTENDED)
def test_contended_memkit_mutex(benchmark: Any) -> None:
    m = Mutex(0)

    def increment() -> None:
        with m.lock() as g:
            g.value += 1

    benchmark.pedantic(two_threads(increment), rounds=5, iterations=1)
    assert m.try_lock().value % 40000 == 0  # type: ignore[union-attr]
