"""SlotMap beside the dict a user would otherwise key by a counter, in one run.

- "lookup": `sm[key]` over 1000 live keys against `d[key]` on a dict keyed by the ints
  0..999 (the counter's keys: small, perfectly hashed - the dict's best case; CPython 3.11
  specialises that subscript). `sm.get(key)` rides along.
- "insert + remove": `k = sm.insert(v); sm.remove(k)` (and with `del sm[k]`) against
  `d[n] = v; del d[n]` with `n` a counter that never repeats a key, 1000 times a round.
  One more dict row reuses the keys 0..999 every round: cheaper for the dict (its table
  never fills with deleted entries), but reusing keys is exactly the ABA hazard a slot
  map exists to remove, so it is shown, not used as the baseline.

Each group also times its bare loop, so the summary prints ratios net of it.

    pytest benchmarks/test_bench_slotmap.py --benchmark-enable
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from _bench import baseline, loop_overhead

from memkit import SlotMap

CALLS = 1000
LOOKUP = f"slot map: lookup, {CALLS} keys"
CHURN = f"slot map: insert + remove, {CALLS} times"


def filled_dict() -> tuple[dict[int, object], list[int]]:
    d: dict[int, object] = {}
    counter = count()
    for _ in range(CALLS):
        d[next(counter)] = object()
    return d, list(d)


def filled_slotmap() -> tuple[SlotMap[object], list[int]]:
    sm: SlotMap[object] = SlotMap()
    keys = [sm.insert(object()) for _ in range(CALLS)]
    return sm, keys


# ---- lookup -------------------------------------------------------------------------------------


@pytest.mark.benchmark(group=LOOKUP)
def test_lookup_dict(benchmark: Any) -> None:
    baseline(benchmark)
    d, keys = filled_dict()

    def run() -> None:
        for k in keys:
            d[k]

    benchmark(run)


@pytest.mark.benchmark(group=LOOKUP)
def test_lookup_slotmap(benchmark: Any) -> None:
    sm, keys = filled_slotmap()

    def run() -> None:
        for k in keys:
            sm[k]

    benchmark(run)


@pytest.mark.benchmark(group=LOOKUP)
def test_lookup_slotmap_get(benchmark: Any) -> None:
    sm, keys = filled_slotmap()

    def run() -> None:
        for k in keys:
            sm.get(k)

    benchmark(run)


@pytest.mark.benchmark(group=LOOKUP)
def test_lookup_loop_only(benchmark: Any) -> None:
    loop_overhead(benchmark)
    _, keys = filled_slotmap()

    def run() -> None:
        for _ in keys:
            pass

    benchmark(run)


# ---- insert + remove ------------------------------------------------------------------------------


@pytest.mark.benchmark(group=CHURN)
def test_churn_dict_counter_key(benchmark: Any) -> None:
    baseline(benchmark)
    d: dict[int, object] = {}
    v = object()
    counter = count(step=CALLS)

    def run() -> None:
        start = next(counter)
        for n in range(start, start + CALLS):
            d[n] = v
            del d[n]

    benchmark(run)
    assert not d


@pytest.mark.benchmark(group=CHURN)
def test_churn_dict_reused_keys(benchmark: Any) -> None:
    d: dict[int, object] = {}
    v = object()

    def run() -> None:
        for n in range(CALLS):
            d[n] = v
            del d[n]

    benchmark(run)
    assert not d


@pytest.mark.benchmark(group=CHURN)
def test_churn_slotmap_insert_remove(benchmark: Any) -> None:
    sm: SlotMap[object] = SlotMap()
    v = object()
    counter = count(step=CALLS)

    def run() -> None:
        start = next(counter)
        for _ in range(start, start + CALLS):
            k = sm.insert(v)
            sm.remove(k)

    benchmark(run)
    assert len(sm) == 0


@pytest.mark.benchmark(group=CHURN)
def test_churn_slotmap_insert_del(benchmark: Any) -> None:
    sm: SlotMap[object] = SlotMap()
    v = object()
    counter = count(step=CALLS)

    def run() -> None:
        start = next(counter)
        for _ in range(start, start + CALLS):
            k = sm.insert(v)
            del sm[k]

    benchmark(run)
    assert len(sm) == 0


@pytest.mark.benchmark(group=CHURN)
def test_churn_loop_only(benchmark: Any) -> None:
    loop_overhead(benchmark)
    counter = count(step=CALLS)

    def run() -> None:
        start = next(counter)
        for _ in range(start, start + CALLS):
            pass

    benchmark(run)
