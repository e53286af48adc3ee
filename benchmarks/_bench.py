"""Helpers shared by memkit's benchmarks (the ratio summary itself is in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any


def baseline(benchmark: Any) -> None:
    """Mark this row as the group's baseline."""
    benchmark.extra_info["baseline"] = True


def loop_overhead(benchmark: Any) -> None:
    """Mark this row as the empty loop the group's calls run in."""
    benchmark.extra_info["loop_overhead"] = True


def repeated(fn: Callable[..., object], calls: int, *args: Any, **kwargs: Any) -> Callable[[], None]:
    """A function that calls ``fn(*args, **kwargs)`` ``calls`` times in a bare ``for`` loop.

    Timing many calls per round spreads the harness's own per-round cost (a timer read is
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


def empty_loop(calls: int) -> Callable[[], None]:
    """The bare loop of :func:`repeated`, to time its overhead."""

    def run() -> None:
        for _ in repeat(None, calls):
            pass

    return run
