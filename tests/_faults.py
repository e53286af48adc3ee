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
    """

    def __init__(self, k: int) -> None:
        super().__init__(1 << 60)
        self._scope = _testing.FaultScope(k)

    @property
    def points(self) -> int:
        """Allocation points counted so far."""
        return int(self._scope.points)

    @property
    def failed_at(self) -> int:
        """The point that failed (``k``, or the next one that could), or -1."""
        return int(self._scope.failed_at)


@contextmanager
def unraisable_checked() -> Iterator[None]:
    """Fail on every exception reported as unraisable ("Exception ignored in ...") inside the
    block, except one CPython itself cannot avoid: before 3.12, dropping a generator that was
    not run to its end throws GeneratorExit into it, and when memory has run out creating
    that exception fails and is reported. (3.12 closes such a generator without an exception.)"""
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
            closing_a_generator = isinstance(obj, types.GeneratorType) and issubclass(exc_type, MemoryError)
            if not (closing_a_generator and sys.version_info < (3, 12)):
                raise AssertionError(f"{err_msg or 'Exception ignored in'}: {obj!r}: {exc_type.__name__}: {exc_value}")
        seen.clear()
