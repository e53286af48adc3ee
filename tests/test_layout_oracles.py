"""memkit.layout against independent layout engines, on generated structs.

- Hypothesis draws random structs - every field kind, nested structs and arrays, packed and
  aligned - and checks sizes, alignments and offsets against ctypes and NumPy computing
  the same struct on their own, then writes random values through each and reads them
  through the others, on the same memory (at least 2,000 structs: ORACLE_EXAMPLES).
- Random structs are compiled by the C compiler, the reference for #[repr(C)],
  __attribute__((packed)) and __attribute__((aligned(N))) - the one oracle for align(N)
  on Pythons whose ctypes lacks `_align_` (before 3.13).
"""

from __future__ import annotations

import ctypes
import enum
import os
import random
import shutil
import struct as pystruct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memkit import AlignedBuffer
from memkit.layout import (
    Array,
    Bytes,
    align_of,
    bool_,
    c_char,
    f32,
    f64,
    fields,
    i8,
    i16,
    i32,
    i64,
    offset_of,
    ptr,
    size_of,
    struct,
    u8,
    u16,
    u32,
    u64,
)

np = pytest.importorskip("numpy")

ORACLE_EXAMPLES = 2000
CTYPES_HAS_ALIGN = sys.version_info >= (3, 13)

# ---- the generated structs --------------------------------------------------------------------

PRIMS = ["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool_", "c_char", "ptr"]
ALIAS = {"u8": u8, "i8": i8, "u16": u16, "i16": i16, "u32": u32, "i32": i32, "u64": u64, "i64": i64}
ALIAS.update({"f32": f32, "f64": f64, "bool_": bool_, "c_char": c_char, "ptr": ptr})
CTYPE = {"u8": ctypes.c_uint8, "i8": ctypes.c_int8, "u16": ctypes.c_uint16, "i16": ctypes.c_int16}
CTYPE.update({"u32": ctypes.c_uint32, "i32": ctypes.c_int32, "u64": ctypes.c_uint64, "i64": ctypes.c_int64})
CTYPE.update({"f32": ctypes.c_float, "f64": ctypes.c_double, "bool_": ctypes.c_bool, "c_char": ctypes.c_char})
CTYPE["ptr"] = ctypes.c_size_t
NPFMT = {"u8": "u1", "i8": "i1", "u16": "u2", "i16": "i2", "u32": "u4", "i32": "i4", "u64": "u8", "i64": "i8"}
NPFMT.update({"f32": "f4", "f64": "f8", "bool_": "?", "c_char": "u1", "ptr": "uintp"})
CTYPE_NAME = {"u8": "uint8_t", "i8": "int8_t", "u16": "uint16_t", "i16": "int16_t", "u32": "uint32_t"}
CTYPE_NAME.update({"i32": "int32_t", "u64": "uint64_t", "i64": "int64_t", "f32": "float", "f64": "double"})
CTYPE_NAME.update({"bool_": "_Bool", "c_char": "char", "ptr": "uintptr_t"})
INT_RANGE = {"u8": (0, 2**8 - 1), "i8": (-(2**7), 2**7 - 1), "u16": (0, 2**16 - 1), "i16": (-(2**15), 2**15 - 1)}
INT_RANGE.update({"u32": (0, 2**32 - 1), "i32": (-(2**31), 2**31 - 1), "u64": (0, 2**64 - 1)})
INT_RANGE.update({"i64": (-(2**63), 2**63 - 1), "ptr": (0, 2**64 - 1)})

# One IntEnum per width, with members at the edges of its range.
ENUMS = {
    width: enum.IntEnum(f"E_{width}", {"LOW": lo, "MID": (lo + hi) // 2, "HIGH": hi})
    for width, (lo, hi) in INT_RANGE.items()
    if width != "ptr"
}


@dataclass
class Prim:
    name: str


@dataclass
class EnumField:
    width: str


@dataclass
class BytesField:
    n: int


@dataclass
class ArrayField:
    elem: Any
    n: int


@dataclass
class StructSpec:
    name: str
    repr: str
    align: int | None
    fields: list[tuple[str, Any]]

    def has_align(self) -> bool:
        return self.align is not None or any(_has_align(t) for _, t in self.fields)


def _has_align(t: Any) -> bool:
    if isinstance(t, StructSpec):
        return t.has_align()
    if isinstance(t, ArrayField):
        return _has_align(t.elem)
    return False


class Chooser:
    """Draws for the generator: Hypothesis's (shrinkable) or a seeded random.Random."""

    def __init__(self, draw: Any = None, rng: random.Random | None = None) -> None:
        self.draw = draw
        self.rng = rng
        self.count = 0

    def int(self, lo: int, hi: int) -> int:
        if self.draw is not None:
            return int(self.draw(st.integers(lo, hi)))
        assert self.rng is not None
        return self.rng.randint(lo, hi)

    def pick(self, options: list[Any]) -> Any:
        return options[self.int(0, len(options) - 1)]


def gen_struct(c: Chooser, depth: int = 0, allow_align: bool = True) -> StructSpec:
    c.count += 1
    name = f"G{c.count}"
    repr_ = "packed" if c.int(0, 3) == 0 else "C"
    align = None
    if repr_ == "C" and allow_align and c.int(0, 3) == 0:
        align = c.pick([1, 2, 4, 8, 16, 32, 64, 128])
    inner_align = allow_align and repr_ == "C"
    fields = [(f"f{i}", gen_field(c, depth, inner_align)) for i in range(c.int(1, 6))]
    return StructSpec(name, repr_, align, fields)


def gen_field(c: Chooser, depth: int, allow_align: bool, in_array: int = 0) -> Any:
    kind = c.int(0, 9)
    if kind <= 4:
        return Prim(c.pick(PRIMS))
    if kind == 5:
        return EnumField(c.pick(list(ENUMS)))
    if kind == 6:
        return BytesField(c.int(1, 9))
    if kind == 7 and in_array < 2:
        return ArrayField(gen_field(c, depth, allow_align, in_array + 1), c.int(1, 4))
    if kind >= 8 and depth < 2:
        return gen_struct(c, depth + 1, allow_align)
    return Prim(c.pick(PRIMS))


# ---- one struct, four ways --------------------------------------------------------------------


def memkit_annotation(t: Any) -> Any:
    if isinstance(t, Prim):
        return ALIAS[t.name]
    if isinstance(t, EnumField):
        return Annotated[ENUMS[t.width], ALIAS[t.width]]
    if isinstance(t, BytesField):
        return Bytes(t.n)
    if isinstance(t, ArrayField):
        return Array(memkit_annotation(t.elem), t.n)
    return build_memkit(t)


def build_memkit(spec: StructSpec) -> Any:
    shell = type(spec.name, (), {"__annotations__": {n: memkit_annotation(t) for n, t in spec.fields}})
    return struct(repr=spec.repr, align=spec.align)(shell)


def oracle_ctype(t: Any, in_array: bool = False) -> Any:
    if isinstance(t, Prim):
        # A c_char array field reads as bytes cut at the first NUL in ctypes: use bytes there.
        return ctypes.c_ubyte if in_array and t.name == "c_char" else CTYPE[t.name]
    if isinstance(t, EnumField):
        return CTYPE[t.width]
    if isinstance(t, BytesField):
        return ctypes.c_ubyte * t.n
    if isinstance(t, ArrayField):
        return oracle_ctype(t.elem, in_array=True) * t.n
    return build_ctypes(t)


def ctypes_cannot_index(path: tuple[Any, ...], t: Any) -> bool:
    """A c_char inside an array of memkit's to_ctypes() (c_char * n: read as a cut bytes)."""
    return isinstance(t, Prim) and t.name == "c_char" and isinstance(path[-1], int)


def build_ctypes(spec: StructSpec) -> Any:
    """ctypes' own layout of the spec (no help from memkit); align(N) needs 3.13's _align_."""
    namespace: dict[str, Any] = {"_fields_": [(n, oracle_ctype(t)) for n, t in spec.fields]}
    if spec.repr == "packed":
        namespace["_pack_"] = 1
        if sys.version_info >= (3, 14):
            namespace["_layout_"] = "ms"
    if spec.align is not None:
        namespace["_align_"] = spec.align
    return type(spec.name, (ctypes.Structure,), namespace)


def oracle_numpy(t: Any) -> Any:
    if isinstance(t, Prim):
        return NPFMT[t.name]
    if isinstance(t, EnumField):
        return NPFMT[t.width]
    if isinstance(t, BytesField):
        return ("u1", (t.n,))
    if isinstance(t, ArrayField):
        return (oracle_numpy(t.elem), (t.n,))
    return build_numpy(t)


def build_numpy(spec: StructSpec) -> Any:
    """NumPy's own layout of the spec: a list of fields, align=True for C (no offsets given)."""
    return np.dtype([(n, oracle_numpy(t)) for n, t in spec.fields], align=spec.repr == "C")


# ---- values -----------------------------------------------------------------------------------


def leaves(spec: StructSpec, prefix: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, scalar type) of every scalar in the struct; a path mixes names and indexes."""
    out: list[tuple[tuple[Any, ...], Any]] = []
    for name, t in spec.fields:
        out.extend(_leaves_of(t, (*prefix, name)))
    return out


def _leaves_of(t: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(t, StructSpec):
        return leaves(t, path)
    if isinstance(t, ArrayField):
        return [leaf for i in range(t.n) for leaf in _leaves_of(t.elem, (*path, i))]
    return [(path, t)]


def random_value(t: Any, rng: random.Random) -> Any:
    if isinstance(t, EnumField):
        return rng.choice(list(ENUMS[t.width]))
    if isinstance(t, BytesField):
        return rng.randbytes(t.n)
    name = t.name
    if name in INT_RANGE:
        lo, hi = INT_RANGE[name]
        return rng.choice([lo, hi, 0, rng.randint(lo, hi)])
    if name == "f64":
        return rng.choice([0.0, -0.0, 1.5, rng.uniform(-1e300, 1e300), float("inf")])
    if name == "f32":
        return pystruct.unpack("f", pystruct.pack("f", rng.uniform(-1e30, 1e30)))[0]
    if name == "bool_":
        return rng.random() < 0.5
    return bytes([rng.randrange(256)])  # c_char


def normalise(t: Any, value: Any) -> Any:
    """A value read through ctypes or NumPy, as memkit reads it."""
    if isinstance(value, np.bytes_):  # NumPy's S<n> drops trailing NULs when it reads
        return bytes(value).ljust(t.n if isinstance(t, BytesField) else 1, b"\0")
    if isinstance(t, BytesField):
        return bytes(value) if not hasattr(value, "tobytes") else value.tobytes()
    if isinstance(t, EnumField):
        return int(value)
    if isinstance(t, Prim) and t.name == "c_char":
        if isinstance(value, (int, np.integer)):
            return bytes([int(value)])
        return bytes(value)
    return value.item() if hasattr(value, "item") else value


def walk(obj: Any, path: tuple[Any, ...], numpy: bool = False) -> Any:
    for step in path:
        obj = obj[step] if isinstance(step, int) or numpy else getattr(obj, step)
    return obj


def put(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    parent = walk(obj, path[:-1])
    if isinstance(path[-1], int):
        parent[path[-1]] = value
    else:
        setattr(parent, path[-1], value)


def to_ctypes_value(t: Any, value: Any, in_array: bool) -> Any:
    if isinstance(t, BytesField):
        return (ctypes.c_ubyte * t.n)(*value)
    if isinstance(t, EnumField):
        return int(value)
    if in_array and isinstance(t, Prim) and t.name == "c_char":
        return value[0]  # a c_ubyte element
    return value


def same(a: Any, b: Any) -> bool:
    """Equal values of the same kind: floats bit for bit (-0.0, inf), bools only to bools."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and pystruct.pack("d", a) == pystruct.pack("d", b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


# ---- the Hypothesis oracle --------------------------------------------------------------------

EXAMPLES_RUN = 0


def check_layout(spec: StructSpec, cls: Any, ct: Any, dt: Any) -> None:
    """memkit's size, alignment and offsets equal ctypes' and NumPy's, nested structs too."""
    assert size_of(cls) == ctypes.sizeof(ct) == dt.itemsize
    if spec.repr == "C":
        assert align_of(cls) == ctypes.alignment(ct) == dt.alignment
    else:
        assert align_of(cls) == ctypes.alignment(ct) == 1
    ctypes_fields = dict(ct._fields_)
    for f in fields(cls):
        t = dict(spec.fields)[f.name]
        assert f.offset == getattr(ct, f.name).offset == dt.fields[f.name][1], f.name
        mine, theirs_ct, theirs_dt = f.type, ctypes_fields[f.name], dt[f.name]
        while isinstance(t, ArrayField):  # into arrays of structs
            t, mine, theirs_ct, theirs_dt = t.elem, mine.elem, theirs_ct._type_, theirs_dt.base
        if isinstance(t, StructSpec):
            check_layout(t, mine.cls, theirs_ct, theirs_dt)


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_generated_structs_agree_with_ctypes_and_numpy(data: st.DataObject, seed: int) -> None:
    global EXAMPLES_RUN
    EXAMPLES_RUN += 1
    spec = gen_struct(Chooser(draw=data.draw))
    cls = build_memkit(spec)
    independent = not spec.has_align() or CTYPES_HAS_ALIGN
    # 1. Layout: memkit = the oracles' own computation (align(N) before 3.13: the C
    #    compiler test below), and = memkit's to_ctypes()/to_numpy_dtype().
    ct = build_ctypes(spec) if independent else cls.to_ctypes()
    if not spec.has_align():
        check_layout(spec, cls, ct, build_numpy(spec))
    elif independent:
        assert size_of(cls) == ctypes.sizeof(ct) and align_of(cls) == ctypes.alignment(ct)
        assert all(offset_of(cls, n) == getattr(ct, n).offset for n, _ in spec.fields)
    mine_ct, mine_dt = cls.to_ctypes(), cls.to_numpy_dtype()
    assert ctypes.sizeof(mine_ct) == mine_dt.itemsize == size_of(cls)
    for name, _ in spec.fields:
        assert getattr(mine_ct, name).offset == mine_dt.fields[name][1] == offset_of(cls, name)
    # 2. Values: written by memkit, read by ctypes and NumPy on the same memory ...
    rng = random.Random(seed)
    scalars = leaves(spec)
    values = [random_value(t, rng) for _, t in scalars]
    buf = AlignedBuffer(size_of(cls), align_of(cls))
    record = cls.view(buf)
    for (path, _), value in zip(scalars, values, strict=True):
        put(record, path, value)
    through_ctypes = ct.from_buffer(buf)
    through_numpy = np.frombuffer(buf, dtype=build_numpy(spec) if not spec.has_align() else mine_dt)[0]
    for (path, t), value in zip(scalars, values, strict=True):
        expected = int(value) if isinstance(t, EnumField) else value
        if independent or not ctypes_cannot_index(path, t):
            assert same(normalise(t, walk(through_ctypes, path)), expected), (path, t)
        assert same(normalise(t, walk(through_numpy, path, numpy=True)), expected), (path, t)
        assert same(walk(record, path), value), (path, t)
    del through_ctypes, through_numpy
    # 3. ... and written by ctypes, read by memkit.
    buf2 = AlignedBuffer(size_of(cls), align_of(cls))
    writer = ct.from_buffer(buf2)
    values2 = [random_value(t, rng) for _, t in scalars]
    for i, ((path, t), value) in enumerate(zip(scalars, values2, strict=True)):
        if not independent and ctypes_cannot_index(path, t):
            values2[i] = b"\0"  # left as zero
            continue
        put(writer, path, to_ctypes_value(t, value, in_array=isinstance(path[-1], int)))
    record2 = cls.view(buf2)
    for (path, _), value in zip(scalars, values2, strict=True):
        assert same(walk(record2, path), value), path


def test_the_oracle_ran_enough_examples() -> None:
    # Runs after the Hypothesis test in file order (pytest keeps it); alone, it has nothing to count.
    if EXAMPLES_RUN == 0:
        pytest.skip("the Hypothesis oracle did not run in this session")
    assert EXAMPLES_RUN >= ORACLE_EXAMPLES


# ---- the C compiler oracle --------------------------------------------------------------------


def c_decl(t: Any, name: str, out: list[str]) -> str:
    """The C declaration of a field (struct definitions it needs are appended to ``out``)."""
    dims = ""
    while isinstance(t, ArrayField):
        dims += f"[{t.n}]"
        t = t.elem
    if isinstance(t, Prim):
        base = CTYPE_NAME[t.name]
    elif isinstance(t, EnumField):
        base = CTYPE_NAME[t.width]
    elif isinstance(t, BytesField):
        base = "unsigned char"
        dims += f"[{t.n}]"
    else:
        base = f"struct {c_struct(t, out)}"
    return f"{base} {name}{dims};"


def c_struct(spec: StructSpec, out: list[str]) -> str:
    body = " ".join(c_decl(t, n, out) for n, t in spec.fields)
    attrs = []
    if spec.repr == "packed":
        attrs.append("packed")
    if spec.align is not None:
        attrs.append(f"aligned({spec.align})")
    attr = f" __attribute__(({', '.join(attrs)}))" if attrs else ""
    out.append(f"struct{attr} {spec.name} {{ {body} }};")
    return spec.name


C_STRUCTS = 300


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
def test_random_structs_agree_with_the_c_compiler(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    chooser = Chooser(rng=rng)
    specs = [gen_struct(chooser) for _ in range(C_STRUCTS)]
    defs: list[str] = []
    prints: list[str] = []
    expected: list[int] = []
    for spec in specs:
        c_struct(spec, defs)
        cls = build_memkit(spec)
        prints.append(f'printf("%zu %zu\\n", sizeof(struct {spec.name}), _Alignof(struct {spec.name}));')
        expected += [size_of(cls), align_of(cls)]
        for name, _ in spec.fields:
            prints.append(f'printf("%zu\\n", offsetof(struct {spec.name}, {name}));')
            expected.append(offset_of(cls, name))
    source = "\n".join(
        ["#include <stddef.h>", "#include <stdint.h>", "#include <stdio.h>", *defs, "int main(void) {", *prints, "}"]
    )
    (tmp_path / "layouts.c").write_text(source)
    exe = tmp_path / "layouts"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-o", str(exe), str(tmp_path / "layouts.c")], check=True)
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == expected
    assert sum(spec.has_align() for spec in specs) > 50  # align(N) is well covered
