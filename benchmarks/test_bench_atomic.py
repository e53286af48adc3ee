"""Atomics beside the builtin floor and the lock a user would otherwise take, in one run.

Two harnesses for the same calls, because they answer different questions:

- ``atomic.call``: a generic call loop makes the calls (``fn(*args, **kwargs)``, 1000 per
  round), the way pytest-benchmark calls the function under test; that call overhead is
  shared by every row.
- ``atomic.loop``: a bare ``for`` loop makes the calls (``a.fetch_add(1)``), so the call
  itself dominates. Here fetch_add and load also pay for the Python int they return, which
  the floor (``lock.locked()`` returns a bool singleton) does not.

Both compare ``fetch_add(1)``, ``load()``, ``ShardedCounter.add()`` and ``with lock: n += 1``
with ``threading.Lock().locked()``; the first also the ``atomics`` package when installed.
``atomic.false_sharing`` runs the private C++ kernel: 2 OS threads (GIL released), each
incrementing its own element of an AtomicIntArray, unpadded (neighbours share a cache line)
vs padded (CACHE_PAD apart). The rows are memkit/_bench/atomic.py's, which
``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_atomic.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("atomic.call"))
def test_call(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "atomic.call", case)


@pytest.mark.parametrize("case", case_params("atomic.loop"))
def test_loop(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "atomic.loop", case)


@pytest.mark.parametrize("case", case_params("atomic.false_sharing"))
def test_false_sharing(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "atomic.false_sharing", case)
