"""SlotMap vs dict, interleaved: a check of test_bench_slotmap.py's ratios on a loaded machine.

pytest-benchmark times one row after another, so a burst of load from another process
lands on whichever rows run during it, and a single run's ratio can swing by 1.5x either
way (the dict-vs-dict control row included). Here every repeat times each loop once, in
rotating order, so bursts hit all of them alike; the min and the median over the repeats
are then stable to a few percent.

    python benchmarks/ab_slotmap.py [repeats]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from itertools import count

from memkit import SlotMap

CALLS = 1000


def loops() -> dict[str, Callable[[], None]]:
    """The same loops as test_bench_slotmap.py."""
    d: dict[int, object] = {k: object() for k in range(CALLS)}
    dict_keys = list(d)
    sm: SlotMap[object] = SlotMap()
    sm_keys = [sm.insert(object()) for _ in range(CALLS)]
    churn_dict: dict[int, object] = {}
    churn_map: SlotMap[object] = SlotMap()
    v = object()
    dict_counter = count(step=CALLS)
    map_counter = count(step=CALLS)

    def lookup_dict() -> None:
        for k in dict_keys:
            d[k]

    def lookup_slotmap() -> None:
        for k in sm_keys:
            sm[k]

    def churn_dict_counter_key() -> None:
        start = next(dict_counter)
        for n in range(start, start + CALLS):
            churn_dict[n] = v
            del churn_dict[n]

    def churn_slotmap_insert_remove() -> None:
        start = next(map_counter)
        for _ in range(start, start + CALLS):
            k = churn_map.insert(v)
            churn_map.remove(k)

    def churn_slotmap_insert_del() -> None:
        start = next(map_counter)
        for _ in range(start, start + CALLS):
            k = churn_map.insert(v)
            del churn_map[k]

    return {
        f.__name__: f
        for f in (
            lookup_dict,
            lookup_slotmap,
            churn_dict_counter_key,
            churn_slotmap_insert_remove,
            churn_slotmap_insert_del,
        )
    }


def main(repeats: int = 400) -> None:
    fns = loops()
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            start = time.perf_counter()
            fn()
            fn()
            fn()
            times[name].append((time.perf_counter() - start) / 3)
    pairs = [
        ("lookup_slotmap", "lookup_dict"),
        ("churn_slotmap_insert_remove", "churn_dict_counter_key"),
        ("churn_slotmap_insert_del", "churn_dict_counter_key"),
    ]
    for row, base in pairs:
        by_min = min(times[row]) / min(times[base])
        by_median = statistics.median(times[row]) / statistics.median(times[base])
        print(f"{row:<30} / {base:<24} min {by_min:.2f}x   median {by_median:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
