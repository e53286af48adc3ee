"""Mutex, RwLock, Condvar, lock_all and poisoning (API.md, memkit.sync)."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memkit import Condvar, Mutex, MutexGuard, PoisonError, ReadGuard, RwLock, WriteGuard, lock_all


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run fn in another thread and return what it returned (or raise what it raised)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out.get("value")


# ---- Mutex --------------------------------------------------------------------------------------


def test_value_is_reached_through_the_guard() -> None:
    m = Mutex([1])
    with m.lock() as g:
        assert isinstance(g, MutexGuard)
        g.value.append(2)
        g.value = [*g.value, 3]
        assert m.locked()
    assert not m.locked()
    assert m.try_lock().value == [1, 2, 3]  # type: ignore[union-attr]
    assert repr(m) == "Mutex([1, 2, 3])"


def test_relocking_from_the_same_thread_is_a_runtime_error() -> None:
    m = Mutex(0)
    with m.lock():
        with pytest.raises(RuntimeError, match="already holds the Mutex"):
            m.lock()
        assert m.try_lock() is None
        assert repr(m) == "Mutex(<locked>)"


def test_try_lock_returns_none_while_another_thread_holds_it() -> None:
    m = Mutex(0)
    g = m.lock()
    assert in_thread(m.try_lock) is None
    g.release()
    assert in_thread(lambda: m.try_lock() is not None)


def test_released_guard_raises_and_release_is_idempotent() -> None:
    m = Mutex("v")
    g = m.lock()
    g.release()
    g.release()
    assert g.released and repr(g) == "<MutexGuard released>"
    with pytest.raises(ValueError, match="MutexGuard has been released"):
        _ = g.value
    with pytest.raises(ValueError, match="MutexGuard has been released"):
        g.value = "w"
    with pytest.raises(ValueError):
        g.__enter__()
    assert not m.locked()


def test_collection_unlocks_without_poisoning() -> None:
    m = Mutex(0)
    g = m.lock()
    del g
    assert not m.locked() and not m.is_poisoned()


def test_exception_in_the_block_poisons() -> None:
    m = Mutex({"balance": 10})
    with pytest.raises(ZeroDivisionError):
        with m.lock() as g:
            g.value["balance"] = -1
            _ = 1 / 0
    assert m.is_poisoned() and not m.locked()
    assert repr(m) == "Mutex({'balance': -1}, poisoned)"
    with pytest.raises(PoisonError, match="the Mutex is poisoned") as info:
        m.lock()
    guard = info.value.guard
    assert m.locked()  # the PoisonError's guard holds the lock
    guard.value = {"balance": 10}  # repair
    guard.release()
    with pytest.raises(PoisonError):
        m.try_lock()
    m.clear_poison()
    with m.lock() as g:
        assert g.value == {"balance": 10}
    assert issubclass(PoisonError, RuntimeError)


def test_poison_false_opts_out() -> None:
    m = Mutex(0, poison=False)
    with pytest.raises(KeyError):
        with m.lock():
            raise KeyError
    assert not m.is_poisoned()
    with m.lock() as g:
        assert g.value == 0


def test_generator_closed_early_does_not_poison() -> None:
    m = Mutex(0)

    def gen() -> Iterator[int]:
        with m.lock() as g:
            yield g.value

    it = gen()
    next(it)
    it.close()
    assert not m.is_poisoned() and not m.locked()


def test_timeouts() -> None:
    m = Mutex(0)
    g = m.lock()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"could not acquire the Mutex within 0\.1 s"):
        in_thread(lambda: m.lock(timeout=0.1))
    assert 0.08 <= time.monotonic() - started < 5
    with pytest.raises(TimeoutError):
        in_thread(lambda: m.lock(timeout=0))
    g.release()
    assert in_thread(lambda: m.lock(timeout=0).released is False)


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)])
def test_bad_timeouts(timeout: object, error: type[Exception]) -> None:
    m = Mutex(0)
    with pytest.raises(error, match="timeout"):
        m.lock(timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(error):
        RwLock(0).read(timeout)  # type: ignore[arg-type]
    assert not m.locked()


def test_argument_errors() -> None:
    with pytest.raises(TypeError):
        Mutex()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Mutex(0, True)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected or repeated keyword argument 'wait'"):
        Mutex(0).lock(wait=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        MutexGuard()  # type: ignore[call-arg]


def test_lock_waits_with_the_gil_released() -> None:
    m = Mutex(0)
    holding = threading.Event()
    progress = []

    def worker() -> None:
        with m.lock():
            holding.set()
            for i in range(50):
                progress.append(i)
                time.sleep(0.001)

    t = threading.Thread(target=worker)
    t.start()
    holding.wait()
    with m.lock(timeout=10) as mine:  # blocks until worker is done: worker must have run meanwhile
        assert len(progress) == 50
        assert mine.value == 0
    t.join()


def test_threads_incrementing_get_the_exact_total(run_concurrently: Callable[..., list[Any]]) -> None:
    m = Mutex(0)

    def worker(index: int) -> None:
        for _ in range(5000):
            with m.lock() as g:
                g.value += 1

    for _ in range(3):  # every run
        run_concurrently(worker, 4)
    assert m.try_lock().value == 3 * 4 * 5000  # type: ignore[union-attr]


def test_guard_cycles_are_collected() -> None:
    import weakref

    class Box:
        pass

    box = Box()
    m = Mutex(box)
    box.guard = m.lock()  # type: ignore[attr-defined]
    ref = weakref.ref(box)
    del box, m
    gc.collect()
    assert ref() is None


def test_generic_alias() -> None:
    assert str(Mutex[int]) == "memkit.sync.Mutex[int]"


# ---- Ctrl-C --------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to the own process is POSIX")
@pytest.mark.parametrize("what", ["mutex", "rwlock", "condvar"])
def test_waits_are_interruptible_by_ctrl_c(what: str) -> None:
    assert threading.current_thread() is threading.main_thread()
    m = Mutex(0, poison=False)  # the KeyboardInterrupt leaves a with block: no poisoning wanted here
    rw = RwLock(0)
    cv = Condvar()
    holder = in_thread(m.lock) if what == "mutex" else None  # held by a thread that has finished
    reader = in_thread(rw.read) if what == "rwlock" else None  # a reader held by a finished thread
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            if what == "mutex":
                m.lock(timeout=30)
            elif what == "rwlock":
                rw.write(timeout=30)
            else:
                with m.lock() as g:
                    try:
                        cv.wait(g, timeout=30)
                    finally:
                        assert m.locked() and not g.released  # the mutex is held again before raising
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10
    if holder is not None:
        holder.release()
    if reader is not None:
        reader.release()
    assert not m.locked()
    with m.lock(timeout=1), rw.write(timeout=1):
        pass


# ---- RwLock -------------------------------------------------------------------------------------


def test_readers_share_and_writers_exclude() -> None:
    rw = RwLock([1])
    r1, r2 = rw.read(), rw.read()
    assert isinstance(r1, ReadGuard) and r1.value is r2.value
    assert in_thread(rw.try_write) is None
    assert in_thread(lambda: rw.try_read() is not None)
    with pytest.raises(AttributeError, match="read-only"):
        r1.value = [2]  # type: ignore[misc]
    r1.release()
    r2.release()
    with rw.write() as w:
        assert isinstance(w, WriteGuard)
        w.value = [9]
        assert in_thread(rw.try_read) is None
    assert rw.try_read().value == [9]  # type: ignore[union-attr]


def test_same_thread_reentry_that_would_deadlock_is_refused() -> None:
    rw = RwLock(0)
    with rw.write():
        with pytest.raises(RuntimeError, match="holds the RwLock's write lock: reading it too"):
            rw.read()
        with pytest.raises(RuntimeError, match="write lock already"):
            rw.write()
        assert rw.try_read() is None and rw.try_write() is None
    with rw.read():
        with pytest.raises(RuntimeError, match="writing would wait for itself"):
            rw.write()
        with rw.read():  # a second read is fine while no writer waits
            pass
        writer = threading.Thread(target=lambda: rw.write(timeout=5).release())
        writer.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                rw.read().release()
            except RuntimeError as exc:
                assert "a writer waits" in str(exc)
                break
            time.sleep(0.005)
        else:
            pytest.fail("the waiting writer was never seen")
    writer.join(10)
    assert not writer.is_alive()


def test_writer_preference_a_stream_of_readers_cannot_starve_a_writer() -> None:
    rw = RwLock(0)
    stop = threading.Event()
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            with rw.read(timeout=5):
                reads[0] += 1
                time.sleep(0.001)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    time.sleep(0.05)  # the readers overlap continuously from here on
    started = time.monotonic()
    with rw.write(timeout=5) as w:  # would time out if readers kept jumping the queue
        w.value = 1
    waited = time.monotonic() - started
    stop.set()
    for t in readers:
        t.join(10)
    assert waited < 2 and reads[0] > 0


def test_new_readers_wait_behind_a_waiting_writer() -> None:
    rw = RwLock(0)
    first = rw.read()
    writer_started = threading.Event()
    order: list[str] = []

    def writer() -> None:
        writer_started.set()
        with rw.write(timeout=10):
            order.append("writer")

    t = threading.Thread(target=writer)
    t.start()
    writer_started.wait()
    time.sleep(0.1)  # the writer is waiting now
    assert in_thread(rw.try_read) is None
    with pytest.raises(TimeoutError):
        in_thread(lambda: rw.read(timeout=0.05))
    late = threading.Thread(target=lambda: (rw.read(timeout=10).release(), order.append("reader")))
    late.start()
    time.sleep(0.05)
    first.release()
    t.join(10)
    late.join(10)
    assert order == ["writer", "reader"]


def test_rwlock_poisoning_by_writers_only() -> None:
    rw = RwLock(0)
    with pytest.raises(ValueError):
        with rw.read():
            raise ValueError
    assert not rw.is_poisoned()
    with pytest.raises(ValueError):
        with rw.write() as w:
            w.value = 5
            raise ValueError
    assert rw.is_poisoned()
    with pytest.raises(PoisonError, match="the RwLock is poisoned") as info:
        rw.read()
    info.value.guard.release()
    rw.clear_poison()
    assert rw.read().value == 5


def test_rwlock_stress_exact_counts(run_concurrently: Callable[..., list[Any]]) -> None:
    rw = RwLock(0)

    def worker(index: int) -> int:
        seen = 0
        for i in range(2000):
            if (i + index) % 4 == 0:
                with rw.write() as w:
                    w.value += 1
            else:
                with rw.read() as r:
                    seen = max(seen, r.value)
        return seen

    for _ in range(2):
        run_concurrently(worker, 4)
    assert rw.read().value == 2 * 4 * 500


# ---- Condvar ------------------------------------------------------------------------------------


def test_condvar_producer_consumer() -> None:
    m: Mutex[list[int]] = Mutex([])
    cv = Condvar()
    got: list[int] = []

    def consumer() -> None:
        while len(got) < 100:
            with m.lock() as g:
                assert cv.wait_while(g, lambda q: not q, timeout=10)
                got.extend(g.value)
                g.value.clear()

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(100):
        with m.lock() as g:
            g.value.append(i)
        cv.notify_one()
    t.join(20)
    assert got == list(range(100))


def test_condvar_timeouts_and_notify_all() -> None:
    m = Mutex(0)
    cv = Condvar()
    with m.lock() as g:
        started = time.monotonic()
        assert cv.wait(g, timeout=0.05) is False
        assert time.monotonic() - started >= 0.04
        assert m.locked()  # held again after the wait
        assert cv.wait_while(g, lambda v: v == 0, timeout=0.05) is False
        assert cv.wait_while(g, lambda v: v != 0, timeout=0.05) is True  # false at once
    woke = []

    def waiter() -> None:
        with m.lock() as g:
            woke.append(cv.wait(g, timeout=10))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    cv.notify_all()
    for t in threads:
        t.join(10)
    assert woke == [True, True, True]


def test_notify_one_wakes_one() -> None:
    m = Mutex(0)
    cv = Condvar()
    woke = []

    def waiter() -> None:
        with m.lock() as g:
            woke.append(cv.wait(g, timeout=1.0))

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    cv.notify_one()
    for t in threads:
        t.join(10)
    assert sorted(woke) == [False, True]


def test_condvar_bad_input() -> None:
    cv = Condvar()
    m = Mutex(0)
    with pytest.raises(TypeError, match="MutexGuard"):
        cv.wait(RwLock(0).write())  # type: ignore[arg-type]
    g = m.lock()
    g.release()
    with pytest.raises(ValueError, match="released"):
        cv.wait(g)
    g = m.lock()
    with pytest.raises(RuntimeError, match="another thread"):
        in_thread(lambda: cv.wait(g, timeout=0.01))
    with pytest.raises(TypeError, match="predicate must be callable"):
        cv.wait_while(g, 5)  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError):
        cv.wait_while(g, lambda v: 1 / 0)
    assert m.locked()
    g.release()
    with pytest.raises(TypeError):
        Condvar(1)  # type: ignore[call-arg]


# ---- lock_all -----------------------------------------------------------------------------------


def transfer(src: Mutex[int], dst: Mutex[int], amount: int) -> None:
    with lock_all(src, dst) as (a, b):
        a.value -= amount
        b.value += amount


def test_opposite_order_transfers_never_deadlock_and_keep_the_total(
    run_concurrently: Callable[..., list[Any]],
) -> None:
    a, b = Mutex(1000), Mutex(1000)

    def worker(index: int) -> None:
        for i in range(3000):
            if index % 2 == 0:
                transfer(a, b, i % 7)
            else:
                transfer(b, a, i % 5)

    run_concurrently(worker, 2)
    with lock_all(a, b) as (ga, gb):
        assert ga.value + gb.value == 2000


def test_lock_all_returns_guards_in_argument_order_and_mixes_kinds() -> None:
    m, rw = Mutex("m"), RwLock("rw")
    with lock_all(rw, m) as (first, second):
        assert (first.value, second.value) == ("rw", "m")
        assert isinstance(first, WriteGuard)
    assert not m.locked() and rw.try_write() is not None


def test_lock_all_timeout_leaves_nothing_locked() -> None:
    a, b = Mutex(0), Mutex(0)
    held = b.lock()
    with pytest.raises(TimeoutError):
        in_thread(lambda: lock_all(a, b, timeout=0.05).__enter__())
    assert not a.locked()
    held.release()


def test_lock_all_poisons_on_exception_and_checks_input() -> None:
    a, b = Mutex(0), Mutex(0)
    with pytest.raises(KeyError):
        with lock_all(a, b):
            raise KeyError
    assert a.is_poisoned() and b.is_poisoned()
    with pytest.raises(ValueError, match="same lock twice"):
        lock_all(a, a)
    with pytest.raises(TypeError, match="Mutex and RwLock"):
        lock_all(a, threading.Lock())
    with pytest.raises(TypeError, match="at least one lock"):
        lock_all()
    with pytest.raises(ValueError, match="timeout"):
        lock_all(a, timeout=-1)
