#!/usr/bin/env python3
"""Fuzzes memkit.layout: random @struct definitions (every field kind, nesting, packed and
aligned, some invalid), views and array views at random offsets of random buffers
(bytearray, AlignedBuffer, bytes, memoryview slices and casts, non-contiguous views),
field reads and writes with valid and invalid values, and raw Field descriptors with
arbitrary offsets and sizes over raw records.

Checked: decoration refuses exactly the invalid definitions; offsets, sizes and
alignments follow the C rules (computed here independently); a view exists only in
bounds and, for repr="C", aligned; a read gives what `struct.unpack` reads at the field's
offset; a write changes only the field's own bytes - to what `struct.pack` writes - and a
refused write (TypeError, ValueError, OverflowError) changes no byte; a view keeps its
buffer exported (resize, release refused); no descriptor reaches outside its record.
"""

from __future__ import annotations

import enum
import struct as pystruct
import sys
from typing import Annotated, Any

import atheris
from common import EDGE_INTS, UNRAISABLE, Input, drive, run

with atheris.instrument_imports():
    import memkit
    from memkit import AlignedBuffer
    from memkit import layout as L
    from memkit._core import layout as raw_layout


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2
    WHITE = 255


class Delta(enum.IntEnum):
    DOWN = -1
    UP = 5
    FAR = 30000


# (annotation, struct format, size) for every scalar kind.
SCALARS = [
    (L.u8, "B", 1),
    (L.i8, "b", 1),
    (L.u16, "H", 2),
    (L.i16, "h", 2),
    (L.u32, "I", 4),
    (L.i32, "i", 4),
    (L.u64, "Q", 8),
    (L.i64, "q", 8),
    (L.f32, "f", 4),
    (L.f64, "d", 8),
    (L.bool_, "?", 1),
    (L.ptr, "Q", 8),
    (L.c_char, "c", 1),
]


class Spec:
    """What the harness knows about a field type, independently of memkit."""

    def __init__(self, kind: str, size: int, align: int, fmt: str = "", **extra: Any) -> None:
        self.kind = kind  # scalar | enum | bytes | array | struct
        self.size = size
        self.align = align
        self.fmt = fmt
        self.extra = extra


class StructSpec:
    def __init__(self, cls: type, fields: list[tuple[str, Spec]], offsets: list[int], size: int, align: int) -> None:
        self.cls = cls
        self.fields = fields
        self.offsets = offsets
        self.size = size
        self.align = align


def round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class Model:
    def __init__(self) -> None:
        self.structs: list[StructSpec] = []
        self.buffers: list[Any] = []
        self.views: list[tuple[Any, StructSpec, Any, int]] = []  # (record, spec, buffer, offset)
        self.serial = 0

    def check(self) -> None:
        for rec, spec, buf, off in self.views:
            self.check_read(rec, spec, buf, off)

    # ---- definitions ----

    def field_spec(self, inp: Input, depth: int) -> tuple[Any, Spec] | None:
        """A random field annotation and its spec; None for a deliberately invalid one."""
        choice = inp.below(12)
        if choice < 6:
            ann, fmt, size = inp.pick(SCALARS)
            return ann, Spec("scalar", size, size, fmt)
        if choice == 6:
            enum_cls, width, fmt, size = inp.pick(
                [(Color, L.u8, "B", 1), (Color, L.u32, "I", 4), (Delta, L.i16, "h", 2), (Delta, L.i64, "q", 8)]
            )
            return Annotated[enum_cls, width], Spec("enum", size, size, fmt, enum=enum_cls)
        if choice == 7:
            n = inp.between(1, 12)
            return L.Bytes(n), Spec("bytes", n, 1)
        if choice == 8 and depth < 2:
            n = inp.between(1, 5)
            inner = self.field_spec(inp, depth + 1)
            if inner is None:
                return None
            ann, spec = inner
            if spec.kind == "array":
                return None  # keep arrays one-dimensional: nested arrays are the ctypes tests' job
            return L.Array(ann, n), Spec("array", spec.size * n, spec.align, elem=spec, n=n)
        if choice == 9 and self.structs and depth < 2:
            s = inp.pick(self.structs)
            return s.cls, Spec("struct", s.size, s.align, struct=s)
        if choice == 10:
            return None
        ann, fmt, size = SCALARS[0]
        return ann, Spec("scalar", size, size, fmt)

    def define(self, inp: Input) -> None:
        n = inp.between(1, 5)
        fields: list[tuple[str, Any, Spec | None]] = []
        for i in range(n):
            spec = self.field_spec(inp, 0)
            if spec is None:
                bad = inp.pick((int, float, bytes, Color, "nonsense", L.Bytes, L.Array))
                fields.append((f"f{i}", bad, None))
            else:
                fields.append((f"f{i}", spec[0], spec[1]))
        packed = inp.below(3) == 0
        align = None if inp.flag() else inp.pick((1, 2, 8, 16, 64, 4096, 3, 0, -4, 2**30))
        self.serial += 1
        cls = type(f"S{self.serial}", (), {"__annotations__": {name: ann for name, ann, _ in fields}})
        valid_fields = all(s is not None for _, _, s in fields)
        nests_aligned = any(
            s is not None and s.kind in ("struct", "array") and self._has_align_attr(s) for _, _, s in fields
        )
        valid_align = align is None or (isinstance(align, int) and 1 <= align <= 2**29 and align & (align - 1) == 0)
        valid = valid_fields and valid_align and not (packed and align is not None) and not (packed and nests_aligned)
        try:
            S = L.struct(repr="packed" if packed else "C", align=align)(cls)
        except (TypeError, ValueError) as exc:
            assert not valid, f"a valid struct was refused: {exc}"
            return
        assert valid, "an invalid struct was accepted"
        specs = [(name, s) for name, _, s in fields if s is not None]
        offsets, off, max_align = [], 0, 1
        for _, s in specs:
            a = 1 if packed else s.align
            off = round_up(off, a)
            offsets.append(off)
            off += s.size
            max_align = max(max_align, a)
        if align is not None:
            max_align = max(max_align, align)
        size = round_up(off, max_align)
        assert L.size_of(S) == size, (L.size_of(S), size, L.describe(S))
        assert L.align_of(S) == max_align, (L.align_of(S), max_align)
        for (name, _), o in zip(specs, offsets, strict=True):
            assert L.offset_of(S, name) == o
        spec = StructSpec(S, specs, offsets, size, max_align)
        spec.aligned_attr = align is not None  # type: ignore[attr-defined]
        L.describe(S)
        order, saved = L.optimize(S)
        assert sorted(order) == sorted(n for n, _ in specs) and saved >= 0
        self.structs.append(spec)

    def _has_align_attr(self, s: Spec) -> bool:
        if s.kind == "struct":
            st = s.extra["struct"]
            return bool(getattr(st, "aligned_attr", False)) or any(self._has_align_attr(f) for _, f in st.fields)
        if s.kind == "array":
            return self._has_align_attr(s.extra["elem"])
        return False

    # ---- buffers ----

    def new_buffer(self, inp: Input) -> None:
        n = inp.between(0, 300) if inp.below(8) else inp.pick((0, 1, 4096, 65536))
        kind = inp.below(7)
        if kind == 0:
            buf: Any = bytearray(inp.filler(n))
        elif kind == 1:
            buf = AlignedBuffer(n, inp.pick((1, 8, 64, 4096)))
            memoryview(buf)[:] = inp.filler(n)
        elif kind == 2:
            buf = bytes(inp.filler(n))  # read-only
        elif kind == 3:
            base = bytearray(n + 16)
            buf = memoryview(base)[inp.below(16) :]  # contiguous, at an odd address maybe
        elif kind == 4:
            buf = memoryview(bytearray(2 * n + 2))[::2]  # not contiguous
        elif kind == 5:
            rows = inp.between(1, 4)
            buf = memoryview(bytearray(rows * (n // rows + 1))).cast("B", (rows, n // rows + 1))
        else:
            buf = inp.pick((None, 5, "abc", [1, 2]))
        self.buffers.append(buf)

    @staticmethod
    def is_buffer(buf: Any) -> bool:
        try:
            memoryview(buf).release()
        except TypeError:
            return False
        return True

    @staticmethod
    def nbytes(buf: Any) -> int:
        return memoryview(buf).nbytes

    @staticmethod
    def contiguous(buf: Any) -> bool:
        return memoryview(buf).c_contiguous

    @staticmethod
    def snapshot(buf: Any) -> bytes:
        return memoryview(buf).tobytes()

    # ---- views ----

    def view(self, inp: Input) -> None:
        if not self.structs or not self.buffers:
            return
        spec = inp.pick(self.structs)
        buf = inp.pick(self.buffers)
        offset = inp.between(-2, 80) if inp.below(6) else inp.pick(EDGE_INTS)
        try:
            rec = spec.cls.view(buf, offset) if inp.flag() else spec.cls.view(buf, offset=offset)
        except TypeError:
            assert not self.is_buffer(buf) or not isinstance(offset, int)
            return
        except (ValueError, OverflowError) as exc:
            if not self.is_buffer(buf):
                assert isinstance(exc, OverflowError), exc  # the offset is converted first
                return
            ok_bounds = 0 <= offset and offset + spec.size <= self.nbytes(buf)
            if ok_bounds and self.contiguous(buf):
                assert "misaligned" in str(exc) and spec.align > 1, f"an in-bounds view was refused: {exc}"
            return
        assert 0 <= offset and offset + spec.size <= self.nbytes(buf), "a view reached past its buffer"
        assert self.contiguous(buf)
        assert raw_layout.address(rec) % spec.align == 0, "a view is misaligned"
        self.views.append((rec, spec, buf, offset))

    def array_view(self, inp: Input) -> None:
        if not self.structs or not self.buffers:
            return
        spec = inp.pick(self.structs)
        buf = inp.pick(self.buffers)
        count = inp.between(-1, 6) if inp.below(8) else inp.pick(EDGE_INTS)
        offset = inp.between(0, 40)
        try:
            arr = spec.cls.array_view(buf, count, offset)
        except TypeError:
            assert not self.is_buffer(buf) or not isinstance(count, int)
            return
        except (ValueError, OverflowError):
            if not self.is_buffer(buf):
                return  # count is converted (and refused) before the buffer is looked at
            fits = 0 <= count and offset + count * spec.size <= self.nbytes(buf)
            assert not fits or not self.contiguous(buf) or spec.align > 1, "an in-bounds array view was refused"
            return
        assert len(arr) == count and offset + count * spec.size <= self.nbytes(buf)
        for i in range(count):
            self.views.append((arr[i], spec, buf, offset + i * spec.size))
        i = inp.between(-count - 2, count + 1)
        try:
            arr[i]
        except IndexError:
            assert not -count <= i < count
        else:
            assert -count <= i < count

    def drop_view(self, inp: Input) -> None:
        if self.views:
            del self.views[inp.below(len(self.views))]

    def check_read(self, rec: Any, spec: StructSpec, buf: Any, off: int) -> None:
        data = self.snapshot(buf)
        assert bytes(rec) == data[off : off + spec.size]
        for (name, fspec), foff in zip(spec.fields, spec.offsets, strict=True):
            self.check_value(
                getattr(rec, name) if fspec.kind != "enum" else self.enum_read(rec, name, fspec),
                fspec,
                data,
                off + foff,
            )

    @staticmethod
    def enum_read(rec: Any, name: str, fspec: Spec) -> Any:
        try:
            return getattr(rec, name)
        except ValueError:
            return None  # holds no member's value: checked against the bytes below

    def check_value(self, value: Any, fspec: Spec, data: bytes, at: int) -> None:
        raw = data[at : at + fspec.size]
        if fspec.kind == "scalar":
            want = pystruct.unpack("=" + fspec.fmt, raw)[0]
            if fspec.fmt in "fd":
                assert value == want or (value != value and want != want)
            else:
                assert value == want, (value, want)
        elif fspec.kind == "enum":
            n = pystruct.unpack("=" + fspec.fmt, raw)[0]
            members = {int(m) for m in fspec.extra["enum"]}
            if value is None:
                assert n not in members
            else:
                assert value is fspec.extra["enum"](n)
        elif fspec.kind == "bytes":
            assert value == raw
        elif fspec.kind == "array":
            elem, n = fspec.extra["elem"], fspec.extra["n"]
            assert len(value) == n
            for i in range(n):
                item = self.enum_read_item(value, i) if elem.kind == "enum" else value[i]
                self.check_value(item, elem, data, at + i * elem.size)
        else:
            st = fspec.extra["struct"]
            assert bytes(value) == raw
            for (name, inner), ioff in zip(st.fields, st.offsets, strict=True):
                v = getattr(value, name) if inner.kind != "enum" else self.enum_read(value, name, inner)
                self.check_value(v, inner, data, at + ioff)

    @staticmethod
    def enum_read_item(arr: Any, i: int) -> Any:
        try:
            return arr[i]
        except ValueError:
            return None

    # ---- writes ----

    def value_for(self, inp: Input, fspec: Spec) -> tuple[Any, bool]:
        """A value to write and whether memkit must accept it."""
        if fspec.kind == "scalar":
            fmt = fspec.fmt
            if fmt in "fd":
                v = inp.pick((0.0, -0.0, 1.5, -2.25, float("inf"), 1e38, 3.4e38, 1e39, -1e300, 7, "x", None))
                if fmt == "f" and isinstance(v, float) and abs(v) > 3.5e38 and v != float("inf"):
                    return v, False
                return v, isinstance(v, (int, float))
            if fmt == "?":
                return inp.pick((True, False)), True
            if fmt == "c":
                v = inp.pick((b"a", b"\0", b"ab", b"", 65, 255, 256, -1, "a"))
                return v, (isinstance(v, bytes) and len(v) == 1) or (isinstance(v, int) and 0 <= v <= 255)
            bits = fspec.size * 8
            lo, hi = (0, 2**bits - 1) if fmt.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            choice = inp.below(8)
            if choice < 5:
                return inp.between(lo, hi), True
            if choice == 5:
                v = inp.pick((lo - 1, hi + 1, 2**64, -(2**63) - 1))
                return v, lo <= v <= hi
            return inp.pick((1.0, "1", None, b"1")), False
        if fspec.kind == "enum":
            members = list(fspec.extra["enum"])
            v = inp.pick([*members, int(members[0]), 7, 1000000, -1, "RED", 1.0])
            ok = isinstance(v, int) and not isinstance(v, bool) and v in {int(m) for m in members}
            return v, ok
        if fspec.kind == "bytes":
            n = fspec.size if inp.below(4) else inp.between(0, fspec.size + 2)
            v = inp.filler(n)
            return (v, True) if len(v) == fspec.size else (v, False)
        return None, False

    def write(self, inp: Input) -> None:
        if not self.views:
            return
        rec, spec, buf, off = inp.pick(self.views)
        i = inp.below(len(spec.fields))
        name, fspec = spec.fields[i]
        at = off + spec.offsets[i]
        readonly = memoryview(buf).readonly
        before = self.snapshot(buf)
        if fspec.kind in ("scalar", "enum", "bytes"):
            value, ok = self.value_for(inp, fspec)
            try:
                setattr(rec, name, value)
            except (TypeError, ValueError, OverflowError) as exc:
                assert not ok or readonly, f"writing {value!r} to {name} ({fspec.fmt or fspec.kind}) failed: {exc}"
                assert self.snapshot(buf) == before, "a refused write changed the buffer"
                return
            assert ok and not readonly, f"writing {value!r} to {name} ({fspec.fmt or fspec.kind}) was accepted"
            after = self.snapshot(buf)
            assert after[:at] == before[:at] and after[at + fspec.size :] == before[at + fspec.size :], (
                "a write reached outside its field"
            )
            if fspec.kind == "bytes":
                assert after[at : at + fspec.size] == value
            elif fspec.kind == "enum":
                assert after[at : at + fspec.size] == pystruct.pack("=" + fspec.fmt, int(value))
            elif fspec.fmt == "c":
                want = value if isinstance(value, bytes) else bytes([value])
                assert after[at : at + 1] == want
            else:
                assert after[at : at + fspec.size] == pystruct.pack("=" + fspec.fmt, value)
        elif fspec.kind == "array":
            arr = getattr(rec, name)
            elem, n = fspec.extra["elem"], fspec.extra["n"]
            j = inp.between(-n - 1, n)
            if elem.kind in ("scalar", "enum", "bytes"):
                value, ok = self.value_for(inp, elem)
            else:
                value, ok = bytes(elem.size) if inp.flag() else b"short", False
                ok = len(value) == elem.size
            try:
                if inp.below(4) == 0:
                    arr.assign([value] * n)
                else:
                    arr[j] = value
            except IndexError:
                assert not -n <= j < n
            except (TypeError, ValueError, OverflowError):
                pass
            after = self.snapshot(buf)
            assert after[:at] == before[:at] and after[at + fspec.size :] == before[at + fspec.size :], (
                "an array write reached outside its field"
            )
            if readonly:
                assert after == before
        else:
            st = fspec.extra["struct"]
            value = inp.filler(st.size) if inp.flag() else b"\x01" * (st.size + 1)
            try:
                setattr(rec, name, value)
            except (TypeError, ValueError, OverflowError):
                assert readonly or len(value) != st.size
                assert self.snapshot(buf) == before
                return
            assert not readonly and len(value) == st.size
            after = self.snapshot(buf)
            assert after[:at] == before[:at] and after[at + st.size :] == before[at + st.size :]
            assert after[at : at + st.size] == value

    # ---- exports ----

    def pin(self, inp: Input) -> None:
        """Releasing or resizing a buffer under a live view is refused."""
        viewed = [(b, r) for r, _, b, _ in self.views]
        if not viewed:
            return
        buf, _ = inp.pick(viewed)
        if isinstance(buf, bytearray):
            try:
                buf.extend(b"x")
            except BufferError:
                return
            raise AssertionError("a bytearray grew under a view")
        if isinstance(buf, AlignedBuffer):
            for call in (buf.release, lambda: buf.resize(len(buf) + 1)):
                try:
                    call()
                except BufferError:
                    continue
                raise AssertionError("an AlignedBuffer was released or resized under a view")

    # ---- raw descriptors ----

    def raw_field(self, inp: Input) -> None:
        """A Field with any offset and size on a raw record: it must stay inside the record."""
        kinds = ("u8", "i16", "u32", "i64", "f32", "f64", "bool", "char", "bytes", "struct")
        kind = inp.pick(kinds)
        offset = inp.between(0, 40) if inp.below(3) else inp.pick(EDGE_INTS)
        fixed = {"u8": 1, "i16": 2, "u32": 4, "i64": 8, "f32": 4, "f64": 8, "bool": 1, "char": 1}
        size = fixed.get(kind, 0) if inp.below(3) else inp.pick((*EDGE_INTS, inp.between(0, 40)))

        class Raw(raw_layout.Record):
            __slots__ = ()

        try:
            field = raw_layout.Field("Raw.x", kind, offset, size, Raw if kind == "struct" else None)
        except (ValueError, TypeError, OverflowError):
            return
        Raw.x = field  # type: ignore[attr-defined]
        n = inp.between(0, 48)
        buf = bytearray(n)
        length = inp.between(0, n)
        rec = raw_layout.bind(Raw, buf, 0, length, 1, "Raw")
        inside = 0 <= offset and 0 <= size and offset + size <= length
        for op in ("get", "set"):
            try:
                if op == "get":
                    out = rec.x  # type: ignore[attr-defined]
                    if kind == "bytes":
                        assert out == bytes(buf[offset : offset + size])
                    elif kind == "struct":
                        assert bytes(out) == bytes(buf[offset : offset + size])
                else:
                    rec.x = {"bytes": b"\x05" * max(size, 0) if inside else b"", "char": b"z", "bool": True}.get(
                        kind, 1
                    )
            except ValueError as exc:
                if "outside" in str(exc):
                    assert not inside, f"an in-bounds raw field was refused: {exc}"
                continue
            except (TypeError, OverflowError):
                continue
            assert inside, f"a raw field {kind} at {offset}+{size} reached outside a {length}-byte record"
        assert len(buf) == n


OPS = (
    Model.define,
    Model.define,
    Model.new_buffer,
    Model.new_buffer,
    Model.view,
    Model.view,
    Model.view,
    Model.array_view,
    Model.drop_view,
    Model.write,
    Model.write,
    Model.write,
    Model.pin,
    Model.raw_field,
)


def one_input(data: bytes) -> None:
    inp = Input(data)
    model = Model()
    drive(inp, model, OPS, 48)
    model.views.clear()
    UNRAISABLE.check()


if __name__ == "__main__":
    assert memkit.layout.size_of is L.size_of
    sys.setrecursionlimit(10000)
    run(one_input)
