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


def test_size_histogram_is_exact(hooked: None) -> None:
    before = alloc.stats().by_domain["raw"].histogram
    sizes = [0, 1, 2, 3, 100, 600, 70_000]
    blocks = [_alloc._allocate("raw", n) for n in sizes]
    after = alloc.stats().by_domain["raw"].histogram
    for b in blocks:
        _alloc._free("raw", b)
    grown = {upper: count - before.get(upper, 0) for upper, count in after.items() if count != before.get(upper, 0)}
    # {upper: n} counts sizes in (upper // 2, upper]; 0 and 1 byte share the first bucket.
    assert grown == {1: 2, 2: 1, 4: 1, 128: 1, 1024: 1, 131072: 1}
    assert list(after) == sorted(after)


@pytest.mark.parametrize("nbytes", [511, 512, 65_535, 65_536, 70_001, 2**24 + 5])
def test_sizes_around_the_map_encodings_are_exact(hooked: None, nbytes: int) -> None:
    # Up to 511 bytes the size sits in the block's map entry; from 512 in four 12-bit words.
    before = alloc.stats()
    a = _alloc._allocate("raw", nbytes)
    assert raw_delta(before, alloc.stats())["current_bytes"] == nbytes
    a = _alloc._realloc("raw", a, nbytes + 3)
    assert raw_delta(before, alloc.stats())["current_bytes"] == nbytes + 3
    _alloc._free("raw", a)
    assert raw_delta(before, alloc.stats()) == {"allocations": 1, "frees": 1, "reallocs": 1, "current_bytes": 0}


def test_a_block_freed_through_another_domain_is_charged_to_its_own(hooked: None) -> None:
    # PyMem_Free on a PyObject_Malloc block is a caller's mistake that pymalloc forgives
    # (both domains are pymalloc); memkit charges the free to the domain that allocated.
    def mem_kept(free_domain: str) -> int:
        before = alloc.stats().by_domain["mem"].current_bytes
        _alloc._free(free_domain, _alloc._allocate("mem", 3333))
        return alloc.stats().by_domain["mem"].current_bytes - before

    mem_kept("mem")  # warm up
    assert mem_kept("object") == mem_kept("mem") < 3333


def test_counts_stay_exact_across_many_install_cycles() -> None:
    # Session numbers wrap after 15 installs and the size map is wiped then; a block from
    # before the wrap must neither crash nor be miscounted.
    alloc.install()
    old = _alloc._allocate("raw", 4321)
    for _ in range(40):
        alloc.uninstall()
        alloc.install()
        before = alloc.stats()
        a = _alloc._allocate("raw", 100)
        _alloc._free("raw", a)
        assert raw_delta(before, alloc.stats()) == {"allocations": 1, "frees": 1, "reallocs": 0, "current_bytes": 0}
    before = alloc.stats()
    old = _alloc._realloc("raw", old, 9000)  # an earlier session's block stays uncounted
    _alloc._free("raw", old)
    assert raw_delta(before, alloc.stats()) == {"allocations": 0, "frees": 0, "reallocs": 0, "current_bytes": 0}
    alloc.uninstall()


def test_blocks_from_before_install_are_freed_and_not_counted() -> None:
    a = _alloc._allocate("raw", 5000)  # before install: not in the size map
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
def test_reallocs_that_move_blocks_leave_no_stale_entries(domain: str) -> None:
    # Regression (from when sizes lived in a header): a block that moved in realloc left
    # its mark at the old address, and a later block there was taken for memkit's own.
    # Churn through counting, pass-through and counting again, then free everything.
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


# ---- track and limit ----------------------------------------------------------------------------


def tracked_net(nbytes: int, domain: str = "raw") -> int:
    with alloc.track() as t:
        address = _alloc._allocate(domain, nbytes)
    _alloc._free(domain, address)
    return t.net_bytes


def test_tracker_counts_are_exact_by_difference() -> None:
    tracked_net(100)  # warm up: the first run makes one-time allocations
    # Everything but the helper's block is identical in two runs, so the difference is exact.
    assert tracked_net(1100) - tracked_net(100) == 1000
    tracked_net(4000, "object")
    assert tracked_net(5000, "object") - tracked_net(4000, "object") == 1000
    alloc.uninstall()


def test_tracker_fields_and_nesting() -> None:
    with alloc.track() as outer:
        with alloc.track() as inner:
            a = _alloc._allocate("raw", 3000)
        _alloc._free("raw", a)
    assert inner.allocations >= 1 and inner.allocated_bytes >= 3000
    # net_bytes may dip below 0 first (the interpreter frees something inside the block).
    assert inner.peak_bytes >= 3000 - inner.freed_bytes
    assert outer.frees >= 1 and outer.freed_bytes >= 3000
    assert outer.net_bytes == outer.allocated_bytes - outer.freed_bytes
    assert outer.peak_bytes >= inner.peak_bytes
    assert "Tracker allocations=" in repr(outer)
    alloc.uninstall()


def test_tracker_current_thread_ignores_other_threads_and_all_sees_them() -> None:
    def allocate_elsewhere() -> None:
        a = _alloc._allocate("raw", 50_000)
        _alloc._allocate("raw", 0)
        _alloc._free("raw", a)

    with alloc.track() as mine, alloc.track(threads="all") as everyone:
        t = threading.Thread(target=allocate_elsewhere)
        t.start()
        t.join()
    assert mine.allocated_bytes < 50_000
    assert everyone.allocated_bytes >= 50_000
    alloc.uninstall()


def block_of(nbytes: int) -> None:
    data = bytearray(nbytes)  # a refused allocation raises MemoryError right here
    del data


def test_limit_boundary_is_exact() -> None:
    # A budget of exactly the block's peak passes; one byte less fails. The tracker and the
    # budget account identically, so the tracked peak is the exact boundary.
    with alloc.track():
        block_of(4096)  # warm up
    with alloc.track() as t:
        block_of(4096)
    peak = t.peak_bytes
    with alloc.limit(peak) as lim:
        block_of(4096)
    assert lim.peak_bytes == peak
    with pytest.raises(alloc.MemoryLimitError) as info:
        with alloc.limit(peak - 1):
            block_of(4096)
    assert info.value.limit == peak - 1
    assert info.value.net_bytes + info.value.request > peak - 1
    alloc.uninstall()


def test_limit_realloc_is_charged_only_its_growth() -> None:
    address = _alloc._allocate("raw", 10_000)
    try:
        with alloc.limit(5_000):
            address = _alloc._realloc("raw", address, 12_000)  # grows by 2000: fits
            address = _alloc._realloc("raw", address, 1_000)  # shrinking frees budget
    finally:
        _alloc._free("raw", address)
    alloc.uninstall()


def test_limit_error_message_and_a_healthy_interpreter_afterwards() -> None:
    with pytest.raises(alloc.MemoryLimitError, match=r"memory budget of 1048576 bytes exceeded") as info:
        with alloc.limit("1 MiB"):
            _ = bytearray(2 * 1024 * 1024)
    assert isinstance(info.value, MemoryError)
    data = bytearray(4 * 1024 * 1024)  # no budget any more
    s = alloc.stats()
    assert s.current_bytes >= len(data) - 1024
    alloc.uninstall()


def test_a_tripped_budget_allows_its_grace_and_no_more_and_counts_exactly() -> None:
    # One limit() alone takes the hook's one-scope path, one with a tracker inside takes the
    # general one: both must refuse at the same bytes, grant the same grace and count the same.
    budget, grace = 64 * 1024, 1024 * 1024  # the grace memkit.alloc.limit documents
    for nested in (False, True):
        held: list[int] = []
        with alloc.limit(budget) as lim:
            inner = alloc.track() if nested else None
            if inner is not None:
                inner.__enter__()
            held.append(_alloc._allocate("raw", 60_000))
            with pytest.raises(MemoryError):
                _alloc._allocate("raw", 10_000)  # 70,000 > 64 KiB: refused, nothing made
            held.append(_alloc._allocate("raw", 500_000))  # tripped: the grace lets this through
            with pytest.raises(MemoryError):
                _alloc._allocate("raw", budget + grace - 560_000 + 1)  # one byte past the grace
            # Python's own allocations in this thread (the list, the exceptions) are charged
            # too, so the last request stays a little under the ceiling.
            held.append(_alloc._allocate("raw", budget + grace - 560_000 - 16 * 1024))
            for address in held:
                _alloc._free("raw", address)
            if inner is not None:
                inner.__exit__(None, None, None)
        assert lim.refused == 10_000
        scopes = [lim] if inner is None else [lim, inner]
        for scope in scopes:
            assert scope.allocations >= 3 and scope.frees >= 3
            assert budget + grace - 16 * 1024 <= scope.peak_bytes <= budget + grace  # never past the ceiling
    alloc.uninstall()


def test_memory_error_caught_inside_the_block_exits_normally() -> None:
    with alloc.limit("64 KiB") as lim:
        try:
            _ = bytearray(1024 * 1024)
        except MemoryError:
            caught = True
    assert caught and lim.net_bytes <= 64 * 1024
    assert lim.refused is not None and lim.refused >= 1024 * 1024  # remembered though caught
    with alloc.limit("64 MiB") as roomy:
        _ = bytearray(1024)
    assert roomy.refused is None
    alloc.uninstall()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64 MiB", 64 * 1024**2), ("1.5 GB", 1_500_000_000), ("4096", 4096), ("10 B", 10), ("2kib", 2048), (7, 7)],
)
def test_parse_size(text: int | str, expected: int) -> None:
    assert alloc.parse_size(text) == expected


@pytest.mark.parametrize(
    ("bad", "error"),
    [("64 MB/s", ValueError), ("-1", ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_parse_size_rejects(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        alloc.parse_size(bad)  # type: ignore[arg-type]


def test_bad_threads_argument() -> None:
    with pytest.raises(ValueError, match="threads must be"):
        alloc.track(threads="some")  # type: ignore[arg-type]


def test_sixteen_nested_scopes_per_thread_and_a_clear_error_beyond() -> None:
    import contextlib

    with contextlib.ExitStack() as stack:
        trackers = [stack.enter_context(alloc.track()) for _ in range(16)]
        with pytest.raises(RuntimeError, match="too many nested memkit trackers/limits in this thread"):
            stack.enter_context(alloc.track())
        data = bytearray(10_000)
    assert all(t.allocated_bytes >= 10_000 for t in trackers)
    del data
    with alloc.track() as after:  # every scope was ended: a fresh one works
        _ = bytearray(100)
    assert after.allocations >= 1
    alloc.uninstall()
