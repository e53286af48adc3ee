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
from .alloc import AllocStats, MemoryLimitError, Tracker
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
from .cell import (
    BorrowError,
    BorrowMutError,
    BorrowStateError,
    Cell,
    OnceCell,
    Ref,
    RefCell,
    RefMut,
    debug_borrows,
)
from .cow import Cow
from .guard import ScopeGuard, defer, on_error, on_success, restoring, restoring_item
from .slotmap import SlotMap, key_generation, key_index
from .sync import Condvar, Mutex, MutexGuard, PoisonError, ReadGuard, RwLock, WriteGuard, lock_all

__all__ = [
    "CACHE_PAD",
    "MAX_ALIGN",
    "AlignedBuffer",
    "AllocStats",
    "Arena",
    "ArenaBuffer",
    "ArenaScope",
    "AtomicBool",
    "AtomicInt",
    "AtomicIntArray",
    "BorrowError",
    "BorrowMutError",
    "BorrowStateError",
    "BufferPool",
    "Cell",
    "Condvar",
    "Cow",
    "MemoryLimitError",
    "Mutex",
    "MutexGuard",
    "OnceCell",
    "Ordering",
    "PoisonError",
    "PooledBuffer",
    "ReadGuard",
    "Ref",
    "RefCell",
    "RefMut",
    "RwLock",
    "ScopeGuard",
    "ShardedCounter",
    "SlotMap",
    "Tracker",
    "WriteGuard",
    "__version__",
    "aligned_empty",
    "aligned_zeros",
    "cache_line_size",
    "debug_borrows",
    "defer",
    "key_generation",
    "key_index",
    "lock_all",
    "on_error",
    "on_success",
    "owner_of",
    "restoring",
    "restoring_item",
]
