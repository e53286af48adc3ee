"""Arena, ArenaBuffer and ArenaScope (API.md, memkit.buffers)."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from memkit import MAX_ALIGN, Arena, ArenaBuffer, ArenaScope

np = pytest.importorskip("numpy")


# ---- allocation ------------------------------------------------------------------------------


def test_alloc_returns_zeroed_aligned_buffers_carved_in_order() -> None:
    arena = Arena()
    a = arena.alloc(10)
    b = arena.alloc(10)
    assert isinstance(a, ArenaBuffer)
    assert (len(a), a.nbytes, a.align) == (10, 10, 8)
    assert a.address % 8 == 0 and b.address % 8 == 0
    assert b.address == a.address + 16  # a bump: 10 bytes, padded to the next multiple of 8
    assert bytes(a) == bytes(10)


@pytest.mark.parametrize("align", [1, 2, 8, 64, 4096, 1 << 16, 1 << 20, MAX_ALIGN])
def test_every_alignment(align: int) -> None:
    arena = Arena()
    arena.alloc(3)  # knock the bump pointer off any natural alignment
    buf = arena.alloc(24, align)
    assert buf.address % align == 0
    assert len(buf) == 24


def test_keyword_arguments_and_zero_false() -> None:
    arena = Arena(chunk_size=1024)
    buf = arena.alloc(nbytes=32, align=32, zero=False)
    assert (len(buf), buf.align) == (32, 32)
    memoryview(buf)[:] = b"\x01" * 32
    assert bytes(buf) == b"\x01" * 32


def test_no_buffer_ever_shows_bytes_from_an_earlier_allocation() -> None:
    arena = Arena(chunk_size=4096)
    for _ in range(3):
        with arena.scope() as a:
            dirty = a.alloc(4000)
            memoryview(dirty)[:] = b"\xab" * 4000
            del dirty
        fresh = arena.alloc(4000)
        assert bytes(fresh) == bytes(4000)
        arena.reset()


def test_zero_size_allocation_is_valid_and_aligned() -> None:
    arena = Arena()
    buf = arena.alloc(0, 256)
    assert len(buf) == 0 and buf.address % 256 == 0 and buf.address != 0
    assert bytes(buf) == b""
    assert arena.allocation_count == 1
    assert arena.bytes_reserved == 0  # nothing was carved


def test_oversized_request_gets_its_own_chunk_and_small_ones_continue() -> None:
    arena = Arena(chunk_size=1024)
    small = arena.alloc(100)
    big = arena.alloc(1 << 20)
    after = arena.alloc(100)
    assert len(big) == 1 << 20
    assert arena.chunk_count == 2
    assert after.address == small.address + 104  # still bumping the first chunk
    assert bytes(memoryview(big)[:16]) == bytes(16)


def test_chunks_grow_by_doubling_up_to_a_cap() -> None:
    arena = Arena(chunk_size=1024)
    for _ in range(64):
        arena.alloc(1000)  # one chunk's worth each time while chunks are small
    sizes_reserved = arena.bytes_reserved
    assert arena.chunk_count < 64  # chunks grew
    # Doubling is capped at 16 x chunk_size: 1, 2, 4, 8, 16, 16, ... KiB.
    assert sizes_reserved <= 1024 * (1 + 2 + 4 + 8) + 16 * 1024 * (arena.chunk_count - 4)


def test_statistics_are_live_figures() -> None:
    arena = Arena(chunk_size=4096)
    assert (arena.bytes_used, arena.bytes_reserved, arena.chunk_count, arena.allocation_count) == (0, 0, 0, 0)
    arena.alloc(10)
    arena.alloc(64, 64)
    assert arena.allocation_count == 2
    assert arena.bytes_used == 128  # 10, padding to 64, then 64
    assert arena.bytes_reserved == 4096 and arena.chunk_count == 1
    with arena.scope() as a:
        a.alloc(100)
        assert arena.allocation_count == 3
        assert arena.depth == 1
    assert arena.allocation_count == 2 and arena.bytes_used == 128 and arena.depth == 0
    assert arena.chunk_size == 4096 and arena.max_bytes is None


# ---- max_bytes ---------------------------------------------------------------------------------


def test_max_bytes_shrinks_the_chunk_and_is_enforced() -> None:
    arena = Arena(max_bytes=1024)
    a = arena.alloc(400)
    b = arena.alloc(400)
    assert arena.bytes_reserved <= 1024
    with pytest.raises(MemoryError, match=r"Arena max_bytes=1024 reached: 1024 bytes reserved, 400 more requested"):
        arena.alloc(400)
    assert arena.allocation_count == 2  # the failed call changed nothing
    assert len(a) == len(b) == 400
    assert arena.max_bytes == 1024


def test_max_bytes_applies_to_oversized_requests() -> None:
    arena = Arena(chunk_size=1024, max_bytes=4096)
    with pytest.raises(MemoryError, match="max_bytes=4096"):
        arena.alloc(8192)
    arena.alloc(1000)  # still usable


def test_max_bytes_zero_refuses_everything_but_empty_buffers() -> None:
    arena = Arena(max_bytes=0)
    assert len(arena.alloc(0)) == 0
    with pytest.raises(MemoryError):
        arena.alloc(1)


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0,), {}, ValueError, "chunk_size must be >= 1, got 0"),
        ((-1,), {}, ValueError, "chunk_size must be >= 0, got -1"),
        ((2**63,), {}, OverflowError, "chunk_size must be at most"),
        (("64",), {}, TypeError, "chunk_size must be an int, got str"),
        ((1.5,), {}, TypeError, "got float"),
        ((), {"max_bytes": -1}, ValueError, "max_bytes must be >= 0"),
        ((), {"max_bytes": "1 MiB"}, TypeError, "max_bytes must be an int"),
        ((1, 2), {}, TypeError, "at most 1 positional"),
        ((), {"chunk": 1}, TypeError, "unexpected keyword argument 'chunk'"),
    ],
)
def test_bad_constructor_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Arena(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((-1,), {}, ValueError, "nbytes must be >= 0, got -1"),
        ((2**63,), {}, OverflowError, "nbytes must be at most"),
        ((2**64,), {}, OverflowError, "nbytes must be at most"),
        ((None,), {}, TypeError, "nbytes must be an int, got NoneType"),
        ((8.0,), {}, TypeError, "got float"),
        ((8, 3), {}, ValueError, "align must be a power of two between 1 and 1073741824, got 3"),
        ((8, 0), {}, ValueError, "got 0"),
        ((8, -8), {}, ValueError, "got -8"),
        ((8, MAX_ALIGN * 2), {}, ValueError, "align must be a power of two"),
        ((8, 2**64), {}, ValueError, "align must be a power of two"),
        ((), {}, TypeError, "missing required argument 'nbytes'"),
        ((8, 8, True), {}, TypeError, "at most 2 positional"),
        ((8,), {"size": 1}, TypeError, "unexpected keyword argument 'size'"),
    ],
)
def test_bad_alloc_arguments_change_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arena = Arena()
    with pytest.raises(error, match=message):
        arena.alloc(*args, **kwargs)
    assert arena.allocation_count == 0 and arena.bytes_reserved == 0


@pytest.mark.parametrize("nbytes", [2**62, sys.maxsize])
def test_impossible_allocation_is_memory_error(nbytes: int) -> None:
    arena = Arena()
    with pytest.raises(MemoryError, match=f"could not allocate {nbytes} bytes"):
        arena.alloc(nbytes)
    assert arena.allocation_count == 0


def test_handles_cannot_be_constructed_directly() -> None:
    with pytest.raises(TypeError):
        ArenaBuffer()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ArenaScope()  # type: ignore[call-arg]


def test_uninitialised_arena_is_refused() -> None:
    bare = Arena.__new__(Arena)
    with pytest.raises(TypeError, match="not initialized"):
        bare.alloc(8)
    with pytest.raises(TypeError, match="not initialized"):
        bare.scope()


# ---- scopes ------------------------------------------------------------------------------------


def test_scope_frees_everything_allocated_inside_and_releases_the_handles() -> None:
    arena = Arena()
    outer = arena.alloc(16)
    with arena.scope() as a:
        assert a is arena
        inner = arena.alloc(16)
        assert not inner.released
    assert inner.released
    assert not outer.released
    with pytest.raises(ValueError, match="ArenaBuffer has been released"):
        memoryview(inner)
    assert repr(inner) == "<ArenaBuffer released>"
    # The memory is reused: the next allocation lands where `inner` was.
    again = arena.alloc(16)
    assert again.address == outer.address + 16


def test_scopes_nest() -> None:
    arena = Arena()
    with arena.scope():
        a = arena.alloc(8)
        with arena.scope():
            b = arena.alloc(8)
            b_address = b.address
            assert arena.depth == 2
        assert b.released and not a.released
        c = arena.alloc(8)
        assert c.address == b_address
    assert a.released and c.released
    assert arena.depth == 0 and arena.allocation_count == 0


def test_scope_exit_while_exported_raises_and_frees_nothing() -> None:
    arena = Arena()
    scope = arena.scope()
    with pytest.raises(BufferError, match=r"cannot end an Arena scope while 1 view\(s\)"):
        with scope:
            buf = arena.alloc(32)
            view = memoryview(buf)
    assert scope.active and not buf.released
    view[0] = 7  # the memory is still there
    assert bytes(buf)[0] == 7
    view.release()
    scope.close()
    assert buf.released and not scope.active


def test_numpy_array_pins_the_scope() -> None:
    arena = Arena()
    scope = arena.scope()
    scope.__enter__()
    arr = np.frombuffer(arena.alloc(64), dtype=np.float64)
    arr[:] = 1.5
    with pytest.raises(BufferError):
        scope.close()
    assert arr.sum() == 12.0
    del arr
    scope.close()


def test_an_export_in_an_inner_scope_pins_the_outer_one() -> None:
    arena = Arena()
    outer = arena.scope()
    outer.__enter__()
    inner = arena.scope()
    inner.__enter__()
    view = memoryview(arena.alloc(8))
    with pytest.raises(BufferError):
        outer.close()
    view.release()
    outer.close()  # closes the inner scope too
    assert not inner.active
    inner.close()  # a no-op now
    assert arena.depth == 0


def test_exports_of_outer_buffers_do_not_pin_an_inner_scope() -> None:
    arena = Arena()
    keep = memoryview(arena.alloc(8))
    with arena.scope():
        arena.alloc(8)
    keep[0] = 1  # still valid
    with pytest.raises(BufferError):
        arena.reset()
    keep.release()
    arena.reset()


def test_scope_misuse() -> None:
    arena = Arena()
    scope = arena.scope()
    with pytest.raises(RuntimeError, match="never entered"):
        scope.close()
    with scope:
        pass
    with pytest.raises(RuntimeError, match="entered once"):
        scope.__enter__()
    scope.close()  # closing again is a no-op
    assert scope.__exit__(None, None, None) is False


def test_scope_exit_on_exception_frees_and_propagates() -> None:
    arena = Arena()
    with pytest.raises(KeyError):
        with arena.scope():
            buf = arena.alloc(8)
            raise KeyError("boom")
    assert buf.released


def test_abandoned_scope_is_freed_by_the_outer_scope_or_reset() -> None:
    arena = Arena()

    def generator() -> Any:
        with arena.scope():
            yield arena.alloc(8)

    with arena.scope():
        gen = generator()
        buf = next(gen)
    assert buf.released  # the outer exit freed the generator's scope too
    gen.close()  # its exit is now a no-op
    assert arena.depth == 0


# ---- reset ---------------------------------------------------------------------------------------


def test_reset_frees_everything_and_keeps_the_largest_chunk() -> None:
    arena = Arena(chunk_size=1024)
    bufs = [arena.alloc(900) for _ in range(10)]
    big = arena.alloc(1 << 20)
    assert arena.chunk_count > 2
    largest_regular = 8192  # chunks of 1, 2, 4 and 8 KiB hold 1 + 2 + 4 + 3 of the 900-byte buffers
    arena.reset()
    assert all(b.released for b in [*bufs, big])
    assert arena.chunk_count == 1
    assert arena.bytes_reserved == largest_regular
    assert (arena.bytes_used, arena.allocation_count) == (0, 0)


def test_reset_inside_a_scope_closes_it() -> None:
    arena = Arena()
    with arena.scope():
        buf = arena.alloc(8)
        arena.reset()
        assert buf.released
        assert arena.depth == 0
    assert arena.depth == 0


def test_reset_while_exported_raises() -> None:
    arena = Arena()
    buf = arena.alloc(8)
    view = memoryview(buf)
    with pytest.raises(BufferError, match=r"cannot reset an Arena while 1 view"):
        arena.reset()
    assert not buf.released
    view.release()
    arena.reset()
    assert buf.released


# ---- handles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "use",
    [
        lambda b: b.address,
        lambda b: b.nbytes,
        lambda b: b.align,
        lambda b: len(b),
        lambda b: memoryview(b),
        lambda b: np.frombuffer(b, dtype=np.uint8),
        lambda b: b.__enter__(),
    ],
)
def test_every_use_of_a_freed_buffer_raises_value_error(use: Callable[[ArenaBuffer], object]) -> None:
    arena = Arena()
    with arena.scope():
        buf = arena.alloc(8)
    with pytest.raises(ValueError, match="ArenaBuffer has been released"):
        use(buf)


def test_release_ends_one_handle_only() -> None:
    arena = Arena()
    a = arena.alloc(8)
    b = arena.alloc(8)
    view = memoryview(a)
    with pytest.raises(BufferError, match="cannot release a ArenaBuffer while it is exported"):
        a.release()
    view.release()
    a.release()
    a.release()  # no-op
    assert a.released and not b.released
    with pytest.raises(ValueError):
        len(a)


def test_handle_as_context_manager() -> None:
    arena = Arena()
    with arena.alloc(16) as buf:
        memoryview(buf)[0] = 1
    assert buf.released


def test_buffer_keeps_its_arena_alive() -> None:
    arena = Arena()
    ref = weakref.ref(arena) if hasattr(arena, "__weakref__") else None
    buf = arena.alloc(64)
    del arena
    gc.collect()
    memoryview(buf)[:] = b"x" * 64
    assert bytes(buf) == b"x" * 64
    assert ref is None or ref() is not None


def test_repr() -> None:
    arena = Arena(chunk_size=4096)
    buf = arena.alloc(8, 16)
    assert repr(buf) == f"<ArenaBuffer nbytes=8 align=16 address={buf.address:#x}>"
    assert repr(arena).startswith("<Arena chunk_size=4096 bytes_used=")


def test_readinto_and_numpy_work_on_arena_memory() -> None:
    import io

    arena = Arena()
    buf = arena.alloc(8 * 4, 64)
    assert io.BytesIO(bytes(range(32))).readinto(buf) == 32
    arr = np.frombuffer(buf, dtype=np.uint8)
    assert arr.tolist() == list(range(32))
    assert arr.ctypes.data == buf.address


# ---- threads -----------------------------------------------------------------------------------


def test_threads_allocating_and_scoping_keep_every_invariant(run_concurrently: Callable[..., list[Any]]) -> None:
    arena = Arena(chunk_size=4096)
    rounds = 300

    def worker(index: int) -> int:
        mine = []
        for i in range(rounds):
            buf = arena.alloc(1 + (i * 7 + index) % 200, 1 << (i % 7))
            assert buf.address % buf.align == 0
            memoryview(buf)[:] = bytes([index]) * len(buf)
            mine.append(buf)
        for buf in mine:
            assert bytes(buf) == bytes([index]) * len(buf)  # nobody else's bytes
        return len(mine)

    assert run_concurrently(worker, 4) == [rounds] * 4
    assert arena.allocation_count == 4 * rounds
    arena.reset()
    assert arena.allocation_count == 0


# ---- model-based: scopes against a simple model -------------------------------------------------


class ArenaScopes(RuleBasedStateMachine):
    """Random allocations, nested scopes, exports, releases and resets against a model.

    The model tracks, per open scope level, which buffers were allocated there and how many
    live views each buffer has; the arena must agree on every rule's outcome.
    """

    def __init__(self) -> None:
        super().__init__()
        self.arena = Arena(chunk_size=256)
        self.scopes: list[ArenaScope] = []  # open scopes, outermost first
        self.levels: list[list[ArenaBuffer]] = [[]]  # buffers by scope level (0 = root)
        self.views: dict[int, list[memoryview]] = {}  # id(buffer) -> live views
        self.contents: dict[int, bytes] = {}
        self.dead: list[ArenaBuffer] = []

    def exported_from(self, level: int) -> int:
        return sum(len(self.views.get(id(b), [])) for lvl in self.levels[level:] for b in lvl)

    @rule(nbytes=st.integers(0, 600), align_exp=st.integers(0, 9), fill=st.integers(0, 255))
    def alloc(self, nbytes: int, align_exp: int, fill: int) -> None:
        buf = self.arena.alloc(nbytes, 1 << align_exp)
        assert buf.address % (1 << align_exp) == 0
        assert bytes(buf) == bytes(nbytes)
        memoryview(buf)[:] = bytes([fill]) * nbytes
        self.levels[-1].append(buf)
        self.contents[id(buf)] = bytes([fill]) * nbytes

    @rule()
    def enter(self) -> None:
        scope = self.arena.scope()
        assert scope.__enter__() is self.arena
        self.scopes.append(scope)
        self.levels.append([])

    @precondition(lambda self: self.scopes)
    @rule(which=st.integers(0, 10))
    def exit(self, which: int) -> None:
        index = which % len(self.scopes)  # may be an outer scope: it closes the inner ones
        level = index + 1
        scope = self.scopes[index]
        if self.exported_from(level):
            try:
                scope.close()
            except BufferError:
                return
            raise AssertionError("scope exit must refuse while its buffers are exported")
        scope.close()
        for lvl in self.levels[level:]:
            self.dead.extend(lvl)
        del self.levels[level:]
        del self.scopes[index:]

    @precondition(lambda self: any(self.levels))
    @rule(pick=st.integers(0, 10_000))
    def export(self, pick: int) -> None:
        live = [b for lvl in self.levels for b in lvl if not b.released]
        if live:
            buf = live[pick % len(live)]
            self.views.setdefault(id(buf), []).append(memoryview(buf))

    @precondition(lambda self: any(self.views.values()))
    @rule(pick=st.integers(0, 10_000))
    def unexport(self, pick: int) -> None:
        holders = [k for k, v in self.views.items() if v]
        views = self.views[holders[pick % len(holders)]]
        views.pop().release()

    @rule()
    def reset(self) -> None:
        if self.exported_from(0):
            try:
                self.arena.reset()
            except BufferError:
                return
            raise AssertionError("reset must refuse while any buffer is exported")
        self.arena.reset()
        for lvl in self.levels:
            self.dead.extend(lvl)
        self.levels = [[]]
        self.scopes = []

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.arena.depth == len(self.scopes)
        live = [b for lvl in self.levels for b in lvl]
        assert self.arena.allocation_count == len(live)
        for buf in live:
            assert not buf.released
            assert bytes(buf) == self.contents[id(buf)]  # nobody wrote over it
        for buf in self.dead:
            assert buf.released

    def teardown(self) -> None:
        for views in self.views.values():
            for view in views:
                view.release()


TestArenaScopes = ArenaScopes.TestCase
TestArenaScopes.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)


def test_interleaved_scopes_from_two_threads_release_safely() -> None:
    import threading

    arena = Arena()
    outer = arena.scope()
    outer.__enter__()
    entered = threading.Event()
    closed = threading.Event()
    seen: list[str] = []

    def other() -> None:
        with arena.scope():
            buf = arena.alloc(8)
            entered.set()
            closed.wait(5)
            try:
                len(buf)
            except ValueError:
                seen.append("released")

    t = threading.Thread(target=other)
    t.start()
    assert entered.wait(5)
    outer.close()  # ends the other thread's inner scope too
    closed.set()
    t.join()
    assert seen == ["released"]
    assert arena.depth == 0
