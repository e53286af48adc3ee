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
from .layout import (
    Array,
    ArrayView,
    Bytes,
    Layout,
    LayoutError,
    SoA,
    Struct,
    align_of,
    bool_,
    c_char,
    describe,
    f32,
    f64,
    from_ctypes,
    i8,
    i16,
    i32,
    i64,
    offset_of,
    optimize,
    ptr,
    size_of,
    u8,
    u16,
    u32,
    u64,
)
from .slotmap import SlotMap, key_generation, key_index
from .sync import Condvar, Mutex, MutexGuard, PoisonError, ReadGuard, RwLock, WriteGuard, lock_all

# memkit.layout.struct stays in memkit.layout: `from memkit import *` must not shadow the
# stdlib's struct module (API.md).
__all__ = [
    "CACHE_PAD",
    "MAX_ALIGN",
    "AlignedBuffer",
    "AllocStats",
    "Arena",
    "ArenaBuffer",
    "ArenaScope",
    "Array",
    "ArrayView",
    "AtomicBool",
    "AtomicInt",
    "AtomicIntArray",
    "BorrowError",
    "BorrowMutError",
    "BorrowStateError",
    "BufferPool",
    "Bytes",
    "Cell",
    "Condvar",
    "Cow",
    "Layout",
    "LayoutError",
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
    "SoA",
    "Struct",
    "Tracker",
    "WriteGuard",
    "__version__",
    "align_of",
    "aligned_empty",
    "aligned_zeros",
    "bool_",
    "c_char",
    "cache_line_size",
    "debug_borrows",
    "defer",
    "describe",
    "f32",
    "f64",
    "from_ctypes",
    "i8",
    "i16",
    "i32",
    "i64",
    "key_generation",
    "key_index",
    "lock_all",
    "offset_of",
    "on_error",
    "on_success",
    "optimize",
    "owner_of",
    "ptr",
    "restoring",
    "restoring_item",
    "size_of",
    "u8",
    "u16",
    "u32",
    "u64",
]
