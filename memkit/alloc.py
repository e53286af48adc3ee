"""memkit.alloc: the allocator hook - allocation statistics for the whole interpreter.

``install()`` puts memkit's layer over CPython's raw, mem and object allocator domains
(``PyMem_SetAllocator``), wrapping whatever allocator was there, and counts every block
with its true size (kept in a 16-byte header in front of the block, so frees are exact).
``stats()`` returns the counters since install; ``uninstall()`` stops counting.

What is counted: every allocation CPython and extensions make through ``PyMem_*`` and
``PyObject_*`` while installed. What is not: memory C libraries take straight from
``malloc``/``mmap`` (NumPy's array data, for instance) and blocks allocated before
``install()`` (they are freed correctly, and their frees are not counted either).

Scoped tracking (``track``), budgets (``limit``), the ``python -m memkit run`` command and
the pytest plugin build on this layer (see docs/alloc.md for what exists today).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._native import core as _core

__all__ = ["AllocStats", "DomainStats", "install", "installed", "reset_peak", "stats", "uninstall"]

_alloc = _core.alloc


@dataclass(frozen=True)
class DomainStats:
    """Counters of one allocator domain (``raw``, ``mem`` or ``object``) since install."""

    allocations: int
    """Blocks allocated (malloc, calloc, and realloc of NULL)."""
    frees: int
    """Counted blocks freed."""
    reallocs: int
    """Counted blocks resized."""
    current_bytes: int
    """Bytes allocated since install and not yet freed."""
    peak_bytes: int
    """The high-water mark of ``current_bytes`` (see ``reset_peak``)."""
    total_bytes: int
    """Every byte handed out: allocations plus the growth of reallocs."""


@dataclass(frozen=True)
class AllocStats(DomainStats):
    """Counters of every domain together since install, and ``by_domain`` one by one."""

    by_domain: dict[str, DomainStats] = field(default_factory=dict)
    """``{"raw": ..., "mem": ..., "object": ...}``."""


def _domain(raw: dict[str, int]) -> DomainStats:
    return DomainStats(
        allocations=raw["allocations"],
        frees=raw["frees"],
        reallocs=raw["reallocs"],
        current_bytes=raw["current_bytes"],
        peak_bytes=raw["peak_bytes"],
        total_bytes=raw["total_bytes"],
    )


def install() -> None:
    """Start counting every allocation in the raw, mem and object domains.

    Idempotent. Counters restart from zero at each install. Works beside ``tracemalloc`` in
    either order: each counts what passes through it.
    """
    _alloc.install()


def uninstall() -> None:
    """Stop counting. Blocks allocated while installed are still freed correctly afterwards.

    Raises ``RuntimeError`` - and keeps counting - if another hook (``tracemalloc``,
    memray) was installed on top of memkit's: stop that one first.
    """
    _alloc.uninstall()


def installed() -> bool:
    """Whether memkit is counting allocations now."""
    return bool(_alloc.installed())


def stats() -> AllocStats:
    """The counters since install, for all threads: totals and ``by_domain``.

    Example:
        >>> import memkit.alloc as alloc
        >>> alloc.install()
        >>> data = [str(i) for i in range(1000)]
        >>> s = alloc.stats()
        >>> s.allocations >= 1000 and s.current_bytes > 0 and s.peak_bytes >= s.current_bytes
        True
        >>> alloc.uninstall()
    """
    raw = _alloc.stats()
    by_domain = {name: _domain(values) for name, values in raw["by_domain"].items()}
    return AllocStats(
        allocations=raw["allocations"],
        frees=raw["frees"],
        reallocs=raw["reallocs"],
        current_bytes=raw["current_bytes"],
        peak_bytes=raw["peak_bytes"],
        total_bytes=raw["total_bytes"],
        by_domain=by_domain,
    )


def reset_peak() -> None:
    """Set every peak (total and per domain) to the current live bytes."""
    _alloc.reset_peak()
