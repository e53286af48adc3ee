"""memkit.sync: locks that own their data (Rust's Mutex, RwLock, Condvar) and deadlock-free ``lock_all``.

The protected value is reachable only through a guard, so it cannot be touched without
holding the lock. An exception leaving a guard's block poisons the lock (the value may be
half-updated): later lock calls raise ``PoisonError``, whose ``.guard`` holds the lock for
repair. Every wait releases the GIL, takes ``timeout=`` and is interruptible by Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from ._native import core as _core

__all__ = [
    "Condvar",
    "Mutex",
    "MutexGuard",
    "PoisonError",
    "ReadGuard",
    "RwLock",
    "WriteGuard",
    "lock_all",
]

_sync = _core.sync
Mutex = _sync.Mutex
MutexGuard = _sync.MutexGuard
RwLock = _sync.RwLock
ReadGuard = _sync.ReadGuard
WriteGuard = _sync.WriteGuard
Condvar = _sync.Condvar
PoisonError = _sync.PoisonError


class lock_all:
    """Lock several ``Mutex``/``RwLock`` (write mode) at once, always in one global order.

    Two threads running ``with lock_all(a, b)`` and ``with lock_all(b, a)`` cannot deadlock:
    both acquire in the same order (by identity), whatever order they name the locks in.
    ``__enter__`` returns the guards in *argument* order.

    ``timeout`` (seconds) bounds the whole acquisition; on ``TimeoutError`` - or any other
    error, such as ``PoisonError`` - nothing acquired so far stays locked (a ``PoisonError``
    still carries its own ``.guard``, holding that one lock). An exception leaving the
    block poisons every lock, as it would leaving each guard's own block.

    Example:
        >>> from memkit import Mutex
        >>> a, b = Mutex(10), Mutex(0)
        >>> with lock_all(a, b) as (ga, gb):
        ...     ga.value, gb.value = ga.value - 3, gb.value + 3
        >>> a.try_lock().value, b.try_lock().value
        (7, 3)
    """

    __slots__ = ("_guards", "_locks", "_timeout")

    def __init__(self, *locks: Any, timeout: float | None = None) -> None:
        if not locks:
            raise TypeError("lock_all() needs at least one lock")
        for lock in locks:
            if not isinstance(lock, (Mutex, RwLock)):
                raise TypeError(f"lock_all() takes Mutex and RwLock objects, got {type(lock).__name__}")
        if len({id(lock) for lock in locks}) != len(locks):
            raise ValueError("lock_all() got the same lock twice: it would deadlock on itself")
        if timeout is not None and not (timeout >= 0):
            raise ValueError(f"timeout must be >= 0 (or None to wait forever), got {timeout!r}")
        self._locks: tuple[Any, ...] = locks
        self._timeout = timeout
        self._guards: list[Any] | None = None

    def __enter__(self) -> Sequence[Any]:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        held: dict[int, Any] = {}
        try:
            for lock in sorted(self._locks, key=id):
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if isinstance(lock, Mutex):
                    held[id(lock)] = lock.lock(timeout=remaining)
                else:
                    held[id(lock)] = lock.write(timeout=remaining)
        except BaseException:
            for guard in held.values():
                guard.release()
            raise
        self._guards = [held[id(lock)] for lock in self._locks]
        return tuple(self._guards)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        guards, self._guards = self._guards or [], None
        for guard in reversed(guards):
            guard.__exit__(exc_type, exc, tb)
