"""RefCell and Cell beside what a user would otherwise write, in one run.

- ``cell.borrow_mut``: ``with cell.borrow_mut() as g: g.value += 1`` against the same block
  with a pure-Python RefCell (``PyRefCell`` in memkit/_bench/cell.py) and
  ``with lock: x += 1`` (baseline), 1000 times a round.
- ``cell.get_call`` / ``cell.get_loop``: ``Cell.get()`` against the builtin floor
  ``threading.Lock().locked()``, through a generic call loop and in a bare loop.

The rows are memkit/_bench/cell.py's, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_cell.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("cell.borrow_mut"))
def test_borrow_mut(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "cell.borrow_mut", case)


@pytest.mark.parametrize("case", case_params("cell.get_call"))
def test_get_call(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "cell.get_call", case)


@pytest.mark.parametrize("case", case_params("cell.get_loop"))
def test_get_loop(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "cell.get_loop", case)
