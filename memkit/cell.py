"""memkit.cell: interior mutability with run-time borrow checking (Rust's Cell, RefCell, OnceCell).

``RefCell`` hands out ``Ref`` (shared) and ``RefMut`` (exclusive) guards and raises
``BorrowError`` / ``BorrowMutError`` - both ``BorrowStateError``, a ``RuntimeError`` - when a
borrow conflicts with one still alive, exactly where Rust's ``RefCell`` panics.
``debug_borrows(True)`` (or ``MEMKIT_DEBUG_BORROWS=1``) makes those errors name the file and
line where the conflicting borrow was taken.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from ._native import core as _core

__all__ = [
    "BorrowError",
    "BorrowMutError",
    "BorrowStateError",
    "Cell",
    "OnceCell",
    "Ref",
    "RefCell",
    "RefMut",
    "debug_borrows",
]

_cell = _core.cell
Cell = _cell.Cell
RefCell = _cell.RefCell
Ref = _cell.Ref
RefMut = _cell.RefMut
BorrowStateError = _cell.BorrowStateError
BorrowError = _cell.BorrowError
BorrowMutError = _cell.BorrowMutError

T = TypeVar("T")


def debug_borrows(enabled: bool = True) -> bool:
    """Switch borrow-location tracking on or off; return the previous setting.

    While on, every borrow of a RefCell records the file and line of the Python code that
    took it, and a conflicting borrow's error names them::

        BorrowMutError: RefCell already borrowed (the shared borrow was taken at app.py:42)

    It costs a frame lookup per borrow, so it is off by default. Setting the environment
    variable ``MEMKIT_DEBUG_BORROWS=1`` before memkit is imported switches it on.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    return bool(_cell._set_debug_borrows(enabled))


if os.environ.get("MEMKIT_DEBUG_BORROWS", "") == "1":
    debug_borrows(True)


class _Empty:
    """The state of an OnceCell nobody has set (None is a valid value)."""


_EMPTY = _Empty()


class OnceCell(Generic[T]):
    """A cell written at most once (Rust's ``OnceCell`` / ``OnceLock``).

    ``get()`` returns the value or ``None``; ``set(v)`` raises ``ValueError`` when a value is
    already there; ``get_or_init(fn)`` returns the value, running ``fn()`` to make it if the
    cell is empty.

    Threads: ``fn`` runs at most once even when threads race - the others wait (with the GIL
    released, interruptible by Ctrl-C) and get its result.

    If ``fn`` raises, the exception propagates to its caller, the cell stays empty, and the
    next caller (a waiting thread, or a later call) runs its own ``fn`` - as Rust's
    ``get_or_try_init``. ``fn`` calling ``get_or_init`` on the same cell raises
    ``RuntimeError`` (a certain deadlock; Rust panics with "reentrant init").

    Example:
        >>> cell = OnceCell()
        >>> cell.get_or_init(lambda: 42), cell.get_or_init(lambda: 0), cell.get()
        (42, 42, 42)
    """

    __slots__ = ("__weakref__", "_init_lock", "_initializer", "_value")

    def __init__(self) -> None:
        self._value: T | _Empty = _EMPTY
        try:
            self._init_lock = threading.Lock()
        except RuntimeError as exc:  # CPython's "can't allocate lock": memory ran out
            raise MemoryError("could not allocate the OnceCell's lock") from exc
        self._initializer: int | None = None  # thread id running fn, for the re-entrancy check

    def get(self) -> T | None:
        """The value, or ``None`` while the cell is empty."""
        value = self._value
        return None if value is _EMPTY else cast(T, value)

    def set(self, value: T) -> None:
        """Store ``value``; ``ValueError`` if the cell already holds one."""
        lock = self._init_lock
        lock.acquire()  # not `with`: see get_or_init
        try:
            if self._value is not _EMPTY:
                raise ValueError(f"OnceCell is already set (to {self._value!r})")
            self._value = value
        finally:
            lock.release()

    def get_or_init(self, fn: Callable[[], T]) -> T:
        """The value, made by ``fn()`` if the cell is empty (see the class docs for races and errors)."""
        value = self._value
        if value is not _EMPTY:
            return cast(T, value)
        me = threading.get_ident()
        if self._initializer == me:
            raise RuntimeError("reentrant init: fn called get_or_init on the OnceCell it is initialising")
        # acquire/release rather than `with`: leaving a `with` block calls the lock's
        # __exit__ with an argument tuple that CPython must allocate, and if memory has run
        # out that call fails and the lock stays held - every later caller would hang.
        lock = self._init_lock
        lock.acquire()
        try:
            value = self._value
            if value is not _EMPTY:
                return cast(T, value)
            self._initializer = me
            try:
                value = fn()
            finally:
                self._initializer = None
            self._value = value
            return value
        finally:
            lock.release()

    def __repr__(self) -> str:
        value = self._value
        return "OnceCell(<empty>)" if value is _EMPTY else f"OnceCell({value!r})"
