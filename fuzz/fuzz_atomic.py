#!/usr/bin/env python3
"""Fuzzes the atomics over foreign memory: AtomicInt.from_buffer and
AtomicIntArray.from_buffer at random offsets, lengths and paddings of random buffers
(bytearray, AlignedBuffer, mmap, bytes, memoryview slices), every operation with random
values and orderings, releases, and the buffers' own resize/close attempts.

Checked: from_buffer succeeds exactly when the cells fit and are 8-byte aligned (and the
buffer is writable); each operation returns what a 64-bit wrapping model says, or raises
the documented error (ValueError for an invalid ordering, OverflowError outside the
64-bit range, IndexError outside the array, ValueError once released) and changes
nothing; operations touch only their own 8 bytes; the buffer stays exported (resize,
close refused) until release(), and every use after release() raises ValueError.
"""

from __future__ import annotations

import mmap
import struct as pystruct
import sys

import atheris
from common import UNRAISABLE, Input, drive, run

with atheris.instrument_imports():
    import memkit
    from memkit import CACHE_PAD, AlignedBuffer, AtomicBool, AtomicInt, AtomicIntArray, Ordering

MASK = 2**64 - 1
ORDERS = list(Ordering)
RMW = ("swap", "fetch_add", "fetch_sub", "fetch_and", "fetch_or", "fetch_xor", "fetch_max", "fetch_min")


def wrap(v: int) -> int:
    v &= MASK
    return v - 2**64 if v >= 2**63 else v


def apply(op: str, cur: int, v: int) -> int:
    return {
        "swap": lambda: v,
        "fetch_add": lambda: wrap(cur + v),
        "fetch_sub": lambda: wrap(cur - v),
        "fetch_and": lambda: cur & v,
        "fetch_or": lambda: cur | v,
        "fetch_xor": lambda: cur ^ v,
        "fetch_max": lambda: max(cur, v),
        "fetch_min": lambda: min(cur, v),
    }[op]()


def fits_i64(v: object) -> bool:
    return isinstance(v, int) and -(2**63) <= v < 2**63


class Atom:
    """An AtomicInt or AtomicIntArray over a buffer, with its cells' offsets."""

    def __init__(self, obj: AtomicInt | AtomicIntArray, buf: object, offsets: list[int], array: bool) -> None:
        self.obj = obj
        self.buf = buf
        self.offsets = offsets
        self.array = array
        self.released = False


class Model:
    def __init__(self) -> None:
        self.buffers: list[object] = []
        self.atoms: list[Atom] = []
        self.flag = AtomicBool(False)
        self.flag_value = False

    @staticmethod
    def cell(buf: object, offset: int) -> int:
        with memoryview(buf) as mv:  # type: ignore[arg-type]
            return pystruct.unpack_from("=q", mv.cast("B") if mv.ndim != 1 else mv, offset)[0]

    @staticmethod
    def snapshot(buf: object) -> bytes:
        with memoryview(buf) as mv:  # type: ignore[arg-type]
            return mv.tobytes()

    def check(self) -> None:
        for a in self.atoms:
            if a.released:
                continue
            if a.array:
                assert isinstance(a.obj, AtomicIntArray)
                assert len(a.obj) == len(a.offsets)
                assert a.obj.tolist() == [self.cell(a.buf, o) for o in a.offsets]
            else:
                assert a.obj.load() == self.cell(a.buf, a.offsets[0])
        assert self.flag.load() is self.flag_value

    # ---- buffers and from_buffer ----

    def new_buffer(self, inp: Input) -> None:
        n = inp.between(0, 600)
        kind = inp.below(6)
        if kind == 0:
            buf: object = bytearray(inp.filler(n))
        elif kind == 1:
            buf = AlignedBuffer(n, inp.pick((8, 64, 128)))
        elif kind == 2:
            buf = mmap.mmap(-1, max(n, 1))
        elif kind == 3:
            buf = bytes(n)  # read-only: from_buffer refuses it
        elif kind == 4:
            buf = memoryview(bytearray(n + 8))[inp.below(8) :]
        else:
            buf = memoryview(bytearray(2 * n + 2))[::2]  # not contiguous
        self.buffers.append(buf)

    def from_buffer(self, inp: Input) -> None:
        if not self.buffers:
            return
        buf = inp.pick(self.buffers)
        array = inp.flag()
        offset = inp.between(0, 200) if inp.below(6) else inp.pick((-8, -1, 2**63, 2**64, sys.maxsize))
        length = inp.between(0, 6) if inp.below(6) else inp.pick((-1, 2**32, 2**61, 2**63, 2**64))
        padded = inp.flag()
        stride = CACHE_PAD if padded else 8
        try:
            if array:
                obj: AtomicInt | AtomicIntArray = AtomicIntArray.from_buffer(buf, length, offset, padded)
            else:
                obj = AtomicInt.from_buffer(buf, offset) if inp.flag() else AtomicInt.from_buffer(buf, offset=offset)
        except (ValueError, OverflowError, BufferError, TypeError) as exc:
            self.expect_refused(buf, array, offset, length, stride, exc)
            return
        count = length if array else 1
        offsets = [offset + i * stride for i in range(count)]
        with memoryview(buf) as mv:  # type: ignore[arg-type]
            assert not mv.readonly and mv.c_contiguous
            span = (count - 1) * stride + 8 if count else 0
            assert 0 <= offset and offset + span <= mv.nbytes, "an atomic reached past its buffer"
        if count:
            assert obj.address_of(0) % 8 == 0 if array else obj.address % 8 == 0  # type: ignore[union-attr]
        self.atoms.append(Atom(obj, buf, offsets, array))

    def expect_refused(self, buf: object, array: bool, offset: int, length: int, stride: int, exc: Exception) -> None:
        try:
            mv = memoryview(buf)  # type: ignore[arg-type]
        except TypeError:
            return
        with mv:
            if mv.readonly or not mv.c_contiguous:
                return
            count = length if array else 1
            if offset < 0 or count < 0 or offset > sys.maxsize or count > 2**40:
                return
            span = (count - 1) * stride + 8 if count else 0
            if offset + span > mv.nbytes:
                return
            assert "aligned" in str(exc) and span, f"from_buffer refused cells that fit: {exc}"

    # ---- operations ----

    def live(self, inp: Input) -> Atom | None:
        return inp.pick(self.atoms) if self.atoms else None

    def order(self, inp: Input) -> object:
        if inp.below(10):
            return inp.pick(ORDERS)
        return inp.pick((-1, 5, 2**64, "SEQ_CST", None, 4.0))

    @staticmethod
    def order_ok(order: object, op: str) -> bool:
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 4:
            return False
        if op == "load":
            return order not in (Ordering.RELEASE, Ordering.ACQ_REL)
        if op == "store":
            return order not in (Ordering.ACQUIRE, Ordering.ACQ_REL)
        return True

    def value(self, inp: Input) -> object:
        return inp.i64() if inp.below(12) else inp.pick((2**63, -(2**63) - 1, 2**64, 1.5, "1", None))

    def operate(self, inp: Input) -> None:
        a = self.live(inp)
        if a is None:
            return
        op = inp.pick(("load", "store", "compare_exchange", "compare_exchange_weak", "fetch_update", *RMW))
        if a.array:
            n = len(a.offsets)
            index = inp.between(-1, n) if inp.below(8) else inp.pick((2**63, -(2**63), 2**64))
            in_range = 0 <= index < n
            at = a.offsets[index] if in_range else None
            prefix: tuple[object, ...] = (index,)
        else:
            in_range, at, prefix = True, a.offsets[0], ()
        order = self.order(inp)
        v = self.value(inp)
        before = self.snapshot(a.buf) if not a.released else b""
        cur = self.cell(a.buf, at) if (at is not None and not a.released) else 0
        try:
            if op == "load":
                got = a.obj.load(*prefix, order)  # type: ignore[arg-type]
            elif op == "store":
                got = a.obj.store(*prefix, v, order)  # type: ignore[arg-type]
            elif op in ("compare_exchange", "compare_exchange_weak"):
                expected = cur if inp.flag() else self.value(inp)
                failure = None if inp.flag() else self.order(inp)
                got = getattr(a.obj, op)(*prefix, expected, v, order, failure)
            elif op == "fetch_update":
                got = a.obj.fetch_update(*prefix, lambda c: None if inp.flag() else v, order)  # type: ignore[arg-type]
            else:
                got = getattr(a.obj, op)(*prefix, v, order)
        except (ValueError, TypeError, OverflowError, IndexError) as exc:
            if a.released:  # "released", or the arguments' own error when they are checked first
                return
            assert self.snapshot(a.buf) == before, "a refused operation changed the buffer"
            # Refused for a reason the caller gave: a bad index, value or ordering.
            bad_value = op not in ("load", "fetch_update") and not fits_i64(v)
            cas = op in ("compare_exchange", "compare_exchange_weak", "fetch_update")
            assert not in_range or bad_value or not self.order_ok(order, op) or cas, f"{op} refused: {exc!r}"
            if isinstance(exc, IndexError):
                assert not in_range
            return
        assert not a.released, "a released atomic still operated"
        assert in_range, "an index outside the array was accepted"
        assert at is not None
        check_ok = self.order_ok(order, op)
        assert check_ok or op == "compare_exchange_weak" or op == "compare_exchange", f"{op} accepted order {order!r}"
        after = self.snapshot(a.buf)
        assert after[:at] == before[:at] and after[at + 8 :] == before[at + 8 :], "an operation touched other bytes"
        new = self.cell(a.buf, at)
        if op == "load":
            assert got == cur and new == cur
        elif op == "store":
            assert fits_i64(v) and got is None and new == v
        elif op in ("compare_exchange", "compare_exchange_weak"):
            ok, seen = got
            assert seen == cur
            if ok:
                assert new == v
            else:
                assert new == cur
        elif op == "fetch_update":
            ok, seen = got
            assert seen == cur if not ok else (seen == cur and new == v)
        else:
            assert fits_i64(v) and got == cur and new == apply(op, cur, v), (op, cur, v, got, new)

    def release(self, inp: Input) -> None:
        a = self.live(inp)
        if a is None:
            return
        a.obj.release()
        a.obj.release()  # a no-op
        a.released = True
        assert a.obj.released
        calls = (
            lambda: a.obj.load(0) if a.array else a.obj.load(),  # type: ignore[call-arg]
            lambda: len(a.obj) if a.array else int(a.obj),  # type: ignore[arg-type]
        )
        for call in calls:
            try:
                call()
            except ValueError:
                continue
            raise AssertionError("a released atomic was usable")

    def close_buffer(self, inp: Input) -> None:
        """The buffer under a live atomic cannot be freed or moved."""
        if not self.buffers:
            return
        buf = inp.pick(self.buffers)
        pinned = any(a.buf is buf and not a.released for a in self.atoms)
        try:
            if isinstance(buf, bytearray):
                buf.extend(b"12345678")
            elif isinstance(buf, AlignedBuffer):
                buf.resize(len(buf) + 8)
            elif isinstance(buf, mmap.mmap):
                # Not resize(): growing an anonymous map crashes CPython itself (SIGBUS on
                # the new pages before 3.13), with or without memkit.
                buf.close()
                self.buffers.remove(buf)
            else:
                return
        except BufferError:
            assert pinned, "a buffer with no live atomic refused to change"
            return
        assert not pinned, "a buffer changed under a live atomic"

    def inplace(self, inp: Input) -> None:
        scalars = [a for a in self.atoms if not a.array and not a.released]
        if not scalars:
            return
        a = inp.pick(scalars)
        v = inp.i64()
        cur = self.cell(a.buf, a.offsets[0])
        op = inp.pick(("+=", "-=", "&=", "|=", "^="))
        obj = a.obj
        if not fits_i64(v):
            try:
                obj += v  # type: ignore[assignment,operator]
            except OverflowError:
                assert int(a.obj) == cur
                return
            raise AssertionError(f"{op} accepted {v}")
        if op == "+=":
            obj += v  # type: ignore[assignment,operator]
            want = wrap(cur + v)
        elif op == "-=":
            obj -= v  # type: ignore[assignment,operator]
            want = wrap(cur - v)
        elif op == "&=":
            obj &= v  # type: ignore[assignment,operator]
            want = cur & v
        elif op == "|=":
            obj |= v  # type: ignore[assignment,operator]
            want = cur | v
        else:
            obj ^= v  # type: ignore[assignment,operator]
            want = cur ^ v
        assert obj is a.obj and int(a.obj) == want

    def flag_op(self, inp: Input) -> None:
        op = inp.pick(("load", "store", "swap", "fetch_and", "fetch_or", "fetch_xor", "compare_exchange"))
        v = inp.flag()
        order = self.order(inp)
        try:
            if op == "load":
                got = self.flag.load(order)  # type: ignore[arg-type]
            elif op == "compare_exchange":
                got = self.flag.compare_exchange(self.flag_value if inp.flag() else not self.flag_value, v, order)  # type: ignore[arg-type]
            else:
                got = getattr(self.flag, op)(v, order)
        except (ValueError, TypeError, OverflowError):
            assert not self.order_ok(order, op) or op == "compare_exchange"
            return
        assert self.order_ok(order, op) or op == "compare_exchange", f"AtomicBool.{op} accepted order {order!r}"
        cur = self.flag_value
        if op == "load":
            assert got is cur
            return
        if op == "store":
            self.flag_value = v
        elif op == "swap":
            assert got is cur
            self.flag_value = v
        elif op == "compare_exchange":
            ok, seen = got
            assert seen is cur
            if ok:
                self.flag_value = v
        else:
            assert got is cur
            self.flag_value = {"fetch_and": cur and v, "fetch_or": cur or v, "fetch_xor": cur != v}[op]


OPS = (
    Model.new_buffer,
    Model.from_buffer,
    Model.from_buffer,
    Model.operate,
    Model.operate,
    Model.operate,
    Model.operate,
    Model.release,
    Model.close_buffer,
    Model.inplace,
    Model.flag_op,
)


def one_input(data: bytes) -> None:
    inp = Input(data)
    model = Model()
    drive(inp, model, OPS, 64)
    for a in model.atoms:
        a.obj.release()
    for buf in model.buffers:
        if isinstance(buf, mmap.mmap):
            buf.close()  # every export is gone: closing works
    UNRAISABLE.check()


if __name__ == "__main__":
    assert memkit.AtomicInt is AtomicInt
    run(one_input)
