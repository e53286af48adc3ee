"""The benchmark cases: what ``python -m memkit bench`` and ``benchmarks/`` both time.

One source of truth. Every comparison is a :class:`Group` of :class:`Case` rows - each
memkit operation beside the alternative a user would otherwise pick (the group's
baseline) - and every case's ``setup`` builds the callable that is timed, plus an optional
check of what it did and an optional context it runs in. ``benchmarks/test_bench_*.py``
hand these callables to pytest-benchmark; ``memkit._bench_cli`` times them interleaved,
round by round, and compares the ratios with the bars in :class:`Bar`.

Private: names, sizes and rows may change between versions.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import io
import shutil
import struct as pystruct
import tempfile
import threading
import tracemalloc
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import count, repeat
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from . import alloc
from ._workloads import DICT_JSON_RECORDS, dict_json_workload
from .atomic import AtomicInt, AtomicIntArray, ShardedCounter
from .buffers import AlignedBuffer, Arena, BufferPool
from .cell import Cell, RefCell
from .layout import Struct
from .slotmap import SlotMap
from .sync import Mutex, RwLock

__all__ = [
    "AREAS",
    "DICT_JSON_RECORDS",
    "GROUPS",
    "Bar",
    "BenchCheckError",
    "Case",
    "Group",
    "Prepared",
    "PyRefCell",
    "call_loop",
    "dict_json_workload",
    "empty_loop",
    "group",
    "missing_modules",
    "repeated",
]

Params = Mapping[str, int]
"""A group's counts (calls per round, records, increments), scaled down for smoke runs."""


class BenchCheckError(AssertionError):
    """A timed callable did not do what it is meant to: its timings would mean nothing."""


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise BenchCheckError(what)


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """The optional modules among ``names`` that cannot be imported here."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


# ---- loops ----------------------------------------------------------------------------------------


def repeated(fn: Callable[..., object], calls: int, *args: Any, **kwargs: Any) -> Callable[[], None]:
    """A function that calls ``fn(*args, **kwargs)`` ``calls`` times in a bare ``for`` loop.

    Timing many calls per round spreads a harness's own per-round cost (a timer read is
    tens of nanoseconds) over them, so sub-microsecond operations compare fairly.
    """
    if kwargs:

        def run_kw() -> None:
            for _ in repeat(None, calls):
                fn(*args, **kwargs)

        return run_kw
    if args:

        def run_args() -> None:
            for _ in repeat(None, calls):
                fn(*args)

        return run_args

    def run() -> None:
        for _ in repeat(None, calls):
            fn()

    return run


def call_loop(fn: Callable[..., object], calls: int, *args: Any) -> Callable[[], None]:
    """``calls`` calls of ``fn(*args, **kwargs)`` made the way pytest-benchmark makes them.

    ``benchmark(fn, *args)`` times exactly this loop (with empty ``kwargs``), so every row
    of a group pays the same generic call overhead - also a row without arguments.
    """
    kwargs: dict[str, Any] = {}

    def run() -> None:
        for _ in repeat(None, calls):
            fn(*args, **kwargs)

    return run


def empty_loop(calls: int) -> Callable[[], None]:
    """The bare loop of :func:`repeated`, to time its overhead."""

    def run() -> None:
        for _ in repeat(None, calls):
            pass

    return run


# ---- the pure-Python RefCell memkit.RefCell is measured against ------------------------------------


class PyBorrowError(RuntimeError):
    """The pure-Python RefCell's borrow conflict."""


class PyRefCell:
    """A RefCell written the obvious way in pure Python: what memkit.RefCell is measured against."""

    def __init__(self, value: Any) -> None:
        self._value = value
        self._borrows = 0  # > 0 shared, -1 exclusive

    def borrow_mut(self) -> PyRefMut:
        if self._borrows != 0:
            raise PyBorrowError("already borrowed")
        self._borrows = -1
        return PyRefMut(self)


class PyRefMut:
    """The exclusive guard of :class:`PyRefCell`."""

    def __init__(self, cell: PyRefCell) -> None:
        self._cell: PyRefCell | None = cell

    @property
    def value(self) -> Any:
        if self._cell is None:
            raise ValueError("released")
        return self._cell._value

    @value.setter
    def value(self, value: Any) -> None:
        if self._cell is None:
            raise ValueError("released")
        self._cell._value = value

    def release(self) -> None:
        if self._cell is not None:
            self._cell._borrows = 0
            self._cell = None

    def __enter__(self) -> PyRefMut:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


# ---- the model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """A target a row's ratio must meet, set when its feature was built.

    ``kind`` "at_most": ``row / against <= factor``; "faster": ``against / row >= factor``
    (the row is at least ``factor`` times faster); "slower": ``row / against >= factor``.
    ``against`` is a case key of the same group; None means the group's baseline.
    """

    kind: Literal["at_most", "faster", "slower"]
    factor: float
    against: str | None = None

    def met(self, ratio: float) -> bool:
        """Whether ``ratio`` (row / against) meets the bar."""
        if self.kind == "at_most":
            return ratio <= self.factor
        if self.kind == "faster":
            return ratio * self.factor <= 1.0
        return ratio >= self.factor

    def describe(self, against_label: str | None = None) -> str:
        """The bar in words: ``<= 1.5x``, ``>= 4x faster than X``, ``>= 4x slower than X``."""
        target = f" {against_label}" if against_label else ""
        if self.kind == "at_most":
            factor = f"{self.factor:.2f}".rstrip("0")  # 1.0, 1.15, 0.6
            return f"<= {factor}{'0' if factor.endswith('.') else ''}x{target}"
        than = f" than {against_label}" if against_label else ""
        return f">= {self.factor:g}x {self.kind}{than}"


def at_most(factor: float, against: str | None = None) -> Bar:
    """Bar: the row costs at most ``factor`` times ``against`` (default: the baseline)."""
    return Bar("at_most", factor, against)


def faster(factor: float, against: str | None = None) -> Bar:
    """Bar: the row is at least ``factor`` times faster than ``against``."""
    return Bar("faster", factor, against)


def slower(factor: float, against: str | None = None) -> Bar:
    """Bar: the row is at least ``factor`` times slower than ``against``."""
    return Bar("slower", factor, against)


@dataclass
class Prepared:
    """A case ready to time.

    ``body`` is the timed callable. ``check(result)`` raises :class:`BenchCheckError` if
    ``body`` did not do its work (it gets body's return value and runs inside ``context``).
    ``context``, when set, is entered around the timed calls (the pytest benchmarks enter
    it once around all rounds, ``python -m memkit bench`` around each round, as it
    interleaves rows). ``cleanup`` frees what setup made outside the interpreter (files).
    """

    body: Callable[[], object]
    check: Callable[[object], None] | None = None
    context: AbstractContextManager[object] | None = None
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Case:
    """One row: a label, how to set it up, and the bars it has to meet."""

    key: str
    label: str
    setup: Callable[[Params], Prepared]
    baseline: bool = False
    bars: tuple[Bar, ...] = ()
    requires: tuple[str, ...] = ()
    """Optional modules; the row is skipped when one cannot be imported."""
    loop_overhead: bool = False
    """The bare loop the other rows run their calls in (shown for reference)."""
    sparse: bool = False
    """Expensive and informative only: timed in a few rounds, not in every one."""


@dataclass(frozen=True)
class Group:
    """A comparison: rows timed side by side, with ratios to the baseline row."""

    key: str
    area: str
    title: str
    """May name params: ``"allocate 64 bytes, {calls} times"``."""
    op: str
    """What one operation is, for the per-operation time: ``"call"``, ``"allocation"``."""
    ops: str | None
    """The param counting operations per timed call (None: one per call)."""
    params: Mapping[str, int]
    cases: tuple[Case, ...]
    weight: float = 1.0
    """This group's share of the time budget (1 for a microbenchmark group)."""
    collect: bool = False
    """Run ``gc.collect()`` before each round, so every round starts from a similar heap."""
    isolated: bool = False
    """Timed in a separate interpreter (the allocator hook stays in a process once installed)."""
    pytest_rounds: int | None = None
    """pytest-benchmark rounds for slow rows (None: pytest-benchmark calibrates)."""
    round_ns: int | None = None
    """How long one round of one row should last, if not the runner's default: long enough
    for the callable to run back to back (warm caches) where that is what is compared."""
    timer: Literal["wall", "cpu"] = "wall"
    """"cpu": time a round by the CPU time the process spent in it, not elapsed time. For
    rows that do not wait on each other's threads and whose rounds last milliseconds: on a
    busy machine nearly every such round is preempted several times, and the waits swamp
    what is measured."""
    note: str = ""

    def scaled(self, scale: float) -> dict[str, int]:
        """The params times ``scale`` (at least 2 each): smoke runs use tiny sizes."""
        return {k: v if scale == 1 else max(2, int(v * scale)) for k, v in self.params.items()}

    def describe(self, params: Params) -> str:
        """The title with its counts filled in."""
        return self.title.format(**{k: f"{v:,}" for k, v in params.items()})

    def case(self, key: str) -> Case:
        """The case called ``key``."""
        for c in self.cases:
            if c.key == key:
                return c
        raise KeyError(f"group {self.key!r} has no case {key!r}")

    @property
    def baseline(self) -> Case:
        """The row every ratio is relative to."""
        return next(c for c in self.cases if c.baseline)


# ---- fast-call glue ---------------------------------------------------------------------------------


def _fastcall_lock(p: Params) -> Prepared:
    return Prepared(repeated(threading.Lock().locked, p["calls"]))


def _fastcall_probe(p: Params) -> Prepared:
    from ._native import core

    probe = core._testing.FastCallProbe()
    _expect(probe.is_set() is True, "FastCallProbe.is_set() is True")
    return Prepared(repeated(probe.is_set, p["calls"]))


def _fastcall_pybind(p: Params) -> Prepared:
    from ._native import core

    probe = core._testing.FastCallProbe()
    _expect(probe.pybind_is_set() is True, "FastCallProbe.pybind_is_set() is True")
    return Prepared(repeated(probe.pybind_is_set, p["calls"]))


def _empty_loop(p: Params) -> Prepared:
    return Prepared(empty_loop(p["calls"]))


_FASTCALL = Group(
    key="fastcall.method",
    area="fastcall",
    title="a trivial no-argument method, {calls} calls in a loop",
    op="call",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock_locked", "threading.Lock().locked() (builtin floor)", _fastcall_lock, baseline=True),
        Case("fastcall", "memkit fast-call method", _fastcall_probe, bars=(at_most(1.5),)),
        Case("pybind11", "the same method through pybind11", _fastcall_pybind),
        Case("loop", "the bare loop", _empty_loop, loop_overhead=True),
    ),
)


# ---- AlignedBuffer ----------------------------------------------------------------------------------

BUFFER_SIZE = 4096


def _buf_bytearray(p: Params) -> Prepared:
    return Prepared(repeated(bytearray, p["calls"], BUFFER_SIZE))


def _buf_aligned(p: Params) -> Prepared:
    _expect(len(AlignedBuffer(BUFFER_SIZE)) == BUFFER_SIZE, "len(AlignedBuffer(n)) == n")
    return Prepared(repeated(AlignedBuffer, p["calls"], BUFFER_SIZE))


def _buf_aligned_unzeroed(p: Params) -> Prepared:
    return Prepared(repeated(AlignedBuffer, p["calls"], BUFFER_SIZE, zero=False))


def _buf_numpy_empty(p: Params) -> Prepared:
    import numpy as np

    return Prepared(repeated(np.empty, p["calls"], BUFFER_SIZE, np.uint8))


def _buf_numpy_zeros(p: Params) -> Prepared:
    import numpy as np

    return Prepared(repeated(np.zeros, p["calls"], BUFFER_SIZE, np.uint8))


def _mv_bytearray(p: Params) -> Prepared:
    return Prepared(repeated(memoryview, p["calls"], bytearray(BUFFER_SIZE)))


def _mv_aligned(p: Params) -> Prepared:
    return Prepared(repeated(memoryview, p["calls"], AlignedBuffer(BUFFER_SIZE)))


_BUFFERS_ALLOC = Group(
    key="buffers.alloc",
    area="buffers",
    title=f"allocate {BUFFER_SIZE:,} bytes, {{calls}} times",
    op="allocation",
    ops="calls",
    params={"calls": 100},
    cases=(
        Case("bytearray", f"bytearray({BUFFER_SIZE})", _buf_bytearray, baseline=True),
        Case("aligned", f"AlignedBuffer({BUFFER_SIZE})", _buf_aligned),
        Case("aligned_unzeroed", f"AlignedBuffer({BUFFER_SIZE}, zero=False)", _buf_aligned_unzeroed),
        Case("numpy_empty", f"numpy.empty({BUFFER_SIZE}, uint8)", _buf_numpy_empty, requires=("numpy",)),
        Case("numpy_zeros", f"numpy.zeros({BUFFER_SIZE}, uint8)", _buf_numpy_zeros, requires=("numpy",)),
    ),
)

_BUFFERS_EXPORT = Group(
    key="buffers.memoryview",
    area="buffers",
    title=f"memoryview of a {BUFFER_SIZE:,}-byte buffer, {{calls}} times",
    op="export",
    ops="calls",
    params={"calls": 100},
    cases=(
        Case("bytearray", "memoryview(bytearray)", _mv_bytearray, baseline=True),
        Case("aligned", "memoryview(AlignedBuffer)", _mv_aligned),
    ),
)


# ---- Arena ------------------------------------------------------------------------------------------

ARENA_SIZE = 64


def _arena_bytearray(p: Params) -> Prepared:
    calls = p["calls"]

    def run() -> None:
        for _ in repeat(None, calls):
            bytearray(ARENA_SIZE)

    return Prepared(run)


def _arena_reset(p: Params) -> Prepared:
    calls = p["calls"]
    arena = Arena()

    def run() -> None:
        for _ in repeat(None, calls):
            arena.alloc(ARENA_SIZE)
        arena.reset()

    def check(_: object) -> None:
        _expect(arena.allocation_count == 0 and arena.chunk_count == 1, "reset() freed every allocation")

    return Prepared(run, check)


def _arena_scope(p: Params) -> Prepared:
    calls = p["calls"]
    arena = Arena()

    def run() -> None:
        with arena.scope():
            for _ in repeat(None, calls):
                arena.alloc(ARENA_SIZE)

    def check(_: object) -> None:
        _expect(arena.allocation_count == 0, "leaving the scope freed every allocation")

    return Prepared(run, check)


def _arena_numpy(p: Params) -> Prepared:
    import numpy as np

    calls, empty, uint8 = p["calls"], np.empty, np.uint8

    def run() -> None:
        for _ in repeat(None, calls):
            empty(ARENA_SIZE, uint8)

    return Prepared(run)


def _arena_pyarrow(p: Params) -> Prepared:
    calls, allocate = p["calls"], importlib.import_module("pyarrow").allocate_buffer

    def run() -> None:
        for _ in repeat(None, calls):
            allocate(ARENA_SIZE)

    return Prepared(run)


_ARENA = Group(
    key="arena.alloc",
    area="arena",
    title=f"allocate {ARENA_SIZE} bytes (zeroed), {{calls}} times",
    op="allocation",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("bytearray", f"bytearray({ARENA_SIZE})", _arena_bytearray, baseline=True),
        Case("arena_reset", f"Arena.alloc({ARENA_SIZE}), reset() per round", _arena_reset, bars=(at_most(0.6),)),
        Case("arena_scope", f"Arena.alloc({ARENA_SIZE}) in a scope()", _arena_scope, bars=(at_most(0.6),)),
        Case("numpy_empty", f"numpy.empty({ARENA_SIZE}, uint8)", _arena_numpy, requires=("numpy",)),
        Case("pyarrow", f"pyarrow.allocate_buffer({ARENA_SIZE})", _arena_pyarrow, requires=("pyarrow",)),
    ),
)


# ---- BufferPool -------------------------------------------------------------------------------------

REQUEST_SIZE = 16 * 1024


def _request_stream() -> io.BytesIO:
    return io.BytesIO(bytes(range(256)) * (REQUEST_SIZE // 256))


def _pool_bytearray(p: Params) -> Prepared:
    calls, source = p["calls"], _request_stream()

    def run() -> None:
        for _ in repeat(None, calls):
            buf = bytearray(REQUEST_SIZE)
            source.seek(0)
            source.readinto(buf)

    return Prepared(run)


def _pool_aligned(p: Params) -> Prepared:
    calls, source = p["calls"], _request_stream()

    def run() -> None:
        for _ in repeat(None, calls):
            buf = AlignedBuffer(REQUEST_SIZE)
            source.seek(0)
            source.readinto(buf)

    return Prepared(run)


def _pool_pool(zero: bool) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        calls, source, pool = p["calls"], _request_stream(), BufferPool()

        def run() -> None:
            for _ in repeat(None, calls):
                buf = pool.acquire(REQUEST_SIZE, zero=zero)
                source.seek(0)
                source.readinto(buf)

        def check(_: object) -> None:
            # `buf = pool.acquire(...)` acquires before the previous buffer is dropped: two blocks alternate.
            _expect(pool.outstanding == 0 and pool.misses <= 2, "the pool reuses its two blocks")

        return Prepared(run, check)

    return setup


def _pool_floor(p: Params) -> Prepared:
    calls, source, buf = p["calls"], _request_stream(), bytearray(REQUEST_SIZE)

    def run() -> None:
        for _ in repeat(None, calls):
            source.seek(0)
            source.readinto(buf)

    return Prepared(run)


_POOL = Group(
    key="pool.request",
    area="pool",
    title="request loop: a 16 KiB buffer + readinto from a stream, {calls} times",
    op="request",
    ops="calls",
    params={"calls": 100},
    cases=(
        Case("bytearray", "bytearray(16384)", _pool_bytearray, baseline=True),
        Case("aligned", "AlignedBuffer(16384)", _pool_aligned),
        Case("pool", "BufferPool.acquire(16384)", _pool_pool(zero=True), bars=(at_most(0.7),)),
        Case("pool_unzeroed", "BufferPool.acquire(16384, zero=False)", _pool_pool(zero=False), bars=(at_most(0.7),)),
        Case("floor", "one reused buffer (no allocation: the floor)", _pool_floor),
    ),
    note="the loop is mostly the 16 KiB copy in readinto; the floor row allocates nothing at all",
)


# ---- atomics ----------------------------------------------------------------------------------------


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
        _expect(a.load() >= p["calls"], "fetch_add(1) counted every call")

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
        _expect(a.load() >= calls, "fetch_add(1) counted every call")

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
        _expect(result == calls, "the lock loop counted every call")

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
        from ._native import core

        arr, n = AtomicIntArray(2, padded=padded), p["increments"]
        kernel = core.atomic._contend

        def run() -> int:
            return kernel(arr, 2, n)

        def check(_: object) -> None:
            _expect(arr[0] > 0 and arr[0] % n == 0 and arr[0] == arr[1], "both threads made every increment")

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


# ---- Cell / RefCell ---------------------------------------------------------------------------------


def _borrow_lock(p: Params) -> Prepared:
    calls, lock = p["calls"], threading.Lock()

    def run() -> int:
        x = 0
        for _ in repeat(None, calls):
            with lock:
                x += 1
        return x

    return Prepared(run)


def _borrow_refcell(p: Params) -> Prepared:
    calls, cell = p["calls"], RefCell(0)

    def run() -> None:
        for _ in repeat(None, calls):
            with cell.borrow_mut() as g:
                g.value += 1

    def check(_: object) -> None:
        _expect(cell.borrow_state == ("unborrowed", 0) and cell.borrow().value >= calls, "every borrow ended")

    return Prepared(run, check)


def _borrow_pyrefcell(p: Params) -> Prepared:
    calls, cell = p["calls"], PyRefCell(0)

    def run() -> None:
        for _ in repeat(None, calls):
            with cell.borrow_mut() as g:
                g.value += 1

    def check(_: object) -> None:
        _expect(cell._borrows == 0 and cell._value >= calls, "every borrow ended")

    return Prepared(run, check)


_CELL_BORROW = Group(
    key="cell.borrow_mut",
    area="cell",
    title="with cell.borrow_mut() as g: g.value += 1, {calls} times",
    op="block",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock", "with threading.Lock(): x += 1", _borrow_lock, baseline=True),
        Case(
            "refcell",
            "memkit RefCell",
            _borrow_refcell,
            bars=(at_most(1.0), faster(4, "pyrefcell")),
        ),
        Case("pyrefcell", "pure-Python RefCell", _borrow_pyrefcell),
    ),
)


def _get_call_lock(p: Params) -> Prepared:
    return Prepared(call_loop(threading.Lock().locked, p["calls"]))


def _get_call_cell(p: Params) -> Prepared:
    return Prepared(call_loop(Cell(12345).get, p["calls"]))


def _get_loop_lock(p: Params) -> Prepared:
    calls, lock = p["calls"], threading.Lock()

    def run() -> None:
        for _ in repeat(None, calls):
            lock.locked()

    return Prepared(run)


def _get_loop_cell(p: Params) -> Prepared:
    calls, cell = p["calls"], Cell(12345)

    def run() -> None:
        for _ in repeat(None, calls):
            cell.get()

    return Prepared(run)


_CELL_GET_CALL = Group(
    key="cell.get_call",
    area="cell",
    title="Cell.get() through a generic call loop f(*args, **kwargs), {calls} calls",
    op="call",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock_locked", "threading.Lock().locked() (builtin floor)", _get_call_lock, baseline=True),
        Case("cell_get", "Cell.get()", _get_call_cell, bars=(at_most(1.5),)),
    ),
)

_CELL_GET_LOOP = Group(
    key="cell.get_loop",
    area="cell",
    title="Cell.get(), {calls} calls in a bare loop",
    op="call",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock_locked", "lock.locked() (builtin floor)", _get_loop_lock, baseline=True),
        Case("cell_get", "cell.get()", _get_loop_cell, bars=(at_most(1.5),)),
    ),
)


# ---- Mutex / RwLock ---------------------------------------------------------------------------------


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
            _expect(result == calls, "the loop counted every pass")

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
        _expect(guard is not None and guard.value >= calls, "the mutex is free and counted every pass")
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
        _expect(box[0] > 0 and box[0] % (2 * n) == 0, "no increment was lost")

    return Prepared(_two_threads(increment, n), check)


def _cont_mutex(p: Params) -> Prepared:
    n, m = p["increments"], Mutex(0)

    def increment() -> None:
        with m.lock() as g:
            g.value += 1

    def check(_: object) -> None:
        guard = m.try_lock()
        _expect(guard is not None and guard.value > 0 and guard.value % (2 * n) == 0, "no increment was lost")
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


# ---- SlotMap ----------------------------------------------------------------------------------------


def _lookup_dict(p: Params) -> Prepared:
    d: dict[int, object] = {}
    counter = count()
    for _ in range(p["keys"]):
        d[next(counter)] = object()
    keys = list(d)

    def run() -> None:
        for k in keys:
            d[k]

    return Prepared(run)


def _filled_slotmap(n: int) -> tuple[SlotMap[object], list[int]]:
    sm: SlotMap[object] = SlotMap()
    return sm, [sm.insert(object()) for _ in range(n)]


def _lookup_slotmap(p: Params) -> Prepared:
    sm, keys = _filled_slotmap(p["keys"])

    def run() -> None:
        for k in keys:
            sm[k]

    return Prepared(run)


def _lookup_slotmap_get(p: Params) -> Prepared:
    sm, keys = _filled_slotmap(p["keys"])

    def run() -> None:
        for k in keys:
            sm.get(k)

    def check(_: object) -> None:
        _expect(all(sm.get(k) is not None for k in keys), "every key is live")

    return Prepared(run, check)


def _lookup_loop(p: Params) -> Prepared:
    _, keys = _filled_slotmap(p["keys"])

    def run() -> None:
        for _ in keys:
            pass

    return Prepared(run)


_SLOTMAP_LOOKUP = Group(
    key="slotmap.lookup",
    area="slotmap",
    title="lookup of {keys} live keys",
    op="lookup",
    ops="keys",
    params={"keys": 1000},
    cases=(
        Case("dict", "d[key], int keys 0..n-1", _lookup_dict, baseline=True),
        Case("slotmap", "sm[key]", _lookup_slotmap, bars=(at_most(1.5),)),
        Case("slotmap_get", "sm.get(key)", _lookup_slotmap_get),
        Case("loop", "the bare loop", _lookup_loop, loop_overhead=True),
    ),
)


def _churn_dict_counter(p: Params) -> Prepared:
    calls, d, v = p["calls"], dict[int, object](), object()
    counter = count(step=calls)

    def run() -> None:
        start = next(counter)
        for n in range(start, start + calls):
            d[n] = v
            del d[n]

    def check(_: object) -> None:
        _expect(not d, "every key was deleted")

    return Prepared(run, check)


def _churn_dict_reused(p: Params) -> Prepared:
    calls, d, v = p["calls"], dict[int, object](), object()

    def run() -> None:
        for n in range(calls):
            d[n] = v
            del d[n]

    def check(_: object) -> None:
        _expect(not d, "every key was deleted")

    return Prepared(run, check)


def _churn_slotmap(use_del: bool) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        calls, v = p["calls"], object()
        sm: SlotMap[object] = SlotMap()
        counter = count(step=calls)

        if use_del:

            def run() -> None:
                start = next(counter)
                for _ in range(start, start + calls):
                    k = sm.insert(v)
                    del sm[k]

        else:

            def run() -> None:
                start = next(counter)
                for _ in range(start, start + calls):
                    k = sm.insert(v)
                    sm.remove(k)

        def check(_: object) -> None:
            _expect(len(sm) == 0, "every key was removed")

        return Prepared(run, check)

    return setup


def _churn_loop(p: Params) -> Prepared:
    calls = p["calls"]
    counter = count(step=calls)

    def run() -> None:
        start = next(counter)
        for _ in range(start, start + calls):
            pass

    return Prepared(run)


_SLOTMAP_CHURN = Group(
    key="slotmap.churn",
    area="slotmap",
    title="insert + remove, {calls} times",
    op="insert+remove",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("dict_counter", "d[n] = v; del d[n], n a counter", _churn_dict_counter, baseline=True),
        Case("slotmap_remove", "k = sm.insert(v); sm.remove(k)", _churn_slotmap(use_del=False), bars=(at_most(1.5),)),
        Case("slotmap_del", "k = sm.insert(v); del sm[k]", _churn_slotmap(use_del=True), bars=(at_most(1.5),)),
        Case("dict_reused", "the dict reusing keys 0..n-1 (the ABA hazard)", _churn_dict_reused),
        Case("loop", "the bare loop", _churn_loop, loop_overhead=True),
    ),
)


# ---- the allocator hook -----------------------------------------------------------------------------


class _Installed:
    """memkit's hook counting, from enter to exit."""

    def __enter__(self) -> None:
        alloc.install()

    def __exit__(self, *exc: object) -> None:
        alloc.uninstall()


class _Limited:
    """Inside ``alloc.limit("1 GiB")``; ``budget`` is the Limit while inside."""

    def __init__(self) -> None:
        self.budget: alloc.Limit | None = None

    def __enter__(self) -> None:
        self.budget = alloc.limit("1 GiB")
        self.budget.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.budget is not None:
            self.budget.__exit__(None, None, None)
        alloc.uninstall()


class _Tracemalloc:
    """``tracemalloc.start(1)`` from enter to exit."""

    def __enter__(self) -> None:
        tracemalloc.start(1)

    def __exit__(self, *exc: object) -> None:
        tracemalloc.stop()


class _Memray:
    """A memray Tracker with Python allocator tracing, one capture file per entry."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="memkit-bench-memray-"))
        self._rounds = count()
        self._tracker: AbstractContextManager[Any] | None = None
        self.last_capture_bytes = 0

    def __enter__(self) -> None:
        memray = importlib.import_module("memray")
        for leftover in self.workdir.glob("*.bin"):
            leftover.unlink()
        self._capture = self.workdir / f"capture-{next(self._rounds)}.bin"
        self._tracker = memray.Tracker(self._capture, trace_python_allocators=True)
        self._tracker.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self._tracker = None
            self.last_capture_bytes = self._capture.stat().st_size if self._capture.exists() else 0

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _workload(p: Params) -> Callable[[], int]:
    records = p["records"]
    return lambda: dict_json_workload(records)


def _check_groups(result: object) -> None:
    _expect(result == 7, "the workload made its 7 groups")


def _wl_untracked(p: Params) -> Prepared:
    _expect(not alloc.installed() and not tracemalloc.is_tracing(), "no hook is counting before the untracked row")
    return Prepared(_workload(p), _check_groups)


def _wl_counting(p: Params) -> Prepared:
    def check(result: object) -> None:
        _check_groups(result)
        _expect(alloc.stats().allocations > p["records"] * 40, "the hook counted the workload's allocations")

    return Prepared(_workload(p), check, _Installed())


def _wl_limit(p: Params) -> Prepared:
    ctx = _Limited()

    def check(result: object) -> None:
        _check_groups(result)
        budget = ctx.budget
        _expect(budget is not None and budget.allocations > p["records"] * 40, "limit() counted the workload")

    return Prepared(_workload(p), check, ctx)


def _wl_uninstalled(p: Params) -> Prepared:
    # After uninstall memkit's layer stays in the chain, passing every call through.
    alloc.install()
    alloc.uninstall()
    return Prepared(_workload(p), _check_groups)


def _wl_tracemalloc(p: Params) -> Prepared:
    def check(result: object) -> None:
        _check_groups(result)
        _expect(tracemalloc.get_traced_memory()[1] > p["records"] * 50, "tracemalloc traced the workload")

    return Prepared(_workload(p), check, _Tracemalloc())


def _wl_memray(p: Params) -> Prepared:
    ctx = _Memray()
    return Prepared(_workload(p), _check_groups, ctx, ctx.cleanup)


_ALLOC_WORKLOAD = Group(
    key="alloc.workload",
    area="alloc",
    title="{records} small dicts through json dumps/loads and grouping (~45 allocations each)",
    op="run",
    ops=None,
    params={"records": DICT_JSON_RECORDS},
    cases=(
        Case("untracked", "untracked", _wl_untracked, baseline=True),
        Case("counting", "memkit hook installed, counting", _wl_counting, bars=(at_most(1.15),)),
        Case("limit", 'inside memkit.alloc.limit("1 GiB")', _wl_limit, bars=(at_most(1.2),)),
        Case("uninstalled", "after install() + uninstall()", _wl_uninstalled),
        Case("tracemalloc", "tracemalloc.start(1)", _wl_tracemalloc, sparse=True),
        Case("memray", "memray (trace_python_allocators)", _wl_memray, requires=("memray",), sparse=True),
    ),
    weight=6.0,
    collect=True,
    isolated=True,
    pytest_rounds=15,
    note="once installed, memkit's layer stays in the allocator chain, passing calls through: the "
    "untracked rows run with it, as the after-uninstall row does (a control: it should read about 1.00x)",
    timer="cpu",
)


def _switch_tracemalloc(p: Params) -> Prepared:
    def run() -> None:
        tracemalloc.start(1)
        tracemalloc.stop()

    return Prepared(run)


def _switch_memkit(p: Params) -> Prepared:
    def run() -> None:
        alloc.install()
        alloc.uninstall()

    def check(_: object) -> None:
        _expect(not alloc.installed(), "uninstall() stopped counting")

    return Prepared(run, check)


_ALLOC_SWITCH = Group(
    key="alloc.switch",
    area="alloc",
    title="switching allocation tracking on and off",
    op="switch",
    ops=None,
    params={},
    cases=(
        Case("tracemalloc", "tracemalloc.start(1) + stop()", _switch_tracemalloc, baseline=True),
        Case("memkit", "memkit.alloc.install() + uninstall()", _switch_memkit),
    ),
    weight=0.5,
    isolated=True,
)


def _pairs(ctx_factory: Callable[[], AbstractContextManager[object]] | None, what: str) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        from ._native import core

        churn, pairs = core.alloc._object_churn, p["pairs"]
        live = min(1000, pairs)
        ctx = ctx_factory() if ctx_factory is not None else None

        def run() -> int:
            return churn(pairs, live)

        def check(_: object) -> None:
            if what == "counting":
                _expect(alloc.stats().by_domain["object"].allocations >= pairs, "the hook counted every pair")
            elif what == "limit" and isinstance(ctx, _Limited):
                _expect(ctx.budget is not None and ctx.budget.allocations >= pairs, "limit() counted every pair")

        return Prepared(run, check, ctx)

    return setup


_ALLOC_PAIRS = Group(
    key="alloc.pairs",
    area="alloc",
    title="{pairs} PyObject_Malloc/Free pairs in a C loop, 1,000 blocks live (the hook's own cost)",
    op="pair",
    ops="pairs",
    params={"pairs": 100_000},
    cases=(
        Case("untracked", "untracked", _pairs(None, "untracked"), baseline=True),
        Case("counting", "memkit hook installed, counting", _pairs(_Installed, "counting")),
        Case("limit", 'inside memkit.alloc.limit("1 GiB")', _pairs(_Limited, "limit")),
        Case("tracemalloc", "tracemalloc.start(1)", _pairs(_Tracemalloc, "tracemalloc")),
    ),
    isolated=True,
    timer="cpu",
)


# ---- layout -----------------------------------------------------------------------------------------


@functools.cache
def _particle_types() -> tuple[Any, type[ctypes.Structure]]:
    """The record of the layout benchmarks (34 bytes of fields, 40 with padding), as a
    memkit struct and as ctypes declares it. Built on first use: the layout engine's work
    would otherwise slow every ``python -m memkit`` command's start."""
    from .layout import f64, struct, u16, u32, u64

    @struct
    class Particle(Struct):
        id: u64
        x: f64
        y: f64
        kind: u32
        flags: u16

    class CParticle(ctypes.Structure):
        _fields_ = [
            ("id", ctypes.c_uint64),
            ("x", ctypes.c_double),
            ("y", ctypes.c_double),
            ("kind", ctypes.c_uint32),
            ("flags", ctypes.c_uint16),
        ]

    return Particle, CParticle


def _particle_buffer() -> AlignedBuffer:
    from .layout import size_of

    particle = _particle_types()[0]
    buf = AlignedBuffer(size_of(particle))
    particle.view(buf).x = 1.5
    return buf


def _x_offset() -> int:
    from .layout import offset_of

    return offset_of(_particle_types()[0], "x")


def _read_ctypes(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[1].from_buffer(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            _ = rec.x

    def check(_: object) -> None:
        _expect(rec.x == 1.5, "the field reads 1.5")

    return Prepared(run, check)


def _read_view(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[0].view(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            _ = rec.x

    def check(_: object) -> None:
        _expect(rec.x == 1.5, "the field reads 1.5")

    return Prepared(run, check)


def _read_unpack(p: Params) -> Prepared:
    calls, buf = p["calls"], _particle_buffer()
    unpack_from, at = pystruct.Struct("d").unpack_from, _x_offset()

    def run() -> None:
        for _ in repeat(None, calls):
            _ = unpack_from(buf, at)[0]

    def check(_: object) -> None:
        _expect(unpack_from(buf, at)[0] == 1.5, "the field reads 1.5")

    return Prepared(run, check)


def _read_loop(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[0].view(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            _ = rec  # the bare loop: the other rows load a field where this loads the record

    return Prepared(run)


_LAYOUT_READ = Group(
    key="layout.read",
    area="layout",
    title="read one f64 field of a struct in a buffer, {calls} times",
    op="read",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("ctypes", "ctypes.Structure.from_buffer(buf).x", _read_ctypes, baseline=True),
        Case("view", "memkit S.view(buf).x", _read_view, bars=(at_most(1.0),)),
        Case("unpack_from", "struct.Struct('d').unpack_from(buf, off)[0]", _read_unpack),
        Case("loop", "the bare loop", _read_loop, loop_overhead=True),
    ),
)


def _write_ctypes(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[1].from_buffer(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            rec.x = 2.5

    def check(_: object) -> None:
        _expect(rec.x == 2.5, "the field was written")

    return Prepared(run, check)


def _write_view(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[0].view(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            rec.x = 2.5

    def check(_: object) -> None:
        _expect(rec.x == 2.5, "the field was written")

    return Prepared(run, check)


def _write_pack(p: Params) -> Prepared:
    calls, buf = p["calls"], _particle_buffer()
    pack_into, at = pystruct.Struct("d").pack_into, _x_offset()

    def run() -> None:
        for _ in repeat(None, calls):
            pack_into(buf, at, 2.5)

    def check(_: object) -> None:
        _expect(_particle_types()[0].view(buf).x == 2.5, "the field was written")

    return Prepared(run, check)


_LAYOUT_WRITE = Group(
    key="layout.write",
    area="layout",
    title="write one f64 field of a struct in a buffer, {calls} times",
    op="write",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("ctypes", "ctypes.Structure.from_buffer(buf).x = v", _write_ctypes, baseline=True),
        Case("view", "memkit S.view(buf).x = v", _write_view),
        Case("pack_into", "struct.Struct('d').pack_into(buf, off, v)", _write_pack),
    ),
)


def _update_aos(p: Params) -> Prepared:
    import numpy as np

    from .layout import size_of

    particle = _particle_types()[0]
    arr: Any = np.zeros(p["records"], dtype=particle.to_numpy_dtype())
    _expect(arr.strides == (size_of(particle),), "the AoS array is strided by the record size")

    def run() -> None:
        arr["x"] += 1

    def check(_: object) -> None:
        _expect(arr["x"][0] == arr["x"][-1] > 0, "every record was updated")

    return Prepared(run, check)


def _update_soa(p: Params) -> Prepared:
    from .layout import SoA

    soa: Any = SoA(_particle_types()[0], p["records"])
    _expect(soa.x.strides == (8,), "the SoA column is contiguous")

    def run() -> None:
        soa.x += 1

    def check(_: object) -> None:
        _expect(soa.x[0] == soa.x[-1] > 0, "every record was updated")

    return Prepared(run, check)


_LAYOUT_SOA = Group(
    key="layout.soa",
    area="layout",
    title="update one field in {records} records",
    op="update of all records",
    ops=None,
    params={"records": 1_000_000},
    cases=(
        Case("aos", "NumPy structured array (AoS, strided)", _update_aos, baseline=True, requires=("numpy",)),
        Case("soa", "memkit SoA column", _update_soa, bars=(faster(5),), requires=("numpy",)),
    ),
    weight=1.5,
    round_ns=20_000_000,
    note="each round repeats the update back to back, as a loop over time steps does: the 8 MB column can "
    "stay in a large last-level cache where the 40 MB array cannot; with caches flushed in between, ~3x",
)


# ---- the registry -----------------------------------------------------------------------------------

AREAS: dict[str, str] = {
    "fastcall": "fast-call glue",
    "buffers": "AlignedBuffer",
    "arena": "Arena",
    "pool": "BufferPool",
    "atomic": "atomics",
    "cell": "Cell/RefCell",
    "sync": "Mutex/RwLock",
    "slotmap": "SlotMap",
    "alloc": "allocator hook",
    "layout": "layout",
}
"""Area key -> the name the table shows, in the order the table shows them."""

GROUPS: tuple[Group, ...] = (
    _FASTCALL,
    _BUFFERS_ALLOC,
    _BUFFERS_EXPORT,
    _ARENA,
    _POOL,
    _ATOMIC_CALL,
    _ATOMIC_LOOP,
    _FALSE_SHARING,
    _CELL_BORROW,
    _CELL_GET_CALL,
    _CELL_GET_LOOP,
    _SYNC_UNCONTENDED,
    _SYNC_CONTENDED,
    _SLOTMAP_LOOKUP,
    _SLOTMAP_CHURN,
    _ALLOC_WORKLOAD,
    _ALLOC_SWITCH,
    _ALLOC_PAIRS,
    _LAYOUT_READ,
    _LAYOUT_WRITE,
    _LAYOUT_SOA,
)


def group(key: str) -> Group:
    """The group called ``key`` (e.g. ``"arena.alloc"``)."""
    for g in GROUPS:
        if g.key == key:
            return g
    raise KeyError(f"no benchmark group {key!r}")


def _validate() -> None:
    """Every group has one baseline and bars that name its own cases; checked at import."""
    keys = set()
    for g in GROUPS:
        if g.area not in AREAS or g.key in keys:
            raise RuntimeError(f"benchmark group {g.key!r}: unknown area or duplicate key")
        keys.add(g.key)
        names = [c.key for c in g.cases]
        if sum(c.baseline for c in g.cases) != 1 or len(set(names)) != len(names):
            raise RuntimeError(f"benchmark group {g.key!r} needs exactly one baseline and unique case keys")
        for c in g.cases:
            for bar in c.bars:
                if bar.against is not None and bar.against not in names:
                    raise RuntimeError(f"benchmark {g.key}/{c.key}: bar against unknown case {bar.against!r}")


_validate()
