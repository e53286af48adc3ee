"""The fast-call proof: a trivial hot method costs what a builtin C method costs.

Rows, in one group and one run: ``threading.Lock().locked()`` (a builtin no-argument C
method: the floor), the same trivial method attached through csrc/bindings/fastcall.hpp,
and through pybind11's dispatcher. Each row makes 1000 calls in a ``for`` loop, so the
harness's own per-round cost is spread out; the empty loop is timed too, and the summary
prints ratios with and without it. The rows are memkit/_bench/fastcall.py's group
``fastcall.method``, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_fastcall.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("fastcall.method"))
def test_trivial_method(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "fastcall.method", case)
