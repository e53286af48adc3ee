"""The ratio summary: each group names a baseline, and the end of a timed run prints ratios to it.

``_bench.run_case`` marks the alternative a user would otherwise pick (the case with
``baseline=True`` in memkit/_bench/) as its group's baseline; after the run, every
row of the group is reported as a multiple of that baseline's median (ratios, not absolute
times: shared machines are noisy). A row marked as the loop overhead times the bare loop the
other rows run their call in; when a group has one, the summary also prints each row's ratio
with the loop's cost subtracted from both sides.
"""

from __future__ import annotations

from typing import Any

import pytest


def _median(bench: Any) -> float | None:
    stats = getattr(bench, "stats", None)
    stats = getattr(stats, "stats", stats)
    try:
        value = getattr(stats, "median", None)
    except ValueError:  # statistics.StatisticsError: a row that failed before timing anything
        return None
    return float(value) if value else None


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benches = [b for b in getattr(session, "benchmarks", []) if _median(b) is not None]
    if not benches:
        return
    groups: dict[str, list[Any]] = {}
    for b in benches:
        groups.setdefault(b.group or "(no group)", []).append(b)
    write = terminalreporter.write_line
    terminalreporter.section("memkit: ratios to each group's baseline (median)")
    for group, rows in groups.items():
        base = next((r for r in rows if r.extra_info.get("baseline")), None)
        loop = next((r for r in rows if r.extra_info.get("loop_overhead")), None)
        if base is None:
            continue
        write(f"{group}")
        base_median = _median(base) or 1.0
        loop_median = _median(loop) if loop is not None else None
        for r in sorted(rows, key=lambda r: _median(r) or 0.0):
            median = _median(r) or 0.0
            line = f"  {r.extra_info.get('label', r.name):<58} {median / base_median:6.2f}x"
            if loop_median is not None and r is not loop and base_median > loop_median:
                line += f"   net of loop: {(median - loop_median) / (base_median - loop_median):6.2f}x"
            if r is base:
                line += "   (baseline)"
            write(line)
