"""memkit.atomic: lock-free integers and cache padding.

``AtomicInt``, ``AtomicBool`` and ``AtomicIntArray`` are Rust's atomics with Rust's
``Ordering`` rules; ``from_buffer`` puts them inside shared memory so several processes
can count together. ``AtomicIntArray(padded=True)`` and ``ShardedCounter`` keep hot values
``CACHE_PAD`` bytes apart so threads on different cores do not false-share a cache line.
"""

from __future__ import annotations

import enum

from ._native import core as _core

__all__ = [
    "CACHE_PAD",
    "AtomicBool",
    "AtomicInt",
    "AtomicIntArray",
    "Ordering",
    "ShardedCounter",
    "cache_line_size",
]


class Ordering(enum.IntEnum):
    """Memory orderings, as Rust's ``std::sync::atomic::Ordering`` (and C++'s ``memory_order``).

    Every atomic operation takes ``order=`` (default ``SEQ_CST``). An ordering that is
    meaningless for the operation raises ``ValueError``, as Rust panics: loads reject
    ``RELEASE`` and ``ACQ_REL``, stores reject ``ACQUIRE`` and ``ACQ_REL``, and the failure
    ordering of a compare-exchange rejects ``RELEASE`` and ``ACQ_REL``.
    """

    RELAXED = 0
    """Atomicity only: no ordering with other memory operations."""
    ACQUIRE = 1
    """Loads: later reads and writes stay after it (pairs with a RELEASE store)."""
    RELEASE = 2
    """Stores: earlier reads and writes stay before it (pairs with an ACQUIRE load)."""
    ACQ_REL = 3
    """Read-modify-writes: ACQUIRE and RELEASE at once."""
    SEQ_CST = 4
    """ACQ_REL plus one total order of all SEQ_CST operations that every thread agrees on."""


_atomic = _core.atomic

AtomicInt = _atomic.AtomicInt
AtomicBool = _atomic.AtomicBool
AtomicIntArray = _atomic.AtomicIntArray
ShardedCounter = _atomic.ShardedCounter

#: The padding that keeps two hot values off each other's cache lines: crossbeam's table -
#: 128 bytes on x86_64, aarch64 and powerpc64 (adjacent-line prefetch pulls cache lines in
#: pairs), 256 on s390x, 64 elsewhere.
CACHE_PAD: int = _atomic.CACHE_PAD


def cache_line_size() -> int:
    """The L1 data cache line size the operating system reports, or 0 when it reports none.

    ``CACHE_PAD`` can be larger: it accounts for prefetchers that fetch lines in pairs.
    """
    return int(_atomic.cache_line_size())
