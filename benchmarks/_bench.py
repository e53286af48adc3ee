"""How the pytest benchmarks run memkit's benchmark cases (the ratio summary is in conftest.py).

The rows themselves - the timed callables, their setup and the checks of what they did -
are in the ``memkit/_bench/`` package, shared with ``python -m memkit bench``: one source of
truth. Each ``test_bench_*.py`` parametrizes a test over a group's cases and hands each
case to :func:`run_case`, which gives pytest-benchmark the case's callable.
"""

from __future__ import annotations

import gc
from contextlib import nullcontext
from typing import Any

import pytest

from memkit import _bench as cases


def case_params(group_key: str) -> list[Any]:
    """``pytest.param`` for each case of the group (ids: the case keys)."""
    return [pytest.param(c, id=c.key) for c in cases.group(group_key).cases]


def _collect() -> None:  # pedantic() would take a return value as the round's arguments
    gc.collect()


def run_case(benchmark: Any, group_key: str, case: cases.Case) -> None:
    """Benchmark ``case`` of group ``group_key`` with pytest-benchmark, then check its result.

    The group's title becomes the pytest-benchmark group; the baseline row and the bare
    loop are marked for the ratio summary. Groups of slow rows run a fixed number of
    rounds (``Group.pytest_rounds``), each from a collected heap when ``Group.collect``.
    """
    g = cases.group(group_key)
    missing = cases.missing_modules(case.requires)
    if missing:
        pytest.skip(f"{', '.join(missing)} is not installed")
    benchmark.group = f"{cases.AREAS[g.area]}: {g.describe(g.params)}"
    benchmark.extra_info["label"] = case.label
    if case.baseline:
        benchmark.extra_info["baseline"] = True
    if case.loop_overhead:
        benchmark.extra_info["loop_overhead"] = True
    prepared = case.setup(g.params)
    try:
        with prepared.context if prepared.context is not None else nullcontext():
            if g.pytest_rounds is not None:
                result = benchmark.pedantic(
                    prepared.body,
                    setup=_collect if g.collect else None,
                    rounds=g.pytest_rounds,
                    warmup_rounds=1,
                )
            else:
                result = benchmark(prepared.body)
            if prepared.check is not None:
                prepared.check(result)
    finally:
        if prepared.cleanup is not None:
            prepared.cleanup()
