"""Several processes count into one block of shared memory, with atomics and no lock.

The parent creates a `multiprocessing.shared_memory.SharedMemory` block; every worker
process attaches to it by name and makes its own atomics over the same bytes
(`AtomicInt.from_buffer`, `AtomicIntArray.from_buffer`) - atomics are never pickled, a
copy would stop sharing. The layout, one cache line (pair) per hot value so processes on
different cores do not false-share:

    offset 0             ready   workers attached so far
    offset CACHE_PAD     go      set by the parent (RELEASE) once all are ready (ACQUIRE)
    offset 2*CACHE_PAD   total   every worker increments it
    offset 3*CACHE_PAD   per_worker[i], CACHE_PAD apart: each worker's own count

The final count is exact. Workers start with the "spawn" method (fresh interpreters: no
fork of a threaded parent), and the block is unlinked however the run ends.

    python examples/shm_counter.py
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from multiprocessing.process import BaseProcess

from memkit import CACHE_PAD, AtomicInt, AtomicIntArray, Ordering

WORKERS = 3
INCREMENTS = 20_000
READY, GO, TOTAL, PER_WORKER = 0, CACHE_PAD, 2 * CACHE_PAD, 3 * CACHE_PAD
SIZE = PER_WORKER + WORKERS * CACHE_PAD


def worker(name: str, index: int) -> None:
    # Children started by multiprocessing share the parent's resource tracker, so attaching
    # registers nothing new, and the parent's unlink() cleans up.
    shm = shared_memory.SharedMemory(name=name)
    ready = AtomicInt.from_buffer(shm.buf, READY)
    go = AtomicInt.from_buffer(shm.buf, GO)
    total = AtomicInt.from_buffer(shm.buf, TOTAL)
    mine = AtomicIntArray.from_buffer(shm.buf, WORKERS, PER_WORKER, padded=True)
    try:
        ready.fetch_add(1)
        while not go.load(Ordering.ACQUIRE):  # start together, so the increments really interleave
            time.sleep(0.001)
        for _ in range(INCREMENTS):
            total.fetch_add(1)
            mine.fetch_add(index, 1, Ordering.RELAXED)  # only this process writes its slot
    finally:
        # The atomics hold exports of shm.buf: close() would raise BufferError under them.
        for atomic in (ready, go, total, mine):
            atomic.release()
        shm.close()


def wait_until(what: str, done: Callable[[], bool], procs: list[BaseProcess]) -> None:
    deadline = time.monotonic() + 60
    while not done():
        if any(p.exitcode not in (None, 0) for p in procs):
            raise RuntimeError(f"a worker failed while waiting for {what}: exit codes {[p.exitcode for p in procs]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.005)


def main() -> None:
    shm = shared_memory.SharedMemory(create=True, size=SIZE)
    procs: list[BaseProcess] = []
    atomics: list[AtomicInt | AtomicIntArray] = []
    try:
        memory = shm.buf
        assert memory is not None  # None only once closed
        memory[:SIZE] = bytes(SIZE)  # a new block reads as zeros on Linux; say so anyway
        ready = AtomicInt.from_buffer(shm.buf, READY)
        go = AtomicInt.from_buffer(shm.buf, GO)
        total = AtomicInt.from_buffer(shm.buf, TOTAL)
        per_worker = AtomicIntArray.from_buffer(shm.buf, WORKERS, PER_WORKER, padded=True)
        atomics += [ready, go, total, per_worker]

        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=worker, args=(shm.name, i)) for i in range(WORKERS)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        wait_until("the workers to attach", lambda: ready.load() == WORKERS, procs)
        go.store(1, Ordering.RELEASE)  # publishes the start to every worker's ACQUIRE load
        wait_until("the workers to finish", lambda: all(p.exitcode is not None for p in procs), procs)
        elapsed = time.perf_counter() - started

        print(f"{WORKERS} processes x {INCREMENTS:,} increments in {elapsed:.2f} s (start-up included)")
        print(f"shared total: {total.load():,} (expected {WORKERS * INCREMENTS:,})")
        print(f"per process:  {per_worker.tolist()}")
        assert total.load() == WORKERS * INCREMENTS
        assert per_worker.tolist() == [INCREMENTS] * WORKERS
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
        for atomic in atomics:
            atomic.release()  # end the exports first: shm.close() raises BufferError under a live atomic
        shm.close()
        shm.unlink()


if __name__ == "__main__":
    main()
