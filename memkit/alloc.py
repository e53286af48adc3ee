"""memkit.alloc: the allocator hook - allocation statistics for the whole interpreter.

``install()`` puts memkit's layer over CPython's raw, mem and object allocator domains
(``PyMem_SetAllocator``), wrapping whatever allocator was there, and counts every block
with its true size (kept in a shadow map beside the heap, not in the block, so frees are
exact and blocks keep their size class).
``stats()`` returns the counters since install; ``uninstall()`` stops counting.

What is counted: every allocation CPython and extensions make through ``PyMem_*`` and
``PyObject_*`` while installed. What is not: memory C libraries take straight from
``malloc``/``mmap`` (NumPy's array data, for instance) and blocks allocated before
``install()`` (they are freed correctly, and their frees are not counted either).

``track()`` counts what a block of code allocates; ``limit()`` gives it a hard budget. The
pytest plugin (``memkit.pytest_plugin``) and the ``python -m memkit run`` command build on
these (docs/alloc.md, docs/cli.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

from ._native import core as _core

__all__ = [
    "AllocStats",
    "DomainStats",
    "Limit",
    "MemoryLimitError",
    "Tracker",
    "install",
    "installed",
    "limit",
    "parse_size",
    "reset_peak",
    "stats",
    "track",
    "uninstall",
]

_alloc = _core.alloc
_TrackerT = TypeVar("_TrackerT", bound="Tracker")


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
    histogram: dict[int, int]
    """Allocations by size in power-of-two buckets: ``{upper: count}`` counts allocations of
    more than ``upper // 2`` and at most ``upper`` bytes (``1`` counts 0- and 1-byte ones).
    Only non-empty buckets appear, smallest first."""


@dataclass(frozen=True)
class AllocStats(DomainStats):
    """Counters of every domain together since install, and ``by_domain`` one by one."""

    by_domain: dict[str, DomainStats] = field(default_factory=dict)
    """``{"raw": ..., "mem": ..., "object": ...}``."""


def _domain(raw: dict[str, Any]) -> DomainStats:
    return DomainStats(
        allocations=raw["allocations"],
        frees=raw["frees"],
        reallocs=raw["reallocs"],
        current_bytes=raw["current_bytes"],
        peak_bytes=raw["peak_bytes"],
        total_bytes=raw["total_bytes"],
        histogram=dict(raw["histogram"]),
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
        histogram=dict(raw["histogram"]),
        by_domain=by_domain,
    )


def reset_peak() -> None:
    """Set every peak (total and per domain) to the current live bytes."""
    _alloc.reset_peak()


_UNITS = {
    "": 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(size: int | str) -> int:
    """Bytes from an int or a string: ``"64 MiB"``, ``"1.5 GB"``, ``"4096"``, ``"10 B"``.

    KiB/MiB/GiB/TiB are powers of 1024, KB/MB/GB/TB powers of 1000 (case-insensitive); a
    bare number or ``B`` is bytes. Anything else - a negative number, another unit - is a
    ``ValueError``; a type other than int or str is a ``TypeError``.
    """
    if isinstance(size, bool) or not isinstance(size, (int, str)):
        raise TypeError(f"size must be an int or a string like '64 MiB', got {type(size).__name__}")
    if isinstance(size, int):
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        return size
    match = _SIZE.fullmatch(size)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"size must be a number of bytes or like '64 MiB' / '1.5 GB', got {size!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def _threads_flag(threads: str) -> bool:
    if threads not in ("current", "all"):
        raise ValueError(f"threads must be 'current' or 'all', got {threads!r}")
    return threads == "all"


class Tracker:
    """What a block of code allocates: a context manager made by :func:`track`.

    ``allocations``, ``frees``, ``allocated_bytes``, ``freed_bytes``, ``net_bytes``
    (allocated minus freed; negative when the block frees more than it allocates) and
    ``peak_bytes`` (the high-water mark of ``net_bytes``) count the current thread's
    allocations inside the block - or every thread's with ``threads="all"``. They can be
    read during and after the block. Trackers nest: each counts everything inside it.
    """

    __slots__ = ("_scope",)

    def __init__(self, threads: Literal["current", "all"] = "current", *, _limit: int = -1) -> None:
        self._scope = _alloc._Scope(_limit, _threads_flag(threads))

    def __enter__(self: _TrackerT) -> _TrackerT:  # a Limit's with block binds the Limit
        install()
        self._scope.begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._scope.end()

    @property
    def allocations(self) -> int:
        """Blocks allocated inside the block."""
        return int(self._scope.allocations)

    @property
    def frees(self) -> int:
        """Counted blocks freed inside the block (blocks allocated before install are not)."""
        return int(self._scope.frees)

    @property
    def allocated_bytes(self) -> int:
        """Bytes allocated inside the block (realloc growth included)."""
        return int(self._scope.allocated_bytes)

    @property
    def freed_bytes(self) -> int:
        """Bytes freed inside the block (realloc shrinking included)."""
        return int(self._scope.freed_bytes)

    @property
    def net_bytes(self) -> int:
        """``allocated_bytes - freed_bytes``."""
        return int(self._scope.net_bytes)

    @property
    def peak_bytes(self) -> int:
        """The highest ``net_bytes`` reached inside the block."""
        return int(self._scope.peak_bytes)

    def __repr__(self) -> str:
        return (
            f"<Tracker allocations={self.allocations} frees={self.frees} "
            f"net_bytes={self.net_bytes} peak_bytes={self.peak_bytes}>"
        )


def track(threads: Literal["current", "all"] = "current") -> Tracker:
    """Count what a block allocates (installs the hook if needed; it stays installed).

    Example:
        >>> import memkit.alloc as alloc
        >>> with alloc.track() as t:
        ...     data = [bytes(1000) for _ in range(100)]
        >>> t.allocations >= 100 and t.net_bytes >= 100_000
        True
    """
    return Tracker(threads)


class MemoryLimitError(MemoryError):
    """An allocation inside a :func:`limit` block would have gone over its budget.

    ``limit`` is the budget, ``net_bytes`` what the block held when the allocation was
    refused, and ``request`` the size it asked for.
    """

    def __init__(self, limit: int, net_bytes: int, request: int) -> None:
        super().__init__(
            f"memory budget of {limit} bytes exceeded: the block held {net_bytes} bytes and asked for {request} more"
        )
        self.limit = limit
        self.net_bytes = net_bytes
        self.request = request


class Limit(Tracker):
    """A :class:`Tracker` with a hard budget: made by :func:`limit`."""

    __slots__ = ("max_bytes",)

    def __init__(self, max_bytes: int, threads: Literal["current", "all"] = "current") -> None:
        super().__init__(threads, _limit=max_bytes)
        self.max_bytes = max_bytes

    @property
    def refused(self) -> int | None:
        """The size of the first allocation the budget refused, or ``None`` if none was.

        Set even when the code inside caught the ``MemoryError`` and carried on.
        """
        refused = int(self._scope.refused)
        return refused if refused >= 0 else None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # End the budget first, before anything here allocates: super() makes an object, and
        # if that allocation were refused the budget would stay on after the block.
        self._scope.end()
        refused = self.refused
        if refused is not None and isinstance(exc, MemoryError) and not isinstance(exc, MemoryLimitError):
            raise MemoryLimitError(self.max_bytes, self.net_bytes, refused) from exc


def limit(max_bytes: int | str, threads: Literal["current", "all"] = "current") -> Limit:
    """A memory budget for a block: an allocation that would take the block's net bytes past
    ``max_bytes`` fails before it is made (a realloc is charged only its growth).

    CPython turns the refused allocation into ``MemoryError`` where it happened; leaving the
    block converts that into :class:`MemoryLimitError` (a ``MemoryError``) naming the limit,
    the net bytes and the request. Code inside that catches the ``MemoryError`` carries on,
    and the block then exits normally. ``max_bytes`` takes ints and strings like
    ``"64 MiB"`` (see :func:`parse_size`). After the first refusal the block gets 1 MiB of
    grace, so that raising and handling the error (tracebacks, frames) can still allocate.
    With ``threads="all"`` the budget and its grace are shared by every thread.

    Example:
        >>> import memkit.alloc as alloc
        >>> try:
        ...     with alloc.limit("1 MiB"):
        ...         data = bytearray(2 * 1024 * 1024)
        ... except alloc.MemoryLimitError as exc:
        ...     exc.limit, exc.request >= 2 * 1024 * 1024
        (1048576, True)
    """
    return Limit(parse_size(max_bytes), threads)
