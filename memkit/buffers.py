"""memkit.buffers: aligned memory, arenas and pools.

``AlignedBuffer`` owns memory at an address that is a multiple of a power of two, exposes
it through the buffer protocol without copying, and refuses (``BufferError``) to free or
move memory that a view still points into. ``aligned_empty`` / ``aligned_zeros`` put a
NumPy array on such memory.

``Arena`` is a bump allocator whose ``scope()`` and ``reset()`` free everything at once;
``BufferPool`` lends reusable buffers by size class. Both hand out buffer-protocol handles
(``ArenaBuffer``, ``PooledBuffer``) under the same rule: nothing is freed or reused while a
view of it is alive.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

from ._native import core as _core

_buffers = _core.buffers

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "MAX_ALIGN",
    "AlignedBuffer",
    "Arena",
    "ArenaBuffer",
    "ArenaScope",
    "BufferPool",
    "PooledBuffer",
    "aligned_empty",
    "aligned_zeros",
    "owner_of",
]

AlignedBuffer = _buffers.AlignedBuffer
Arena = _buffers.Arena
ArenaBuffer = _buffers.ArenaBuffer
ArenaScope = _buffers.ArenaScope
BufferPool = _buffers.BufferPool
PooledBuffer = _buffers.PooledBuffer
#: The largest alignment AlignedBuffer accepts (1 GiB).
MAX_ALIGN: int = _buffers.MAX_ALIGN


def _from_layout(cls: type[AlignedBuffer], layout: Any, *, zero: bool = True) -> AlignedBuffer:
    """``AlignedBuffer.from_layout(layout, *, zero=True)``: a buffer of ``layout.size`` bytes
    aligned to ``layout.align`` (a :class:`memkit.layout.Layout`, Rust's
    ``alloc(layout)``). ``TypeError`` for anything that is not a Layout.

    Example:
        >>> from memkit import AlignedBuffer, Layout
        >>> buf = AlignedBuffer.from_layout(Layout(24, 8).align_to(64))
        >>> len(buf), buf.align, buf.address % 64
        (24, 64, 0)
    """
    from .layout import Layout

    if not isinstance(layout, Layout):
        raise TypeError(f"from_layout() takes a memkit.layout.Layout, got {type(layout).__name__}")
    return cls(layout.size, layout.align, zero=zero)


# A classmethod on the compiled class: the Layout type lives in Python.
AlignedBuffer.from_layout = classmethod(_from_layout)  # type: ignore[assignment]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching sys.modules
        raise ImportError(
            "memkit.aligned_empty/aligned_zeros need NumPy, which is not installed; "
            "install it with `pip install numpy` (or `pip install memkit[numpy]`)"
        ) from exc
    return numpy


def _aligned_array(shape: Any, dtype: Any, align: int, zero: bool) -> np.ndarray[Any, Any]:
    np = _numpy()
    dt = np.dtype(dtype)
    if isinstance(shape, (tuple, list)):
        dims = tuple(operator.index(d) for d in shape)
    else:
        dims = (operator.index(shape),)
    for d in dims:
        if d < 0:
            raise ValueError(f"shape must not contain negative dimensions, got {shape!r}")
    count = math.prod(dims)
    # An AlignedBuffer checks nbytes itself (OverflowError past sys.maxsize).
    buf = AlignedBuffer(count * dt.itemsize, align, zero=zero)
    # frombuffer holds an export of `buf` (through a memoryview at the root of arr.base) for
    # as long as the array or any view of it lives, so the memory cannot be released or
    # resized under them. numpy.ndarray(buffer=...) would not: it lets the export go at once.
    arr = np.frombuffer(buf, dtype=dt, count=count)
    return arr.reshape(dims)  # type: ignore[no-any-return]


def aligned_empty(shape: int | tuple[int, ...], dtype: npt.DTypeLike = float, align: int = 64) -> np.ndarray[Any, Any]:
    """Return an uninitialised NumPy array whose data starts at a multiple of ``align``.

    Like ``numpy.empty(shape, dtype)`` (dtype defaults to float64, as there), but the data
    lives in an :class:`AlignedBuffer` that the array keeps exported - and so allocated - as
    long as the array or any view of it lives (:func:`owner_of` finds it).

    Raises:
        ImportError: NumPy is not installed.
        ValueError: a negative dimension or an ``align`` that is not a power of two <= MAX_ALIGN.
        OverflowError: the total size does not fit in ``sys.maxsize`` bytes.

    Example:
        >>> import memkit
        >>> a = memkit.aligned_empty((4, 4), "float32", align=256)
        >>> a.ctypes.data % 256, a.shape
        (0, (4, 4))
    """
    return _aligned_array(shape, dtype, align, zero=False)


def aligned_zeros(shape: int | tuple[int, ...], dtype: npt.DTypeLike = float, align: int = 64) -> np.ndarray[Any, Any]:
    """Return a zero-filled NumPy array whose data starts at a multiple of ``align``.

    The zero-filled counterpart of :func:`aligned_empty` (same arguments and errors). Arrays
    of 1 MiB or more come from zeroed OS pages, so this costs what ``numpy.zeros`` costs.

    Example:
        >>> import memkit
        >>> memkit.aligned_zeros(3, "int64", align=128).tolist()
        [0, 0, 0]
    """
    return _aligned_array(shape, dtype, align, zero=True)


def owner_of(obj: Any) -> Any:
    """Follow ``.base`` / ``.obj`` links from a NumPy array or memoryview to the object that
    owns the memory (an :class:`AlignedBuffer` for arrays made by :func:`aligned_empty`).

    Returns ``obj`` itself when it has no base.

    Example:
        >>> import memkit
        >>> isinstance(memkit.owner_of(memkit.aligned_zeros(4)), memkit.AlignedBuffer)
        True
    """
    seen = 0
    while seen < 1000:  # base chains are short; the bound only guards against a cycle
        seen += 1
        if isinstance(obj, memoryview):
            obj = obj.obj
            continue
        base = getattr(obj, "base", None)
        if base is None:
            return obj
        obj = base
    return obj
