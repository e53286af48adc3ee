"""A request loop: get a 16 KiB buffer, fill it with readinto from an in-memory stream,
drop it - with a BufferPool beside what a user would otherwise allocate, in one run.

Rows: ``bytearray`` (baseline), ``AlignedBuffer``, ``BufferPool.acquire`` zeroed and not,
and the floor: one buffer allocated up front and reused, so the round is only the stream's
seek and readinto (a 16 KiB copy); no allocation strategy can beat it. The rows are
memkit/_bench/pool.py's group ``pool.request``, which ``python -m memkit bench`` times too.

    pytest benchmarks/test_bench_pool.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("pool.request"))
def test_request_loop(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "pool.request", case)
