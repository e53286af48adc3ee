"""SlotMap beside the dict a user would otherwise key by a counter, in one run.

- ``slotmap.lookup``: ``sm[key]`` over 1000 live keys against ``d[key]`` on a dict keyed by
  the ints 0..999 (the counter's keys: small, perfectly hashed - the dict's best case;
  CPython 3.11 specialises that subscript). ``sm.get(key)`` rides along.
- ``slotmap.churn``: ``k = sm.insert(v); sm.remove(k)`` (and with ``del sm[k]``) against
  ``d[n] = v; del d[n]`` with ``n`` a counter that never repeats a key, 1000 times a round.
  One more dict row reuses the keys 0..999 every round: cheaper for the dict (its table
  never fills with deleted entries), but reusing keys is exactly the ABA hazard a slot map
  exists to remove, so it is shown, not used as the baseline.

Each group also times its bare loop, so the summary prints ratios net of it. The rows are
memkit/_bench/slotmap.py's, which ``python -m memkit bench --filter slotmap`` times
interleaved (for ratios a load burst cannot skew).

    pytest benchmarks/test_bench_slotmap.py --benchmark-enable
"""

from __future__ import annotations

from typing import Any

import pytest
from _bench import case_params, run_case

from memkit._bench import Case


@pytest.mark.parametrize("case", case_params("slotmap.lookup"))
def test_lookup(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "slotmap.lookup", case)


@pytest.mark.parametrize("case", case_params("slotmap.churn"))
def test_churn(benchmark: Any, case: Case) -> None:
    run_case(benchmark, "slotmap.churn", case)
