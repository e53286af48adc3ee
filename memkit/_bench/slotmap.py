"""SlotMap: lookups and insert/remove churn beside a dict.

The rows of ``python -m memkit bench --filter slotmap`` and of benchmarks/test_bench_slotmap.py.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

from ..slotmap import SlotMap
from .model import Case, Group, Params, Prepared, at_most, expect


def _lookup_dict(p: Params) -> Prepared:
    d: dict[int, object] = {}
    counter = count()
    for _ in range(p["keys"]):
        d[next(counter)] = object()
    keys = list(d)

    def run() -> None:
        for k in keys:
            d[k]

    return Prepared(run)


def _filled_slotmap(n: int) -> tuple[SlotMap[object], list[int]]:
    sm: SlotMap[object] = SlotMap()
    return sm, [sm.insert(object()) for _ in range(n)]


def _lookup_slotmap(p: Params) -> Prepared:
    sm, keys = _filled_slotmap(p["keys"])

    def run() -> None:
        for k in keys:
            sm[k]

    return Prepared(run)


def _lookup_slotmap_get(p: Params) -> Prepared:
    sm, keys = _filled_slotmap(p["keys"])

    def run() -> None:
        for k in keys:
            sm.get(k)

    def check(_: object) -> None:
        expect(all(sm.get(k) is not None for k in keys), "every key is live")

    return Prepared(run, check)


def _lookup_loop(p: Params) -> Prepared:
    _, keys = _filled_slotmap(p["keys"])

    def run() -> None:
        for _ in keys:
            pass

    return Prepared(run)


_SLOTMAP_LOOKUP = Group(
    key="slotmap.lookup",
    area="slotmap",
    title="lookup of {keys} live keys",
    op="lookup",
    ops="keys",
    params={"keys": 1000},
    cases=(
        Case("dict", "d[key], int keys 0..n-1", _lookup_dict, baseline=True),
        Case("slotmap", "sm[key]", _lookup_slotmap, bars=(at_most(1.5),)),
        Case("slotmap_get", "sm.get(key)", _lookup_slotmap_get),
        Case("loop", "the bare loop", _lookup_loop, loop_overhead=True),
    ),
)


def _churn_dict_counter(p: Params) -> Prepared:
    calls, d, v = p["calls"], dict[int, object](), object()
    counter = count(step=calls)

    def run() -> None:
        start = next(counter)
        for n in range(start, start + calls):
            d[n] = v
            del d[n]

    def check(_: object) -> None:
        expect(not d, "every key was deleted")

    return Prepared(run, check)


def _churn_dict_reused(p: Params) -> Prepared:
    calls, d, v = p["calls"], dict[int, object](), object()

    def run() -> None:
        for n in range(calls):
            d[n] = v
            del d[n]

    def check(_: object) -> None:
        expect(not d, "every key was deleted")

    return Prepared(run, check)


def _churn_slotmap(use_del: bool) -> Callable[[Params], Prepared]:
    def setup(p: Params) -> Prepared:
        calls, v = p["calls"], object()
        sm: SlotMap[object] = SlotMap()
        counter = count(step=calls)

        if use_del:

            def run() -> None:
                start = next(counter)
                for _ in range(start, start + calls):
                    k = sm.insert(v)
                    del sm[k]

        else:

            def run() -> None:
                start = next(counter)
                for _ in range(start, start + calls):
                    k = sm.insert(v)
                    sm.remove(k)

        def check(_: object) -> None:
            expect(len(sm) == 0, "every key was removed")

        return Prepared(run, check)

    return setup


def _churn_loop(p: Params) -> Prepared:
    calls = p["calls"]
    counter = count(step=calls)

    def run() -> None:
        start = next(counter)
        for _ in range(start, start + calls):
            pass

    return Prepared(run)


_SLOTMAP_CHURN = Group(
    key="slotmap.churn",
    area="slotmap",
    title="insert + remove, {calls} times",
    op="insert+remove",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("dict_counter", "d[n] = v; del d[n], n a counter", _churn_dict_counter, baseline=True),
        Case("slotmap_remove", "k = sm.insert(v); sm.remove(k)", _churn_slotmap(use_del=False), bars=(at_most(1.5),)),
        Case("slotmap_del", "k = sm.insert(v); del sm[k]", _churn_slotmap(use_del=True), bars=(at_most(1.5),)),
        Case("dict_reused", "the dict reusing keys 0..n-1 (the ABA hazard)", _churn_dict_reused),
        Case("loop", "the bare loop", _churn_loop, loop_overhead=True),
    ),
)


GROUPS: tuple[Group, ...] = (_SLOTMAP_LOOKUP, _SLOTMAP_CHURN)
