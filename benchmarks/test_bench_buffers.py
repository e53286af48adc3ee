"""AlignedBuffer beside what a user would otherwise allocate, in one run.

- ``buffers.alloc``: allocating 4096 bytes 100 times a round: ``bytearray`` (baseline),
  ``AlignedBuffer`` zeroed and not, ``numpy.empty``, ``numpy.zeros`` (NumPy rows skip
  without NumPy);
- ``buffers.memoryview``: taking a memoryview of a ``bytearray`` vs an ``AlignedBuffer``.

The rows are memkit/_bench/buffers.py's, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_buffers.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("buffers.alloc"))
def test_alloc(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "buffers.alloc", case)


@pytest.mark.parametrize("case", case_params("buffers.memoryview"))
def test_memoryview(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "buffers.memoryview", case)
