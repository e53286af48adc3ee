"""Cell and RefCell beside a lock and a pure-Python RefCell (:class:`PyRefCell`).

The rows of ``python -m memkit bench --filter cell`` and of benchmarks/test_bench_cell.py.
"""

from __future__ import annotations

import threading
from itertools import repeat
from types import TracebackType
from typing import Any

from ..cell import Cell, RefCell
from .model import Case, Group, Params, Prepared, at_most, call_loop, expect, faster

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


# ---- the groups ---------------------------------------------------------------------------------------


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
        expect(cell.borrow_state == ("unborrowed", 0) and cell.borrow().value >= calls, "every borrow ended")

    return Prepared(run, check)


def _borrow_pyrefcell(p: Params) -> Prepared:
    calls, cell = p["calls"], PyRefCell(0)

    def run() -> None:
        for _ in repeat(None, calls):
            with cell.borrow_mut() as g:
                g.value += 1

    def check(_: object) -> None:
        expect(cell._borrows == 0 and cell._value >= calls, "every borrow ended")

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


GROUPS: tuple[Group, ...] = (_CELL_BORROW, _CELL_GET_CALL, _CELL_GET_LOOP)
