"""memkit: the memory and ownership tools Rust programmers rely on, for Python.

A C++ core (``memkit._core``) does the work; this package re-exports it with types and
docs. Every public name is importable from ``memkit`` directly::

    >>> from memkit import AlignedBuffer
    >>> buf = AlignedBuffer(1024, align=4096)
    >>> buf.address % 4096
    0
    >>> buf.release()

See ``python -m memkit --help`` and the docs/ folder.
"""

from __future__ import annotations

from ._version import __version__
from .atomic import (
    CACHE_PAD,
    AtomicBool,
    AtomicInt,
    AtomicIntArray,
    Ordering,
    ShardedCounter,
    cache_line_size,
)
from .buffers import (
    MAX_ALIGN,
    AlignedBuffer,
    Arena,
    ArenaBuffer,
    ArenaScope,
    BufferPool,
    PooledBuffer,
    aligned_empty,
    aligned_zeros,
    owner_of,
)

__all__ = [
    "CACHE_PAD",
    "MAX_ALIGN",
    "AlignedBuffer",
    "Arena",
    "ArenaBuffer",
    "ArenaScope",
    "AtomicBool",
    "AtomicInt",
    "AtomicIntArray",
    "BufferPool",
    "Ordering",
    "PooledBuffer",
    "ShardedCounter",
    "__version__",
    "aligned_empty",
    "aligned_zeros",
    "cache_line_size",
    "owner_of",
]
