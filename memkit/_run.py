"""`python -m memkit run`: run a script as ``python script.py`` would, with the allocator hook on.

:func:`run_script` runs it and returns a :class:`RunReport` (the exit code, the uncaught
exception if any, the counters); :func:`format_summary` makes the human summary and
:func:`report_to_json` the JSON object.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import alloc

__all__ = ["LimitReport", "RunReport", "format_summary", "human_bytes", "report_to_json", "run_script"]

EXIT_INTERRUPTED = 130  # what a shell reports for a program ended by Ctrl-C (128 + SIGINT)


@dataclass(frozen=True)
class LimitReport:
    """How the script did against its ``--limit`` budget (all threads)."""

    max_bytes: int
    """The budget."""
    peak_bytes: int
    """The highest net bytes the script held."""
    net_bytes: int
    """Net bytes held when the script ended."""
    refused: int | None
    """The size of the first allocation refused, or ``None`` when the budget held."""
    raised: bool
    """Whether the refusal ended the script (``MemoryLimitError``) rather than being caught by it."""


@dataclass(frozen=True)
class RunReport:
    """What :func:`run_script` saw: how the script ended and what it allocated."""

    script: str
    """The script path as given."""
    argv: list[str]
    """``sys.argv`` as the script saw it."""
    exit_code: int
    """The exit status ``python script.py`` would have had."""
    outcome: BaseException | None
    """What ended the script: ``None`` when it ran to the end, else the exception that escaped
    it (``SystemExit`` included)."""
    elapsed_seconds: float
    """Wall time of the run."""
    stats: alloc.AllocStats
    """The allocation counters, taken as soon as the script (and its non-daemon threads) ended."""
    limit: LimitReport | None
    """The budget and how it went, or ``None`` without ``--limit``."""

    @property
    def error(self) -> BaseException | None:
        """The uncaught exception that ended the script; ``None`` for ``SystemExit``."""
        return None if isinstance(self.outcome, SystemExit) else self.outcome


class ScriptNotFoundError(OSError):
    """The script cannot be opened (the ``python`` command's "can't open file")."""


def _check_script(script: str) -> None:
    if os.path.isdir(script):
        return  # runpy runs a directory's __main__.py, as python does
    try:
        with open(script, "rb"):
            pass
    except OSError as exc:
        raise ScriptNotFoundError(
            exc.errno, f"can't open file {os.path.abspath(script)!r}: [Errno {exc.errno}] {exc.strerror}"
        ) from exc


def _script_dir(script: str) -> str:
    """What python puts first on ``sys.path`` for ``python script``."""
    if os.path.isdir(script):
        return os.path.abspath(script)
    return os.path.dirname(os.path.realpath(script))


def _wait_for_threads(before: set[threading.Thread]) -> None:
    """Join the non-daemon threads the script started, as the interpreter does at exit."""
    while True:
        pending = [
            t
            for t in threading.enumerate()
            if t not in before and t is not threading.current_thread() and not t.daemon and t.is_alive()
        ]
        if not pending:
            return
        for thread in pending:
            thread.join()


def _without_runner_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the script's first frame on: drop this module's and runpy's frames."""
    runner = (globals(), vars(runpy))
    while tb is not None and any(tb.tb_frame.f_globals is g for g in runner):
        tb = tb.tb_next
    return tb


def _as_python_would_show(exc: BaseException) -> BaseException:
    """The exception to print for an uncaught ``exc``, with the runner's frames left out.

    A ``MemoryLimitError`` raised by leaving the budget gets the traceback (and the chain) of
    the ``MemoryError`` it replaced, so that it points at the allocation that was refused.
    """
    cause = exc.__cause__
    if isinstance(exc, alloc.MemoryLimitError) and isinstance(cause, MemoryError):
        exc.__cause__ = cause.__cause__
        exc.__context__ = cause.__context__
        exc.__suppress_context__ = cause.__suppress_context__
        exc.__traceback__ = cause.__traceback__
    return exc.with_traceback(_without_runner_frames(exc.__traceback__))


def _exit_code(exc: BaseException | None) -> int:
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return int(exc.code)  # sys.exit(True) is 1
        return 1
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return 1


def report_exit(report: RunReport) -> None:
    """Print what python prints when the script ends as it did: the ``sys.exit`` message or
    the traceback (through ``sys.excepthook``), on ``sys.stderr``."""
    exc = report.outcome
    if exc is None:
        return
    if isinstance(exc, SystemExit):
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        return
    shown = _as_python_would_show(exc)
    sys.excepthook(type(shown), shown, shown.__traceback__)


def run_script(script: str, args: list[str], max_bytes: int | None = None) -> RunReport:
    """Run ``script`` with ``args`` as ``python script args...`` would, counting its allocations.

    The script runs as ``__main__`` with ``sys.argv == [script, *args]`` and the script's
    directory first on ``sys.path`` (both restored afterwards); the allocator hook is
    installed just before it starts and uninstalled after. ``max_bytes`` puts the whole run
    (all threads) under :func:`memkit.alloc.limit`. Exceptions do not escape: the one that
    ended the script (``SystemExit`` included) is turned into the exit code and kept in the
    report; print it with :func:`report_exit`. Raises :class:`ScriptNotFoundError` when the
    script cannot be opened.
    """
    _check_script(script)
    argv = [script, *args]
    saved_argv, saved_path = sys.argv, sys.path[:]
    threads_before = set(threading.enumerate())
    budget: alloc.Limit | None = None
    outcome: BaseException | None = None
    namespace: dict[str, Any] | None = None
    sys.argv = list(argv)
    if sys.path:
        sys.path[0] = _script_dir(script)
    else:
        sys.path.append(_script_dir(script))
    started = time.perf_counter()
    try:
        alloc.install()
        if max_bytes is not None:
            budget = alloc.limit(max_bytes, threads="all")
        scope: AbstractContextManager[object] = budget if budget is not None else nullcontext()
        try:
            with scope:
                try:
                    namespace = runpy.run_path(script, run_name="__main__")
                finally:
                    _wait_for_threads(threads_before)
        except BaseException as exc:  # the script's fate, whatever it is, goes in the report
            outcome = exc
        stats = alloc.stats()  # before anything else allocates
    finally:
        elapsed = time.perf_counter() - started
        try:
            alloc.uninstall()
        except RuntimeError as exc:  # the script left tracemalloc (or another hook) on top
            print(f"memkit run: the allocator hook stays installed: {exc}", file=sys.stderr)
        sys.argv = saved_argv
        sys.path[:] = saved_path
    del namespace  # the script's globals lived until the counters were read
    limit_report = None
    if budget is not None:
        refused = budget.refused
        limit_report = LimitReport(
            max_bytes=budget.max_bytes,
            peak_bytes=budget.peak_bytes,
            net_bytes=budget.net_bytes,
            refused=refused,
            raised=isinstance(outcome, alloc.MemoryLimitError),
        )
    return RunReport(
        script=script,
        argv=argv,
        exit_code=_exit_code(outcome),
        outcome=outcome,
        elapsed_seconds=elapsed,
        stats=stats,
        limit=limit_report,
    )


def human_bytes(n: int) -> str:
    """``n`` bytes for people: ``"512 B"``, ``"1.5 KiB"``, ``"4 MiB"`` (powers of 1024, one decimal)."""
    size = float(abs(n))
    sign = "-" if n < 0 else ""
    if size < 1024:
        return f"{sign}{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    text = f"{size:.1f}".removesuffix(".0")
    return f"{sign}{text} {unit}"


def _both(n: int) -> str:
    """``"9.5 MiB (10,000,001 B)"``; just ``"32 B"`` when that is already exact."""
    human = human_bytes(n)
    return human if human.endswith(" B") else f"{human} ({n:,} B)"


_HIST_BAR = 24


def _coarse_histogram(histogram: dict[int, int]) -> list[tuple[int, int]]:
    """Power-of-two buckets merged into power-of-four rows ``(upper, count)`` from ``<= 16 B``
    up to the largest non-empty one; each row counts sizes above the row before it."""
    rows: dict[int, int] = {}
    for upper, count in histogram.items():
        bits = max(upper.bit_length() - 1, 4)
        bits += bits % 2
        rows[1 << bits] = rows.get(1 << bits, 0) + count
    if not rows:
        return []
    top = max(rows)
    out = []
    upper = 16
    while upper <= top:
        out.append((upper, rows.get(upper, 0)))
        upper *= 4
    return out


def format_summary(report: RunReport) -> str:
    """The human summary of a run: totals and domains, the budget, a size histogram."""
    s = report.stats
    how = f"exited with code {report.exit_code}"
    if report.error is not None:
        how += f" ({type(report.error).__name__})"
    lines = [f"memkit run: {report.script} {how} after {report.elapsed_seconds:.2f} s"]
    lines.append(f"  {'':<8}{'allocations':>12}{'frees':>12}{'reallocs':>10}{'peak':>11}{'current':>11}{'total':>11}")
    rows: list[tuple[str, alloc.DomainStats]] = [("all", s), *s.by_domain.items()]
    for name, d in rows:
        lines.append(
            f"  {name:<8}{d.allocations:>12,}{d.frees:>12,}{d.reallocs:>10,}"
            f"{human_bytes(d.peak_bytes):>11}{human_bytes(d.current_bytes):>11}{human_bytes(d.total_bytes):>11}"
        )
    lines.append(f"  bytes: peak {s.peak_bytes:,}, current at exit {s.current_bytes:,}, total {s.total_bytes:,}")
    budget = report.limit
    if budget is not None:
        if budget.refused is None:
            lines.append(f"  budget {_both(budget.max_bytes)}: peak {human_bytes(budget.peak_bytes)}, within budget")
        else:
            caught = "" if budget.raised else "; the script caught the MemoryError"
            lines.append(
                f"  budget exceeded: {_both(budget.max_bytes)}; refused a request of {_both(budget.refused)}{caught}"
            )
    histogram = _coarse_histogram(s.histogram)
    if histogram:
        lines.append("  allocations by size (each row: above the row before, up to its size)")
        most = max(count for _, count in histogram)
        for upper, count in histogram:
            bar = "#" * max(1, round(_HIST_BAR * count / most)) if count else ""
            lines.append(f"  {'<= ' + human_bytes(upper):>12}{count:>12,}  {bar}".rstrip())
    return "\n".join(lines)


def _domain_json(d: alloc.DomainStats) -> dict[str, Any]:
    return {
        "allocations": d.allocations,
        "frees": d.frees,
        "reallocs": d.reallocs,
        "peak_bytes": d.peak_bytes,
        "current_bytes": d.current_bytes,
        "total_bytes": d.total_bytes,
        "histogram": [[upper, count] for upper, count in sorted(d.histogram.items())],
    }


def _type_name(cls: type[BaseException]) -> str:
    """``ValueError``, ``memkit.alloc.MemoryLimitError``: the name as a traceback shows it."""
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def report_to_json(report: RunReport) -> dict[str, Any]:
    """The report as one JSON-ready object (exact integers; see docs/cli.md for the shape)."""
    budget = report.limit
    error = report.error
    return {
        "script": report.script,
        "argv": report.argv,
        "exit_code": report.exit_code,
        "error": None if error is None else {"type": _type_name(type(error)), "message": str(error)},
        "elapsed_seconds": round(report.elapsed_seconds, 6),
        **_domain_json(report.stats),
        "by_domain": {name: _domain_json(d) for name, d in report.stats.by_domain.items()},
        "limit": None
        if budget is None
        else {"max_bytes": budget.max_bytes, "peak_bytes": budget.peak_bytes, "net_bytes": budget.net_bytes},
        "limit_exceeded": None
        if budget is None or budget.refused is None
        else {"request": budget.refused, "net_bytes": budget.net_bytes, "raised": budget.raised},
    }
