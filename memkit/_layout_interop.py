"""memkit.layout's interop: the same struct as a ctypes.Structure or a NumPy dtype, and back.

ctypes and NumPy compute C layouts on their own; memkit's tests use them as oracles. What
they cannot express is emulated, and only that: ``#[repr(align(N))]`` before Python 3.13
(ctypes has no ``_align_``) becomes explicit padding fields, and NumPy gets every offset
and the itemsize spelled out.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from collections.abc import Callable
from typing import Any

from ._layout_core import (
    Array,
    ArrayType,
    Bytes,
    BytesType,
    EnumType,
    FieldType,
    Primitive,
    StructInfo,
    StructType,
    _round_up,
    bool_,
    c_char,
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
    ptr,
    u8,
    u16,
    u32,
    u64,
)

#: ctypes honours `_align_` (#[repr(align(N))]) from Python 3.13 on.
CTYPES_HAS_ALIGN = sys.version_info >= (3, 13)
# Python 3.14 deprecates `_pack_` without `_layout_`; "ms" is the layout `_pack_` always had.
_CTYPES_NEEDS_LAYOUT = sys.version_info >= (3, 14)


def numpy_module() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - exercised by hiding numpy
        raise ImportError(
            "memkit.layout needs NumPy for this, and it is not installed; "
            "install it with `pip install numpy` (or `pip install memkit[numpy]`)"
        ) from exc
    return numpy


# ---- to ctypes -------------------------------------------------------------------------------


def ctype_of(t: FieldType) -> Any:
    """The ctypes type with the layout of field type ``t``."""
    if isinstance(t, Primitive):
        return t.ctype
    if isinstance(t, EnumType):
        return t.base.ctype
    if isinstance(t, BytesType):
        return ctypes.c_ubyte * t.size
    if isinstance(t, ArrayType):
        return ctype_of(t.elem) * t.length
    if isinstance(t, StructType):
        return t.cls.to_ctypes()
    raise TypeError(f"no ctypes type for {t!r}")


def to_ctypes(cls: type, info: StructInfo) -> type[ctypes.Structure]:
    cached = info.cache.get("ctypes")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    packed = info.repr == "packed"
    taken = {f.name for f in info.fields}
    pads = 0

    def pad(nbytes: int) -> tuple[str, Any]:
        nonlocal pads
        name = f"_memkit_pad{pads}_"
        while name in taken:
            name += "_"
        pads += 1
        return (name, ctypes.c_ubyte * nbytes)

    fields: list[tuple[str, Any]] = []
    end = 0
    natural_align = 1
    namespace: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    if packed:
        namespace["_pack_"] = 1
        if _CTYPES_NEEDS_LAYOUT:
            namespace["_layout_"] = "ms"
    if info.align_attr is not None and CTYPES_HAS_ALIGN:
        namespace["_align_"] = info.align_attr
        natural_align = info.align_attr
    for f in info.fields:
        ct = ctype_of(f.type)
        align = 1 if packed else ctypes.alignment(ct)
        natural_align = max(natural_align, align)
        if _round_up(end, align) != f.offset:
            # Only a field holding an align(N) struct, before 3.13: ctypes sees its natural
            # alignment, so the hole memkit leaves becomes an explicit field.
            fields.append(pad(f.offset - end))
        fields.append((f.name, ct))
        end = f.offset + f.size
    if _round_up(end, natural_align) != info.size:  # align(N) trailing padding, before 3.13
        fields.append(pad(info.size - end))
    namespace["_fields_"] = fields
    result: type[ctypes.Structure] = type(info.name, (ctypes.Structure,), namespace)
    _check_same_layout(result, info, "to_ctypes")
    info.cache["ctypes"] = result
    return result


def _check_same_layout(ct: Any, info: StructInfo, what: str) -> None:
    problems = [
        f"{f.name} at {getattr(ct, f.name).offset} (memkit: {f.offset})"
        for f in info.fields
        if getattr(ct, f.name).offset != f.offset
    ]
    if ctypes.sizeof(ct) != info.size:
        problems.append(f"size {ctypes.sizeof(ct)} (memkit: {info.size})")
    if problems:
        raise TypeError(f"{what}: ctypes lays {info.name} out differently: " + ", ".join(problems))


# ---- to NumPy --------------------------------------------------------------------------------


def _numpy_format(np: Any, t: FieldType, raw: bool) -> Any:
    if isinstance(t, Primitive):
        return np.dtype(t.np_format)
    if isinstance(t, EnumType):
        return np.dtype(t.base.np_format)
    if isinstance(t, BytesType):
        return np.dtype((np.uint8, (t.size,))) if raw else np.dtype(f"S{t.size}")
    if isinstance(t, ArrayType):
        return np.dtype((_numpy_format(np, t.elem, raw), (t.length,)))
    if isinstance(t, StructType):
        return to_numpy_dtype(t.cls, t.info, raw=raw)
    raise TypeError(f"no NumPy dtype for {t!r}")


def to_numpy_dtype(cls: type, info: StructInfo, *, raw: bool = False) -> Any:
    """The struct as a NumPy dtype; ``raw=True`` makes ``Bytes(n)`` a ``(uint8, (n,))``
    subarray, which NumPy copies byte for byte (``S<n>`` strips trailing NULs on reads)."""
    key = "numpy_raw" if raw else "numpy"
    cached = info.cache.get(key)
    if cached is not None:
        return cached
    np = numpy_module()
    spec = {
        "names": [f.name for f in info.fields],
        "formats": [_numpy_format(np, f.type, raw) for f in info.fields],
        "offsets": [f.offset for f in info.fields],
        "itemsize": info.size,
    }
    dtype = np.dtype(spec, align=info.repr == "C")
    info.cache[key] = dtype
    return dtype


# ---- from ctypes -----------------------------------------------------------------------------

_from_ctypes_cache: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()

_INTS = {(1, False): u8, (1, True): i8, (2, False): u16, (2, True): i16}
_INTS.update({(4, False): u32, (4, True): i32, (8, False): u64, (8, True): i64})


# ctypes' private bases, typed loosely: typeshed does not export them.
_ctypes: Any = ctypes


def _annotation_for(t: Any, label: str, decorate: Callable[..., Any]) -> Any:
    if not isinstance(t, type):
        raise TypeError(f"{label}: {t!r} is not a ctypes type")
    if issubclass(t, ctypes.Structure):
        return from_ctypes(t, decorate)
    if issubclass(t, ctypes.Union):
        raise TypeError(f"{label}: unions ({t.__name__}) have no memkit.layout equivalent")
    if issubclass(t, ctypes.Array):
        length: int = _ctype_attr(t, "_length_")
        if length < 1:
            raise TypeError(f"{label}: zero-length arrays ({t.__name__}) have no memkit.layout equivalent")
        elem = _ctype_attr(t, "_type_")
        if elem is ctypes.c_char:
            return Bytes(length)
        return Array(_annotation_for(elem, f"{label}[]", decorate), length)
    if issubclass(t, (_ctypes._Pointer, _ctypes._CFuncPtr)):
        return ptr
    if issubclass(t, ctypes._SimpleCData):
        code: str = _ctype_attr(t, "_type_")
        if code == "?":
            return bool_
        if code == "c":
            return c_char
        if code == "f":
            return f32
        if code == "d":
            return f64
        if code in "PzZ":
            return ptr
        if code in "bBhHiIlLqQ":
            return _INTS[(ctypes.sizeof(t), code.islower())]
        raise TypeError(f"{label}: {t.__name__} has no memkit.layout equivalent")
    raise TypeError(f"{label}: {t.__name__} has no memkit.layout equivalent")


def _ctype_attr(t: type, name: str) -> Any:
    """A ctypes class attribute (``_length_``, ``_type_``); typeshed types them as instance
    properties."""
    return getattr(t, name)


def from_ctypes(ct: Any, decorate: Callable[..., Any]) -> Any:
    if not (isinstance(ct, type) and issubclass(ct, ctypes.Structure)):
        what = ct.__name__ if isinstance(ct, type) else type(ct).__name__
        raise TypeError(f"from_ctypes() takes a ctypes.Structure subclass, got {what}")
    cached = _from_ctypes_cache.get(ct)
    if cached is not None:
        return cached
    name = ct.__qualname__
    swapped = ctypes.BigEndianStructure if sys.byteorder == "little" else ctypes.LittleEndianStructure
    if issubclass(ct, swapped):
        raise TypeError(f"{name}: memkit.layout structs use native byte order; {swapped.__name__} has no equivalent")
    if getattr(ct, "_anonymous_", None):
        raise TypeError(f"{name}: _anonymous_ fields have no memkit.layout equivalent")
    pack = getattr(ct, "_pack_", 0) or 0
    if pack not in (0, 1):
        raise TypeError(f"{name}: _pack_ = {pack} has no memkit.layout equivalent (only 1: repr='packed')")
    align = getattr(ct, "_align_", 0) or None
    annotations: dict[str, Any] = {}
    for entry in ct._fields_:
        fname, ftype = entry[0], entry[1]
        if len(entry) > 2:
            raise TypeError(f"{name}.{fname}: bit fields have no memkit.layout equivalent")
        annotations[fname] = _annotation_for(ftype, f"{name}.{fname}", decorate)
    namespace = {
        "__annotations__": annotations,
        "__module__": ct.__module__,
        "__qualname__": ct.__qualname__,
        "__doc__": f"memkit.layout struct made by from_ctypes({ct.__qualname__}).",
    }
    shell = type(ct.__name__, (), namespace)
    result = decorate(repr="packed" if pack == 1 else "C", align=align)(shell)
    _check_same_layout(ct, result.__memkit_struct__, "from_ctypes")
    _from_ctypes_cache[ct] = result
    return result
