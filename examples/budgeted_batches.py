"""A batch job under a memory budget: every batch runs inside `memkit.alloc.limit()`.

An import job parses batches of JSON lines (orders) and totals them per customer. Each
batch gets a budget of 2 MiB of net allocations. One batch is ten times the usual size:
while parsing it, the allocation that would cross the budget is refused before it is
made, and the `with limit()` block raises `MemoryLimitError` naming the budget and the
refused request. The job reports it, splits the batch in halves and
retries them, and carries on; the batches before and after never notice. (Rust's
`#[global_allocator]` could refuse too, but the program would abort; here it is an
exception the job handles.)

    python examples/budgeted_batches.py
"""

from __future__ import annotations

import json
import random
from collections import Counter

import memkit.alloc as alloc

BUDGET = "2 MiB"
SMALLEST_SPLIT = 250  # give up on a batch that does not fit even this small


def make_batches() -> list[list[str]]:
    rng = random.Random(1)

    def order(n: int) -> str:
        return json.dumps({"id": n, "customer": f"c{rng.randrange(50):02d}", "cents": rng.randrange(100, 100_000)})

    sizes = [1500, 1500, 15_000, 1500, 1500]  # batch 2 is the oversized one
    return [[order(n) for n in range(size)] for size in sizes]


def total_by_customer(lines: list[str]) -> Counter[str]:
    orders = [json.loads(line) for line in lines]  # the memory-hungry step: every record at once
    totals: Counter[str] = Counter()
    for order in orders:
        totals[order["customer"]] += order["cents"]
    return totals


def run_batch(name: str, lines: list[str], totals: Counter[str], log: list[str]) -> None:
    budget = alloc.limit(BUDGET)
    try:
        with budget:
            result = total_by_customer(lines)
    except alloc.MemoryLimitError as exc:
        log.append(
            f"batch {name:<3} {len(lines):>6} orders  over budget: refused {exc.request:,} more bytes"
            f" at {budget.peak_bytes:,} of {exc.limit:,}; splitting"
        )
        if len(lines) <= SMALLEST_SPLIT:
            raise
        half = len(lines) // 2
        run_batch(f"{name}a", lines[:half], totals, log)
        run_batch(f"{name}b", lines[half:], totals, log)
        return
    totals.update(result)
    log.append(f"batch {name:<3} {len(lines):>6} orders  done, peak {budget.peak_bytes:,} bytes")


def main() -> None:
    was_installed = alloc.installed()
    batches = make_batches()
    totals: Counter[str] = Counter()
    log: list[str] = []
    try:
        for n, lines in enumerate(batches):
            run_batch(str(n), lines, totals, log)
    finally:
        if not was_installed:
            alloc.uninstall()  # limit() installed the allocator hook; leave the process as we found it

    print("\n".join(log))
    expected: Counter[str] = Counter()
    for lines in batches:
        expected.update(total_by_customer(lines))
    assert totals == expected, "every order was counted exactly once"
    assert any("over budget" in line for line in log)
    orders = sum(map(len, batches))
    print(f"{orders:,} orders from {len(totals)} customers, {sum(totals.values()) / 100:,.2f} in total")


if __name__ == "__main__":
    main()
