"""memkit.layout struct views and SoA beside what a user would otherwise write, in one run.

- ``layout.read`` / ``layout.write``: ``rec.x`` on ``S.view(buf)`` against the same field of
  ``ctypes.Structure.from_buffer(buf)`` (baseline) and ``struct.unpack_from`` / ``pack_into``
  with a precompiled ``struct.Struct``, 1000 accesses in a bare loop.
- ``layout.soa``: ``soa.x += 1`` on a SoA column against ``arr["x"] += 1`` on a NumPy
  structured array (AoS, strided; baseline), 1,000,000 records (skipped without NumPy).

The rows are memkit/_bench/layout.py's, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_layout.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("layout.read"))
def test_read(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "layout.read", case)


@pytest.mark.parametrize("case", case_params("layout.write"))
def test_write(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "layout.write", case)


@pytest.mark.parametrize("case", case_params("layout.soa"))
def test_soa(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "layout.soa", case)
