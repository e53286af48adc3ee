"""Owning locks beside threading's locks, in one run.

- ``sync.uncontended``: ``with m.lock() as g: g.value += 1`` vs ``with threading.Lock(): n += 1``
  (baseline) vs ``with threading.RLock(): n += 1``, and ``with rw.read() as r: r.value``;
- ``sync.contended``: 2 threads x 20000 increments of one counter, memkit.Mutex vs
  threading.Lock (baseline).

The rows are memkit/_bench/sync.py's, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_sync.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("sync.uncontended"))
def test_uncontended(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "sync.uncontended", case)


@pytest.mark.parametrize("case", case_params("sync.contended"))
def test_contended(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "sync.contended", case)
