"""memkit.layout (API.md, memkit.layout): Layout, @struct, views, interop, SoA and the CLI.

The generated-struct oracles (Hypothesis against ctypes and NumPy, random structs against
the C compiler) are in test_layout_oracles.py.
"""

from __future__ import annotations

import ctypes
import enum
import gc
import mmap
import struct as pystruct
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest

import memkit
from memkit import AlignedBuffer
from memkit.__main__ import main
from memkit._native import core
from memkit.layout import (
    ISIZE_MAX,
    Array,
    ArrayView,
    Bytes,
    Layout,
    LayoutError,
    SoA,
    Struct,
    align_of,
    asdict,
    bool_,
    c_char,
    describe,
    f32,
    f64,
    fields,
    from_ctypes,
    i8,
    i16,
    i32,
    i64,
    offset_of,
    optimize,
    ptr,
    size_of,
    struct,
    u8,
    u16,
    u32,
    u64,
)

np = pytest.importorskip("numpy")

RUST = "invalid parameters to Layout::from_size_align"


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2
    BLUE = 250


class Delta(enum.IntEnum):
    DOWN = -1
    UP = 1


# The seeds' structs: the same three fields in declaration order and reordered.
@struct
class Seed:
    a: u8
    b: u64
    c: u16


@struct
class SeedReordered:
    b: u64
    c: u16
    a: u8


@struct(repr="packed")
class SeedPacked:
    a: u8
    b: u64
    c: u16


@struct(align=64)
class CachePadded:
    value: u64


@struct
class Inner:
    x: f32
    y: i16


@struct
class Everything:
    flag: bool_
    color: Annotated[Color, u8]
    delta: Annotated[Delta, i16]
    name: Bytes(5)
    ch: c_char
    small: i8
    wide: u32
    signed: i32
    big: i64
    addr: ptr
    ratio: f64
    inner: Inner
    vals: Array(u16, 3)
    grid: Array(Array(i8, 2), 2)
    pts: Array(Inner, 2)


# ---- Layout: Rust's rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "align"),
    [(0, 1), (1, 1), (24, 8), (0, 4096), (ISIZE_MAX, 1), (ISIZE_MAX - 7, 8), (2**62, 2**62)],
)
def test_layout_accepts_what_rust_accepts(size: int, align: int) -> None:
    layout = Layout(size, align)
    assert (layout.size, layout.align) == (size, align)
    assert Layout.from_size_align(size, align) == layout


@pytest.mark.parametrize(
    ("size", "align", "why"),
    [
        (8, 0, "power of two"),
        (8, 3, "power of two"),
        (8, -8, "power of two"),
        (8, 6, "power of two"),
        (-1, 8, "size must be >= 0"),
        (ISIZE_MAX - 6, 8, "overflows isize::MAX"),  # rounds up past isize::MAX
        (ISIZE_MAX + 1, 1, "overflows isize::MAX"),
        (2**64, 1, "overflows isize::MAX"),
    ],
)
def test_layout_refuses_what_rust_refuses(size: int, align: int, why: str) -> None:
    with pytest.raises(LayoutError, match=why) as info:
        Layout(size, align)
    assert str(info.value).startswith(RUST)
    assert isinstance(info.value, ValueError)


def test_layout_types_are_checked() -> None:
    with pytest.raises(TypeError, match="size must be an int"):
        Layout(1.0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="align must be an int"):
        Layout(1, "8")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("layout", "n", "expected"),
    [
        (Layout(4, 4), 3, Layout(12, 4)),
        (Layout(3, 2), 2, Layout(8, 2)),  # each element padded to 4
        (Layout(24, 8), 0, Layout(0, 8)),
        (Layout(0, 16), 1000, Layout(0, 16)),
    ],
)
def test_layout_array(layout: Layout, n: int, expected: Layout) -> None:
    assert layout.array(n) == expected


def test_layout_array_and_repeat_errors() -> None:
    with pytest.raises(LayoutError, match="overflows"):
        Layout(8, 8).array(2**60)  # 2**63 bytes
    Layout(8, 8).array(2**60 - 1)  # 2**63 - 8: fits
    with pytest.raises(LayoutError, match=">= 0"):
        Layout(8, 8).array(-1)
    assert Layout(3, 2).repeat(5) == (Layout(20, 2), 4)


@pytest.mark.parametrize(
    ("first", "next_", "expected", "offset"),
    [
        (Layout(0, 1), Layout(4, 4), Layout(4, 4), 0),
        (Layout(1, 1), Layout(8, 8), Layout(16, 8), 8),
        (Layout(5, 1), Layout(4, 4), Layout(12, 4), 8),
        (Layout(16, 8), Layout(1, 1), Layout(17, 8), 16),  # no trailing padding
        (Layout(3, 64), Layout(2, 2), Layout(6, 64), 4),
    ],
)
def test_layout_extend(first: Layout, next_: Layout, expected: Layout, offset: int) -> None:
    assert first.extend(next_) == (expected, offset)


def test_layout_extend_overflow_and_type() -> None:
    with pytest.raises(LayoutError, match="overflows"):
        Layout(ISIZE_MAX - 8, 1).extend(Layout(16, 8))
    with pytest.raises(TypeError, match="takes a Layout"):
        Layout(1, 1).extend((8, 8))  # type: ignore[arg-type]


def test_layout_padding_pad_and_align_to() -> None:
    assert Layout(5, 1).padding_needed_for(4) == 3
    assert Layout(8, 8).padding_needed_for(8) == 0
    assert Layout(0, 1).padding_needed_for(64) == 0
    assert Layout(65, 1).padding_needed_for(64) == 63
    with pytest.raises(LayoutError, match="power of two"):
        Layout(5, 1).padding_needed_for(3)
    assert Layout(18, 8).pad_to_align() == Layout(24, 8)
    assert Layout(0, 16).pad_to_align() == Layout(0, 16)
    assert Layout(24, 8).align_to(64) == Layout(24, 64)
    assert Layout(24, 8).align_to(4) == Layout(24, 8)
    with pytest.raises(LayoutError, match="power of two"):
        Layout(24, 8).align_to(3)
    with pytest.raises(LayoutError, match="overflows"):
        Layout(ISIZE_MAX - 7, 8).align_to(16)


def test_layout_is_a_frozen_value() -> None:
    layout = Layout(24, 8)
    assert repr(layout) == "Layout(size=24, align=8)"
    assert layout == Layout(24, 8) and layout != Layout(24, 16) and layout != (24, 8)
    assert len({layout, Layout(24, 8), Layout(16, 8)}) == 2
    with pytest.raises(AttributeError):
        layout.size = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        layout._size = 3  # type: ignore[misc]
    import pickle

    assert pickle.loads(pickle.dumps(layout)) == layout


def test_layout_of() -> None:
    assert Layout.of(Seed) == Layout(24, 8)
    assert Layout.of(u16) == Layout(2, 2)
    assert Layout.of(Array(u16, 3)) == Layout(6, 2)
    assert Layout.of(Bytes(7)) == Layout(7, 1)
    assert Layout.of(CachePadded) == Layout(64, 64)
    assert Layout.of(ctypes.c_double) == Layout(8, 8)
    assert Layout.of(Seed.to_ctypes()) == Layout(24, 8)
    assert Layout.of(ctypes.c_int16 * 3) == Layout(6, 2)
    assert Layout.of(np.dtype("u4")) == Layout(4, 4)
    assert Layout.of(Layout(3, 1)) == Layout(3, 1)
    with pytest.raises(TypeError, match=r"Layout.of"):
        Layout.of(int)


def test_aligned_buffer_from_layout() -> None:
    buf = AlignedBuffer.from_layout(Layout(24, 8).align_to(4096))
    assert (len(buf), buf.align, buf.address % 4096) == (24, 4096, 0)
    assert bytes(buf) == bytes(24)
    buf = AlignedBuffer.from_layout(Layout.of(Seed), zero=False)
    assert len(buf) == 24
    with pytest.raises(TypeError, match="Layout"):
        AlignedBuffer.from_layout((24, 8))  # type: ignore[arg-type]


# ---- sizes, offsets, describe, optimize: the seeds' examples ----------------------------------


def test_seed_struct_is_24_bytes_and_16_reordered() -> None:
    assert (size_of(Seed), align_of(Seed)) == (24, 8)
    assert [offset_of(Seed, n) for n in "abc"] == [0, 8, 16]
    order, saved = optimize(Seed)
    assert (order, saved) == (["b", "c", "a"], 8)
    assert size_of(SeedReordered) == 16
    assert [offset_of(SeedReordered, n) for n in order] == [0, 8, 10]
    assert optimize(SeedReordered) == (["b", "c", "a"], 0)


def test_packed_and_aligned_seeds() -> None:
    assert (size_of(SeedPacked), align_of(SeedPacked)) == (11, 1)
    assert [offset_of(SeedPacked, n) for n in "abc"] == [0, 1, 9]
    assert optimize(SeedPacked) == (["a", "b", "c"], 0)
    assert (size_of(CachePadded), align_of(CachePadded)) == (64, 64)
    assert size_of(Array(CachePadded, 2)) == 128

    @struct
    class TwoCounters:
        hits: CachePadded
        misses: CachePadded

    assert offset_of(TwoCounters, "misses") == 64 and size_of(TwoCounters) == 128

    @struct
    class Tagged:
        tag: u8
        padded: CachePadded

    assert offset_of(Tagged, "padded") == 64 and size_of(Tagged) == 128
    # align= smaller than the natural alignment changes nothing (#[repr(align(2))] on a u64 struct)

    @struct(align=2)
    class Low:
        v: u64

    assert Layout.of(Low) == Layout(8, 8)


def test_describe_seed() -> None:
    assert describe(Seed) == "\n".join(
        [
            "#[repr(C)]",
            "struct Seed {           /* offset  size */",
            "    u8   a;             /*      0     1 */",
            "    /* XXX 7-byte hole */",
            "    u64  b;             /*      8     8 */",
            "    u16  c;             /*     16     2 */",
            "    /* XXX 6 bytes of trailing padding */",
            "};  /* size: 24, align: 8, members: 3, sum members: 11, holes: 1, sum holes: 7, padding: 6 */",
        ]
    )
    lines = describe(SeedReordered).splitlines()  # a name longer than the type column
    assert lines[1] == "struct SeedReordered {    /* offset  size */"
    assert {line.index("/*") for line in lines[1:-1] if "XXX" not in line} == {26}
    packed = describe(SeedPacked)
    assert packed.startswith("#[repr(C, packed)]") and "XXX" not in packed and "padding: 0" in packed
    aligned = describe(CachePadded)
    assert aligned.startswith("#[repr(C, align(64))]")
    assert "56 bytes of trailing padding" in aligned


def test_describe_everything_lists_every_field_and_hole() -> None:
    text = describe(Everything)
    for f in fields(Everything):
        assert f" {f.name};" in text
        assert f"/* {f.offset:>6} {f.size:>5} */" in text
    assert "Color(u8)" in text and "[[i8; 2]; 2]" in text and "[Inner; 2]" in text
    assert f"size: {size_of(Everything)}," in text


def test_offset_of_nested_path_and_errors() -> None:
    assert offset_of(Everything, "inner.y") == offset_of(Everything, "inner") + 4
    with pytest.raises(AttributeError, match="has no field 'nope'"):
        offset_of(Seed, "nope")
    with pytest.raises(AttributeError, match="not a struct"):
        offset_of(Seed, "a.b")
    with pytest.raises(TypeError, match=r"not a memkit.layout @struct"):
        offset_of(int, "a")


def test_optimize_minimises_every_order() -> None:
    import itertools

    @struct
    class Mixed:
        a: u8
        b: u32
        c: u16
        d: u64
        e: u8
        f: Array(u16, 3)

    order, saved = optimize(Mixed)
    best = size_of(Mixed) - saved
    sizes = []
    for perm in itertools.permutations(fields(Mixed)):
        shell = type("P", (), {"__annotations__": {f.name: f.type for f in perm}})
        sizes.append(size_of(struct(shell)))
    assert best == min(sizes) == 24
    assert order[0] == "d"


# ---- decoration errors ------------------------------------------------------------------------


def _decorate(annotations: dict[str, Any], **kwargs: Any) -> Any:
    shell = type("Bad", (), {"__annotations__": annotations, "__module__": __name__})
    return struct(**kwargs)(shell)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (int, "int has no fixed size"),
        (float, "float has no fixed size"),
        (bytes, "Bytes\\(n\\) or c_char"),
        (str, "not a memkit field type"),
        ("nonexistent_name", "cannot resolve the annotation"),
        (Color, "needs a width"),
        (Annotated[Color, f32], "width must be u8, i8"),
        (Annotated[Color, ptr], "width must be"),
        (enum.IntFlag("Flags", "A B"), "must be an enum.IntEnum"),
        (enum.Enum("Plain", "A B"), "must be an enum.IntEnum"),
        (Annotated[enum.IntEnum("Wide", {"BIG": 300}), u8], "does not fit u8"),
        (Annotated[enum.IntEnum("Neg", {"LOW": -1}), u16], "does not fit u16"),
        (type("NotAStruct", (), {"__annotations__": {"x": u8}}), "not a @struct class"),
        (Annotated[int, "just a note"], "int has no fixed size"),
    ],
)
def test_bad_field_types_are_refused_at_decoration(annotation: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message) as info:
        _decorate({"x": annotation})
    assert "Bad.x" in str(info.value)


def test_bad_struct_declarations() -> None:
    with pytest.raises(ValueError, match='repr must be "C" or "packed"'):
        _decorate({"x": u8}, repr="rust")
    for align in (0, 3, 2**30, -4):
        with pytest.raises(ValueError, match="power of two"):
            _decorate({"x": u8}, align=align)
    with pytest.raises(TypeError, match="align must be an int"):
        _decorate({"x": u8}, align=8.0)
    with pytest.raises(ValueError, match="both packed and aligned"):
        _decorate({"x": u8}, repr="packed", align=8)
    with pytest.raises(TypeError, match="E0588"):
        _decorate({"x": CachePadded}, repr="packed")
    with pytest.raises(TypeError, match="E0588"):
        _decorate({"x": Array(CachePadded, 2)}, repr="packed")
    with pytest.raises(TypeError, match=r"taken by memkit.layout.Struct"):
        _decorate({"view": u8})
    with pytest.raises(TypeError, match="default value"):
        struct(type("D", (), {"__annotations__": {"x": u8}, "x": 3}))
    with pytest.raises(TypeError, match="cannot inherit"):

        @struct
        class Child(Seed):  # type: ignore[misc]
            d: u8

    with pytest.raises(TypeError, match="already a @struct"):
        struct(Seed)
    with pytest.raises(ValueError, match="n >= 1"):
        Array(u8, 0)
    with pytest.raises(ValueError, match="n >= 1"):
        Bytes(0)
    with pytest.raises(TypeError, match="not a memkit field type"):
        Array("u8", 2)


def test_struct_keeps_methods_classvars_and_subclassing_struct() -> None:
    @struct
    class Point(Struct):
        UNIT: ClassVar[int] = 1
        x: i32
        y: i32

        def norm1(self) -> int:
            return abs(self.x) + abs(self.y)

    p = Point(3, -4)
    assert p.norm1() == 7 and Point.UNIT == 1 and size_of(Point) == 8
    assert isinstance(p, Struct) and type(p).__name__ == "Point"
    assert not hasattr(p, "__dict__")
    with pytest.raises(AttributeError):
        p.z = 1  # type: ignore[attr-defined]
    assert [f.name for f in fields(Point)] == ["x", "y"]


def test_string_annotations_resolve_in_the_defining_scope() -> None:
    @struct
    class Local:
        v: u16

    @struct
    class Outer:
        local: Local  # a string here (from __future__ import annotations)
        pair: Array(Local, 2)

    assert isinstance(Outer.__annotations__["local"], str)
    assert size_of(Outer) == 6


# ---- views: every field kind, through every kind of buffer -----------------------------------


def _buffers(size: int, align: int) -> list[tuple[str, Any]]:
    page = mmap.mmap(-1, 4096)
    array = np.zeros(size // 8 + 1, dtype=np.uint64)  # 8-aligned data
    return [
        ("AlignedBuffer", AlignedBuffer(size, align)),
        ("bytearray", bytearray(size)),
        ("numpy", array),
        ("mmap", page),
        ("memoryview", memoryview(AlignedBuffer(size, align))),
    ]


def _fill(e: Any) -> None:
    e.flag = True
    e.color = Color.BLUE
    e.delta = Delta.DOWN
    e.name = b"hello"
    e.ch = b"z"
    e.small = -128
    e.wide = 2**32 - 1
    e.signed = -(2**31)
    e.big = -(2**63)
    e.addr = 2**64 - 1
    e.ratio = -2.5
    e.inner.x = 1.5
    e.inner.y = -2
    e.vals = [1, 2, 65535]
    e.grid[1][0] = -3
    e.pts[1].y = 7


EXPECTED = {
    "flag": True,
    "color": Color.BLUE,
    "delta": Delta.DOWN,
    "name": b"hello",
    "ch": b"z",
    "small": -128,
    "wide": 2**32 - 1,
    "signed": -(2**31),
    "big": -(2**63),
    "addr": 2**64 - 1,
    "ratio": -2.5,
    "inner": {"x": 1.5, "y": -2},
    "vals": [1, 2, 65535],
    "grid": [[0, 0], [-3, 0]],
    "pts": [{"x": 0.0, "y": 0}, {"x": 0.0, "y": 7}],
}


@pytest.mark.parametrize("kind", ["AlignedBuffer", "bytearray", "numpy", "mmap", "memoryview"])
def test_view_reads_and_writes_every_field_kind(kind: str) -> None:
    buf = dict(_buffers(size_of(Everything), align_of(Everything)))[kind]
    e = Everything.view(buf)
    _fill(e)
    assert asdict(e) == EXPECTED
    raw = bytes(memoryview(buf).cast("B")[: size_of(Everything)])
    assert raw == bytes(e)
    # Independent reads of the same bytes: struct.unpack_from and ctypes.
    assert pystruct.unpack_from("=Q", raw, offset_of(Everything, "addr"))[0] == 2**64 - 1
    assert pystruct.unpack_from("=h", raw, offset_of(Everything, "inner.y"))[0] == -2
    assert raw[offset_of(Everything, "name") :][:5] == b"hello"
    c = Everything.to_ctypes().from_buffer_copy(raw)
    assert (c.color, c.delta, c.big, c.ratio, c.inner.x, list(c.vals), c.grid[1][0], c.pts[1].y) == (
        250,
        -1,
        -(2**63),
        -2.5,
        1.5,
        [1, 2, 65535],
        -3,
        7,
    )
    del e, c
    if kind == "mmap":
        buf.close()


def test_view_at_an_offset_and_views_share_memory() -> None:
    buf = AlignedBuffer(64, 64)
    a = Seed.view(buf, 8)
    b = Seed.view(buf, 8)
    a.b = 12345
    assert b.b == 12345
    assert bytes(buf)[16:24] == (12345).to_bytes(8, sys.byteorder)
    assert core.layout.address(a) == buf.address + 8


def test_struct_constructor_owns_zeroed_aligned_memory() -> None:
    p = Seed(1, c=3)
    assert (p.a, p.b, p.c) == (1, 0, 3)
    assert bytes(p) == bytes([1]) + bytes(15) + bytes([3, 0]) + bytes(6)
    c = CachePadded(value=9)
    assert core.layout.address(c) % 64 == 0
    with pytest.raises(TypeError, match="unexpected field 'z'"):
        Seed(z=1)
    with pytest.raises(TypeError, match="at most 3 positional"):
        Seed(1, 2, 3, 4)
    with pytest.raises(TypeError, match="multiple values"):
        Seed(1, a=2)
    with pytest.raises(TypeError, match=r"not a memkit.layout @struct"):
        Struct()


def test_repr_of_records_and_arrays() -> None:
    s = Seed(1, 2, 3)
    assert repr(s) == "Seed(a=1, b=2, c=3)"
    assert repr(Everything().vals) == "ArrayView([u16; 3]: [0, 0, 0])"
    e = Everything()
    assert "color=<Everything.color holds 0, which is not a valid Color>" in repr(e)


def test_nested_views_are_views() -> None:
    e = Everything()
    inner = e.inner
    inner.x = 4.0
    assert e.inner.x == 4.0
    assert isinstance(inner, Inner)
    pts = e.pts
    p1 = pts[-1]
    p1.x = 2.0
    assert e.pts[1].x == 2.0 and isinstance(p1, Inner)
    e.inner = Inner(x=9.0, y=1)  # a record of the same struct is copied in
    assert (e.inner.x, e.inner.y) == (9.0, 1)
    e.inner = bytes(Inner(x=1.0, y=2))
    assert (e.inner.x, e.inner.y) == (1.0, 2)
    e.pts[0] = e.inner
    assert e.pts[0].y == 2
    with pytest.raises(TypeError, match="holds a Inner, got a Seed record"):
        e.inner = Seed()
    with pytest.raises(ValueError, match="exactly 8 bytes"):
        e.inner = b"abc"
    with pytest.raises(TypeError, match="expected a bytes-like object of 8 bytes, got int"):
        e.inner = 5


def test_array_views() -> None:
    e = Everything()
    vals = e.vals
    assert isinstance(vals, ArrayView) and len(vals) == 3
    vals[0] = 10
    vals[-1] = 30
    assert vals.tolist() == [10, 0, 30] and list(vals) == [10, 0, 30]
    assert vals[::2] == [10, 30] and vals[-2] == 0
    vals[1:] = [20, 40]
    assert e.vals == [10, 20, 40] and e.vals == (10, 20, 40)
    assert 20 in vals and vals.index(40) == 2
    with pytest.raises(IndexError, match="out of range"):
        vals[3]
    with pytest.raises(IndexError):
        vals[-4] = 1
    with pytest.raises(TypeError, match="indices must be integers"):
        vals["a"]  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="expected 3 values"):
        e.vals = [1, 2]
    with pytest.raises(ValueError, match="has 2 elements"):
        vals[1:] = [1]
    with pytest.raises(OverflowError, match=r"Everything.vals\[0\] is a u16 field: 65536 is out of range"):
        vals[0] = 65536
    m = vals.memoryview()
    assert (m.format, m.shape, m.tolist()) == ("H", (3,), [10, 20, 40])
    assert np.asarray(e.grid.memoryview()).shape == (2, 2)
    e.grid = [[1, 2], [3, 4]]
    assert e.grid.tolist() == [[1, 2], [3, 4]] and e.grid[1].tolist() == [3, 4]
    e.grid[0] = e.grid[1]  # an ArrayView of the same type copies
    assert e.grid.tolist() == [[3, 4], [3, 4]]
    e.vals = e.vals  # overlapping copy onto itself
    assert e.vals == [10, 20, 40]
    with pytest.raises(TypeError, match="expected an iterable"):
        e.vals = 5
    assert e.pts.tolist() == [{"x": 0.0, "y": 0}, {"x": 0.0, "y": 0}]
    assert len(e.pts.memoryview()) == 16  # raw bytes of an array of structs
    assert vals.type.name == "[u16; 3]"


def test_arrays_of_enums_bytes_chars_and_bools() -> None:
    @struct
    class Odd:
        colors: Array(Annotated[Color, u8], 3)
        tags: Array(Bytes(2), 2)
        chars: Array(c_char, 2)
        bits: Array(bool_, 2)

    o = Odd()
    o.colors = [Color.RED, 2, Color.BLUE]
    assert o.colors.tolist() == [Color.RED, Color.GREEN, Color.BLUE]
    assert o.colors.memoryview().tolist() == [1, 2, 250]
    o.tags[1] = b"hi"
    o.chars = [b"a", 98]
    o.bits[1] = 1
    assert (o.tags.tolist(), o.chars.tolist(), o.bits.tolist()) == ([bytes(2), b"hi"], [b"a", b"b"], [False, True])
    with pytest.raises(ValueError, match="7 is not a valid Color"):
        o.colors[0] = 7
    with pytest.raises(ValueError, match="exactly 2 bytes"):
        o.tags[0] = b"x"
    with pytest.raises(ValueError, match="exactly 1 byte"):
        o.chars[0] = b"xy"
    memoryview(o).cast("B")[0] = 9  # an invalid discriminant written behind memkit's back
    with pytest.raises(ValueError, match=r"Odd.colors\[0\] holds 9, which is not a valid Color"):
        o.colors[0]


def test_field_value_checks() -> None:
    e = Everything()
    with pytest.raises(OverflowError, match=r"Everything.small is a i8 field: -129 is out of range \(-128..127\)"):
        e.small = -129
    with pytest.raises(OverflowError, match="out of range"):
        e.wide = 2**32
    with pytest.raises(OverflowError, match="out of range"):
        e.addr = -1
    with pytest.raises(OverflowError, match="out of range"):
        e.addr = 2**64
    with pytest.raises(OverflowError, match="out of range"):
        e.big = 2**63
    e.big = np.int64(-5)  # anything with __index__
    assert e.big == -5
    with pytest.raises(TypeError, match=r"Everything.wide is a u32 field: expected an int, got float"):
        e.wide = 1.0
    with pytest.raises(TypeError, match="expected a float, got str"):
        e.ratio = "1.0"
    e.ratio = 3  # ints are floats
    assert e.ratio == 3.0 and isinstance(e.ratio, float)
    with pytest.raises(OverflowError, match="too large for f32"):
        e.inner.x = 1e39
    e.inner.x = float("inf")
    assert e.inner.x == float("inf")
    with pytest.raises(ValueError, match=r"Everything.name is Bytes\(5\): expected exactly 5 bytes, got 3"):
        e.name = b"abc"
    with pytest.raises(TypeError, match="got str"):
        e.name = "hello"
    e.name = bytearray(b"world")
    assert e.name == b"world"
    with pytest.raises(ValueError, match="exactly 1 bytes, got 2"):
        e.ch = b"ab"
    e.ch = 65
    assert e.ch == b"A"
    with pytest.raises(ValueError, match="3 is not a valid Color"):
        e.color = 3
    with pytest.raises(TypeError, match="holds a Color"):
        e.color = []
    e.color = 2
    assert e.color is Color.GREEN
    e.flag = []
    assert e.flag is False
    with pytest.raises(AttributeError, match=r"cannot delete Everything.flag"):
        del e.flag


def test_intenum_widths_and_unknown_values() -> None:
    @struct
    class Wide:
        d: Annotated[Delta, i8]
        c: Annotated[Color, u64]

    assert (size_of(Wide), offset_of(Wide, "c")) == (16, 8)
    w = Wide(Delta.DOWN, Color.BLUE)
    assert bytes(w)[0] == 0xFF and w.d is Delta.DOWN and w.c is Color.BLUE
    raw = memoryview(w).cast("B")
    raw[8] = 77
    with pytest.raises(ValueError, match=r"Wide.c holds 77, which is not a valid Color"):
        _ = w.c


# ---- read-only memory, bounds, alignment, lifetimes ------------------------------------------


def _readonly_numpy(n: int) -> Any:
    a = np.zeros(n, np.uint8)
    a.flags.writeable = False
    return a


READ_ONLY = {
    "bytes": bytes,
    "readonly memoryview": lambda n: memoryview(bytearray(n)).toreadonly(),
    "readonly numpy": _readonly_numpy,
}


@pytest.mark.parametrize("kind", list(READ_ONLY))
def test_read_only_buffers_give_read_only_views(kind: str) -> None:
    buf = READ_ONLY[kind](size_of(Everything) + 64)
    address = int(np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0])
    e = Everything.view(buf, (-address) % 8)
    assert e.big == 0 and e.inner.y == 0 and e.vals.tolist() == [0, 0, 0]
    for attempt in (
        lambda: setattr(e, "big", 1),
        lambda: setattr(e.inner, "y", 1),
        lambda: e.vals.__setitem__(0, 1),
        lambda: setattr(e, "vals", [1, 2, 3]),
        lambda: e.pts[0].__setattr__("x", 1.0),
        lambda: e.grid[0].__setitem__(0, 1),
    ):
        with pytest.raises(TypeError, match="read-only"):
            attempt()
    assert memoryview(e).readonly


def test_bounds_and_alignment_errors() -> None:
    buf = AlignedBuffer(64, 64)
    with pytest.raises(ValueError, match=r"Seed.view: the buffer is too small: 24 bytes at offset 48 need at least 72"):
        Seed.view(buf, 48)
    Seed.view(buf, 40)
    with pytest.raises(ValueError, match="too small"):
        Seed.view(bytearray(23))
    with pytest.raises(ValueError, match="offset must be >= 0"):
        Seed.view(buf, -8)
    with pytest.raises(ValueError, match="misaligned: the record needs an address that is a multiple of 8"):
        Seed.view(buf, 4)
    with pytest.raises(ValueError, match="multiple of 64"):
        CachePadded.view(AlignedBuffer(256, 64), 32)
    CachePadded.view(AlignedBuffer(256, 64), 64)
    assert SeedPacked.view(buf, 3).a == 0  # packed: any address
    with pytest.raises(ValueError, match="C-contiguous"):
        Seed.view(np.zeros(16, np.uint64)[::2])
    with pytest.raises(TypeError, match="buffer protocol"):
        Seed.view([0] * 24)
    with pytest.raises(TypeError, match="an int"):
        Seed.view(buf, 1.0)  # type: ignore[arg-type]


def test_views_hold_the_buffer_export() -> None:
    buf = AlignedBuffer(64)
    s = Seed.view(buf)
    with pytest.raises(BufferError, match="exported"):
        buf.release()
    nested = Everything.view(AlignedBuffer(size_of(Everything))).inner
    gc.collect()
    nested.x = 1.0  # the buffer lives as long as any view of it
    del s
    gc.collect()
    buf.release()
    ba = bytearray(24)
    s2 = Seed.view(ba)
    with pytest.raises(BufferError):
        ba.extend(b"x")
    vals = Everything().vals  # the record behind the array view is gone; its memory is not
    gc.collect()
    vals[0] = 5
    assert vals[0] == 5
    page = mmap.mmap(-1, 4096)
    s3 = Seed.view(page)
    with pytest.raises(BufferError):
        page.close()
    del s2, s3
    gc.collect()
    page.close()


def test_array_view_of_records() -> None:
    buf = AlignedBuffer(24 * 4 + 8)
    records = Seed.array_view(buf, 4, offset=8)
    assert len(records) == 4 and isinstance(records[0], Seed)
    records[-1].c = 9
    records[1] = Seed(1, 2, 3)
    assert bytes(buf)[8 + 24 * 3 + 16] == 9
    assert [r.a for r in records] == [0, 1, 0, 0]
    assert records.tolist()[1] == {"a": 1, "b": 2, "c": 3}
    arr = np.frombuffer(records.memoryview(), dtype=Seed.to_numpy_dtype())
    assert arr["b"].tolist() == [0, 2, 0, 0] and arr["c"][3] == 9
    assert len(Seed.array_view(buf, 0)) == 0
    with pytest.raises(ValueError, match="too small"):
        Seed.array_view(buf, 5)
    with pytest.raises(ValueError, match="count must be >= 0"):
        Seed.array_view(buf, -1)


# ---- interop ----------------------------------------------------------------------------------


def test_to_ctypes_and_numpy_match_memkit() -> None:
    for cls in (Seed, SeedPacked, CachePadded, Everything, SeedReordered):
        ct = cls.to_ctypes()
        dt = cls.to_numpy_dtype()
        assert ctypes.sizeof(ct) == dt.itemsize == size_of(cls)
        for f in fields(cls):
            assert getattr(ct, f.name).offset == dt.fields[f.name][1] == f.offset
        assert cls.to_ctypes() is ct and cls.to_numpy_dtype() is dt  # cached
    assert SeedPacked.to_ctypes()._pack_ == 1
    assert np.dtype(Seed.to_numpy_dtype()).isalignedstruct


def test_from_ctypes_round_trip() -> None:
    class CInner(ctypes.Structure):
        _fields_ = [("a", ctypes.c_short), ("b", ctypes.c_double)]

    class CPacked(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("x", ctypes.c_uint8), ("y", ctypes.c_uint32)]

    class CThing(ctypes.Structure):
        _fields_ = [
            ("flag", ctypes.c_bool),
            ("name", ctypes.c_char * 6),
            ("inner", CInner),
            ("packed", CPacked),
            ("nums", ctypes.c_int32 * 3),
            ("where", ctypes.c_void_p),
            ("next", ctypes.POINTER(CInner)),
            ("text", ctypes.c_char_p),
            ("f", ctypes.c_float),
            ("l", ctypes.c_long),
            ("ul", ctypes.c_ulonglong),
            ("sz", ctypes.c_size_t),
            ("ch", ctypes.c_char),
            ("b", ctypes.c_byte),
        ]

    M = from_ctypes(CThing)
    assert from_ctypes(CThing) is M
    assert size_of(M) == ctypes.sizeof(CThing) and align_of(M) == ctypes.alignment(CThing)
    for name, _ in CThing._fields_:
        assert offset_of(M, name) == getattr(CThing, name).offset
    assert describe(from_ctypes(CPacked)).startswith("#[repr(C, packed)]")
    c = CThing(flag=True, name=b"abc", nums=(1, -2, 3), f=0.5, l=-7, ch=b"q", b=-3)
    c.inner.b = 2.25
    c.packed.y = 70000
    c.where = 0x1234
    raw = bytearray(bytes(c))
    m = M.view(raw)
    assert (m.flag, m.name, m.inner.b, m.packed.y, m.nums.tolist(), m.where, m.f, m.l, m.ch, m.b) == (
        True,
        b"abc\0\0\0",
        2.25,
        70000,
        [1, -2, 3],
        0x1234,
        0.5,
        -7,
        b"q",
        -3,
    )
    m.inner.a = -9
    assert CThing.from_buffer(raw).inner.a == -9
    # memkit -> ctypes -> memkit keeps the layout
    again = from_ctypes(Everything.to_ctypes())
    assert size_of(again) == size_of(Everything)
    assert [offset_of(again, f.name) for f in fields(Everything)] == [f.offset for f in fields(Everything)]


def test_from_ctypes_refuses_what_has_no_equivalent() -> None:
    class U(ctypes.Union):
        _fields_ = [("a", ctypes.c_int)]

    class Bits(ctypes.Structure):
        _fields_ = [("a", ctypes.c_int, 3)]

    class Pack2(ctypes.Structure):
        _pack_ = 2
        _fields_ = [("a", ctypes.c_int)]

    class Big(ctypes.BigEndianStructure):
        _fields_ = [("a", ctypes.c_int)]

    class HasUnion(ctypes.Structure):
        _fields_ = [("u", U)]

    class LongDouble(ctypes.Structure):
        _fields_ = [("x", ctypes.c_longdouble)]

    class Empty(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int * 0)]

    for ct, message in [
        (U, "ctypes.Structure subclass"),
        (Bits, "bit fields"),
        (Pack2, "_pack_ = 2"),
        (Big, "native byte order"),
        (HasUnion, "unions"),
        (LongDouble, "c_longdouble"),
        (Empty, "zero-length"),
        (int, "ctypes.Structure subclass"),
    ]:
        with pytest.raises(TypeError, match=message):
            from_ctypes(ct)


# ---- SoA --------------------------------------------------------------------------------------


@struct
class Particle:
    id: u32
    pos: Array(f32, 3)
    kind: Annotated[Color, u8]
    tag: Bytes(3)
    ch: c_char
    alive: bool_
    inner: Inner


def _particles(n: int) -> Any:
    records = Particle.array_view(AlignedBuffer(n * size_of(Particle)), n)
    for i, p in enumerate(records):
        p.id = i
        p.pos = [i, -i, 0.5]
        p.kind = (Color.RED, Color.GREEN, Color.BLUE)[i % 3]
        p.tag = bytes([i % 256, 0, 7])
        p.ch = bytes([65 + i % 26])
        p.alive = i % 2 == 0
        p.inner.x = i / 4
        p.inner.y = -i
    return records


@pytest.mark.parametrize("use_numpy", [True, False], ids=["numpy", "memoryview"])
def test_soa_round_trips_aos(use_numpy: bool) -> None:
    n = 37
    records = _particles(n)
    soa = SoA.from_aos(records, numpy=use_numpy)
    assert len(soa) == n and soa.uses_numpy is use_numpy and soa.struct is Particle
    assert list(soa.columns) == ["id", "pos", "kind", "tag", "ch", "alive", "inner.x", "inner.y"]
    for i in (0, 5, n - 1):
        r = soa[i]
        assert r.id == i and r.kind == records[i].kind and r.tag == records[i].tag and r.ch == records[i].ch
        assert list(r.pos) == records[i].pos.tolist() and r.alive is (i % 2 == 0)
        assert (r.inner.x, r.inner.y) == (i / 4, -i)
    back = soa.to_aos()
    assert bytes(back.memoryview()) == bytes(records.memoryview())
    target = AlignedBuffer(n * size_of(Particle))
    soa.to_aos(target)
    assert bytes(target) == bytes(records.memoryview())


def test_soa_columns_are_aligned_numpy_arrays() -> None:
    soa = SoA(Particle, 10)
    for col in soa.columns.values():
        assert isinstance(col, np.ndarray) and col.ctypes.data % 64 == 0 and len(col) == 10
    assert soa.pos.shape == (10, 3) and soa.pos.dtype == np.float32
    assert soa.tag.shape == (10, 3) and soa.tag.dtype == np.uint8
    assert soa.kind.dtype == np.uint8 and soa.ch.dtype == np.dtype("S1")
    assert soa.inner.x is soa.column("inner.x")
    before = soa.id
    soa.id += 1  # in place: the same array
    assert soa.id is before and soa.id.tolist() == [1] * 10
    soa.id = range(10)
    assert soa.id.tolist() == list(range(10))
    soa.inner.y = 5
    assert soa[3].inner.y == 5
    soa[-1].pos = [1, 2, 3]
    assert soa.pos[9].tolist() == [1.0, 2.0, 3.0]
    row = soa[2].pos
    row[0] = 8
    assert soa.pos[2, 0] == 8  # the row is a view of the column
    with pytest.raises(ValueError, match=r"SoA\[0\]\.kind holds 0, which is not a valid Color"):
        _ = soa[0].kind
    soa[0].kind = Color.GREEN
    assert soa.kind[0] == 2
    with pytest.raises(IndexError):
        soa[10]
    with pytest.raises(AttributeError, match="has no field 'nope'"):
        _ = soa.nope
    with pytest.raises(AttributeError, match="is a struct"):
        soa.inner = 3
    with pytest.raises(OverflowError, match="out of range"):
        soa[0].id = -1
    with pytest.raises(ValueError, match="expected 3 values"):
        soa[0].pos = [1]
    assert "Particle" in repr(soa) and "id=" in repr(soa[1])
    assert [r.id for r in soa][:3] == [0, 1, 2]


def test_soa_without_numpy() -> None:
    soa = SoA(Particle, 4, numpy=False)
    assert isinstance(soa.id, memoryview) and soa.pos.shape == (4, 3)
    soa[1].pos = [1, 2, 3]
    soa[2].tag = b"abc"
    soa.id = [4, 3, 2, 1]
    assert soa[0].id == 4 and soa[1].pos == [1.0, 2.0, 3.0] and soa[2].tag == b"abc"
    with pytest.raises(ValueError, match="4 elements"):
        soa.id = [1]
    empty = SoA(Particle, 0, numpy=False)
    assert len(empty) == 0 and len(empty.to_aos()) == 0


def test_soa_refuses_arrays_of_structs_and_bad_arguments() -> None:
    with pytest.raises(TypeError, match="array of structs"):
        SoA(Everything, 3)
    with pytest.raises(TypeError, match="@struct class"):
        SoA(int, 3)
    with pytest.raises(ValueError, match=">= 0"):
        SoA(Seed, -1)
    with pytest.raises(TypeError, match="takes an array of structs"):
        SoA.from_aos([Seed()])  # type: ignore[arg-type]


# ---- exports and CLI --------------------------------------------------------------------------


def test_public_names() -> None:
    for name in memkit.layout.__all__:
        assert hasattr(memkit.layout, name)
        if name not in ("struct", "fields", "asdict", "field_type", "FieldInfo", "FieldType", "ISIZE_MAX"):
            assert getattr(memkit, name) is getattr(memkit.layout, name), name
    assert not hasattr(memkit, "struct") or memkit.struct is not struct  # the stdlib name stays free
    assert "struct" not in memkit.__all__


STRUCT_MODULE = """
from memkit.layout import struct, u8, u16, u64

@struct
class Seed:
    a: u8
    b: u64
    c: u16

class Holder:
    Seed = Seed

not_a_struct = 3
"""


@pytest.fixture
def struct_module(tmp_path: Path) -> Path:
    (tmp_path / "seedmod.py").write_text(STRUCT_MODULE)
    return tmp_path


def test_cli_layout_prints_describe(struct_module: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memkit", "layout", "seedmod:Seed"],
        capture_output=True,
        text=True,
        check=False,
        cwd=struct_module,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == describe(Seed)


def test_cli_layout_in_process(struct_module: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(struct_module)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != ""])
    assert main(["layout", "seedmod:Holder.Seed", "--optimize"]) == 0
    out = capsys.readouterr().out
    assert "size: 24" in out and "optimize: order b, c, a saves 8 bytes (16 total)" in out
    for spec, message in [
        ("seedmod", "expected module:Struct"),
        ("seedmod:Nope", "no attribute 'Nope'"),
        ("no_such_module:X", "cannot import 'no_such_module'"),
        ("seedmod:not_a_struct", "not a memkit.layout @struct"),
    ]:
        assert main(["layout", spec]) == 2
        assert message in capsys.readouterr().err
    sys.modules.pop("seedmod", None)


def test_cli_layout_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memkit", "layout", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "module:Struct" in result.stdout
