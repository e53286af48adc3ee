"""The benchmark cases: what ``python -m memkit bench`` and ``benchmarks/`` both time.

One source of truth. Every comparison is a :class:`Group` of :class:`Case` rows - each
memkit operation beside the alternative a user would otherwise pick (the group's
baseline) - and every case's ``setup`` builds the callable that is timed, plus an optional
check of what it did and an optional context it runs in. ``benchmarks/test_bench_*.py``
hand these callables to pytest-benchmark; :mod:`memkit._bench.cli` times them interleaved,
round by round, and compares the ratios with the bars in :class:`Bar`.

The package: :mod:`.model` holds the types and the loops, one module per area (named
like the area keys of :data:`AREAS`) holds that area's groups, and this module the
registry of them all.

Private: names, sizes and rows may change between versions.
"""

from __future__ import annotations

from . import alloc, arena, atomic, buffers, cell, fastcall, layout, pool, slotmap, sync
from .model import (
    Bar,
    BenchCheckError,
    Case,
    Group,
    Params,
    Prepared,
    at_most,
    call_loop,
    empty_loop,
    faster,
    missing_modules,
    repeated,
    slower,
)

__all__ = [
    "AREAS",
    "GROUPS",
    "Bar",
    "BenchCheckError",
    "Case",
    "Group",
    "Params",
    "Prepared",
    "at_most",
    "call_loop",
    "empty_loop",
    "faster",
    "group",
    "missing_modules",
    "repeated",
    "slower",
]

AREAS: dict[str, str] = {
    "fastcall": "fast-call glue",
    "buffers": "AlignedBuffer",
    "arena": "Arena",
    "pool": "BufferPool",
    "atomic": "atomics",
    "cell": "Cell/RefCell",
    "sync": "Mutex/RwLock",
    "slotmap": "SlotMap",
    "alloc": "allocator hook",
    "layout": "layout",
}
"""Area key -> the name the table shows, in the order the table shows them."""

_BY_AREA: dict[str, tuple[Group, ...]] = {
    "fastcall": fastcall.GROUPS,
    "buffers": buffers.GROUPS,
    "arena": arena.GROUPS,
    "pool": pool.GROUPS,
    "atomic": atomic.GROUPS,
    "cell": cell.GROUPS,
    "sync": sync.GROUPS,
    "slotmap": slotmap.GROUPS,
    "alloc": alloc.GROUPS,
    "layout": layout.GROUPS,
}
"""Area key -> the groups of the module named after it."""

GROUPS: tuple[Group, ...] = tuple(g for groups in _BY_AREA.values() for g in groups)
"""Every group, area by area in the order of :data:`AREAS`."""


def group(key: str) -> Group:
    """The group called ``key`` (e.g. ``"arena.alloc"``)."""
    for g in GROUPS:
        if g.key == key:
            return g
    raise KeyError(f"no benchmark group {key!r}")


def _validate() -> None:
    """Every group is in its area's module, has one baseline and bars that name its own cases;
    checked at import."""
    if list(_BY_AREA) != list(AREAS):
        raise RuntimeError("the benchmark areas and their modules are not the same, in the same order")
    for area, groups in _BY_AREA.items():
        for g in groups:
            if g.area != area:
                raise RuntimeError(f"benchmark group {g.key!r} of area {g.area!r} is in the module of {area!r}")
    keys = set()
    for g in GROUPS:
        if g.area not in AREAS or g.key in keys:
            raise RuntimeError(f"benchmark group {g.key!r}: unknown area or duplicate key")
        keys.add(g.key)
        names = [c.key for c in g.cases]
        if sum(c.baseline for c in g.cases) != 1 or len(set(names)) != len(names):
            raise RuntimeError(f"benchmark group {g.key!r} needs exactly one baseline and unique case keys")
        for c in g.cases:
            for bar in c.bars:
                if bar.against is not None and bar.against not in names:
                    raise RuntimeError(f"benchmark {g.key}/{c.key}: bar against unknown case {bar.against!r}")


_validate()
