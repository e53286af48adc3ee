"""Fault injection for the memory-pressure tests (test_alloc_failure.py, test_regressions.py)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from memkit import alloc
from memkit._core import _testing


class FailAt(alloc.Limit):
    """A ``memkit.alloc.limit()`` block whose budget refuses allocation point ``k`` of this
    thread, and no other; ``k = -1`` only counts the points.

    Points are numbered from 0: every request the thread makes through CPython's allocators
    (refused by the budget, exactly as a ``limit()`` block refuses, so the block exits with
    ``MemoryLimitError``), and every allocation memkit's core makes (refused as the OS
    refuses: ``MemoryError``). See csrc/bindings/register_testing_alloc.cpp.

    Requests of ``spare_size`` bytes are never points; by default, on a CPython that crashes
    when a function object cannot be allocated, that is a function object's size (see
    :func:`function_size_to_spare`), and 0 (none) elsewhere.
    """

    def __init__(self, k: int, spare_size: int | None = None) -> None:
        super().__init__(1 << 60)
        if spare_size is None:
            spare_size = function_size_to_spare()
        self._scope = _testing.FaultScope(k, spare_size)

    @property
    def points(self) -> int:
        """Allocation points counted so far."""
        return int(self._scope.points)

    @property
    def failed_at(self) -> int:
        """The point that failed (``k``, or the next one that could), or -1."""
        return int(self._scope.failed_at)


def function_size_to_spare() -> int:
    """0, or - on a CPython that crashes when a function object cannot be allocated - the
    size of that allocation, which the sweeps then never refuse.

    CPython 3.12 and 3.13.0 release the code object twice when MAKE_FUNCTION's allocation
    fails (python/cpython#122752, fixed in 3.13.1) and crash soon after; a lambda, a nested
    def or a class statement inside a swept operation would do that.
    """
    affected = (3, 12) <= sys.version_info[:3] < (3, 13, 1)
    return sys.getsizeof(lambda: None) if affected else 0


def class_creation_survives() -> bool:
    """False on CPython 3.13.0: when the dict of a class being created cannot grow, the next
    attempt to grow it reads an empty entry and crashes (in type_add_getset), so tests that
    create classes under memory pressure skip it."""
    return sys.version_info[:3] != (3, 13, 0)


@contextmanager
def unraisable_checked() -> Iterator[None]:
    """Fail on every exception reported as unraisable ("Exception ignored in ...") inside the
    block, except two MemoryErrors memkit cannot avoid: dropping a generator that was not
    run to its end may throw GeneratorExit into it, and creating that exception can fail;
    and on 3.13, pybind11 (3.1) probes every exception it catches for ``__notes__`` with
    PyObject_HasAttrString, which reports the lookup's own MemoryError instead of raising it."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(
        (unraisable.exc_type, unraisable.exc_value, unraisable.err_msg, unraisable.object)
    )
    try:
        yield
    finally:
        sys.unraisablehook = previous
        for exc_type, exc_value, err_msg, obj in seen:
            closing_a_generator = isinstance(obj, types.GeneratorType)
            probing_notes = (err_msg or "").startswith("Exception ignored in PyObject_HasAttrString()")
            if not (issubclass(exc_type, MemoryError) and (closing_a_generator or probing_notes)):
                raise AssertionError(f"{err_msg or 'Exception ignored in'}: {obj!r}: {exc_type.__name__}: {exc_value}")
        seen.clear()
