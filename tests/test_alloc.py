"""The allocator hook: install/uninstall/stats (API.md, memkit.alloc)."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from memkit import alloc
from memkit._core import alloc as _alloc


@pytest.fixture
def hooked() -> Iterator[None]:
    alloc.install()
    yield
    alloc.uninstall()


def raw_delta(before: alloc.AllocStats, after: alloc.AllocStats) -> dict[str, int]:
    b, a = before.by_domain["raw"], after.by_domain["raw"]
    return {
        "allocations": a.allocations - b.allocations,
        "frees": a.frees - b.frees,
        "reallocs": a.reallocs - b.reallocs,
        "current_bytes": a.current_bytes - b.current_bytes,
    }


def test_install_is_idempotent_and_uninstall_stops_counting() -> None:
    assert not alloc.installed()
    alloc.install()
    alloc.install()
    assert alloc.installed()
    alloc.uninstall()
    alloc.uninstall()
    assert not alloc.installed()


@pytest.mark.parametrize("domain", ["raw", "mem", "object"])
def test_exact_sizes_in_every_domain(hooked: None, domain: str) -> None:
    before = alloc.stats().by_domain[domain]
    a = _alloc._allocate(domain, 1000)
    b = _alloc._allocate(domain, 24)
    middle = alloc.stats().by_domain[domain]
    assert middle.allocations - before.allocations >= 2
    assert middle.current_bytes - before.current_bytes >= 1024
    b = _alloc._realloc(domain, b, 4000)
    _alloc._free(domain, a)
    _alloc._free(domain, b)
    after = alloc.stats().by_domain[domain]
    assert after.reallocs - before.reallocs >= 1
    assert after.total_bytes - before.total_bytes >= 1000 + 24 + (4000 - 24)


def test_raw_domain_is_exact(hooked: None) -> None:
    # The interpreter itself barely uses the raw domain between two calls, so raw deltas are exact.
    before = alloc.stats()
    a = _alloc._allocate("raw", 2047)
    b = _alloc._allocate("raw", 2048)
    b = _alloc._realloc("raw", b, 4096)
    mid = alloc.stats()
    assert raw_delta(before, mid) == {"allocations": 2, "frees": 0, "reallocs": 1, "current_bytes": 2047 + 4096}
    _alloc._free("raw", a)
    _alloc._free("raw", b)
    assert raw_delta(before, alloc.stats()) == {"allocations": 2, "frees": 2, "reallocs": 1, "current_bytes": 0}


def test_peak_and_reset_peak(hooked: None) -> None:
    alloc.reset_peak()
    base = alloc.stats().by_domain["raw"]
    a = _alloc._allocate("raw", 1_000_000)
    _alloc._free("raw", a)
    after = alloc.stats().by_domain["raw"]
    assert after.peak_bytes - base.current_bytes >= 1_000_000
    alloc.reset_peak()
    assert alloc.stats().by_domain["raw"].peak_bytes == alloc.stats().by_domain["raw"].current_bytes


def test_totals_add_up_over_domains(hooked: None) -> None:
    data = [{"k": [str(i)] * 3} for i in range(2000)]
    s = alloc.stats()
    assert s.allocations == sum(d.allocations for d in s.by_domain.values())
    assert s.current_bytes == sum(d.current_bytes for d in s.by_domain.values())
    assert s.allocations >= 2000
    del data


def test_blocks_from_before_install_are_freed_and_not_counted() -> None:
    a = _alloc._allocate("raw", 5000)  # before install: no header
    alloc.install()
    try:
        before = alloc.stats()
        _alloc._free("raw", a)
        b = _alloc._allocate("raw", 10)
        b = _alloc._realloc("raw", b, 20)
        c = _alloc._allocate("raw", 30)
        assert raw_delta(before, alloc.stats())["frees"] == 0  # the old block's free is not counted
    finally:
        alloc.uninstall()
    # Blocks made while installed are freed correctly after uninstall.
    _alloc._free("raw", b)
    _alloc._free("raw", c)


def test_blocks_from_an_earlier_session_are_not_counted() -> None:
    alloc.install()
    a = _alloc._allocate("raw", 777)
    alloc.uninstall()
    alloc.install()
    try:
        before = alloc.stats()
        _alloc._free("raw", a)
        assert raw_delta(before, alloc.stats())["current_bytes"] == 0
    finally:
        alloc.uninstall()


def test_foreign_realloc_stays_foreign() -> None:
    a = _alloc._allocate("mem", 64)
    with_hook = None
    alloc.install()
    try:
        a = _alloc._realloc("mem", a, 128)  # unknown old size: stays uncounted
        with_hook = _alloc._allocate("mem", 16)
    finally:
        alloc.uninstall()
    _alloc._free("mem", a)
    _alloc._free("mem", with_hook)


def test_counters_restart_at_each_install() -> None:
    alloc.install()
    data = [str(i) for i in range(1000)]
    alloc.uninstall()
    alloc.install()
    try:
        assert alloc.stats().allocations < 1000
    finally:
        alloc.uninstall()
    del data


def test_tracemalloc_first_then_memkit() -> None:
    tracemalloc.start()
    try:
        alloc.install()
        data = [bytes(100) for _ in range(500)]
        assert alloc.stats().allocations >= 500
        alloc.uninstall()  # memkit is on top: allowed
        current, _ = tracemalloc.get_traced_memory()
        assert current > 500 * 100
        del data
    finally:
        tracemalloc.stop()


def test_memkit_first_then_tracemalloc_blocks_uninstall_until_it_stops() -> None:
    alloc.install()
    tracemalloc.start()
    try:
        with pytest.raises(RuntimeError, match="another allocator hook was installed on top"):
            alloc.uninstall()
        assert alloc.installed()
        data = [bytes(100) for _ in range(500)]
        assert tracemalloc.get_traced_memory()[0] > 0
        del data
    finally:
        tracemalloc.stop()
    alloc.uninstall()
    gc.collect()


def test_raw_domain_from_threads_without_the_gil_while_installing_and_uninstalling() -> None:
    made: list[int] = []
    churn = threading.Thread(target=lambda: made.append(_alloc._raw_churn(4, 40_000)))
    churn.start()
    while churn.is_alive():
        alloc.install()
        alloc.stats()
        alloc.uninstall()
    churn.join()
    assert made == [4 * 40_000]


def test_stats_shape() -> None:
    s = alloc.stats()
    assert set(s.by_domain) == {"raw", "mem", "object"}
    assert isinstance(s, alloc.AllocStats) and isinstance(s.by_domain["raw"], alloc.DomainStats)


def test_bad_domain_in_the_test_helper() -> None:
    with pytest.raises(ValueError, match="domain must be"):
        _alloc._allocate("heap", 1)


@pytest.mark.parametrize("domain", ["mem", "object"])
def test_reallocs_that_move_blocks_leave_no_stale_headers(domain: str) -> None:
    # Regression: a block that moved in realloc left its header's tag at the old address;
    # once pymalloc reused that memory for a block starting 16 bytes in, memkit took the
    # stale tag for its own and freed the wrong address (heap corruption).
    import random

    rng = random.Random(1234)
    live: list[int] = []
    for phase in ("counting", "pass-through", "counting again"):
        if phase != "pass-through":
            alloc.install()
        else:
            alloc.uninstall()
        for _ in range(4000):
            action = rng.random()
            if live and action < 0.3:
                i = rng.randrange(len(live))
                live[i] = _alloc._realloc(domain, live[i], rng.randint(1, 700))
            elif live and action < 0.6:
                _alloc._free(domain, live.pop(rng.randrange(len(live))))
            else:
                live.append(_alloc._allocate(domain, rng.randint(1, 700)))
        compile("def f(x):\n    return [x for _ in range(3)]\n" * 20, "<churn>", "exec")
    alloc.uninstall()
    for address in live:
        _alloc._free(domain, address)
