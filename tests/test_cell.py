"""Cell, RefCell, Ref, RefMut, OnceCell and the borrow errors (API.md, memkit.cell)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import memkit.cell
from memkit import BorrowError, BorrowMutError, BorrowStateError, Cell, OnceCell, Ref, RefCell, RefMut


@pytest.fixture
def debug() -> Any:
    previous = memkit.cell.debug_borrows(True)
    yield
    memkit.cell.debug_borrows(previous)


# ---- Cell ---------------------------------------------------------------------------------------


def test_cell_operations() -> None:
    c = Cell([1])
    first = c.get()
    assert first == [1] and c.get() is first
    c.set("x")
    assert c.replace("y") == "x"
    assert c.take() == "y" and c.get() is None
    assert c.take(5) is None and c.get() == 5
    other = Cell(6)
    c.swap(other)
    assert (c.get(), other.get()) == (6, 5)
    c.swap(c)
    assert repr(c) == "Cell(6)"
    assert Cell().get() is None


def test_cell_bad_input() -> None:
    with pytest.raises(TypeError, match="needs another Cell, got int"):
        Cell(1).swap(2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Cell(1).take(1, 2)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        Cell(1, 2)  # type: ignore[call-arg]


# ---- RefCell: Rust's rules ---------------------------------------------------------------------


def test_shared_borrows_stack_and_read_the_same_object() -> None:
    cell = RefCell({"a": 1})
    a = cell.borrow()
    b = cell.borrow()
    assert a.value is b.value
    assert cell.borrow_state == ("shared", 2)
    a.release()
    assert cell.borrow_state == ("shared", 1)
    b.release()
    assert cell.borrow_state == ("unborrowed", 0)


def test_borrow_mut_is_exclusive_and_writes_through() -> None:
    cell = RefCell(1)
    with cell.borrow_mut() as g:
        assert isinstance(g, RefMut)
        assert cell.borrow_state == ("exclusive", 1)
        g.value += 1
        g.value *= 10
    with cell.borrow() as r:
        assert isinstance(r, Ref)
        assert r.value == 20


def test_borrow_while_mutably_borrowed_is_borrow_error() -> None:
    cell = RefCell(0)
    g = cell.borrow_mut()
    with pytest.raises(BorrowError, match="RefCell already mutably borrowed"):
        cell.borrow()
    assert cell.try_borrow() is None
    g.release()
    assert cell.try_borrow() is not None


def test_borrow_mut_while_borrowed_is_borrow_mut_error() -> None:
    cell = RefCell(0)
    r = cell.borrow()
    with pytest.raises(BorrowMutError, match="RefCell already borrowed"):
        cell.borrow_mut()
    assert cell.try_borrow_mut() is None
    del r  # collection ends the borrow
    assert cell.try_borrow_mut() is not None  # and that guard is collected at once too
    with cell.borrow_mut():
        with pytest.raises(BorrowMutError):
            cell.borrow_mut()


def test_error_hierarchy() -> None:
    assert issubclass(BorrowError, BorrowStateError)
    assert issubclass(BorrowMutError, BorrowStateError)
    assert issubclass(BorrowStateError, RuntimeError)
    assert BorrowError.__module__ == "memkit.cell"


def test_replace_take_swap_need_no_borrow() -> None:
    cell = RefCell([1])
    assert cell.replace([2]) == [1]
    assert cell.take() == [2]
    with cell.borrow() as r:
        assert r.value is None
    assert cell.take("d") is None
    with cell.borrow():
        for call in (lambda: cell.replace(1), lambda: cell.take(), lambda: cell.swap(RefCell(0))):
            with pytest.raises(BorrowMutError):
                call()
    other = RefCell("o")
    cell.swap(other)
    assert (cell.replace(None), other.replace(None)) == ("o", "d")
    cell.swap(cell)  # swapping with itself: fine while unborrowed
    with other.borrow_mut():
        with pytest.raises(BorrowMutError):
            cell.swap(other)
    assert cell.borrow_state == ("unborrowed", 0)  # the failed swap gave back cell's borrow
    with pytest.raises(TypeError, match="needs another RefCell"):
        cell.swap(Cell(1))  # type: ignore[arg-type]


def test_guards_release_exactly_once_and_raise_after() -> None:
    cell = RefCell("v")
    r = cell.borrow()
    r.release()
    r.release()  # no-op
    assert r.released and repr(r) == "<Ref released>"
    with pytest.raises(ValueError, match="Ref has been released"):
        _ = r.value
    with pytest.raises(ValueError, match="Ref has been released"):
        r.__enter__()
    m = cell.borrow_mut()
    m.release()
    with pytest.raises(ValueError, match="RefMut has been released"):
        m.value = "w"
    with pytest.raises(ValueError, match="RefMut has been released"):
        _ = m.value
    assert cell.borrow_state == ("unborrowed", 0)


def test_ref_value_is_read_only_and_refmut_value_cannot_be_deleted() -> None:
    cell = RefCell(1)
    with cell.borrow() as r:
        with pytest.raises(AttributeError, match="read-only"):
            r.value = 2  # type: ignore[misc]
    with cell.borrow_mut() as m:
        with pytest.raises(AttributeError, match="cannot be deleted"):
            del m.value  # type: ignore[misc]


def test_with_block_releases_on_exception() -> None:
    cell = RefCell(0)
    with pytest.raises(KeyError):
        with cell.borrow_mut():
            raise KeyError("x")
    assert cell.borrow_state == ("unborrowed", 0)


def test_guard_keeps_the_cell_alive_and_cycles_are_collected() -> None:
    class Node:
        pass

    node = Node()
    cell = RefCell(node)
    node.cell = cell  # type: ignore[attr-defined]
    node.guard = cell.borrow()  # type: ignore[attr-defined]  # cycle: guard -> cell -> node -> guard
    ref = weakref.ref(node)
    del node, cell
    gc.collect()
    assert ref() is None


def test_repr() -> None:
    cell = RefCell([1])
    assert repr(cell) == "RefCell([1])"
    with cell.borrow_mut() as g:
        assert repr(cell) == "RefCell(<mutably borrowed>)"
        assert repr(g) == "RefMut([1])"


def test_constructor_and_direct_guard_creation() -> None:
    with pytest.raises(TypeError):
        RefCell()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Ref()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RefMut()  # type: ignore[call-arg]
    assert RefCell(value=3).replace(4) == 3


def test_generic_aliases_at_run_time() -> None:
    assert str(RefCell[int]) == "memkit.cell.RefCell[int]"
    assert RefMut[list[int]].__origin__ is RefMut  # type: ignore[attr-defined]
    assert Cell[str]("x").get() == "x"


# ---- debug_borrows ------------------------------------------------------------------------------


def test_error_points_at_the_conflicting_borrow(debug: None) -> None:
    cell = RefCell(0)
    g = cell.borrow_mut()
    line = sys._getframe().f_lineno - 1
    with pytest.raises(BorrowError, match=rf"the mutable borrow was taken at .*test_cell.py:{line}\)"):
        cell.borrow()
    g.release()
    r = cell.borrow()
    line = sys._getframe().f_lineno - 1
    cell.borrow()  # a second shared borrow keeps the first one's location
    with pytest.raises(BorrowMutError, match=rf"the shared borrow was taken at .*test_cell.py:{line}\)"):
        cell.replace(1)
    del r
    gc.collect()


def test_without_debug_the_message_says_how_to_get_the_location() -> None:
    previous = memkit.cell.debug_borrows(False)
    try:
        cell = RefCell(0)
        with cell.borrow_mut():
            with pytest.raises(BorrowError, match=r"debug_borrows\(True\) or MEMKIT_DEBUG_BORROWS=1 shows where"):
                cell.borrow()
    finally:
        memkit.cell.debug_borrows(previous)


def test_debug_borrows_returns_the_previous_setting_and_checks_its_argument() -> None:
    previous = memkit.cell.debug_borrows(True)
    try:
        assert memkit.cell.debug_borrows(False) is True
        assert memkit.cell.debug_borrows(False) is False
        with pytest.raises(TypeError):
            memkit.cell.debug_borrows("yes")  # type: ignore[arg-type]
    finally:
        memkit.cell.debug_borrows(previous)


def test_environment_variable_turns_debugging_on() -> None:
    code = (
        "import memkit\n"
        "c = memkit.RefCell(0)\n"
        "g = c.borrow_mut()\n"
        "try:\n"
        "    c.borrow()\n"
        "except memkit.BorrowError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "MEMKIT_DEBUG_BORROWS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "the mutable borrow was taken at <string>:3" in out.stdout


# ---- threads ------------------------------------------------------------------------------------


def test_threads_racing_for_borrows_never_share_an_exclusive_one(run_concurrently: Callable[..., list[Any]]) -> None:
    cell = RefCell([0])
    conflicts = [0] * 4

    def worker(index: int) -> int:
        done = 0
        for i in range(3000):
            try:
                if (i + index) % 3 == 0:
                    with cell.borrow_mut() as g:
                        before = g.value[0]
                        time.sleep(0) if i % 100 == 0 else None
                        g.value[0] = before + 1  # no other thread can interleave here
                        done += 1
                else:
                    with cell.borrow() as r:
                        assert r.value[0] >= 0
            except BorrowStateError:
                conflicts[index] += 1
        return done

    writes = sum(run_concurrently(worker, 4))
    assert cell.borrow_state == ("unborrowed", 0)
    with cell.borrow() as r:
        assert r.value[0] == writes  # every successful exclusive borrow counted, none lost


# ---- OnceCell -----------------------------------------------------------------------------------


def test_once_cell_basics() -> None:
    cell: OnceCell[int] = OnceCell()
    assert cell.get() is None and repr(cell) == "OnceCell(<empty>)"
    cell.set(3)
    with pytest.raises(ValueError, match=r"OnceCell is already set \(to 3\)"):
        cell.set(4)
    assert cell.get_or_init(lambda: 5) == 3 and repr(cell) == "OnceCell(3)"
    none_cell: OnceCell[None] = OnceCell()
    none_cell.set(None)
    with pytest.raises(ValueError):
        none_cell.set(None)  # None is a value, not "empty"


def test_get_or_init_runs_fn_at_most_once_under_a_thread_race(run_concurrently: Callable[..., list[Any]]) -> None:
    cell: OnceCell[object] = OnceCell()
    calls = []

    def slow_init() -> object:
        calls.append(threading.get_ident())
        time.sleep(0.05)  # releases the GIL: the other threads arrive meanwhile
        return object()

    results = run_concurrently(lambda i: cell.get_or_init(slow_init), 8)
    assert len(calls) == 1
    assert all(r is results[0] for r in results)


def test_get_or_init_failure_leaves_the_cell_empty_and_the_next_caller_retries() -> None:
    cell: OnceCell[str] = OnceCell()

    def boom() -> str:
        raise OSError("no config")

    with pytest.raises(OSError, match="no config"):
        cell.get_or_init(boom)
    assert cell.get() is None
    assert cell.get_or_init(lambda: "ok") == "ok"


def test_a_waiter_retries_after_the_initialiser_fails(run_concurrently: Callable[..., list[Any]]) -> None:
    cell: OnceCell[int] = OnceCell()
    attempts: list[int] = []

    def init(index: int) -> int:
        attempts.append(index)
        time.sleep(0.02)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return index

    def worker(index: int) -> object:
        try:
            return cell.get_or_init(lambda: init(index))
        except RuntimeError:
            return "failed"

    results = run_concurrently(worker, 4)
    assert results.count("failed") == 1
    assert len(attempts) == 2  # exactly one retry, then everyone shares its value
    assert len({r for r in results if r != "failed"}) == 1


def test_reentrant_init_raises() -> None:
    cell: OnceCell[int] = OnceCell()
    with pytest.raises(RuntimeError, match="reentrant init"):
        cell.get_or_init(lambda: cell.get_or_init(lambda: 1))
    assert cell.get() is None


# ---- model-based: borrow sequences against Rust's rules -----------------------------------------


class BorrowRules(RuleBasedStateMachine):
    """Random borrows, releases, collections, replaces and swaps against a model of Rust's rules."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = RefCell(0)
        self.shared: list[Ref[int]] = []
        self.exclusive: RefMut[int] | None = None
        self.value = 0

    @rule()
    def borrow(self) -> None:
        if self.exclusive is not None:
            with pytest.raises(BorrowError):
                self.cell.borrow()
            assert self.cell.try_borrow() is None
        else:
            guard = self.cell.borrow()
            assert guard.value == self.value
            self.shared.append(guard)

    @rule(new=st.integers())
    def borrow_mut_and_write(self, new: int) -> None:
        if self.exclusive is not None or self.shared:
            with pytest.raises(BorrowMutError):
                self.cell.borrow_mut()
            assert self.cell.try_borrow_mut() is None
        else:
            guard = self.cell.borrow_mut()
            guard.value = new
            self.value = new
            self.exclusive = guard

    @precondition(lambda self: self.shared)
    @rule(pick=st.integers(0, 100), collect=st.booleans())
    def end_shared(self, pick: int, collect: bool) -> None:
        guard = self.shared.pop(pick % len(self.shared))
        if collect:
            del guard  # dropped: the borrow ends with the last reference
        else:
            guard.release()

    @precondition(lambda self: self.exclusive is not None)
    @rule(with_exit=st.booleans())
    def end_exclusive(self, with_exit: bool) -> None:
        assert self.exclusive is not None
        if with_exit:
            self.exclusive.__exit__(None, None, None)
        else:
            self.exclusive.release()
        self.exclusive = None

    @rule(new=st.integers())
    def replace(self, new: int) -> None:
        if self.exclusive is not None or self.shared:
            with pytest.raises(BorrowMutError):
                self.cell.replace(new)
        else:
            assert self.cell.replace(new) == self.value
            self.value = new

    @invariant()
    def state_matches(self) -> None:
        if self.exclusive is not None:
            assert self.cell.borrow_state == ("exclusive", 1)
        elif self.shared:
            assert self.cell.borrow_state == ("shared", len(self.shared))
        else:
            assert self.cell.borrow_state == ("unborrowed", 0)


TestBorrowRules = BorrowRules.TestCase
TestBorrowRules.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
