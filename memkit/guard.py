"""memkit.guard: RAII guards - code that runs when a scope ends (Rust's drop guards, scopeguard).

``defer(fn)`` runs ``fn`` when its ``with`` block exits or the guard is collected;
``on_success`` / ``on_error`` run only on a normal / failing exit (commit / rollback);
``restoring`` / ``restoring_item`` set a value now and put the old state back on exit.
Every guard fires at most once, and ``disarm()`` cancels it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any, Literal

__all__ = ["ScopeGuard", "defer", "on_error", "on_success", "restoring", "restoring_item"]

_When = Literal["always", "success", "error"]

# One lock for every guard's claim: it guards two attribute accesses, so sharing it costs
# nothing, and a guard needs no lock of its own - whose allocation could fail (a
# RuntimeError, not a MemoryError) and leave a half-built guard for __del__ to find.
_claim_lock = threading.Lock()


class ScopeGuard:
    """Runs a callback once when a scope ends, unless disarmed (Rust's ``scopeguard::ScopeGuard``).

    Made by :func:`defer`, :func:`on_success`, :func:`on_error`, :func:`restoring` and
    :func:`restoring_item`. Use it as a context manager; the callback runs on ``__exit__``
    (or, for a guard never used in a ``with`` block, when it is collected or ``run()`` is
    called). It runs at most once, even with several threads exiting at once.

    When it runs: ``defer`` guards always; ``on_success`` guards when the block exits
    normally; ``on_error`` guards when it raises (``KeyboardInterrupt`` included). A
    generator closed early (``GeneratorExit``) counts as a normal exit. Collection outside
    a ``with`` block counts as a normal exit too: there is no exception to look at.

    Exceptions: an exception from the callback propagates from ``__exit__`` (chained to the
    block's own exception when there is one) and is reported with ``sys.unraisablehook``
    when the guard fires from garbage collection.
    """

    __slots__ = ("__weakref__", "_args", "_fn", "_kwargs", "_when")

    def __init__(self, fn: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], when: _When) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self._args = args
        self._kwargs = kwargs
        self._when: _When = when
        self._fn: Callable[..., object] | None = fn  # last: __del__ fires only a complete guard

    @property
    def armed(self) -> bool:
        """True until the guard fired or was disarmed."""
        return self._fn is not None

    def disarm(self) -> None:
        """Cancel the guard: the callback will not run. Disarming twice is fine."""
        self._claim()  # the callback is dropped here, outside the lock: dropping it may run code

    def _claim(self) -> Callable[..., object] | None:
        # acquire/release rather than `with`: leaving a `with` block calls the lock's
        # __exit__ with an argument tuple CPython must allocate; if memory has run out that
        # call fails and the lock stays held, and every guard would hang on it.
        _claim_lock.acquire()
        try:
            fn, self._fn = self._fn, None
        finally:
            _claim_lock.release()
        return fn

    def run(self) -> None:
        """Fire the guard now (whatever its kind), unless it already fired or was disarmed."""
        fn = self._claim()
        if fn is not None:
            fn(*self._args, **self._kwargs)

    def __enter__(self) -> ScopeGuard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        failed = exc_type is not None and not issubclass(exc_type, GeneratorExit)
        if self._when == "success" and failed:
            self.disarm()
            return
        if self._when == "error" and not failed:
            self.disarm()
            return
        self.run()

    def __del__(self) -> None:
        # Collected without a with block (or left armed by one that never exited): drop semantics.
        # getattr: __init__ may have raised before setting the slots.
        if getattr(self, "_fn", None) is not None and self._when != "error":
            self.run()

    def __repr__(self) -> str:
        state = "armed" if self.armed else "done"
        return f"<ScopeGuard {self._when} {state}>"


def defer(fn: Callable[..., object], *args: Any, **kwargs: Any) -> ScopeGuard:
    """A guard that calls ``fn(*args, **kwargs)`` when its ``with`` block exits, however it exits.

    Example:
        >>> events = []
        >>> with defer(events.append, "closed"):
        ...     events.append("working")
        >>> events
        ['working', 'closed']
    """
    return ScopeGuard(fn, args, kwargs, "always")


def on_success(fn: Callable[..., object], *args: Any, **kwargs: Any) -> ScopeGuard:
    """A guard that calls ``fn(*args, **kwargs)`` only when the block exits normally (commit)."""
    return ScopeGuard(fn, args, kwargs, "success")


def on_error(fn: Callable[..., object], *args: Any, **kwargs: Any) -> ScopeGuard:
    """A guard that calls ``fn(*args, **kwargs)`` only when the block raises (rollback).

    Example:
        >>> log = []
        >>> try:
        ...     with on_error(log.append, "rolled back"):
        ...         raise KeyError("boom")
        ... except KeyError:
        ...     pass
        >>> log
        ['rolled back']
    """
    return ScopeGuard(fn, args, kwargs, "error")


_MISSING = object()


def _restore_attr(obj: object, attr: str, old: object) -> None:
    if old is _MISSING:
        try:
            delattr(obj, attr)
        except AttributeError:
            pass
    else:
        setattr(obj, attr, old)


def restoring(obj: object, attr: str, value: object) -> ScopeGuard:
    """Set ``obj.attr = value`` now; the guard puts the old value back (or deletes the
    attribute if it did not exist) when it fires, even on exception.

    Guards nest: inner ones restore what the outer ones set. The change is visible to
    every thread (like ``unittest.mock.patch``), not only the one that made it.

    Example:
        >>> import types
        >>> ns = types.SimpleNamespace(level=1)
        >>> with restoring(ns, "level", 5):
        ...     ns.level
        5
        >>> ns.level
        1
    """
    if not isinstance(attr, str):
        raise TypeError(f"attr must be a str, got {type(attr).__name__}")
    old = getattr(obj, attr, _MISSING)
    setattr(obj, attr, value)
    return ScopeGuard(_restore_attr, (obj, attr, old), {}, "always")


def _restore_item(mapping: MutableMapping[Any, Any], key: object, old: object) -> None:
    if old is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = old


def restoring_item(mapping: MutableMapping[Any, Any], key: object, value: object) -> ScopeGuard:
    """Set ``mapping[key] = value`` now; the guard restores the old item (or removes the key
    if it was absent) when it fires, even on exception.

    Example:
        >>> import os
        >>> with restoring_item(os.environ, "MEMKIT_EXAMPLE", "1"):
        ...     os.environ["MEMKIT_EXAMPLE"]
        '1'
        >>> "MEMKIT_EXAMPLE" in os.environ
        False
    """
    old = mapping[key] if key in mapping else _MISSING
    mapping[key] = value
    return ScopeGuard(_restore_item, (mapping, key, old), {}, "always")
