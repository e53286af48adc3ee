"""Arena.alloc beside the allocations a user would otherwise make, in one run.

Each round makes 1000 allocations of 64 bytes and drops them: ``bytearray(64)``
(baseline), ``Arena.alloc(64)`` with the arena reset at the end of each round, as a
request-scoped arena is (the reset is part of its cost), or inside a ``scope()``;
``numpy.empty`` and ``pyarrow.allocate_buffer`` when installed. The rows are
memkit/_bench/arena.py's group ``arena.alloc``, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_arena.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("arena.alloc"))
def test_allocate_64(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "arena.alloc", case)
