"""The model of memkit's benchmark cases: groups of rows, their setup, and the bars they meet.

Every comparison is a :class:`Group` of :class:`Case` rows - each memkit operation beside
the alternative a user would otherwise pick (the group's baseline) - and every case's
``setup`` builds the callable that is timed (:class:`Prepared`), plus an optional check of
what it did and an optional context it runs in. The loops here are what most rows time.

Private: names, sizes and rows may change between versions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Literal

__all__ = [
    "Bar",
    "BenchCheckError",
    "Case",
    "Group",
    "Params",
    "Prepared",
    "at_most",
    "call_loop",
    "empty_loop",
    "expect",
    "faster",
    "missing_modules",
    "repeated",
    "slower",
]

Params = Mapping[str, int]
"""A group's counts (calls per round, records, increments), scaled down for smoke runs."""


class BenchCheckError(AssertionError):
    """A timed callable did not do what it is meant to: its timings would mean nothing."""


def expect(condition: bool, what: str) -> None:
    """Raise :class:`BenchCheckError` saying ``what`` was expected unless ``condition`` holds."""
    if not condition:
        raise BenchCheckError(what)


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """The optional modules among ``names`` that cannot be imported here."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


# ---- loops ----------------------------------------------------------------------------------------


def repeated(fn: Callable[..., object], calls: int, *args: Any, **kwargs: Any) -> Callable[[], None]:
    """A function that calls ``fn(*args, **kwargs)`` ``calls`` times in a bare ``for`` loop.

    Timing many calls per round spreads a harness's own per-round cost (a timer read is
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


def call_loop(fn: Callable[..., object], calls: int, *args: Any) -> Callable[[], None]:
    """``calls`` calls of ``fn(*args, **kwargs)`` made the way pytest-benchmark makes them.

    ``benchmark(fn, *args)`` times exactly this loop (with empty ``kwargs``), so every row
    of a group pays the same generic call overhead - also a row without arguments.
    """
    kwargs: dict[str, Any] = {}

    def run() -> None:
        for _ in repeat(None, calls):
            fn(*args, **kwargs)

    return run


def empty_loop(calls: int) -> Callable[[], None]:
    """The bare loop of :func:`repeated`, to time its overhead."""

    def run() -> None:
        for _ in repeat(None, calls):
            pass

    return run


# ---- the model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """A target a row's ratio must meet, set when its feature was built.

    ``kind`` "at_most": ``row / against <= factor``; "faster": ``against / row >= factor``
    (the row is at least ``factor`` times faster); "slower": ``row / against >= factor``.
    ``against`` is a case key of the same group; None means the group's baseline.
    """

    kind: Literal["at_most", "faster", "slower"]
    factor: float
    against: str | None = None

    def met(self, ratio: float) -> bool:
        """Whether ``ratio`` (row / against) meets the bar."""
        if self.kind == "at_most":
            return ratio <= self.factor
        if self.kind == "faster":
            return ratio * self.factor <= 1.0
        return ratio >= self.factor

    def describe(self, against_label: str | None = None) -> str:
        """The bar in words: ``<= 1.5x``, ``>= 4x faster than X``, ``>= 4x slower than X``."""
        target = f" {against_label}" if against_label else ""
        if self.kind == "at_most":
            factor = f"{self.factor:.2f}".rstrip("0")  # 1.0, 1.15, 0.6
            return f"<= {factor}{'0' if factor.endswith('.') else ''}x{target}"
        than = f" than {against_label}" if against_label else ""
        return f">= {self.factor:g}x {self.kind}{than}"


def at_most(factor: float, against: str | None = None) -> Bar:
    """Bar: the row costs at most ``factor`` times ``against`` (default: the baseline)."""
    return Bar("at_most", factor, against)


def faster(factor: float, against: str | None = None) -> Bar:
    """Bar: the row is at least ``factor`` times faster than ``against``."""
    return Bar("faster", factor, against)


def slower(factor: float, against: str | None = None) -> Bar:
    """Bar: the row is at least ``factor`` times slower than ``against``."""
    return Bar("slower", factor, against)


@dataclass
class Prepared:
    """A case ready to time.

    ``body`` is the timed callable. ``check(result)`` raises :class:`BenchCheckError` if
    ``body`` did not do its work (it gets body's return value and runs inside ``context``).
    ``context``, when set, is entered around the timed calls (the pytest benchmarks enter
    it once around all rounds, ``python -m memkit bench`` around each round, as it
    interleaves rows). ``cleanup`` frees what setup made outside the interpreter (files).
    """

    body: Callable[[], object]
    check: Callable[[object], None] | None = None
    context: AbstractContextManager[object] | None = None
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Case:
    """One row: a label, how to set it up, and the bars it has to meet."""

    key: str
    label: str
    setup: Callable[[Params], Prepared]
    baseline: bool = False
    bars: tuple[Bar, ...] = ()
    requires: tuple[str, ...] = ()
    """Optional modules; the row is skipped when one cannot be imported."""
    loop_overhead: bool = False
    """The bare loop the other rows run their calls in (shown for reference)."""
    sparse: bool = False
    """Expensive and informative only: timed in a few rounds, not in every one."""


@dataclass(frozen=True)
class Group:
    """A comparison: rows timed side by side, with ratios to the baseline row."""

    key: str
    area: str
    title: str
    """May name params: ``"allocate 64 bytes, {calls} times"``."""
    op: str
    """What one operation is, for the per-operation time: ``"call"``, ``"allocation"``."""
    ops: str | None
    """The param counting operations per timed call (None: one per call)."""
    params: Mapping[str, int]
    cases: tuple[Case, ...]
    weight: float = 1.0
    """This group's share of the time budget (1 for a microbenchmark group)."""
    collect: bool = False
    """Run ``gc.collect()`` before each round, so every round starts from a similar heap."""
    isolated: bool = False
    """Timed in a separate interpreter (the allocator hook stays in a process once installed)."""
    pytest_rounds: int | None = None
    """pytest-benchmark rounds for slow rows (None: pytest-benchmark calibrates)."""
    round_ns: int | None = None
    """How long one round of one row should last, if not the runner's default: long enough
    for the callable to run back to back (warm caches) where that is what is compared."""
    timer: Literal["wall", "cpu"] = "wall"
    """"cpu": time a round by the CPU time the process spent in it, not elapsed time. For
    rows that do not wait on each other's threads and whose rounds last milliseconds: on a
    busy machine nearly every such round is preempted several times, and the waits swamp
    what is measured."""
    note: str = ""

    def scaled(self, scale: float) -> dict[str, int]:
        """The params times ``scale`` (at least 2 each): smoke runs use tiny sizes."""
        return {k: v if scale == 1 else max(2, int(v * scale)) for k, v in self.params.items()}

    def describe(self, params: Params) -> str:
        """The title with its counts filled in."""
        return self.title.format(**{k: f"{v:,}" for k, v in params.items()})

    def case(self, key: str) -> Case:
        """The case called ``key``."""
        for c in self.cases:
            if c.key == key:
                return c
        raise KeyError(f"group {self.key!r} has no case {key!r}")

    @property
    def baseline(self) -> Case:
        """The row every ratio is relative to."""
        return next(c for c in self.cases if c.baseline)
