"""The fast-call proof: a trivial hot method costs what a builtin C method costs.

Rows, in one group and one run: ``threading.Lock().locked()`` (a builtin no-argument C
method: the floor), the same trivial method attached through csrc/bindings/fastcall.hpp,
and through pybind11's dispatcher. Each row makes CALLS calls in a ``for`` loop, so the
harness's own per-round cost is spread out; the empty loop is timed too, and the summary
prints ratios with and without it.

    pytest benchmarks/test_bench_fastcall.py --benchmark-enable
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _bench import baseline, empty_loop, loop_overhead, repeated

from memkit._core._testing import FastCallProbe

CALLS = 1000
GROUP = f"trivial no-argument method, {CALLS} calls"


@pytest.mark.benchmark(group=GROUP)
def test_builtin_lock_locked(benchmark: Any) -> None:
    baseline(benchmark)
    benchmark(repeated(threading.Lock().locked, CALLS))


@pytest.mark.benchmark(group=GROUP)
def test_memkit_fastcall_method(benchmark: Any) -> None:
    probe = FastCallProbe()
    assert probe.is_set() is True
    benchmark(repeated(probe.is_set, CALLS))


@pytest.mark.benchmark(group=GROUP)
def test_pybind11_dispatched_method(benchmark: Any) -> None:
    probe = FastCallProbe()
    assert probe.pybind_is_set() is True
    benchmark(repeated(probe.pybind_is_set, CALLS))


@pytest.mark.benchmark(group=GROUP)
def test_empty_loop(benchmark: Any) -> None:
    loop_overhead(benchmark)
    benchmark(empty_loop(CALLS))
