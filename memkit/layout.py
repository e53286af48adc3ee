"""memkit.layout: Rust's memory layouts for Python - ``Layout``, ``#[repr(C)]`` /
``#[repr(packed)]`` / ``#[repr(align(N))]`` structs, zero-copy views and struct-of-arrays.

The sharp edge: a struct view *is* the memory. ``S.view(buffer)`` copies nothing; every
attribute read and write goes to the buffer, and the view keeps the buffer exported (so
an ``AlignedBuffer`` cannot be released, nor a ``bytearray`` resized, under it). Field
order decides padding, as in C: ``describe(S)`` shows the holes, ``optimize(S)`` the order
without them.

Example:
    >>> from memkit.layout import struct, u8, u16, u64, size_of, optimize
    >>> @struct
    ... class Seed:
    ...     a: u8
    ...     b: u64
    ...     c: u16
    >>> size_of(Seed), optimize(Seed)
    (24, (['b', 'c', 'a'], 8))
    >>> buf = bytearray(size_of(Seed))
    >>> s = Seed.view(buf)
    >>> s.b = 2**40
    >>> buf[8:16] == (2**40).to_bytes(8, "little")
    True

See docs/layout.md.
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import operator
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, get_origin, overload

from . import _layout_interop
from ._layout_core import (
    ISIZE_MAX,
    Array,
    ArrayType,
    ArrayView,
    Bytes,
    FieldInfo,
    FieldType,
    Layout,
    LayoutError,
    StructInfo,
    StructType,
    bool_,
    c_char,
    f32,
    f64,
    field_type,
    i8,
    i16,
    i32,
    i64,
    layout_fields,
    ptr,
    u8,
    u16,
    u32,
    u64,
)
from ._layout_soa import SoA
from ._native import core as _core
from .buffers import AlignedBuffer

if TYPE_CHECKING:
    import ctypes

    import numpy as np

__all__ = [
    "ISIZE_MAX",
    "Array",
    "ArrayView",
    "Bytes",
    "FieldInfo",
    "FieldType",
    "Layout",
    "LayoutError",
    "SoA",
    "Struct",
    "align_of",
    "asdict",
    "bool_",
    "c_char",
    "describe",
    "f32",
    "f64",
    "field_type",
    "fields",
    "from_ctypes",
    "i8",
    "i16",
    "i32",
    "i64",
    "offset_of",
    "optimize",
    "ptr",
    "size_of",
    "struct",
    "u8",
    "u16",
    "u32",
    "u64",
]

_layout = _core.layout
_S = TypeVar("_S", bound="Struct")
_T = TypeVar("_T")

#: Rust caps #[repr(align(N))] at 2**29.
MAX_STRUCT_ALIGN = 2**29


def _info(cls: Any) -> StructInfo:
    info = cls.__dict__.get("__memkit_struct__") if isinstance(cls, type) else None
    if not isinstance(info, StructInfo):
        raise TypeError(f"{cls!r} is not a memkit.layout @struct class")
    return info


class Struct(_layout.Record):
    """The base of every ``@struct`` class; an instance is a record: a view of memory.

    ``@struct`` makes the decorated class a subclass of ``Struct`` (subclassing it yourself
    is optional, and lets type checkers see the methods below). Records have no
    ``__dict__``; their attributes are the fields, read from and written to the buffer.

    - ``S.view(buffer, offset=0)``: a record over ``buffer`` (anything with the buffer
      protocol, C-contiguous), checked for bounds and, unless packed, alignment.
    - ``S.array_view(buffer, count, offset=0)``: ``count`` records back to back.
    - ``S(**fields)`` / ``S(*values)``: a record over a fresh zeroed ``AlignedBuffer``.
    - ``S.to_ctypes()``, ``S.to_numpy_dtype()``: the same layout for ctypes and NumPy.

    ``memoryview(record)`` and ``bytes(record)`` give the record's bytes.
    """

    __slots__ = ()
    __memkit_struct__: ClassVar[StructInfo]

    def __new__(cls: type[_S], *args: Any, **kwargs: Any) -> _S:
        info = _info(cls)
        if len(args) > len(info.fields):
            raise TypeError(f"{cls.__name__}() takes at most {len(info.fields)} positional values ({len(args)} given)")
        buf = AlignedBuffer(info.size, info.align)
        record: _S = _layout.bind(cls, buf, 0, info.size, info.align, f"{cls.__name__}()")
        for f, value in zip(info.fields, args, strict=False):  # fewer values than fields is fine
            if f.name in kwargs:
                raise TypeError(f"{cls.__name__}() got multiple values for field {f.name!r}")
            setattr(record, f.name, value)
        for name, value in kwargs.items():
            if not any(f.name == name for f in info.fields):
                raise TypeError(f"{cls.__name__}() got an unexpected field {name!r}")
            setattr(record, name, value)
        return record

    @classmethod
    def view(cls: type[_S], buffer: Any, offset: int = 0) -> _S:
        """A record over ``size_of(cls)`` bytes of ``buffer`` at ``offset``, zero-copy.

        Raises ``TypeError`` without the buffer protocol, ``ValueError`` when the buffer is
        not C-contiguous, too small, or - for a ``repr="C"`` struct - the address at
        ``offset`` is not a multiple of ``align_of(cls)``. A read-only buffer gives a
        read-only record (assignment raises ``TypeError``)."""
        info = _info(cls)
        return _layout.bind(cls, buffer, offset, info.size, info.align, f"{cls.__name__}.view")  # type: ignore[no-any-return]

    @classmethod
    def array_view(cls: type[_S], buffer: Any, count: int, offset: int = 0) -> ArrayView[_S]:
        """``count`` records back to back in ``buffer`` from ``offset`` (each
        ``size_of(cls)`` bytes), as an :class:`ArrayView`; checked as :meth:`view` is."""
        info = _info(cls)
        count = _count(count)
        atype = ArrayType(StructType(cls), count) if count else None
        block = _layout.bind(
            _layout.Record, buffer, offset, info.size * count, info.align, f"{cls.__name__}.array_view"
        )
        if atype is None:  # no elements: nothing to view, but the checks above still ran
            atype = _EmptyArray(StructType(cls))
        return ArrayView(block, 0, atype, f"{cls.__name__}.array_view")

    @classmethod
    def to_ctypes(cls) -> type[ctypes.Structure]:
        """A ``ctypes.Structure`` with the same field names, offsets and size (cached).

        ``repr="packed"`` sets ``_pack_ = 1``. ``align=N`` sets ``_align_`` on Python 3.13+;
        before that ctypes cannot raise alignment, so explicit padding fields
        (``_memkit_pad<k>_``) put every field and the size where memkit puts them, and
        ``ctypes.alignment`` of the result stays the natural one."""
        return _layout_interop.to_ctypes(cls, _info(cls))

    @classmethod
    def to_numpy_dtype(cls) -> np.dtype[Any]:
        """A NumPy structured dtype with the same names, offsets and itemsize (cached).

        IntEnums become their integer type, ``Bytes(n)`` is ``S<n>`` (NumPy strips trailing
        NULs when it reads one), ``c_char`` ``S1``, ``Array(T, n)`` a subarray, nested
        structs nested dtypes. ``ImportError`` without NumPy."""
        dtype: np.dtype[Any] = _layout_interop.to_numpy_dtype(cls, _info(cls))
        return dtype

    def __repr__(self) -> str:
        cls = type(self)
        try:
            info = _info(cls)
        except TypeError:
            return f"<{cls.__name__} record>"
        parts = []
        for f in info.fields:
            try:
                value: Any = getattr(self, f.name)
            except ValueError as exc:  # an IntEnum field holding no member's value
                parts.append(f"{f.name}=<{exc}>")
                continue
            parts.append(f"{f.name}={value!r}")
        return f"{cls.__name__}({', '.join(parts)})"


class _EmptyArray(ArrayType):
    """``[T; 0]`` for ``S.array_view(buffer, 0)`` (fields may not have length 0)."""

    __slots__ = ()

    def __init__(self, elem: FieldType) -> None:
        self.elem = elem
        self.length = 0
        self.size = 0
        self.align = elem.align
        self.name = f"[{elem.name}; 0]"


_RESERVED = frozenset(n for n in dir(Struct) if not n.startswith("__")) | {"__memkit_struct__"}


def _count(count: Any) -> int:
    try:
        n = operator.index(count)
    except TypeError:
        raise TypeError(f"count must be an int, got {type(count).__name__}") from None
    if n < 0:
        raise ValueError(f"count must be >= 0, got {n}")
    return n


@overload
def struct(cls: type[_T], /) -> type[_T]: ...
@overload
def struct(*, repr: str = "C", align: int | None = None) -> Callable[[type[_T]], type[_T]]: ...
def struct(
    cls: type[_T] | None = None, /, *, repr: str = "C", align: int | None = None
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Class decorator: lay out the annotated fields of a class as a C struct.

    ``repr="C"`` (default) is C's and Rust's ``#[repr(C)]``: fields in declaration order,
    each at the next multiple of its alignment; the struct's alignment is its largest
    field's; the size is rounded up to a multiple of it. ``align=N`` (a power of two up to
    2**29) raises the alignment to at least ``N``, like ``#[repr(C, align(N))]``.
    ``repr="packed"`` is ``#[repr(C, packed)]``: no padding at all, alignment 1 (it may not
    contain a struct with ``align=``, as in Rust).

    Field annotations (strings too, under ``from __future__ import annotations``, resolved
    in the class's module and the scope that defines it): ``u8 i8 u16 i16 u32 i32 u64 i64 f32 f64 bool_ ptr c_char``,
    ``Array(T, n)``, ``Bytes(n)``, another ``@struct`` class, ``Annotated[SomeIntEnum, u8]``
    (an IntEnum stored with that width), or ``Annotated[X, <one of these>]`` - ``X`` being
    what a type checker should see. ``ClassVar`` annotations are skipped. Fields have no
    defaults, and a struct class cannot inherit from another (nest it instead).

    The result is a new class, subclass of :class:`Struct`, with ``__slots__ = ()`` and the
    decorated class's methods; its instances are records (see :class:`Struct`).

    Raises:
        TypeError: an annotation that is no field type, a default value, a field name
            that ``Struct`` uses (``view``, ``array_view``, ``to_ctypes``, ``to_numpy_dtype``),
            an IntEnum without a width or with members that do not fit it, a base class.
        ValueError: ``repr`` not "C" or "packed"; ``align`` not a power of two in
            [1, 2**29], or given with ``repr="packed"``.

    Example:
        >>> from memkit.layout import struct, u8, u32, size_of, align_of
        >>> @struct(repr="packed")
        ... class Header:
        ...     kind: u8
        ...     length: u32
        >>> size_of(Header), align_of(Header)
        (5, 1)
    """
    if repr not in ("C", "packed"):
        raise ValueError(f'repr must be "C" or "packed", got {repr!r}')
    if align is not None:
        if isinstance(align, bool) or not isinstance(align, int):
            raise TypeError(f"align must be an int or None, got {type(align).__name__}")
        if align < 1 or align & (align - 1) or align > MAX_STRUCT_ALIGN:
            raise ValueError(f"align must be a power of two between 1 and 2**29, got {align}")
        if repr == "packed":
            raise ValueError("a struct cannot be both packed and aligned (Rust: conflicting packed and align hints)")
    repr_ = repr
    # String annotations resolve where the class is written: the caller's globals and, in a
    # function, its locals (a nested struct declared just before).
    caller = sys._getframe(1)
    scope = {**caller.f_globals, **caller.f_locals}

    def wrap(c: type[_T]) -> type[_T]:
        return _make_struct(c, repr_, align, scope)

    if cls is None:
        return wrap
    return wrap(cls)


def _resolve(annotation: str, globalns: dict[str, Any], localns: dict[str, Any]) -> Any:
    """What a string annotation names: a plain name is looked up as eval() would look it up
    (class namespace, then module and scope, then builtins) without compiling anything;
    anything else is evaluated."""
    if annotation.isidentifier() and not keyword.iskeyword(annotation):
        for namespace in (localns, globalns, vars(builtins)):
            if annotation in namespace:
                return namespace[annotation]
        raise NameError(f"name {annotation!r} is not defined")
    return eval(annotation, globalns, localns)


def _annotations(cls: type, scope: dict[str, Any]) -> list[tuple[str, Any]]:
    raw = inspect.get_annotations(cls)
    module = sys.modules.get(cls.__module__)
    globalns = {**(vars(module) if module is not None else {}), **scope}
    localns = dict(vars(cls))
    out = []
    for name, declared in raw.items():
        ann: Any = declared
        if isinstance(ann, str):
            try:
                ann = _resolve(ann, globalns, localns)
            except (MemoryError, SystemError):
                raise  # not a bad annotation: memory ran out (3.11's compiler may say SystemError then)
            except Exception as exc:
                raise TypeError(
                    f"{cls.__qualname__}.{name}: cannot resolve the annotation {ann!r} ({type(exc).__name__}: {exc})"
                ) from exc
        if ann is ClassVar or get_origin(ann) is ClassVar:
            continue
        out.append((name, ann))
    return out


def _make_struct(cls: type[_T], repr_: str, align: int | None, scope: dict[str, Any]) -> type[_T]:
    if not isinstance(cls, type):
        raise TypeError(f"@struct decorates a class, got {cls!r}")
    name = cls.__qualname__
    if "__memkit_struct__" in cls.__dict__:
        raise TypeError(f"{name} is already a @struct class")
    extra_bases = [b for b in cls.__bases__ if b not in (object, Struct)]
    if extra_bases:
        raise TypeError(
            f"@struct class {name} cannot inherit from {extra_bases[0].__name__}: "
            "C structs have no inheritance; make the other struct a field instead"
        )
    if type(cls) is not type and not issubclass(type(cls), type(Struct)):
        raise TypeError(f"@struct class {name} cannot have a metaclass ({type(cls).__name__})")
    names: list[str] = []
    types: list[FieldType] = []
    for fname, ann in _annotations(cls, scope):
        label = f"{name}.{fname}"
        if fname.startswith("__") or fname in _RESERVED:
            raise TypeError(f"{label}: the name {fname!r} is taken by memkit.layout.Struct; rename the field")
        if fname in cls.__dict__:
            raise TypeError(f"{label} has a default value; struct fields have none (a record is a view of memory)")
        ftype = field_type(ann, label)
        if repr_ == "packed" and ftype._has_align_attr():
            raise TypeError(
                f"{label}: a packed struct cannot contain a struct with align= (Rust E0588: "
                "packed type cannot transitively contain a #[repr(align)] type)"
            )
        names.append(fname)
        types.append(ftype)
    offsets, layout = layout_fields(types, repr_, align)
    info = StructInfo(
        name=cls.__name__,
        repr=repr_,
        align_attr=align,
        fields=tuple(FieldInfo(n, t, o) for n, t, o in zip(names, types, offsets, strict=True)),
        size=layout.size,
        align=layout.align,
    )
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__", "__slots__")}
    namespace["__slots__"] = ()
    namespace["__memkit_struct__"] = info
    new = type(cls.__name__, (Struct,), namespace)
    new.__qualname__ = cls.__qualname__
    for f in info.fields:
        setattr(new, f.name, f.type._descriptor(f"{cls.__name__}.{f.name}", f.offset))
    return new


# ---- introspection -----------------------------------------------------------------------------


def size_of(obj: Any) -> int:
    """``size_of::<T>()``: the size in bytes of a struct class or field type (trailing
    padding included), or of anything :meth:`Layout.of` takes."""
    return Layout.of(obj).size


def align_of(obj: Any) -> int:
    """``align_of::<T>()``: the alignment in bytes of a struct class or field type, or of
    anything :meth:`Layout.of` takes."""
    return Layout.of(obj).align


def fields(cls: Any) -> tuple[FieldInfo, ...]:
    """The fields of a struct class in declaration order: ``name``, ``type``, ``offset``,
    ``size`` each."""
    return _info(cls).fields


def offset_of(cls: Any, path: str) -> int:
    """``offset_of!(S, field)``: the byte offset of a field; a dotted path
    (``"inner.x"``) goes into nested structs. ``AttributeError`` for a name the struct
    does not have."""
    info = _info(cls)
    offset = 0
    parts = path.split(".")
    for i, part in enumerate(parts):
        f = info.field(part)
        offset += f.offset
        if i + 1 < len(parts):
            if not isinstance(f.type, StructType):
                raise AttributeError(f"{info.name}.{part} is {f.type.name}, not a struct: cannot look up {path!r}")
            info = f.type.info
    return offset


def asdict(record: Any) -> dict[str, Any]:
    """A record's fields as a dict of plain values: nested structs become dicts, arrays
    lists (:meth:`ArrayView.tolist`); IntEnum members and bytes stay as they are."""
    info = _info(type(record))
    out: dict[str, Any] = {}
    for f in info.fields:
        value = getattr(record, f.name)
        if isinstance(f.type, StructType):
            value = asdict(value)
        elif isinstance(f.type, ArrayType):
            value = value.tolist()
        out[f.name] = value
    return out


def _type_label(t: FieldType) -> str:
    return t.name


def describe(cls: Any) -> str:
    """A pahole-style table of the struct: each field's offset and size, every hole
    between fields, trailing padding, and the totals.

    Example:
        >>> from memkit.layout import struct, describe, u8, u16, u64
        >>> @struct
        ... class Seed:
        ...     a: u8
        ...     b: u64
        ...     c: u16
        >>> print(describe(Seed))
        #[repr(C)]
        struct Seed {           /* offset  size */
            u8   a;             /*      0     1 */
            /* XXX 7-byte hole */
            u64  b;             /*      8     8 */
            u16  c;             /*     16     2 */
            /* XXX 6 bytes of trailing padding */
        };  /* size: 24, align: 8, members: 3, sum members: 11, holes: 1, sum holes: 7, padding: 6 */
    """
    info = _info(cls)
    attrs = "C" if info.repr == "C" else "C, packed"
    if info.align_attr is not None:
        attrs += f", align({info.align_attr})"
    type_width = max((len(_type_label(f.type)) for f in info.fields), default=0)
    decls = [f"{_type_label(f.type):<{type_width}}  {f.name};" for f in info.fields]
    head = f"struct {info.name} {{"
    decl_width = max([len(d) for d in decls] + [len(head) - 4, 16])
    lines = [f"#[repr({attrs})]", f"{head:<{decl_width + 4}}    /* offset  size */"]
    end = 0
    holes = hole_bytes = 0
    for f, decl in zip(info.fields, decls, strict=True):
        if f.offset > end:
            gap = f.offset - end
            holes += 1
            hole_bytes += gap
            lines.append(f"    /* XXX {gap}-byte hole */")
        lines.append(f"    {decl:<{decl_width}}    /* {f.offset:>6} {f.size:>5} */")
        end = f.offset + f.size
    padding = info.size - end
    if padding:
        lines.append(f"    /* XXX {padding} byte{'s' if padding != 1 else ''} of trailing padding */")
    members = sum(f.size for f in info.fields)
    lines.append(
        f"}};  /* size: {info.size}, align: {info.align}, members: {len(info.fields)}, sum members: {members}, "
        f"holes: {holes}, sum holes: {hole_bytes}, padding: {padding} */"
    )
    return "\n".join(lines)


def optimize(cls: Any) -> tuple[list[str], int]:
    """The field order that makes the struct smallest, and the bytes it saves.

    For ``repr="C"``: fields by decreasing alignment, declaration order among equals (what
    rustc does for ``repr(Rust)``). Every field's size is a multiple of its alignment, so
    this order leaves no hole between fields and the size is the sum of the fields rounded
    up to the struct's alignment - the minimum. A packed struct has no padding to remove:
    its own order and 0.
    """
    info = _info(cls)
    names = [f.name for f in info.fields]
    if info.repr == "packed":
        return names, 0
    order = sorted(info.fields, key=lambda f: -f.type.align)
    _, layout = layout_fields([f.type for f in order], info.repr, info.align_attr)
    return [f.name for f in order], info.size - layout.size


def from_ctypes(ctype: type[ctypes.Structure]) -> type[Struct]:
    """A memkit struct class with the fields, offsets and size of a ``ctypes.Structure``.

    ctypes integer and float types map to ``u8`` ... ``f64`` by size, ``c_bool`` to
    ``bool_``, ``c_char`` to ``c_char``, ``c_char * n`` to ``Bytes(n)``, other arrays to
    ``Array``, pointers (``c_void_p``, ``POINTER(T)``, ``c_char_p``) to ``ptr``, nested
    Structures to structs; ``_pack_ = 1`` to ``repr="packed"``, ``_align_`` (3.13+) to
    ``align=``. ``TypeError`` for what has no equivalent: unions, bit fields, other
    ``_pack_`` values, ``_anonymous_``, non-native byte order, ``c_longdouble``, ``c_wchar``.
    """
    return _layout_interop.from_ctypes(ctype, struct)  # type: ignore[no-any-return]
