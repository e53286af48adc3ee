"""A worker pool moving money between accounts: one Mutex per account, lock_all, poisoning.

Four worker threads run random transfers between eight accounts, each account's balance
owned by its own `Mutex`. A transfer locks both accounts with `lock_all`, which takes
them in one global order whatever order they are named in, so `transfer(a, b)` and
`transfer(b, a)` running at once cannot deadlock. The pool's shared statistics live in a
`Mutex` too. An auditor thread locks every account at once, again with `lock_all`, and
checks that money is never created or destroyed, even mid-run.

At the end, a transfer that fails half-way (debited, never credited) poisons both
accounts: the next `lock()` raises `PoisonError` instead of handing out a balance that
is known to be wrong, and the repair runs while `PoisonError.guard` holds the lock.

    python examples/bank_transfers.py
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from memkit import Mutex, MutexGuard, PoisonError, lock_all

ACCOUNTS = 8
OPENING_BALANCE = 1_000
WORKERS = 4
TRANSFERS_PER_WORKER = 2_000


@dataclass
class Stats:
    done: int = 0
    refused: int = 0
    moved: int = 0


class AuditError(Exception):
    """The payment network rejected a transfer after the debit was written."""


def transfer(src: Mutex[int], dst: Mutex[int], amount: int, *, fail_midway: bool = False) -> bool:
    """Move `amount` from src to dst; False (and nothing changed) if src cannot cover it."""
    with lock_all(src, dst) as (s, d):
        if s.value < amount:
            return False
        s.value -= amount
        if fail_midway:
            raise AuditError(f"transfer of {amount} rejected after the debit")
        d.value += amount
        return True


def worker(seed: int, accounts: list[Mutex[int]], stats: Mutex[Stats]) -> None:
    rng = random.Random(seed)
    done = refused = moved = 0
    for _ in range(TRANSFERS_PER_WORKER):
        src, dst = rng.sample(accounts, 2)
        amount = rng.randint(1, 300)
        if transfer(src, dst, amount):
            done, moved = done + 1, moved + amount
        else:
            refused += 1
    with stats.lock() as g:  # one short critical section per worker, not one per transfer
        g.value.done += done
        g.value.refused += refused
        g.value.moved += moved


def balances(accounts: list[Mutex[int]]) -> list[int]:
    with lock_all(*accounts) as guards:  # a consistent snapshot: every account at once
        return [g.value for g in guards]


def total(accounts: list[Mutex[int]]) -> int:
    return sum(balances(accounts))


def auditor(accounts: list[Mutex[int]], stop: threading.Event, totals: list[int]) -> None:
    while not stop.is_set():
        totals.append(total(accounts))
        stop.wait(0.002)


def main() -> None:
    accounts = [Mutex(OPENING_BALANCE) for _ in range(ACCOUNTS)]
    stats = Mutex(Stats())
    stop, totals = threading.Event(), list[int]()
    audit_thread = threading.Thread(target=auditor, args=(accounts, stop, totals))
    audit_thread.start()
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            for future in [pool.submit(worker, seed, accounts, stats) for seed in range(WORKERS)]:
                future.result()  # re-raises a worker's exception here
    finally:
        stop.set()
        audit_thread.join()

    with stats.lock() as g:
        s = g.value
    print(f"{WORKERS} workers: {s.done:,} transfers, {s.refused:,} refused (insufficient funds), {s.moved:,} moved")
    print(f"{len(totals)} audits while they ran saw the totals {sorted(set(totals))}")
    assert set(totals) <= {ACCOUNTS * OPENING_BALANCE}, "money appeared or vanished"
    assert s.done + s.refused == WORKERS * TRANSFERS_PER_WORKER
    assert total(accounts) == ACCOUNTS * OPENING_BALANCE

    # A transfer that raises after the debit leaves the books wrong, and both accounts poisoned.
    before = balances(accounts)
    i = max(range(ACCOUNTS), key=before.__getitem__)
    src, dst = accounts[i], accounts[(i + 1) % ACCOUNTS]
    try:
        transfer(src, dst, 100, fail_midway=True)
    except AuditError as exc:
        print(f"{exc}: accounts poisoned: {[n for n, a in enumerate(accounts) if a.is_poisoned()]}")
    try:
        total(accounts)
    except PoisonError as exc:
        exc.guard.release()  # the error holds the poisoned lock; let it go
        print("the auditor refuses to read a poisoned account:", type(exc).__name__)

    # Repair while holding each poisoned lock, from the last good snapshot, then clear the poison.
    for n, account in enumerate(accounts):
        try:
            account.lock().release()
        except PoisonError as exc:
            guard = exc.guard
            assert isinstance(guard, MutexGuard)  # a Mutex's PoisonError carries its MutexGuard
            with guard:
                guard.value = before[n]
            account.clear_poison()
    print(f"after repair: total {total(accounts):,}, poisoned: {[a.is_poisoned() for a in accounts].count(True)}")
    assert total(accounts) == ACCOUNTS * OPENING_BALANCE

if __name__ == "__main__":
    main()
