#!/usr/bin/env python3
"""Fuzzes Arena: allocations of random sizes and alignments, nested scopes closed in any
order, views held across scope exits and resets, against a model of which buffers live.

Checked after every step: each live buffer is aligned, has its length, still holds the
byte pattern written into it (no two live buffers overlap, nothing freed memory under a
view), and the arena's depth and allocation count match the model. A refused exit or
reset (BufferError while a view is alive) must change nothing.
"""

from __future__ import annotations

from itertools import pairwise

import atheris
from common import UNRAISABLE, Input, drive, run

with atheris.instrument_imports():
    import memkit
    from memkit import Arena, ArenaBuffer, ArenaScope

# Past this size a buffer's pattern is checked at its two ends only (keeps runs fast).
FULL_CHECK = 4096


class Buf:
    """A buffer the model knows: the scope level it was allocated at and its pattern."""

    def __init__(self, handle: ArenaBuffer, level: int, nbytes: int, align: int, tag: int) -> None:
        self.handle = handle
        self.level = level
        self.nbytes = nbytes
        self.align = align
        self.tag = tag
        self.views: list[memoryview] = []
        self.handle_released = False

    def fill(self) -> None:
        with memoryview(self.handle) as mv:
            if self.nbytes <= FULL_CHECK:
                mv[:] = bytes([self.tag]) * self.nbytes
            else:
                mv[:64] = bytes([self.tag]) * 64
                mv[-64:] = bytes([self.tag]) * 64

    def check(self) -> None:
        h = self.handle
        assert not h.released, "a live buffer reports released"
        assert len(h) == self.nbytes == h.nbytes
        assert h.align == self.align and h.address % self.align == 0
        with memoryview(h) as mv:
            assert mv.nbytes == self.nbytes and not mv.readonly
            want = bytes([self.tag])
            if self.nbytes <= FULL_CHECK:
                assert mv.tobytes() == want * self.nbytes, "a live buffer's bytes changed under it"
            else:
                assert mv[:64].tobytes() == want * 64 and mv[-64:].tobytes() == want * 64


class Model:
    def __init__(self, arena: Arena, max_bytes: int | None) -> None:
        self.arena = arena
        self.max_bytes = max_bytes
        # Open scopes, outermost first; None stands for a scope whose object was dropped
        # while open (it stays open until an outer exit or reset closes it).
        self.scopes: list[ArenaScope | None] = []
        self.closed: list[ArenaScope] = []  # exited (or closed by an outer exit): close() is a no-op
        self.fresh: list[ArenaScope] = []  # made by scope(), not yet entered
        self.bufs: list[Buf] = []  # allocated and not freed by an exit or reset (released handles included)
        self.dead: list[ArenaBuffer] = []  # freed or released handles: every use raises ValueError
        self.next_tag = 1

    def live(self) -> list[Buf]:
        return [b for b in self.bufs if not b.handle_released]

    def exported_from(self, level: int) -> bool:
        return any(b.views for b in self.bufs if b.level >= level)

    def stats(self) -> tuple[int, int, int, int, int]:
        a = self.arena
        return (a.bytes_used, a.bytes_reserved, a.chunk_count, a.allocation_count, a.depth)

    def check(self) -> None:
        a = self.arena
        assert a.depth == len(self.scopes), (a.depth, len(self.scopes))
        assert a.allocation_count == len(self.bufs), (a.allocation_count, len(self.bufs))
        assert a.bytes_used <= a.bytes_reserved
        assert a.bytes_used >= sum(b.nbytes for b in self.bufs)
        if self.max_bytes is not None:
            assert a.bytes_reserved <= self.max_bytes
        spans = []
        for b in self.live():
            b.check()
            if b.nbytes:
                spans.append((b.handle.address, b.handle.address + b.nbytes))
        spans.sort()
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start, "two live arena buffers overlap"
        for s in self.scopes:
            assert s is None or s.active
        for s in self.closed:
            assert not s.active
        for h in self.dead:
            assert h.released
            try:
                _ = h.address
            except ValueError:
                pass
            else:
                raise AssertionError("a released ArenaBuffer still answers .address")

    # ---- operations ----

    def alloc(self, inp: Input) -> None:
        nbytes = inp.size()
        align = inp.align()
        zero = inp.flag()
        before = self.stats()
        try:
            h = self.arena.alloc(nbytes, align, zero=zero) if not zero else self.arena.alloc(nbytes, align=align)
        except (ValueError, OverflowError, MemoryError):
            assert self.stats() == before, "a failed alloc changed the arena"
            return
        assert type(h) is ArenaBuffer and len(h) == nbytes and h.address % align == 0
        if zero and nbytes and nbytes <= FULL_CHECK:
            with memoryview(h) as mv:
                assert mv.tobytes() == bytes(nbytes), "alloc(zero=True) gave dirty memory"
        b = Buf(h, len(self.scopes), nbytes, align, self.next_tag)
        self.next_tag = self.next_tag % 255 + 1
        b.fill()
        self.bufs.append(b)

    def open_scope(self, inp: Input) -> None:
        if self.fresh and inp.flag():
            scope = self.fresh.pop(inp.below(len(self.fresh)))
        else:
            scope = self.arena.scope()
            if inp.flag():  # made now, entered later (after other scopes)
                self.fresh.append(scope)
                return
        assert scope.__enter__() is self.arena
        self.scopes.append(scope)

    def close_scope(self, inp: Input) -> None:
        """Exits any open scope, not only the innermost."""
        if not self.scopes:
            return
        i = inp.below(len(self.scopes))
        scope = self.scopes[i]
        if scope is None:
            return
        level = i + 1
        before = self.stats()
        try:
            if inp.flag():
                assert scope.__exit__(None, None, None) is False
            else:
                scope.close()
        except BufferError:
            assert self.exported_from(level), "exit refused though nothing was exported"
            assert self.stats() == before and scope.active
            return
        assert not self.exported_from(level), "exit freed memory that a view still used"
        self._free_from(level)
        for s in self.scopes[i:]:
            if s is not None:
                self.closed.append(s)
        del self.scopes[i:]

    def _free_from(self, level: int) -> None:
        kept = []
        for b in self.bufs:
            if b.level >= level:
                self.dead.append(b.handle)
            else:
                kept.append(b)
        self.bufs = kept

    def close_again(self, inp: Input) -> None:
        if self.closed:
            scope = inp.pick(self.closed)
            depth = self.arena.depth
            scope.close()  # a no-op
            assert self.arena.depth == depth

    def enter_twice(self, inp: Input) -> None:
        pool = [s for s in self.scopes if s is not None] + self.closed
        if pool:
            try:
                inp.pick(pool).__enter__()
            except RuntimeError:
                return
            raise AssertionError("a scope was entered twice")

    def close_unentered(self, inp: Input) -> None:
        if self.fresh:
            try:
                inp.pick(self.fresh).close()
            except RuntimeError:
                return
            raise AssertionError("a scope that was never entered closed")

    def drop_scope(self, inp: Input) -> None:
        """Forgets an open scope's object (a suspended generator's): it stays open."""
        if self.scopes:
            i = inp.below(len(self.scopes))
            self.scopes[i] = None

    def reset(self, inp: Input) -> None:
        before = self.stats()
        try:
            self.arena.reset()
        except BufferError:
            assert self.exported_from(0) and self.stats() == before
            return
        assert not self.exported_from(0), "reset freed memory that a view still used"
        self._free_from(0)
        self.closed.extend(s for s in self.scopes if s is not None)
        self.scopes.clear()
        assert self.arena.allocation_count == 0 and self.arena.bytes_used == 0

    def export(self, inp: Input) -> None:
        if self.bufs:
            b = inp.pick(self.bufs)
            if b.handle_released:
                try:
                    memoryview(b.handle)
                except ValueError:
                    return
                raise AssertionError("a released handle exported its memory")
            mv = memoryview(b.handle)
            if b.nbytes > 2 and inp.flag():
                mv = mv[1:-1]  # a slice keeps the export alive too
            b.views.append(mv)

    def unexport(self, inp: Input) -> None:
        holders = [b for b in self.bufs if b.views]
        if holders:
            b = inp.pick(holders)
            mv = b.views.pop(inp.below(len(b.views)))
            if inp.flag():
                mv.release()
            del mv

    def write_through_view(self, inp: Input) -> None:
        holders = [b for b in self.bufs if b.views]
        if holders:
            b = inp.pick(holders)
            mv = inp.pick(b.views)
            if len(mv):
                # Rewrite the pattern byte: memory under a view must still be the buffer's.
                mv[inp.below(len(mv))] = b.tag

    def release_handle(self, inp: Input) -> None:
        if self.bufs:
            b = inp.pick(self.bufs)
            try:
                if inp.flag():
                    b.handle.release()
                else:
                    b.handle.__exit__(None, None, None)
            except BufferError:
                assert b.views and not b.handle_released
                return
            if not b.handle_released:
                assert not b.views
            b.handle_released = True
            if b.handle not in self.dead:
                self.dead.append(b.handle)

    def use_dead(self, inp: Input) -> None:
        if self.dead:
            h = inp.pick(self.dead)
            for op in (lambda: len(h), lambda: memoryview(h), h.__enter__, lambda: h.nbytes):
                try:
                    op()
                except ValueError:
                    continue
                raise AssertionError("a released ArenaBuffer was usable")
            h.release()  # a no-op
            repr(h)

    def bad_calls(self, inp: Input) -> None:
        """Arguments alloc must refuse, changing nothing."""
        before = self.stats()
        if inp.flag():
            nbytes, align = inp.pick((None, 1.5, "8", b"x", [], -1, -(2**63), 2**64)), 8
        else:
            nbytes, align = 8, inp.pick((None, 1.5, "8", 0, 3, 24, -8, 2**64))
        try:
            self.arena.alloc(nbytes, align)
        except (TypeError, ValueError, OverflowError):
            assert self.stats() == before
            return
        raise AssertionError(f"alloc({nbytes!r}, {align!r}) was accepted")


OPS = (
    Model.alloc,
    Model.alloc,
    Model.alloc,
    Model.open_scope,
    Model.open_scope,
    Model.close_scope,
    Model.close_scope,
    Model.close_again,
    Model.enter_twice,
    Model.close_unentered,
    Model.drop_scope,
    Model.reset,
    Model.export,
    Model.export,
    Model.unexport,
    Model.write_through_view,
    Model.release_handle,
    Model.use_dead,
    Model.bad_calls,
)


def one_input(data: bytes) -> None:
    inp = Input(data)
    chunk_size = inp.pick((1, 7, 64, 100, 1024, 4096, 65536, inp.edge_or(1, 1 << 16)))
    max_bytes = None if inp.flag() else inp.edge_or(0, 1 << 18)
    try:
        arena = Arena(chunk_size, max_bytes=max_bytes)
    except (ValueError, OverflowError, MemoryError):
        sane = 1 <= chunk_size <= 1 << 16 and (max_bytes is None or 0 <= max_bytes <= 1 << 18)
        assert not sane, f"Arena({chunk_size}, max_bytes={max_bytes}) refused"
        return
    model = Model(arena, max_bytes)
    drive(inp, model, OPS, 64)
    # Everything goes away cleanly: views first, then the arena with its buffers.
    for b in model.bufs:
        for mv in b.views:
            mv.release()
        b.views.clear()
    arena.reset()
    model._free_from(0)
    model.closed.extend(s for s in model.scopes if s is not None)
    model.scopes.clear()
    model.check()
    UNRAISABLE.check()


if __name__ == "__main__":
    assert memkit.Arena is Arena
    run(one_input)
