"""The fast-call glue: a trivial method called through memkit's fast-call path and through
pybind11's dispatcher, beside a builtin method (the floor).

The rows of ``python -m memkit bench --filter fastcall`` and of benchmarks/test_bench_fastcall.py.
"""

from __future__ import annotations

import threading

from .model import Case, Group, Params, Prepared, at_most, empty_loop, expect, repeated


def _fastcall_lock(p: Params) -> Prepared:
    return Prepared(repeated(threading.Lock().locked, p["calls"]))


def _fastcall_probe(p: Params) -> Prepared:
    from .._native import core

    probe = core._testing.FastCallProbe()
    expect(probe.is_set() is True, "FastCallProbe.is_set() is True")
    return Prepared(repeated(probe.is_set, p["calls"]))


def _fastcall_pybind(p: Params) -> Prepared:
    from .._native import core

    probe = core._testing.FastCallProbe()
    expect(probe.pybind_is_set() is True, "FastCallProbe.pybind_is_set() is True")
    return Prepared(repeated(probe.pybind_is_set, p["calls"]))


def _empty_loop(p: Params) -> Prepared:
    return Prepared(empty_loop(p["calls"]))


_FASTCALL = Group(
    key="fastcall.method",
    area="fastcall",
    title="a trivial no-argument method, {calls} calls in a loop",
    op="call",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("lock_locked", "threading.Lock().locked() (builtin floor)", _fastcall_lock, baseline=True),
        Case("fastcall", "memkit fast-call method", _fastcall_probe, bars=(at_most(1.5),)),
        Case("pybind11", "the same method through pybind11", _fastcall_pybind),
        Case("loop", "the bare loop", _empty_loop, loop_overhead=True),
    ),
)


GROUPS: tuple[Group, ...] = (_FASTCALL,)
