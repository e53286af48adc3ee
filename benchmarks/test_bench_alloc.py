"""The allocator hook's cost on an allocation-heavy workload, beside what a user would
otherwise reach for (tracemalloc, memray), in one run.

- ``alloc.workload`` (memkit/_workloads.py): 20,000 small dicts with lists and strings,
  json.dumps, json.loads, grouped into a dict - about 900,000 allocations and as many
  frees - untracked (baseline), with the hook counting, inside ``limit()``, after
  ``uninstall()``, under ``tracemalloc.start(1)`` and memray (when installed); each round
  from a collected heap.
- ``alloc.switch``: ``install()`` + ``uninstall()`` against ``tracemalloc.start(1)`` + ``stop()``.
- ``alloc.pairs``: ``PyObject_Malloc``/``Free`` pairs in a C loop, the hook's own per-call cost.

The rows are memkit/_bench/alloc.py's; ``python -m memkit bench --filter alloc`` times them
interleaved, in a fresh interpreter.

    pytest benchmarks/test_bench_alloc.py --benchmark-enable
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from _bench import case_params, run_case

from memkit import alloc
from memkit._bench import Case


@pytest.fixture(autouse=True)
def no_hook() -> Iterator[None]:
    assert not alloc.installed() and not tracemalloc.is_tracing()
    yield
    alloc.uninstall()


@pytest.mark.parametrize("case", case_params("alloc.workload"))
def test_workload(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "alloc.workload", case)


@pytest.mark.parametrize("case", case_params("alloc.switch"))
def test_switch(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "alloc.switch", case)


@pytest.mark.parametrize("case", case_params("alloc.pairs"))
def test_pairs(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "alloc.pairs", case)
