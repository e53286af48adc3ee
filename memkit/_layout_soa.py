"""memkit.layout.SoA: a struct's fields as separate aligned columns (struct of arrays).

Re-exported by :mod:`memkit.layout`; see docs/layout.md, section SoA.
"""

from __future__ import annotations

import math
import operator
import struct as _struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._layout_core import (
    ArrayType,
    ArrayView,
    BytesType,
    EnumType,
    FieldType,
    Primitive,
    StructInfo,
    StructType,
    cast_view,
)
from ._layout_interop import numpy_module, to_numpy_dtype
from .buffers import AlignedBuffer

S = TypeVar("S")

#: Columns start at a multiple of this: a cache line on most machines, and what SIMD loads like.
COLUMN_ALIGN = 64


@dataclass(frozen=True)
class _Leaf:
    """One column: a field that is a number, bool, c_char, IntEnum or Bytes, or an array of them."""

    path: tuple[str, ...]  # ("inner", "x")
    type: FieldType  # the field's type (possibly an array)
    scalar: FieldType  # the innermost element type
    offset: int  # from the start of the outer struct
    shape: tuple[int, ...]  # per record: () for a scalar, the array's dimensions otherwise

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def primitive(self) -> Primitive:
        """The number format one column element is stored as (``u8`` for Bytes)."""
        s = self.scalar
        if isinstance(s, EnumType):
            return s.base
        if isinstance(s, BytesType):
            from ._layout_core import _U8

            return _U8
        assert isinstance(s, Primitive)  # _leaves() admits nothing else
        return s

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Column dimensions after the record index: a Bytes(n) scalar adds (n,)."""
        if isinstance(self.scalar, BytesType):
            return (*self.shape, self.scalar.size)
        return self.shape

    @property
    def per_record(self) -> int:
        return math.prod(self.item_shape)


def _leaves(info: StructInfo, prefix: tuple[str, ...], base: int) -> list[_Leaf]:
    out: list[_Leaf] = []
    for f in info.fields:
        path = (*prefix, f.name)
        t = f.type
        if isinstance(t, StructType):
            out.extend(_leaves(t.info, path, base + f.offset))
            continue
        scalar = t.scalar if isinstance(t, ArrayType) else t
        if isinstance(scalar, StructType):
            raise TypeError(
                f"SoA: {info.name}.{'.'.join(path[len(prefix) :])} is an array of structs ({t.name}); "
                "SoA splits scalars and arrays of scalars only"
            )
        shape = t.shape if isinstance(t, ArrayType) else ()
        out.append(_Leaf(path, t, scalar, base + f.offset, shape))
    return out


def _struct_info(cls: Any) -> StructInfo:
    info = cls.__dict__.get("__memkit_struct__") if isinstance(cls, type) else None
    if not isinstance(info, StructInfo):
        raise TypeError(f"SoA needs a memkit.layout @struct class, got {cls!r}")
    return info


class SoA(Generic[S]):
    """Struct of arrays: one aligned column per field of struct ``S``, ``length`` records.

    Each column lives in its own :class:`AlignedBuffer` (64-byte aligned, zeroed) and is a
    NumPy array when NumPy is importable (``numpy=None``, the default; ``True`` requires
    it, ``False`` never uses it), a memoryview otherwise. ``soa.x`` is the column of field
    ``x``; ``soa.x += 1`` updates it in place. Nested structs split into their fields:
    ``soa.inner.x`` (also ``soa.column("inner.x")``). An ``Array(T, n)`` field is a column
    of shape ``(length, n)``, ``Bytes(n)`` one of ``(length, n)`` bytes (``uint8``), an
    IntEnum one of its integers, ``c_char`` a column of ``S1`` (NumPy) / ``c`` (memoryview).
    Arrays of structs are refused (``TypeError``).

    ``soa[i]`` is a record whose attributes read and write the columns at ``i`` (negative
    indexes too); ``len(soa)``; iteration gives the records. ``SoA.from_aos(S.array_view(...))``
    and ``soa.to_aos()`` convert from and to an array of structs.

    A field whose name ``SoA`` itself uses (``column``, ``columns``, ``struct``,
    ``to_aos``, ``from_aos``, ``uses_numpy``) is reachable as ``soa.column(name)`` only.

    Example:
        >>> from memkit.layout import struct, SoA, u32, f64
        >>> @struct
        ... class Particle:
        ...     id: u32
        ...     mass: f64
        >>> soa = SoA(Particle, 4)
        >>> soa.mass[:] = 2.0
        >>> soa[1].id = 7
        >>> soa[1].id, soa[1].mass, len(soa)
        (7, 2.0, 4)
    """

    __slots__ = ("_buffers", "_cls", "_columns", "_flat", "_info", "_leaves", "_length", "_np")

    def __init__(self, cls: type[S], length: int, *, numpy: bool | None = None) -> None:
        info = _struct_info(cls)
        try:
            n = operator.index(length)
        except TypeError:
            raise TypeError(f"SoA length must be an int, got {type(length).__name__}") from None
        if n < 0:
            raise ValueError(f"SoA length must be >= 0, got {n}")
        np = None
        if numpy or numpy is None:
            try:
                np = numpy_module()
            except ImportError:
                if numpy:
                    raise
        setattr_ = object.__setattr__
        setattr_(self, "_cls", cls)
        setattr_(self, "_info", info)
        setattr_(self, "_length", n)
        setattr_(self, "_np", np)
        leaves = _leaves(info, (), 0)
        setattr_(self, "_leaves", {leaf.name: leaf for leaf in leaves})
        buffers: dict[str, AlignedBuffer] = {}
        columns: dict[str, Any] = {}
        flat: dict[str, memoryview] = {}
        for leaf in leaves:
            prim = leaf.primitive
            buf = AlignedBuffer(n * leaf.per_record * prim.size, COLUMN_ALIGN)
            buffers[leaf.name] = buf
            flat[leaf.name] = cast_view(memoryview(buf), prim.format)
            if np is not None:
                dtype = np.dtype(prim.np_format)
                columns[leaf.name] = np.frombuffer(buf, dtype=dtype, count=n * leaf.per_record).reshape(
                    (n, *leaf.item_shape)
                )
            elif leaf.item_shape and n:
                columns[leaf.name] = cast_view(memoryview(buf), prim.format, [n, *leaf.item_shape])
            else:
                columns[leaf.name] = flat[leaf.name]
        setattr_(self, "_buffers", buffers)
        setattr_(self, "_columns", columns)
        setattr_(self, "_flat", flat)

    @property
    def struct(self) -> type[S]:
        """The struct class whose fields are the columns."""
        return self._cls  # type: ignore[no-any-return]

    @property
    def uses_numpy(self) -> bool:
        """Whether the columns are NumPy arrays (else memoryviews)."""
        return self._np is not None

    @property
    def columns(self) -> dict[str, Any]:
        """Every column by its dotted field path (``"inner.x"``), in field order."""
        return dict(self._columns)

    def column(self, path: str) -> Any:
        """The column of a field by dotted path; ``AttributeError`` if there is none."""
        if not isinstance(path, str):
            raise TypeError(f"SoA.column() takes a field path (str), got {type(path).__name__}")
        try:
            return self._columns[path]
        except KeyError:
            raise AttributeError(
                f"SoA of {self._info.name} has no column {path!r} (columns: {', '.join(self._columns)})"
            ) from None

    def __len__(self) -> int:
        return self._length  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _lookup(self, self._info, (), name)

    def __setattr__(self, name: str, value: Any) -> None:
        leaf = self._leaves.get(name)
        if leaf is None:
            if name in type(self).__dict__ or name.startswith("_"):
                raise AttributeError(f"cannot set SoA.{name}")
            _lookup(self, self._info, (), name)  # raises AttributeError for an unknown name
            raise AttributeError(f"SoA.{name} is a struct: set its fields (soa.{name}.<field>) instead")
        self._store_column(leaf, value)

    def _store_column(self, leaf: _Leaf, value: Any) -> None:
        column = self._columns[leaf.name]
        if value is column:  # `soa.x += 1` updated it in place and assigns it back
            return
        if self._np is not None:
            column[...] = value
            return
        items = list(_flatten(value))
        if len(items) != len(self._flat[leaf.name]):
            raise ValueError(f"SoA column {leaf.name} has {len(self._flat[leaf.name])} elements, got {len(items)}")
        flat = self._flat[leaf.name]
        for i, v in enumerate(items):
            flat[i] = v

    def __getitem__(self, index: int) -> _SoARecord:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"SoA indices must be integers, not {type(index).__name__}") from None
        n = self._length
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"SoA index out of range (length {n})")
        return _SoARecord(self, i, self._info, ())

    def __iter__(self) -> Iterator[_SoARecord]:
        for i in range(self._length):
            yield _SoARecord(self, i, self._info, ())

    def __repr__(self) -> str:
        kind = "numpy" if self._np is not None else "memoryview"
        return f"<SoA of {self._info.name}: {self._length} records, {len(self._columns)} {kind} columns>"

    # ---- conversion to and from an array of structs ----

    @classmethod
    def from_aos(cls, records: ArrayView[Any], *, numpy: bool | None = None) -> SoA[Any]:
        """A new SoA holding a copy of ``records``, an array of structs
        (``S.array_view(buffer, count)`` or an ``Array(S, n)`` field)."""
        if not isinstance(records, ArrayView) or not isinstance(records.type.elem, StructType):
            raise TypeError(
                f"SoA.from_aos() takes an array of structs (S.array_view(...)), got {type(records).__name__}"
            )
        struct_cls = records.type.elem.cls
        soa: SoA[Any] = SoA(struct_cls, len(records), numpy=numpy)
        raw = records.memoryview()
        if soa._np is not None and len(soa):
            np = soa._np
            aos = np.frombuffer(raw, dtype=to_numpy_dtype(struct_cls, soa._info, raw=True), count=len(soa))
            for leaf in soa._leaves.values():
                soa._columns[leaf.name][...] = _numpy_field(aos, leaf.path)
            return soa
        size = soa._info.size
        for leaf in soa._leaves.values():
            flat = soa._flat[leaf.name]
            fmt = leaf.primitive.format
            step = leaf.primitive.size
            k = leaf.per_record
            for i in range(len(soa)):
                base = i * size + leaf.offset
                for j in range(k):
                    flat[i * k + j] = _struct.unpack_from(fmt, raw, base + j * step)[0]
        return soa

    def to_aos(self, buffer: Any = None) -> ArrayView[S]:
        """The records as an array of structs: written into ``buffer`` (which must hold
        ``len(self) * size_of(S)`` bytes, aligned for ``S``) or a new zeroed
        ``AlignedBuffer``; returns ``S.array_view`` of it. Padding bytes are left as they are."""
        info = self._info
        n = self._length
        if buffer is None:
            buffer = AlignedBuffer(n * info.size, max(info.align, 1))
        records: ArrayView[S] = self._cls.array_view(buffer, n)
        raw = records.memoryview()
        if self._np is not None and n:
            aos = self._np.frombuffer(raw, dtype=to_numpy_dtype(self._cls, info, raw=True), count=n)
            for leaf in self._leaves.values():
                _numpy_field(aos, leaf.path)[...] = self._columns[leaf.name]
            return records
        for leaf in self._leaves.values():
            flat = self._flat[leaf.name]
            fmt = leaf.primitive.format
            step = leaf.primitive.size
            k = leaf.per_record
            for i in range(n):
                base = i * info.size + leaf.offset
                for j in range(k):
                    _struct.pack_into(fmt, raw, base + j * step, flat[i * k + j])
        return records


def _numpy_field(aos: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        aos = aos[part]
    return aos


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, memoryview):
        value = value.tolist()
    for v in value:
        if isinstance(v, (list, tuple, memoryview)):
            yield from _flatten(v)
        else:
            yield v


class _Group:
    """``soa.inner``: the columns of a nested struct's fields."""

    __slots__ = ("_info", "_prefix", "_soa")

    def __init__(self, soa: SoA[Any], info: StructInfo, prefix: tuple[str, ...]) -> None:
        object.__setattr__(self, "_soa", soa)
        object.__setattr__(self, "_info", info)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _lookup(self._soa, self._info, self._prefix, name)

    def __setattr__(self, name: str, value: Any) -> None:
        path = ".".join((*self._prefix, name))
        leaf = self._soa._leaves.get(path)
        if leaf is None:
            _lookup(self._soa, self._info, self._prefix, name)
            raise AttributeError(f"SoA.{path} is a struct: set its fields instead")
        self._soa._store_column(leaf, value)

    def __repr__(self) -> str:
        return f"<SoA columns of {'.'.join(self._prefix)}: {self._info.name}>"


def _lookup(soa: SoA[Any], info: StructInfo, prefix: tuple[str, ...], name: str) -> Any:
    f = info.field(name)  # AttributeError naming the fields
    path = (*prefix, name)
    if isinstance(f.type, StructType):
        return _Group(soa, f.type.info, path)
    return soa._columns[".".join(path)]


class _SoARecord:
    """``soa[i]``: record ``i`` of a SoA; attributes read and write the columns."""

    __slots__ = ("_i", "_info", "_prefix", "_soa")

    def __init__(self, soa: SoA[Any], i: int, info: StructInfo, prefix: tuple[str, ...]) -> None:
        object.__setattr__(self, "_soa", soa)
        object.__setattr__(self, "_i", i)
        object.__setattr__(self, "_info", info)
        object.__setattr__(self, "_prefix", prefix)

    def _leaf(self, name: str) -> tuple[_Leaf | None, Any]:
        f = self._info.field(name)
        if isinstance(f.type, StructType):
            return None, f.type.info
        return self._soa._leaves[".".join((*self._prefix, name))], None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        leaf, nested = self._leaf(name)
        if leaf is None:
            return _SoARecord(self._soa, self._i, nested, (*self._prefix, name))
        return _read(self._soa, leaf, self._i)

    def __setattr__(self, name: str, value: Any) -> None:
        leaf, _ = self._leaf(name)
        if leaf is None:
            raise AttributeError(f"{self._info.name}.{name} is a struct: set its fields instead")
        _write(self._soa, leaf, self._i, value)

    def __repr__(self) -> str:
        parts = []
        for f in self._info.fields:
            try:
                value = getattr(self, f.name)
            except ValueError as exc:
                parts.append(f"{f.name}=<{exc}>")
                continue
            if hasattr(value, "tolist"):
                value = value.tolist()
            parts.append(f"{f.name}={value!r}")
        return f"{self._info.name}({', '.join(parts)})"


def _label(soa: SoA[Any], leaf: _Leaf, i: int) -> str:
    return f"SoA[{i}].{leaf.name}"


def _read(soa: SoA[Any], leaf: _Leaf, i: int) -> Any:
    scalar = leaf.scalar
    k = leaf.per_record
    if leaf.shape:  # an array field
        if soa._np is not None:
            return soa._columns[leaf.name][i]  # a writable NumPy view of the row
        values = soa._flat[leaf.name][i * k : (i + 1) * k].tolist()
        return _nest(values, leaf.item_shape)
    flat = soa._flat[leaf.name]
    if isinstance(scalar, BytesType):
        return bytes(flat[i * k : (i + 1) * k])
    value = flat[i]
    if isinstance(scalar, EnumType):
        return scalar.decode(value, _label(soa, leaf, i))
    return value


def _nest(values: list[Any], shape: tuple[int, ...]) -> list[Any]:
    if len(shape) <= 1:
        return values
    step = math.prod(shape[1:])
    return [_nest(values[j * step : (j + 1) * step], shape[1:]) for j in range(shape[0])]


def _write(soa: SoA[Any], leaf: _Leaf, i: int, value: Any) -> None:
    label = _label(soa, leaf, i)
    scalar = leaf.scalar
    flat = soa._flat[leaf.name]
    k = leaf.per_record
    if leaf.shape:
        items = list(_flatten(value.tolist() if hasattr(value, "tolist") else value))
        per_scalar = scalar.size if isinstance(scalar, BytesType) else 1
        count = k // per_scalar
        if len(items) != count:
            raise ValueError(f"{label} is {leaf.type.name}: expected {count} values, got {len(items)}")
        for j, v in enumerate(items):
            _store_scalar(flat, scalar, i * k + j * per_scalar, v, f"{label}[{j}]")
        return
    _store_scalar(flat, scalar, i * k, value, label)


def _store_scalar(flat: memoryview, scalar: FieldType, at: int, value: Any, label: str) -> None:
    if isinstance(scalar, BytesType):
        flat[at : at + scalar.size] = scalar.check(value, label)
    elif isinstance(scalar, EnumType):
        flat[at] = scalar.encode(value, label)
    else:
        assert isinstance(scalar, Primitive)
        flat[at] = scalar.coerce(value, label)
