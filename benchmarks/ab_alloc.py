"""The allocator hook's cost, interleaved: a check of test_bench_alloc.py's ratios on a
loaded machine.

pytest-benchmark times one row after another, so a burst of load from another process
lands on whichever rows run during it. Here every repeat runs the workload once under
each variant, in rotating order and each from a collected heap, so bursts hit all of them
alike; the medians over the repeats are stable to a few percent.

    python benchmarks/ab_alloc.py [repeats]
"""

from __future__ import annotations

import gc
import importlib.util
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from memkit import alloc
from memkit._workloads import dict_json_workload


class _Installed:
    def __enter__(self) -> None:
        alloc.install()

    def __exit__(self, *exc: object) -> None:
        alloc.uninstall()


class _Tracemalloc:
    def __enter__(self) -> None:
        tracemalloc.start(1)

    def __exit__(self, *exc: object) -> None:
        tracemalloc.stop()


class _Limited:
    def __init__(self) -> None:
        self.budget: alloc.Limit | None = None

    def __enter__(self) -> None:
        self.budget = alloc.limit("1 GiB")
        self.budget.__enter__()

    def __exit__(self, *exc: object) -> None:
        assert self.budget is not None
        self.budget.__exit__(None, None, None)
        alloc.uninstall()


def variants(workdir: Path) -> dict[str, Callable[[], AbstractContextManager[Any]]]:
    """Each variant: a factory of the context the workload runs in."""
    found: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        "untracked": nullcontext,
        "memkit counting": _Installed,
        "memkit limit()": _Limited,
        "tracemalloc(1)": _Tracemalloc,
    }
    if importlib.util.find_spec("memray") is not None:
        import memray

        rounds = iter(range(10**9))

        def memray_tracker() -> AbstractContextManager[Any]:
            capture = workdir / f"memray-{next(rounds)}.bin"
            tracker: AbstractContextManager[Any] = memray.Tracker(capture, trace_python_allocators=True)
            return tracker

        found["memray (Python allocators)"] = memray_tracker
    return found


def main(repeats: int = 15) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        found = variants(Path(tmp))
        names = list(found)
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect()
                with found[name]():
                    start = time.perf_counter()
                    dict_json_workload()
                    times[name].append(time.perf_counter() - start)
                for leftover in Path(tmp).glob("memray-*.bin"):
                    leftover.unlink()
    base, fastest = statistics.median(times["untracked"]), min(times["untracked"])
    for name in names:
        median, best = statistics.median(times[name]) / base, min(times[name]) / fastest
        print(f"{name:<28} median {median:5.2f}x   min {best:5.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
