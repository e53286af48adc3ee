"""The allocator hook's cost on an allocation-heavy workload, beside what a user would
otherwise reach for (tracemalloc, memray), in one run.

The workload (memkit/_workloads.py): 20,000 small dicts with lists and strings, json.dumps,
json.loads, grouped into a dict - about 900,000 allocations and as many frees.

    pytest benchmarks/test_bench_alloc.py --benchmark-enable
"""

from __future__ import annotations

import gc
import importlib.util
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _bench import baseline

from memkit import alloc
from memkit._workloads import dict_json_workload

GROUP = "allocator hook: 20,000 dicts through json dumps/loads"
SWITCH = "allocator hook: switching on and off"

HAVE_MEMRAY = importlib.util.find_spec("memray") is not None
ROUNDS = 15


def timed(benchmark: Any) -> int:
    """Time the workload, each round from a collected heap (the collector's timing would
    otherwise differ from row to row with whatever the round before left behind)."""

    def collect() -> None:  # pedantic() would take a return value as the round's arguments
        gc.collect()

    result: int = benchmark.pedantic(dict_json_workload, setup=collect, rounds=ROUNDS, warmup_rounds=1)
    return result


@pytest.fixture
def no_hook() -> Iterator[None]:
    assert not alloc.installed() and not tracemalloc.is_tracing()
    yield
    alloc.uninstall()


@pytest.mark.benchmark(group=GROUP)
def test_workload_untracked(benchmark: Any, no_hook: None) -> None:
    baseline(benchmark)
    assert timed(benchmark) == 7


@pytest.mark.benchmark(group=GROUP)
def test_workload_memkit_counting(benchmark: Any, no_hook: None) -> None:
    alloc.install()
    assert timed(benchmark) == 7
    assert alloc.stats().allocations > 20_000 * 40


@pytest.mark.benchmark(group=GROUP)
def test_workload_memkit_inside_limit(benchmark: Any, no_hook: None) -> None:
    with alloc.limit("1 GiB") as budget:
        assert timed(benchmark) == 7
    assert budget.allocations > 20_000 * 40 and budget.peak_bytes > 1_000_000


@pytest.mark.benchmark(group=GROUP)
def test_workload_memkit_uninstalled(benchmark: Any, no_hook: None) -> None:
    # After uninstall memkit's layer stays in the chain, passing every call through.
    alloc.install()
    alloc.uninstall()
    assert timed(benchmark) == 7


@pytest.mark.benchmark(group=GROUP)
def test_workload_tracemalloc_1_frame(benchmark: Any, no_hook: None) -> None:
    tracemalloc.start(1)
    try:
        assert timed(benchmark) == 7
        assert tracemalloc.get_traced_memory()[1] > 1_000_000
    finally:
        tracemalloc.stop()


@pytest.mark.skipif(not HAVE_MEMRAY, reason="memray is not installed (pip install memray)")
@pytest.mark.benchmark(group=GROUP)
def test_workload_memray_python_allocators(benchmark: Any, no_hook: None, tmp_path: Path) -> None:
    import memray

    capture = tmp_path / "capture.bin"
    with memray.Tracker(capture, trace_python_allocators=True):
        assert timed(benchmark) == 7
    assert capture.stat().st_size > 0


@pytest.mark.benchmark(group=SWITCH)
def test_switch_tracemalloc_start_stop(benchmark: Any, no_hook: None) -> None:
    baseline(benchmark)

    def start_stop() -> None:
        tracemalloc.start(1)
        tracemalloc.stop()

    benchmark(start_stop)


@pytest.mark.benchmark(group=SWITCH)
def test_switch_memkit_install_uninstall(benchmark: Any, no_hook: None) -> None:
    def install_uninstall() -> None:
        alloc.install()
        alloc.uninstall()

    benchmark(install_uninstall)
    assert not alloc.installed()


PAIRS = "allocator hook: 100,000 object-domain malloc+free pairs (C loop, 1,000 live blocks)"


def churn(benchmark: Any) -> None:
    """The hook's own per-call cost: a C++ loop freeing a random one of 1,000 live blocks and
    allocating a new one of 16-215 bytes, through PyObject_Free/PyObject_Malloc."""
    from memkit._core import alloc as _alloc

    benchmark(_alloc._object_churn, 100_000, 1_000)


@pytest.mark.benchmark(group=PAIRS)
def test_pairs_untracked(benchmark: Any, no_hook: None) -> None:
    baseline(benchmark)
    churn(benchmark)


@pytest.mark.benchmark(group=PAIRS)
def test_pairs_memkit_counting(benchmark: Any, no_hook: None) -> None:
    alloc.install()
    churn(benchmark)
    assert alloc.stats().by_domain["object"].allocations >= 100_000


@pytest.mark.benchmark(group=PAIRS)
def test_pairs_memkit_inside_limit(benchmark: Any, no_hook: None) -> None:
    with alloc.limit("1 GiB") as budget:
        churn(benchmark)
    assert budget.allocations >= 100_000


@pytest.mark.benchmark(group=PAIRS)
def test_pairs_tracemalloc_1_frame(benchmark: Any, no_hook: None) -> None:
    tracemalloc.start(1)
    try:
        churn(benchmark)
    finally:
        tracemalloc.stop()
