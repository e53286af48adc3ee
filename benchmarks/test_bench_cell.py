"""RefCell and Cell beside what a user would otherwise write, in one run.

- "borrow_mut and increment": `with cell.borrow_mut() as g: g.value += 1` against the same
  block with a pure-Python RefCell (benchmarks/_pyrefcell.py) and `with lock: x += 1`.
- "Cell.get()": against the builtin floor `threading.Lock().locked()`, per call through
  pytest-benchmark's loop and 1000 calls in a bare loop.

    pytest benchmarks/test_bench_cell.py --benchmark-enable
"""

from __future__ import annotations

import threading
from itertools import repeat
from typing import Any

import pytest
from _bench import baseline
from _pyrefcell import PyRefCell

from memkit import Cell, RefCell

CALLS = 1000
BORROW = f"borrow_mut and increment, {CALLS} times"
GET_ONE = "Cell.get(): one call"
GET_LOOP = f"Cell.get(): {CALLS} calls in a loop"


@pytest.mark.benchmark(group=BORROW)
def test_borrow_with_lock(benchmark: Any) -> None:
    baseline(benchmark)
    lock = threading.Lock()

    def run() -> None:
        x = 0
        for _ in repeat(None, CALLS):
            with lock:
                x += 1

    benchmark(run)


@pytest.mark.benchmark(group=BORROW)
def test_borrow_memkit_refcell(benchmark: Any) -> None:
    cell = RefCell(0)

    def run() -> None:
        for _ in repeat(None, CALLS):
            with cell.borrow_mut() as g:
                g.value += 1

    benchmark(run)
    assert cell.borrow_state == ("unborrowed", 0)


@pytest.mark.benchmark(group=BORROW)
def test_borrow_pure_python_refcell(benchmark: Any) -> None:
    cell = PyRefCell(0)

    def run() -> None:
        for _ in repeat(None, CALLS):
            with cell.borrow_mut() as g:
                g.value += 1

    benchmark(run)


@pytest.mark.benchmark(group=GET_ONE)
def test_get_one_builtin_lock_locked(benchmark: Any) -> None:
    baseline(benchmark)
    benchmark(threading.Lock().locked)


@pytest.mark.benchmark(group=GET_ONE)
def test_get_one_cell(benchmark: Any) -> None:
    benchmark(Cell(12345).get)


@pytest.mark.benchmark(group=GET_LOOP)
def test_get_loop_builtin_lock_locked(benchmark: Any) -> None:
    baseline(benchmark)
    lock = threading.Lock()

    def run() -> None:
        for _ in repeat(None, CALLS):
            lock.locked()

    benchmark(run)


@pytest.mark.benchmark(group=GET_LOOP)
def test_get_loop_cell(benchmark: Any) -> None:
    cell = Cell(12345)

    def run() -> None:
        for _ in repeat(None, CALLS):
            cell.get()

    benchmark(run)
