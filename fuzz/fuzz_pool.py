#!/usr/bin/env python3
"""Fuzzes BufferPool and AlignedBuffer: acquire/release/collect with views held in between,
cache clears, resizes and releases, against a model of the pool's cache and statistics.

Checked after every step: hits, misses, outstanding and cached_bytes equal the model's
(the same size-class rules as the C++ pool), cached_bytes never passes max_cached_bytes,
every live buffer is aligned, zeroed when asked and still holds its own byte pattern (a
block is never handed out twice, nor freed under a view), and a refused release or
resize (BufferError while a view is alive) changes nothing.
"""

from __future__ import annotations

import bisect
import gc
from itertools import pairwise

import atheris
from common import UNRAISABLE, Input, drive, run

with atheris.instrument_imports():
    import memkit
    from memkit import AlignedBuffer, BufferPool, PooledBuffer

FULL_CHECK = 4096


def fill(handle: object, nbytes: int, tag: int) -> None:
    with memoryview(handle) as mv:  # type: ignore[arg-type]
        if nbytes <= FULL_CHECK:
            mv[:] = bytes([tag]) * nbytes
        else:
            mv[:64] = bytes([tag]) * 64
            mv[-64:] = bytes([tag]) * 64


def holds(handle: object, nbytes: int, tag: int) -> bool:
    with memoryview(handle) as mv:  # type: ignore[arg-type]
        want = bytes([tag])
        if nbytes <= FULL_CHECK:
            return mv.tobytes() == want * nbytes
        return mv[:64].tobytes() == want * 64 and mv[-64:].tobytes() == want * 64


class Loan:
    """A PooledBuffer the model tracks."""

    def __init__(self, handle: PooledBuffer, nbytes: int, size_class: int | None, tag: int) -> None:
        self.handle: PooledBuffer | None = handle
        self.nbytes = nbytes
        self.size_class = size_class  # index into the pool's classes, None for an exact block
        self.capacity = handle.capacity
        self.tag = tag
        self.views: list[memoryview] = []


class Owned:
    """An AlignedBuffer the model tracks."""

    def __init__(self, buf: AlignedBuffer, nbytes: int, align: int, tag: int) -> None:
        self.buf = buf
        self.nbytes = nbytes
        self.align = align
        self.tag = tag
        self.views: list[memoryview] = []


class Model:
    def __init__(self, pool: BufferPool, classes: list[int], max_cached: int, align: int) -> None:
        self.pool = pool
        self.classes = classes  # sorted, distinct
        self.max_cached = max_cached
        self.align = align
        self.cache = [0] * len(classes)  # idle blocks per class
        self.cached_bytes = 0
        self.hits = self.misses = self.outstanding = 0
        self.loans: list[Loan] = []  # outstanding: handle alive or an orphan still viewed
        self.returned: list[PooledBuffer] = []  # released handles: every use raises ValueError
        self.owned: list[Owned] = []
        self.released_owned: list[AlignedBuffer] = []
        self.next_tag = 1

    def tag(self) -> int:
        t = self.next_tag
        self.next_tag = self.next_tag % 255 + 1
        return t

    def give_back(self, loan: Loan) -> None:
        """The C++ pool's give(): cache a class-sized block when it fits under the cap."""
        self.outstanding -= 1
        self.loans.remove(loan)
        if loan.size_class is not None and loan.capacity <= self.max_cached - self.cached_bytes:
            self.cache[loan.size_class] += 1
            self.cached_bytes += loan.capacity

    def stats(self) -> tuple[int, int, int, int]:
        p = self.pool
        return (p.hits, p.misses, p.cached_bytes, p.outstanding)

    def check(self) -> None:
        assert self.stats() == (self.hits, self.misses, self.cached_bytes, self.outstanding), (
            self.stats(),
            (self.hits, self.misses, self.cached_bytes, self.outstanding),
        )
        assert self.pool.cached_bytes <= self.max_cached
        spans = []
        for loan in self.loans:
            h = loan.handle
            if h is None:  # collected handle still viewed: check through a view
                mv = loan.views[0]
                assert mv.obj is not None
                continue
            assert not h.released and len(h) == loan.nbytes and h.capacity == loan.capacity
            assert h.address % self.align == 0
            assert holds(h, loan.nbytes, loan.tag), "a pooled buffer's bytes changed under it"
            if loan.nbytes:  # a zero-length loan shows a dangling address (like AlignedBuffer(0))
                spans.append((h.address, h.address + loan.capacity))
        for o in self.owned:
            assert not o.buf.released and len(o.buf) == o.nbytes and o.buf.address % o.align == 0
            assert holds(o.buf, o.nbytes, o.tag), "an AlignedBuffer's bytes changed under it"
            if o.nbytes:
                spans.append((o.buf.address, o.buf.address + o.nbytes))
        spans.sort()
        for (_, end), (start, _) in pairwise(spans):
            assert end <= start, "two live buffers overlap"
        for h in self.returned:
            assert h.released
        for b in self.released_owned:
            assert b.released

    # ---- BufferPool ----

    def acquire(self, inp: Input) -> None:
        nbytes = inp.size(small=self.classes[-1] + 64)
        zero = inp.flag()
        before = self.stats()
        try:
            h = self.pool.acquire(nbytes, zero) if not zero or inp.flag() else self.pool.acquire(nbytes)
        except (ValueError, OverflowError, MemoryError):
            assert self.stats() == before, "a failed acquire changed the pool"
            return
        assert type(h) is PooledBuffer and len(h) == nbytes and h.address % self.align == 0
        i = bisect.bisect_left(self.classes, nbytes)
        if i == len(self.classes):
            size_class, capacity = None, nbytes
            self.misses += 1
        else:
            size_class, capacity = i, self.classes[i]
            if self.cache[i]:
                self.cache[i] -= 1
                self.cached_bytes -= capacity
                self.hits += 1
            else:
                self.misses += 1
        self.outstanding += 1
        assert h.capacity == capacity, (h.capacity, capacity)
        if zero and nbytes <= FULL_CHECK:
            with memoryview(h) as mv:
                assert mv.tobytes() == bytes(nbytes), "a reused block was not zeroed"
        loan = Loan(h, nbytes, size_class, self.tag())
        fill(h, nbytes, loan.tag)
        self.loans.append(loan)

    def release(self, inp: Input) -> None:
        held = [x for x in self.loans if x.handle is not None]
        if not held:
            return
        loan = inp.pick(held)
        h = loan.handle
        assert h is not None
        before = self.stats()
        try:
            if inp.flag():
                h.release()
            else:
                assert h.__exit__(None, None, None) is False
        except BufferError:
            assert loan.views and self.stats() == before
            return
        assert not loan.views, "a viewed buffer went back to the pool"
        self.give_back(loan)
        self.returned.append(h)
        h.release()  # a second release is a no-op
        assert self.stats() == (self.hits, self.misses, self.cached_bytes, self.outstanding)

    def collect(self, inp: Input) -> None:
        """Drops the model's last reference: the block goes back when the last view ends."""
        held = [x for x in self.loans if x.handle is not None]
        if not held:
            return
        loan = inp.pick(held)
        loan.handle = None
        if inp.flag():
            gc.collect(0)  # reference counting already freed it; a young collection is cheap
        if not loan.views:
            self.give_back(loan)

    def export(self, inp: Input) -> None:
        held = [x for x in self.loans if x.handle is not None]
        if held:
            loan = inp.pick(held)
            assert loan.handle is not None
            mv = memoryview(loan.handle)
            if loan.nbytes > 2 and inp.flag():
                mv = mv[1:]
            loan.views.append(mv)

    def unexport(self, inp: Input) -> None:
        viewed = [x for x in self.loans if x.views]
        if not viewed:
            return
        loan = inp.pick(viewed)
        mv = loan.views.pop(inp.below(len(loan.views)))
        if inp.flag():
            mv.release()
        del mv
        if loan.handle is None and not loan.views:
            self.give_back(loan)  # the orphaned handle was collected with its last view

    def clear(self, inp: Input) -> None:
        self.pool.clear()
        self.cache = [0] * len(self.classes)
        self.cached_bytes = 0

    def use_returned(self, inp: Input) -> None:
        if self.returned:
            h = inp.pick(self.returned)
            for op in (lambda: len(h), lambda: memoryview(h), lambda: h.address, lambda: h.capacity):
                try:
                    op()
                except ValueError:
                    continue
                raise AssertionError("a returned PooledBuffer was usable")
            repr(h)

    def bad_acquire(self, inp: Input) -> None:
        arg = inp.pick((None, 1.5, "8", b"", -1, -(2**63), 2**64, 2**63))
        before = self.stats()
        try:
            self.pool.acquire(arg)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError, MemoryError):
            assert self.stats() == before
            return
        raise AssertionError(f"acquire({arg!r}) was accepted")

    # ---- AlignedBuffer ----

    def new_buffer(self, inp: Input) -> None:
        nbytes, align, zero = inp.size(), inp.align(), inp.flag()
        try:
            buf = AlignedBuffer(nbytes, align, zero=zero)
        except (ValueError, OverflowError, MemoryError):
            return
        assert len(buf) == nbytes and buf.align == align and buf.address % align == 0
        if zero and nbytes <= FULL_CHECK:
            assert bytes(buf) == bytes(nbytes)
        o = Owned(buf, nbytes, align, self.tag())
        fill(buf, nbytes, o.tag)
        self.owned.append(o)

    def resize(self, inp: Input) -> None:
        if not self.owned:
            return
        o = inp.pick(self.owned)
        new = inp.size()
        try:
            o.buf.resize(new)
        except BufferError:
            assert o.views
            return
        except (ValueError, OverflowError, MemoryError):
            assert len(o.buf) == o.nbytes and holds(o.buf, o.nbytes, o.tag), "a failed resize changed the buffer"
            return
        assert not o.views, "resized under a view"
        assert len(o.buf) == new and o.buf.address % o.align == 0
        keep = min(new, o.nbytes)
        # fill() wrote the whole buffer when it was small, else its first and last 64 bytes.
        known = keep if o.nbytes <= FULL_CHECK else min(keep, 64)
        with memoryview(o.buf) as mv:
            assert mv[:known].tobytes() == bytes([o.tag]) * known, "resize lost contents"
            grown = mv[keep : min(new, keep + FULL_CHECK)].tobytes()
            assert grown == bytes(len(grown)), "resize's new bytes are not zero"
        o.nbytes = new
        fill(o.buf, new, o.tag)

    def buffer_export(self, inp: Input) -> None:
        if self.owned:
            o = inp.pick(self.owned)
            o.views.append(memoryview(o.buf))

    def buffer_unexport(self, inp: Input) -> None:
        viewed = [o for o in self.owned if o.views]
        if viewed:
            o = inp.pick(viewed)
            o.views.pop(inp.below(len(o.views))).release()

    def buffer_release(self, inp: Input) -> None:
        if not self.owned:
            return
        o = inp.pick(self.owned)
        try:
            o.buf.release() if inp.flag() else o.buf.__exit__(None, None, None)
        except BufferError:
            assert o.views and len(o.buf) == o.nbytes
            return
        assert not o.views
        self.owned.remove(o)
        self.released_owned.append(o.buf)
        for op in (lambda: len(o.buf), lambda: memoryview(o.buf), lambda: o.buf.resize(1), lambda: o.buf.address):
            try:
                op()
            except ValueError:
                continue
            raise AssertionError("a released AlignedBuffer was usable")
        o.buf.release()


OPS = (
    Model.acquire,
    Model.acquire,
    Model.acquire,
    Model.release,
    Model.release,
    Model.collect,
    Model.export,
    Model.export,
    Model.unexport,
    Model.clear,
    Model.use_returned,
    Model.bad_acquire,
    Model.new_buffer,
    Model.resize,
    Model.buffer_export,
    Model.buffer_unexport,
    Model.buffer_release,
)


def one_input(data: bytes) -> None:
    inp = Input(data)
    n = inp.between(1, 4)
    classes = [inp.pick((1, 8, 64, 100, 4096, 65536, inp.edge_or(1, 1 << 17))) for _ in range(n)]
    if inp.below(16) == 0:
        classes = inp.pick(([], [0], [-1], [2**64], [1 << 62]))
    max_cached = inp.pick((0, 64, 4096, 1 << 17, 64 << 20, inp.edge_or(0, 1 << 18)))
    align = inp.align() if inp.flag() else 64
    try:
        pool = BufferPool(classes, max_cached_bytes=max_cached, align=align)
    except (ValueError, OverflowError, TypeError):
        sane = classes and all(1 <= c <= 1 << 17 for c in classes) and 0 <= max_cached <= 1 << 30
        sane = sane and align in [1 << k for k in range(31)]
        assert not sane, f"BufferPool({classes}, {max_cached}, {align}) refused"
        return
    model = Model(pool, sorted(set(classes)), max_cached, align)
    assert pool.size_classes == tuple(model.classes) and pool.align == align
    drive(inp, model, OPS, 64)
    for loan in list(model.loans):
        loan.views.clear()
        if loan.handle is not None:
            loan.handle.release()
        model.give_back(loan)
    model.check()
    UNRAISABLE.check()
    assert pool.outstanding == 0


if __name__ == "__main__":
    assert memkit.BufferPool is BufferPool
    run(one_input)
