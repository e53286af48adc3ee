"""The allocator hook: a workload counted, limited, untracked and under tracemalloc and memray;
switching tracking on and off; the hook's own cost per allocation.

The rows of ``python -m memkit bench --filter alloc`` and of benchmarks/test_bench_alloc.py.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractContextManager
from itertools import count
from pathlib import Path
from typing import Any

from .. import alloc
from .._workloads import DICT_JSON_RECORDS, dict_json_workload
from .model import Case, Group, Params, Prepared, at_most, expect


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
    expect(result == 7, "the workload made its 7 groups")


def _wl_untracked(p: Params) -> Prepared:
    expect(not alloc.installed() and not tracemalloc.is_tracing(), "no hook is counting before the untracked row")
    return Prepared(_workload(p), _check_groups)


def _wl_counting(p: Params) -> Prepared:
    def check(result: object) -> None:
        _check_groups(result)
        expect(alloc.stats().allocations > p["records"] * 40, "the hook counted the workload's allocations")

    return Prepared(_workload(p), check, _Installed())


def _wl_limit(p: Params) -> Prepared:
    ctx = _Limited()

    def check(result: object) -> None:
        _check_groups(result)
        budget = ctx.budget
        expect(budget is not None and budget.allocations > p["records"] * 40, "limit() counted the workload")

    return Prepared(_workload(p), check, ctx)


def _wl_uninstalled(p: Params) -> Prepared:
    # After uninstall memkit's layer stays in the chain, passing every call through.
    alloc.install()
    alloc.uninstall()
    return Prepared(_workload(p), _check_groups)


def _wl_tracemalloc(p: Params) -> Prepared:
    def check(result: object) -> None:
        _check_groups(result)
        expect(tracemalloc.get_traced_memory()[1] > p["records"] * 50, "tracemalloc traced the workload")

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
        expect(not alloc.installed(), "uninstall() stopped counting")

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
        from .._native import core

        churn, pairs = core.alloc._object_churn, p["pairs"]
        live = min(1000, pairs)
        ctx = ctx_factory() if ctx_factory is not None else None

        def run() -> int:
            return churn(pairs, live)

        def check(_: object) -> None:
            if what == "counting":
                expect(alloc.stats().by_domain["object"].allocations >= pairs, "the hook counted every pair")
            elif what == "limit" and isinstance(ctx, _Limited):
                expect(ctx.budget is not None and ctx.budget.allocations >= pairs, "limit() counted every pair")

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


GROUPS: tuple[Group, ...] = (_ALLOC_WORKLOAD, _ALLOC_SWITCH, _ALLOC_PAIRS)
