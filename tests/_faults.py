"""Fault injection for the memory-pressure tests (test_alloc_failure.py, test_regressions.py)."""

from __future__ import annotations

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
