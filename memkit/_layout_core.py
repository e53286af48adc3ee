"""memkit.layout's building blocks: Rust's ``Layout``, the field types and array views.

Public names are re-exported by :mod:`memkit.layout`; this module only keeps that one
readable. The struct decorator, views and interop live there and in ``_layout_interop``
and ``_layout_soa``.
"""

from __future__ import annotations

import ctypes
import enum
import operator
import struct as _struct
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeAlias, TypeVar, get_args, get_origin, overload

from ._native import core as _core

if TYPE_CHECKING:
    from .layout import Struct

_layout = _core.layout
Record = _layout.Record

T = TypeVar("T")

#: Rust's ``isize::MAX`` on a 64-bit target: no Layout's padded size may pass it.
ISIZE_MAX = 2**63 - 1

_RUST_MESSAGE = "invalid parameters to Layout::from_size_align"


class LayoutError(ValueError):
    """Rust's ``LayoutError``: a size or alignment no ``Layout`` can have.

    The message starts with Rust's own text, "invalid parameters to
    Layout::from_size_align", and goes on to say which rule broke.
    """


def _int(value: object, name: str) -> int:
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) & ~(align - 1)


class Layout:
    """The size and alignment of a block of memory: Rust's ``std::alloc::Layout``.

    ``Layout(size, align)`` is ``Layout::from_size_align(size, align)``: ``align`` must be
    a power of two (so not 0) and ``size`` rounded up to a multiple of ``align`` must not
    pass ``isize::MAX`` (2**63 - 1); otherwise :class:`LayoutError` (a ``ValueError``).
    Layouts are immutable, hashable and compare by value.

    ``extend(next)`` appends a field the way ``#[repr(C)]`` does and returns the new
    layout and the field's offset, without trailing padding; ``pad_to_align()`` adds it.

    Example:
        >>> from memkit.layout import Layout
        >>> layout, b = Layout(1, 1).extend(Layout(8, 8))  # struct { a: u8, b: u64, c: u16 }
        >>> layout, c = layout.extend(Layout(2, 2))
        >>> b, c, layout, layout.pad_to_align()
        (8, 16, Layout(size=18, align=8), Layout(size=24, align=8))
    """

    __slots__ = ("_align", "_size")
    _size: int
    _align: int

    def __init__(self, size: int, align: int) -> None:
        size = _int(size, "size")
        align = _int(align, "align")
        if not _is_power_of_two(align):
            raise LayoutError(f"{_RUST_MESSAGE}: align must be a power of two, got {align}")
        if size < 0:
            raise LayoutError(f"{_RUST_MESSAGE}: size must be >= 0, got {size}")
        if size > ISIZE_MAX - (align - 1):
            raise LayoutError(
                f"{_RUST_MESSAGE}: size {size} rounded up to align {align} overflows isize::MAX ({ISIZE_MAX})"
            )
        object.__setattr__(self, "_size", size)
        object.__setattr__(self, "_align", align)

    @classmethod
    def from_size_align(cls, size: int, align: int) -> Layout:
        """``Layout::from_size_align``: the same as ``Layout(size, align)``."""
        return cls(size, align)

    @classmethod
    def of(cls, obj: object) -> Layout:
        """The layout of a memkit struct class or field type (``u8``, ``Array(...)``, ...),
        a ctypes type, or a NumPy dtype: Rust's ``Layout::new::<T>()``.

        Example:
            >>> import ctypes
            >>> from memkit.layout import Layout, Array, u16
            >>> Layout.of(Array(u16, 3)), Layout.of(ctypes.c_double)
            (Layout(size=6, align=2), Layout(size=8, align=8))
        """
        if isinstance(obj, Layout):
            return obj
        ftype = _field_type_or_none(obj)
        if ftype is not None:
            return Layout(ftype.size, ftype.align)
        if isinstance(obj, type) and issubclass(obj, (ctypes._SimpleCData, ctypes.Structure, ctypes.Array)):
            return Layout(ctypes.sizeof(obj), ctypes.alignment(obj))
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(obj, numpy.dtype):
            return Layout(obj.itemsize, obj.alignment)
        raise TypeError(
            f"Layout.of() takes a memkit struct class, a field type, a ctypes type or a NumPy dtype, got {obj!r}"
        )

    @property
    def size(self) -> int:
        """The size in bytes (may be 0, need not be a multiple of ``align``)."""
        return self._size

    @property
    def align(self) -> int:
        """The alignment in bytes: a power of two."""
        return self._align

    def padding_needed_for(self, align: int) -> int:
        """Bytes to add after ``size`` to reach a multiple of ``align`` (a power of two;
        anything else is a :class:`LayoutError`, where Rust's result would be meaningless)."""
        align = _int(align, "align")
        if not _is_power_of_two(align):
            raise LayoutError(f"{_RUST_MESSAGE}: align must be a power of two, got {align}")
        return _round_up(self._size, align) - self._size

    def pad_to_align(self) -> Layout:
        """This layout with ``size`` rounded up to a multiple of ``align``: the size of one
        array element, what ``size_of`` reports for a Rust type."""
        return Layout(_round_up(self._size, self._align), self._align)

    def align_to(self, align: int) -> Layout:
        """The same size with alignment ``max(self.align, align)``, like
        ``#[repr(align(N))]``; ``align`` must be a power of two (checked first, as current
        Rust does, even when it is below ``self.align``)."""
        align = _int(align, "align")
        if not _is_power_of_two(align):
            raise LayoutError(f"{_RUST_MESSAGE}: align must be a power of two, got {align}")
        return Layout(self._size, max(self._align, align))

    def extend(self, next: Layout) -> tuple[Layout, int]:
        """Append ``next`` after this layout, as ``#[repr(C)]`` places a field: returns the
        combined layout and the offset of ``next`` in it. No trailing padding is added
        (``pad_to_align()`` does that), exactly as in Rust."""
        if not isinstance(next, Layout):
            raise TypeError(f"extend() takes a Layout, got {type(next).__name__}")
        offset = _round_up(self._size, next._align)
        return Layout(offset + next._size, max(self._align, next._align)), offset

    def repeat(self, n: int) -> tuple[Layout, int]:
        """``n`` copies of this layout, each padded to its alignment: returns the array's
        layout and the stride between elements (Rust's ``Layout::repeat``)."""
        n = _int(n, "n")
        if n < 0:
            raise LayoutError(f"{_RUST_MESSAGE}: an array length must be >= 0, got {n}")
        stride = _round_up(self._size, self._align)
        return Layout(stride * n, self._align), stride

    def array(self, n: int) -> Layout:
        """The layout of ``[T; n]`` for a ``T`` with this layout (Rust's
        ``Layout::array::<T>(n)``): ``n`` elements at the padded stride;
        :class:`LayoutError` when the size would pass ``isize::MAX``."""
        return self.repeat(n)[0]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Layout is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Layout):
            return NotImplemented
        return self._size == other._size and self._align == other._align

    def __hash__(self) -> int:
        return hash((Layout, self._size, self._align))

    def __repr__(self) -> str:
        return f"Layout(size={self._size}, align={self._align})"

    def __reduce__(self) -> tuple[type[Layout], tuple[int, int]]:
        return (Layout, (self._size, self._align))


# ---- field types -------------------------------------------------------------------------------


class FieldType(ABC):
    """What a struct field holds: its size, alignment and how it is read and written.

    Instances come from the aliases (``u8`` ... ``f64``, ``bool_``, ``ptr``, ``c_char``),
    ``Array(T, n)``, ``Bytes(n)``, ``Annotated[SomeIntEnum, u8]`` and ``@struct`` classes;
    ``field_type(annotation)`` finds the one behind any of them.
    """

    __slots__ = ()
    name: str  # how describe() prints the type
    size: int
    align: int

    @property
    def layout(self) -> Layout:
        return Layout(self.size, self.align)

    @abstractmethod
    def _key(self) -> tuple[Any, ...]:
        """What equality and hashing compare."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldType):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return self.name

    # Whether a #[repr(align(N))] struct is inside: a packed struct may not hold one (Rust E0588).
    def _has_align_attr(self) -> bool:
        return False

    @abstractmethod
    def _descriptor(self, label: str, offset: int) -> Any:
        """The C++ Field that reads and writes this type at ``offset`` of a record."""

    @abstractmethod
    def _read(self, raw: memoryview, rec: Any, off: int, label: str) -> Any:
        """The value at ``off``; ``raw`` holds the bytes of record ``rec`` from offset 0."""

    @abstractmethod
    def _write(self, raw: memoryview, rec: Any, off: int, value: Any, label: str) -> None:
        """Store ``value`` at ``off`` of ``raw`` (checked as a field assignment is)."""


class Primitive(FieldType):
    """A fixed-size number, bool or byte; ``u8`` ... ``f64``, ``bool_``, ``ptr``, ``c_char``
    are ``Annotated`` aliases carrying one."""

    __slots__ = ("align", "ctype", "format", "hi", "kind", "lo", "name", "np_format", "size")

    def __init__(self, name: str, kind: str, fmt: str, ctype: Any, np_format: str) -> None:
        self.name = name
        self.kind = kind  # what the C++ Field reads: u8 ... f64, bool, char
        self.format = fmt  # struct / memoryview format character, native size and alignment
        self.ctype = ctype
        self.np_format = np_format
        self.size = _struct.calcsize(fmt)
        self.align = ctypes.alignment(ctype)
        if fmt in "bhilqn":
            self.lo, self.hi = -(1 << (8 * self.size - 1)), (1 << (8 * self.size - 1)) - 1
        elif fmt in "BHILQNP":
            self.lo, self.hi = 0, (1 << (8 * self.size)) - 1
        else:
            self.lo = self.hi = 0

    @property
    def is_int(self) -> bool:
        return self.format in "bhilqnBHILQNP"

    def _key(self) -> tuple[Any, ...]:
        return ("primitive", self.name)

    def _descriptor(self, label: str, offset: int) -> Any:
        return _layout.Field(label, self.kind, offset, self.size)

    def coerce(self, value: Any, label: str) -> Any:
        """``value`` as memoryview assignment takes it for this format, checked the way a
        field assignment checks it (same errors and messages)."""
        if self.is_int:
            try:
                v = operator.index(value)
            except TypeError:
                raise TypeError(
                    f"{label} is a {self.name} field: expected an int, got {type(value).__name__}"
                ) from None
            if not self.lo <= v <= self.hi:
                raise OverflowError(f"{label} is a {self.name} field: {v} is out of range ({self.lo}..{self.hi})")
            return v
        if self.format in "fd":
            try:
                d = float(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{label} is a {self.name} field: expected a float, got {type(value).__name__}"
                ) from None
            if self.format == "f":
                try:
                    _struct.pack("f", d)
                except OverflowError:
                    raise OverflowError(f"{label} is an f32 field: {value!r} is too large for f32") from None
            return d
        if self.format == "?":
            return bool(value)
        # c_char: one byte, as bytes of length 1 or an int 0..255
        if isinstance(value, int):
            if not 0 <= value <= 255:
                raise OverflowError(f"{label} is a c_char field: {value} is out of range (0..255)")
            return bytes((value,))
        try:
            b = bytes(memoryview(value))
        except TypeError:
            raise TypeError(
                f"{label} is a c_char field: expected bytes of length 1, got {type(value).__name__}"
            ) from None
        if len(b) != 1:
            raise ValueError(f"{label} is a c_char field: expected exactly 1 byte, got {len(b)}")
        return b

    def _read(self, raw: memoryview, rec: Any, off: int, label: str) -> Any:
        return _struct.unpack_from(self.format, raw, off)[0]

    def _write(self, raw: memoryview, rec: Any, off: int, value: Any, label: str) -> None:
        _struct.pack_into(self.format, raw, off, self.coerce(value, label))


_U8 = Primitive("u8", "u8", "B", ctypes.c_uint8, "u1")
_I8 = Primitive("i8", "i8", "b", ctypes.c_int8, "i1")
_U16 = Primitive("u16", "u16", "H", ctypes.c_uint16, "u2")
_I16 = Primitive("i16", "i16", "h", ctypes.c_int16, "i2")
_U32 = Primitive("u32", "u32", "I", ctypes.c_uint32, "u4")
_I32 = Primitive("i32", "i32", "i", ctypes.c_int32, "i4")
_U64 = Primitive("u64", "u64", "Q", ctypes.c_uint64, "u8")
_I64 = Primitive("i64", "i64", "q", ctypes.c_int64, "i8")
_F32 = Primitive("f32", "f32", "f", ctypes.c_float, "f4")
_F64 = Primitive("f64", "f64", "d", ctypes.c_double, "f8")
_BOOL = Primitive("bool_", "bool", "?", ctypes.c_bool, "?")
_CHAR = Primitive("c_char", "char", "c", ctypes.c_char, "S1")
_PTR = Primitive(
    "ptr", "u64" if _struct.calcsize("N") == 8 else "u32", "N", ctypes.c_size_t, f"u{_struct.calcsize('N')}"
)

# Each alias is what a type checker sees (int, float, bool, bytes) annotated with the memkit
# type that gives it a size: `x: u8` type-checks as `x: int`.
u8: TypeAlias = Annotated[int, _U8]
i8: TypeAlias = Annotated[int, _I8]
u16: TypeAlias = Annotated[int, _U16]
i16: TypeAlias = Annotated[int, _I16]
u32: TypeAlias = Annotated[int, _U32]
i32: TypeAlias = Annotated[int, _I32]
u64: TypeAlias = Annotated[int, _U64]
i64: TypeAlias = Annotated[int, _I64]
f32: TypeAlias = Annotated[float, _F32]
f64: TypeAlias = Annotated[float, _F64]
bool_: TypeAlias = Annotated[bool, _BOOL]
#: A pointer-sized unsigned integer (``usize``, ``uintptr_t``): 8 bytes on 64-bit targets.
ptr: TypeAlias = Annotated[int, _PTR]
#: One byte read and written as ``bytes`` of length 1 (C's ``char``).
c_char: TypeAlias = Annotated[bytes, _CHAR]

PRIMITIVES: tuple[Primitive, ...] = (_U8, _I8, _U16, _I16, _U32, _I32, _U64, _I64, _F32, _F64, _BOOL, _CHAR, _PTR)
INT_PRIMITIVES: tuple[Primitive, ...] = (_U8, _I8, _U16, _I16, _U32, _I32, _U64, _I64)


class EnumType(FieldType):
    """An ``enum.IntEnum`` stored as an integer of a declared width: ``Annotated[Color, u8]``
    (Rust's ``#[repr(u8)] enum``). Reading gives the member; a stored value that is no
    member's raises ``ValueError`` naming the field and the value."""

    __slots__ = ("align", "base", "enum", "members", "name", "size")

    def __init__(self, enum_cls: type[enum.IntEnum], base: Primitive, label: str) -> None:
        if not base.is_int or base is _PTR:
            raise TypeError(
                f"{label}: an IntEnum's width must be u8, i8, u16, i16, u32, i32, u64 or i64, got {base.name}"
            )
        members: dict[int, enum.IntEnum] = {}
        for member in enum_cls:
            value = int(member)
            if not base.lo <= value <= base.hi:
                raise TypeError(
                    f"{label}: {enum_cls.__name__}.{member.name} = {value} does not fit {base.name} "
                    f"({base.lo}..{base.hi})"
                )
            members[value] = member
        self.enum = enum_cls
        self.base = base
        self.members = members
        self.size = base.size
        self.align = base.align
        self.name = f"{enum_cls.__name__}({base.name})"

    def _key(self) -> tuple[Any, ...]:
        return ("enum", self.enum, self.base.name)

    def _descriptor(self, label: str, offset: int) -> Any:
        return _layout.Field(label, "enum", offset, self.size, self.enum, self.members, self.base.kind)

    def decode(self, value: int, label: str) -> enum.IntEnum:
        member = self.members.get(value)
        if member is None:
            raise ValueError(f"{label} holds {value}, which is not a valid {self.enum.__name__}")
        return member

    def encode(self, value: Any, label: str) -> int:
        # A member or its integer value; anything else is a TypeError before the lookup
        # (1.0 hashes like 1 and would find the member 1), as for integer fields.
        if not isinstance(value, int):
            raise TypeError(f"{label} holds a {self.enum.__name__}: got {type(value).__name__}")
        member = self.members.get(value)
        if member is None:
            raise ValueError(f"{value!r} is not a valid {self.enum.__name__} (field {label})")
        return int(member)

    def _read(self, raw: memoryview, rec: Any, off: int, label: str) -> Any:
        return self.decode(_struct.unpack_from(self.base.format, raw, off)[0], label)

    def _write(self, raw: memoryview, rec: Any, off: int, value: Any, label: str) -> None:
        _struct.pack_into(self.base.format, raw, off, self.encode(value, label))


class BytesType(FieldType):
    """``Bytes(n)``: ``n`` raw bytes, read as ``bytes`` and written from a bytes-like object
    of exactly ``n`` bytes (C's ``char name[n]``, Rust's ``[u8; n]`` as bytes)."""

    __slots__ = ("name", "size")
    align = 1

    def __init__(self, n: int) -> None:
        n = _int(n, "Bytes(n)")
        if n < 1:
            raise ValueError(f"Bytes(n) needs n >= 1, got {n}")
        self.size = n
        self.name = f"Bytes({n})"

    def _key(self) -> tuple[Any, ...]:
        return ("bytes", self.size)

    def _descriptor(self, label: str, offset: int) -> Any:
        return _layout.Field(label, "bytes", offset, self.size)

    def check(self, value: Any, label: str) -> bytes:
        if isinstance(value, str):
            raise TypeError(f"{label} is {self.name}: expected bytes, got str (encode it first)")
        try:
            b = bytes(memoryview(value))
        except TypeError:
            raise TypeError(
                f"{label} is {self.name}: expected a bytes-like object of {self.size} bytes, got {type(value).__name__}"
            ) from None
        if len(b) != self.size:
            raise ValueError(f"{label} is {self.name}: expected exactly {self.size} bytes, got {len(b)}")
        return b

    def _read(self, raw: memoryview, rec: Any, off: int, label: str) -> Any:
        return bytes(raw[off : off + self.size])

    def _write(self, raw: memoryview, rec: Any, off: int, value: Any, label: str) -> None:
        raw[off : off + self.size] = self.check(value, label)


class StructType(FieldType):
    """A nested ``@struct`` class: the field reads as a view of the nested record."""

    __slots__ = ("align", "cls", "info", "name", "size")

    def __init__(self, cls: type[Struct]) -> None:
        self.cls = cls
        self.info: StructInfo = cls.__memkit_struct__
        self.name = cls.__name__
        self.size = self.info.size
        self.align = self.info.align

    def _key(self) -> tuple[Any, ...]:
        return ("struct", self.cls)

    def _has_align_attr(self) -> bool:
        info = self.info
        return info.align_attr is not None or any(f.type._has_align_attr() for f in info.fields)

    def _descriptor(self, label: str, offset: int) -> Any:
        return _layout.Field(label, "struct", offset, self.size, self.cls)

    def _read(self, raw: memoryview, rec: Any, off: int, label: str) -> Any:
        return _layout.sub(rec, self.cls, off, self.size)

    def _write(self, raw: memoryview, rec: Any, off: int, value: Any, label: str) -> None:
        if type(value) is self.cls:
            raw[off : off + self.size] = memoryview(value)
            return
        if isinstance(value, Record):
            raise TypeError(f"{label} holds a {self.cls.__name__}, got a {type(value).__name__} record")
        try:
            b = bytes(memoryview(value))
        except TypeError:
            raise TypeError(f"{label} holds a {self.cls.__name__}, got {type(value).__name__}") from None
        if len(b) != self.size:
            raise ValueError(f"{label} is a {self.cls.__name__}: expected exactly {self.size} bytes, got {len(b)}")
        raw[off : off + self.size] = b


class ArrayType(FieldType):
    """``Array(T, n)``: ``n`` elements of field type ``T`` back to back (Rust's ``[T; n]``).
    The field reads as an :class:`ArrayView` of the memory."""

    __slots__ = ("align", "elem", "length", "name", "size")

    def __init__(self, elem: FieldType, n: int) -> None:
        self.elem = elem
        self.length = n
        self.size = elem.size * n
        self.align = elem.align
        self.name = f"[{elem.name}; {n}]"

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's dimensions: nested arrays add theirs (``[[u8; 3]; 4]`` is (4, 3))."""
        if isinstance(self.elem, ArrayType):
            return (self.length, *self.elem.shape)
        return (self.length,)

    @property
    def scalar(self) -> FieldType:
        """The innermost element type."""
        return self.elem.scalar if isinstance(self.elem, ArrayType) else self.elem

    def _key(self) -> tuple[Any, ...]:
        return ("array", self.elem._key(), self.length)

    def _has_align_attr(self) -> bool:
        return self.elem._has_align_attr()

    def _descriptor(self, label: str, offset: int) -> Any:
        atype = self

        def get(rec: Any, off: int) -> ArrayView[Any]:
            return ArrayView(rec, off, atype, label)

        def put(rec: Any, off: int, value: Any) -> None:
            ArrayView(rec, off, atype, label).assign(value)

        return _layout.Field(label, "custom", offset, self.size, get, put)

    def _read(self, raw: memoryview, rec: Any, off: int, label: str) -> Any:
        return ArrayView(rec, off, self, label)

    def _write(self, raw: memoryview, rec: Any, off: int, value: Any, label: str) -> None:
        ArrayView(rec, off, self, label).assign(value)


def Array(elem: Any, n: int) -> ArrayType:
    """The field type ``[elem; n]``: ``n`` >= 1 elements of any field type (numbers,
    ``Bytes``, enums, structs, other arrays). Reading the field gives an
    :class:`ArrayView` onto the memory.

    Example:
        >>> from memkit.layout import Array, u16, size_of
        >>> size_of(Array(u16, 3)), size_of(Array(Array(u16, 3), 2))
        (6, 12)
    """
    n = _int(n, "Array(T, n): n")
    if n < 1:
        raise ValueError(f"Array(T, n) needs n >= 1, got {n}")
    return ArrayType(field_type(elem, "Array(T, n): T"), n)


def Bytes(n: int) -> BytesType:
    """The field type of ``n`` raw bytes (C's ``char name[n]``), read and written as
    ``bytes`` of exactly that length.

    Example:
        >>> from memkit.layout import Bytes, Layout
        >>> Layout.of(Bytes(16))
        Layout(size=16, align=1)
    """
    return BytesType(n)


_HINT = (
    "u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool_, ptr, c_char, Array(T, n), Bytes(n), "
    "a @struct class, or Annotated[SomeIntEnum, u8]"
)


def _field_type_or_none(obj: Any) -> FieldType | None:
    if isinstance(obj, FieldType):
        return obj
    if get_origin(obj) is Annotated:
        for meta in get_args(obj)[1:]:
            found = _field_type_or_none(meta)
            if found is not None:
                return found
        return None
    if isinstance(obj, type) and isinstance(obj.__dict__.get("__memkit_struct__"), StructInfo):
        return StructType(obj)
    return None


def field_type(annotation: Any, label: str = "field") -> FieldType:
    """The :class:`FieldType` behind a field annotation, or ``TypeError`` saying what is
    accepted. ``Annotated[X, memkit_type]`` gives ``memkit_type`` (``X`` is what type
    checkers see); ``Annotated[SomeIntEnum, u8]`` gives the enum stored as a ``u8``."""
    if get_origin(annotation) is Annotated:
        args = get_args(annotation)
        base, metadata = args[0], args[1:]
        width = next((t for t in map(_field_type_or_none, metadata) if t is not None), None)
        if isinstance(base, type) and issubclass(base, enum.Enum):
            return _enum_type(base, width, label)
        if width is not None:
            return width
        return field_type(base, label)
    found = _field_type_or_none(annotation)
    if found is not None:
        return found
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_type(annotation, None, label)
    if annotation is bool:
        return _BOOL
    if annotation in (int, float):
        raise TypeError(f"{label}: {annotation.__name__} has no fixed size; use one of u8 ... i64, f32, f64")
    if annotation is bytes:
        raise TypeError(f"{label}: bytes has no fixed size; use Bytes(n) or c_char")
    if (
        isinstance(annotation, type)
        and "__annotations__" in annotation.__dict__
        and not issubclass(annotation, enum.Enum)
    ):
        raise TypeError(f"{label}: {annotation.__name__} is not a @struct class (decorate it with @struct)")
    raise TypeError(f"{label}: {annotation!r} is not a memkit field type; use {_HINT}")


def _enum_type(enum_cls: type[enum.Enum], width: FieldType | None, label: str) -> EnumType:
    if not issubclass(enum_cls, enum.IntEnum):
        raise TypeError(f"{label}: {enum_cls.__name__} must be an enum.IntEnum (its members are stored as integers)")
    if width is None:
        raise TypeError(
            f"{label}: an IntEnum field needs a width, like Rust's #[repr(u8)]: "
            f"Annotated[{enum_cls.__name__}, u8] (or i8 ... i64)"
        )
    if not isinstance(width, Primitive):
        raise TypeError(f"{label}: an IntEnum's width must be an integer type such as u8, got {width.name}")
    return EnumType(enum_cls, width, label)


# ---- struct metadata ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInfo:
    """One field of a struct: its name, type and offset (see :func:`memkit.layout.fields`)."""

    name: str
    type: FieldType
    offset: int

    @property
    def size(self) -> int:
        return self.type.size


@dataclass(frozen=True, eq=False)
class StructInfo:
    """What ``@struct`` computed for a class; ``S.__memkit_struct__``."""

    name: str
    repr: str  # "C" or "packed"
    align_attr: int | None  # the align= argument (#[repr(align(N))])
    fields: tuple[FieldInfo, ...]
    size: int
    align: int
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # to_ctypes() and friends

    def field(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        names = ", ".join(f.name for f in self.fields) or "none"
        raise AttributeError(f"{self.name} has no field {name!r} (fields: {names})")


def layout_fields(types: Sequence[FieldType], repr_: str, align_attr: int | None) -> tuple[list[int], Layout]:
    """Offsets of fields of ``types`` in order, and the struct's layout (with trailing
    padding): ``#[repr(C)]`` is Rust's documented algorithm, ``Layout::extend`` field by
    field then ``pad_to_align``; ``#[repr(packed)]`` puts each field right after the last."""
    offsets: list[int] = []
    if repr_ == "packed":
        offset = 0
        for t in types:
            offsets.append(offset)
            offset += t.size
        return offsets, Layout(offset, 1)
    layout = Layout(0, 1)
    for t in types:
        layout, offset = layout.extend(Layout(t.size, t.align))
        offsets.append(offset)
    if align_attr is not None:
        layout = layout.align_to(align_attr)
    return offsets, layout.pad_to_align()


# ---- array views -------------------------------------------------------------------------------


def cast_view(view: memoryview, fmt: str, shape: Sequence[int] | None = None) -> memoryview:
    """``view.cast(fmt, shape)`` for a format known only at run time (a struct format character)."""
    if shape is None:
        return view.cast(fmt)  # type: ignore[call-overload,no-any-return]
    return view.cast(fmt, list(shape))  # type: ignore[call-overload,no-any-return]


def _readonly_error(label: str) -> TypeError:
    return TypeError(f"cannot set {label}: the view is read-only (its buffer is read-only)")


class ArrayView(Sequence[T], Generic[T]):
    """A fixed-length array inside a struct record (or ``S.array_view``): a view, not a copy.

    Indexing (negative indexes too) and assignment read and write the buffer; slices give
    lists. ``len()``, iteration, ``tolist()``, ``assign(iterable)``; ``memoryview()`` gives a
    typed, shaped memoryview of arrays of numbers (``numpy.asarray`` takes that without
    copying). Elements that are structs or arrays are views themselves.

    Example:
        >>> from memkit.layout import struct, Array, u16
        >>> @struct
        ... class Samples:
        ...     values: Array(u16, 4)
        >>> s = Samples()
        >>> s.values[-1] = 7
        >>> s.values.tolist(), bytes(s)
        ([0, 0, 0, 7], b'\\x00\\x00\\x00\\x00\\x00\\x00\\x07\\x00')
    """

    __slots__ = ("_cast", "_label", "_len", "_off", "_raw", "_rec", "_stride", "_type")

    def __init__(self, rec: Any, off: int, atype: ArrayType, label: str) -> None:
        # Made by records and S.array_view; a direct call gets the same argument checks.
        if not isinstance(atype, ArrayType):
            raise TypeError(f"ArrayView() needs an array type (Array(T, n)), got {type(atype).__name__}")
        if not isinstance(label, str):
            raise TypeError(f"ArrayView() label must be a str, got {type(label).__name__}")
        off = _int(off, "offset")
        whole: memoryview = memoryview(rec)
        if off < 0 or off + atype.size > whole.nbytes:
            raise ValueError(
                f"{label}: {atype.size} bytes at offset {off} do not fit in the {whole.nbytes}-byte buffer"
            )
        self._rec = rec
        self._off = off
        self._type = atype
        self._label = label
        self._len = atype.length
        self._stride = atype.elem.size
        self._raw = whole if off == 0 and len(whole) == atype.size else whole[off : off + atype.size]
        elem = atype.elem
        prim = elem.base if isinstance(elem, EnumType) else elem
        self._cast = cast_view(self._raw, prim.format) if isinstance(prim, Primitive) else None

    @property
    def type(self) -> ArrayType:
        """The array's field type (``[T; n]``)."""
        return self._type

    def __len__(self) -> int:
        return self._len

    def _index(self, index: Any) -> int:
        try:
            i: int = operator.index(index)
        except TypeError:
            raise TypeError(f"{self._label} indices must be integers or slices, not {type(index).__name__}") from None
        n = self._len
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self._label} index out of range (length {n})")
        return i

    def _get(self, i: int) -> Any:
        elem = self._type.elem
        if isinstance(elem, Primitive):
            return self._cast[i]  # type: ignore[index]
        if isinstance(elem, EnumType):
            return elem.decode(self._cast[i], f"{self._label}[{i}]")  # type: ignore[index]
        off = self._off + i * self._stride
        if isinstance(elem, StructType):
            return _layout.sub(self._rec, elem.cls, off, self._stride)
        if isinstance(elem, ArrayType):
            return ArrayView(self._rec, off, elem, f"{self._label}[{i}]")
        return elem._read(self._raw, self._rec, i * self._stride, f"{self._label}[{i}]")

    def _set(self, i: int, value: Any) -> None:
        elem = self._type.elem
        label = f"{self._label}[{i}]"
        if isinstance(elem, Primitive):
            self._cast[i] = elem.coerce(value, label)  # type: ignore[index]
        elif isinstance(elem, EnumType):
            self._cast[i] = elem.encode(value, label)  # type: ignore[index]
        elif isinstance(elem, (StructType, ArrayType)):
            elem._write(memoryview(self._rec), self._rec, self._off + i * self._stride, value, label)
        else:
            elem._write(self._raw, self._rec, i * self._stride, value, label)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            # map(), not a comprehension: on 3.11 a comprehension makes `self` a cell, and
            # when memory for that cell runs out CPython leaks the arguments (the view, and
            # with it the buffer's export).
            return list(map(self._get, range(*i.indices(self._len))))
        return self._get(self._index(i))  # type: ignore[no-any-return]

    def __setitem__(self, i: int | slice, value: Any) -> None:
        if _layout.readonly(self._rec):
            raise _readonly_error(f"{self._label}[{i!r}]")
        if isinstance(i, slice):
            indices = range(*i.indices(self._len))
            values = list(value)
            if len(values) != len(indices):
                raise ValueError(
                    f"{self._label}[{i.start}:{i.stop}:{i.step}] has {len(indices)} elements, got {len(values)}"
                )
            for j, v in zip(indices, values, strict=True):
                self._set(j, v)
            return
        self._set(self._index(i), value)

    def __iter__(self) -> Iterator[T]:
        for i in range(self._len):
            yield self._get(i)

    def assign(self, values: Iterable[Any]) -> None:
        """Overwrite every element: from an ArrayView of the same type (a byte copy, even
        when the two overlap) or from an iterable of exactly ``len(self)`` values."""
        if _layout.readonly(self._rec):
            raise _readonly_error(self._label)
        if isinstance(values, ArrayView) and values._type == self._type:
            self._raw[:] = values._raw
            return
        if isinstance(values, (str, bytes)) and not isinstance(self._type.elem, Primitive):
            raise TypeError(f"{self._label} is {self._type.name}: cannot assign {type(values).__name__}")
        try:
            items = list(values)
        except TypeError:
            raise TypeError(
                f"{self._label} is {self._type.name}: expected an iterable, got {type(values).__name__}"
            ) from None
        if len(items) != self._len:
            raise ValueError(f"{self._label} is {self._type.name}: expected {self._len} values, got {len(items)}")
        for i, v in enumerate(items):
            self._set(i, v)

    def tolist(self) -> list[Any]:
        """The elements as a list of plain values: numbers, enum members, bytes, a list per
        nested array and a dict per struct (:func:`memkit.layout.asdict`)."""
        elem = self._type.elem
        if isinstance(elem, Primitive):
            assert self._cast is not None  # set for arrays of primitives
            values: list[Any] = self._cast.tolist()
            return values
        if isinstance(elem, ArrayType):
            return [v.tolist() for v in self]  # type: ignore[attr-defined]
        if isinstance(elem, StructType):
            from .layout import asdict

            return [asdict(v) for v in self]
        return list(self)

    def memoryview(self) -> memoryview:
        """The elements' memory, zero-copy (read-only if the view is). Arrays of numbers,
        bools, ``c_char`` and IntEnums (as their integers) - nested arrays included - get
        their format and shape (``numpy.asarray`` takes it as is); arrays of structs or
        ``Bytes`` get their raw bytes (format ``B``; ``numpy.frombuffer(m, S.to_numpy_dtype())``
        reads an array of structs)."""
        scalar = self._type.scalar
        prim = scalar.base if isinstance(scalar, EnumType) else scalar
        if not isinstance(prim, Primitive):
            return self._raw[:]
        return cast_view(self._raw, prim.format, self._type.shape)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ArrayView):
            return self._type == other._type and self.tolist() == other.tolist()
        if isinstance(other, (list, tuple)):
            return self.tolist() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        try:
            shown = repr(self.tolist())
        except ValueError as exc:  # an IntEnum element holding no member's value
            shown = f"<{exc}>"
        return f"ArrayView({self._type.name}: {shown})"
