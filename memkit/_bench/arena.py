"""Arena: small allocations from an arena beside bytearray, NumPy and pyarrow.

The rows of ``python -m memkit bench --filter arena`` and of benchmarks/test_bench_arena.py.
"""

from __future__ import annotations

import importlib
from itertools import repeat

from ..buffers import Arena
from .model import Case, Group, Params, Prepared, at_most, expect

ARENA_SIZE = 64


def _arena_bytearray(p: Params) -> Prepared:
    calls = p["calls"]

    def run() -> None:
        for _ in repeat(None, calls):
            bytearray(ARENA_SIZE)

    return Prepared(run)


def _arena_reset(p: Params) -> Prepared:
    calls = p["calls"]
    arena = Arena()

    def run() -> None:
        for _ in repeat(None, calls):
            arena.alloc(ARENA_SIZE)
        arena.reset()

    def check(_: object) -> None:
        expect(arena.allocation_count == 0 and arena.chunk_count == 1, "reset() freed every allocation")

    return Prepared(run, check)


def _arena_scope(p: Params) -> Prepared:
    calls = p["calls"]
    arena = Arena()

    def run() -> None:
        with arena.scope():
            for _ in repeat(None, calls):
                arena.alloc(ARENA_SIZE)

    def check(_: object) -> None:
        expect(arena.allocation_count == 0, "leaving the scope freed every allocation")

    return Prepared(run, check)


def _arena_numpy(p: Params) -> Prepared:
    import numpy as np

    calls, empty, uint8 = p["calls"], np.empty, np.uint8

    def run() -> None:
        for _ in repeat(None, calls):
            empty(ARENA_SIZE, uint8)

    return Prepared(run)


def _arena_pyarrow(p: Params) -> Prepared:
    calls, allocate = p["calls"], importlib.import_module("pyarrow").allocate_buffer

    def run() -> None:
        for _ in repeat(None, calls):
            allocate(ARENA_SIZE)

    return Prepared(run)


_ARENA = Group(
    key="arena.alloc",
    area="arena",
    title=f"allocate {ARENA_SIZE} bytes (zeroed), {{calls}} times",
    op="allocation",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("bytearray", f"bytearray({ARENA_SIZE})", _arena_bytearray, baseline=True),
        Case("arena_reset", f"Arena.alloc({ARENA_SIZE}), reset() per round", _arena_reset, bars=(at_most(0.6),)),
        Case("arena_scope", f"Arena.alloc({ARENA_SIZE}) in a scope()", _arena_scope, bars=(at_most(0.6),)),
        Case("numpy_empty", f"numpy.empty({ARENA_SIZE}, uint8)", _arena_numpy, requires=("numpy",)),
        Case("pyarrow", f"pyarrow.allocate_buffer({ARENA_SIZE})", _arena_pyarrow, requires=("pyarrow",)),
    ),
)


GROUPS: tuple[Group, ...] = (_ARENA,)
