"""memkit's pytest plugin: memory budgets, allocation counts and leak checks for tests.

Registered through the ``pytest11`` entry point, so it is active wherever memkit is
installed; it does nothing for a test that uses none of its markers, ini option, fixture
or report option. What it offers (docs/alloc.md, "pytest plugin"):

- ``@pytest.mark.memkit_limit("24 MiB")``: a budget for the test's peak net bytes
  (``memkit.alloc.limit``); ``memkit_limit(None)`` lifts the ini default for one test.
- ``@pytest.mark.memkit_max_allocations(n)``: at most ``n`` allocations.
- ``@pytest.mark.memkit_no_leaks(tolerance="0 B", warmups=1)``: run the test ``warmups``
  extra times, collect garbage, then fail if a last run keeps more than ``tolerance``.
- the ``memkit_limit`` ini option: a default budget for every test.
- the ``memkit_tracker`` fixture: a ``memkit.alloc.Tracker`` counting the test's call.
- ``--memkit-report``: a table of every test's peak net bytes, largest first.

Everything is measured on the test's own thread (``threads="current"``) and spans only
the call of the test function: fixtures' setup and teardown are not counted.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import sys
import types
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from memkit.alloc import Tracker

_MARKERS = (
    "memkit_limit(max_bytes): fail the test if its net allocated bytes would go over max_bytes "
    "(an int or a size like '24 MiB'); memkit_limit(None) lifts the memkit_limit ini default.",
    "memkit_max_allocations(n): fail the test if it makes more than n allocations.",
    "memkit_no_leaks(tolerance='0 B', warmups=1): run the test warmups extra times, collect garbage, "
    "then fail if another run keeps more than tolerance bytes.",
)

_P = inspect.Parameter
_SIGNATURES = {
    "memkit_limit": inspect.Signature([_P("max_bytes", _P.POSITIONAL_OR_KEYWORD)]),
    "memkit_max_allocations": inspect.Signature([_P("n", _P.POSITIONAL_OR_KEYWORD)]),
    "memkit_no_leaks": inspect.Signature(
        [_P("tolerance", _P.POSITIONAL_OR_KEYWORD, default="0 B"), _P("warmups", _P.POSITIONAL_OR_KEYWORD, default=1)]
    ),
}


@dataclass(frozen=True)
class _Plan:
    """What to measure and check in one test's call."""

    limit: int | None
    max_allocations: int | None
    leak_tolerance: int | None
    warmups: int
    report: bool


_PLAN = pytest.StashKey["_Plan | None"]()
_SCOPE = pytest.StashKey["Tracker"]()
_DEFAULT_LIMIT = pytest.StashKey["int | None"]()


# ---- options and markers --------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--memkit-report`` and the ``memkit_limit`` ini option."""
    group = parser.getgroup("memkit", "memkit: memory budgets and allocation counts")
    group.addoption(
        "--memkit-report",
        action="store_true",
        default=False,
        help="measure every test and print a table of their peak net bytes, largest first.",
    )
    parser.addini(
        "memkit_limit",
        "memkit: a default memory budget for every test, like '24 MiB' (the memkit_limit marker overrides it).",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, read the ini default and, with ``--memkit-report``, the reporter."""
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    default: int | None = None
    text = str(config.getini("memkit_limit")).strip()
    if text:
        from memkit.alloc import parse_size

        try:
            default = parse_size(text)
        except ValueError as exc:
            raise pytest.UsageError(f"ini option memkit_limit: {exc}") from None
    config.stash[_DEFAULT_LIMIT] = default
    if config.getoption("memkit_report") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Report(), "memkit-report")


def _usage(mark: pytest.Mark, problem: str) -> NoReturn:
    arguments = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    pytest.fail(f"usage error in @pytest.mark.{mark.name}({', '.join(arguments)}): {problem}", pytrace=False)


def _arguments(mark: pytest.Mark) -> dict[str, Any]:
    try:
        bound = _SIGNATURES[mark.name].bind(*mark.args, **mark.kwargs)
    except TypeError as exc:
        problem = str(exc)
    else:
        bound.apply_defaults()
        return bound.arguments
    _usage(mark, problem)  # outside the except block: no chained traceback in the report


def _size(mark: pytest.Mark, value: object) -> int:
    from memkit.alloc import parse_size

    if not isinstance(value, (int, str)):
        _usage(mark, f"a size is an int or a string like '24 MiB', got {type(value).__name__}")
    try:
        return parse_size(value)
    except (TypeError, ValueError) as exc:
        problem = str(exc)
    _usage(mark, problem)


def _count(mark: pytest.Mark, name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    _usage(mark, f"{name} must be an int >= 0, got {value!r}")


def _make_plan(item: pytest.Item) -> _Plan | None:
    if not isinstance(item, pytest.Function):
        return None
    limit = item.config.stash.get(_DEFAULT_LIMIT, None)
    max_allocations = leak_tolerance = None
    warmups = 0
    mark = item.get_closest_marker("memkit_limit")
    if mark is not None:
        value = _arguments(mark)["max_bytes"]
        limit = None if value is None else _size(mark, value)
    mark = item.get_closest_marker("memkit_max_allocations")
    if mark is not None:
        max_allocations = _count(mark, "n", _arguments(mark)["n"])
    mark = item.get_closest_marker("memkit_no_leaks")
    if mark is not None:
        arguments = _arguments(mark)
        leak_tolerance = _size(mark, arguments["tolerance"])
        warmups = _count(mark, "warmups", arguments["warmups"])
    report = bool(item.config.getoption("memkit_report"))
    wanted = "memkit_tracker" in item.fixturenames or report
    if limit is None and max_allocations is None and leak_tolerance is None and not wanted:
        return None
    return _Plan(limit, max_allocations, leak_tolerance, warmups, report)


def _plan(item: pytest.Item) -> _Plan | None:
    if _PLAN not in item.stash:
        item.stash[_PLAN] = _make_plan(item)
    return item.stash[_PLAN]


def _scope(item: pytest.Item, plan: _Plan) -> Tracker:
    """The tracker (a budget with memkit_limit) that counts this test's call."""
    if _SCOPE not in item.stash:
        from memkit import alloc

        item.stash[_SCOPE] = alloc.track() if plan.limit is None else alloc.limit(plan.limit)
    return item.stash[_SCOPE]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the test's memkit markers before its fixtures run: bad arguments are errors."""
    _plan(item)


@pytest.fixture
def memkit_tracker(request: pytest.FixtureRequest) -> Tracker:
    """A ``memkit.alloc.Tracker`` counting the test function's call (not fixtures' setup).

    The plugin enters it just around the call, so the test reads live numbers:
    ``memkit_tracker.allocations``, ``net_bytes``, ``peak_bytes``... With ``memkit_limit``
    it is the budget itself (a ``memkit.alloc.Limit``); with ``memkit_no_leaks`` it counts
    the last, checked run (the warm-up runs see zeros).
    """
    plan = _plan(request.node)
    if plan is None:
        pytest.fail(
            "memkit_tracker counts a test function's call: request it as an argument of the test", pytrace=False
        )
    return _scope(request.node, plan)


# ---- the measured call ----------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, None]:
    """Swap the test function for one that measures its call, for tests that ask for it."""
    plan = _plan(pyfuncitem)
    original = pyfuncitem.obj
    if plan is None or inspect.iscoroutinefunction(original) or inspect.isasyncgenfunction(original):
        yield
        return
    pyfuncitem.obj = _measured(pyfuncitem, plan, original)
    try:
        yield
    finally:
        pyfuncitem.obj = original
        with contextlib.suppress(KeyError):
            del pyfuncitem.stash[_SCOPE]  # a tracker is entered once: a rerun gets a new one


def _bind(function: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], object]:
    """``function`` with its arguments bound - positionally when its signature allows, since
    a call with keywords allocates (a dict, a kwnames tuple) inside the measured region."""
    if not kwargs and not args:
        return function
    try:
        parameters = list(inspect.signature(function, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    leading = parameters[: len(kwargs)]
    if (
        not args
        and [p.name for p in leading] == list(kwargs)
        and all(p.kind is _P.POSITIONAL_OR_KEYWORD for p in leading)
    ):
        return functools.partial(function, *kwargs.values())
    return functools.partial(function, *args, **kwargs)


@functools.cache
def _frame_new() -> Callable[[types.CodeType, dict[str, Any]], None] | None:
    """Python 3.10 only: a function that makes a frame for a code object, without running
    it, and drops it; None where the C API is out of reach."""
    try:
        import ctypes

        new = ctypes.pythonapi.PyFrame_New
        current = ctypes.pythonapi.PyThreadState_Get
    except (ImportError, AttributeError, OSError):
        return None
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object, ctypes.c_void_p]
    new.restype = ctypes.py_object  # a new reference, released when the result is dropped
    current.argtypes = []
    current.restype = ctypes.c_void_p

    def make(code: types.CodeType, globals_: dict[str, Any]) -> None:
        new(current(), code, globals_, None)

    return make


def _prime_frames(*functions: Callable[..., object]) -> None:
    """On Python 3.10, give these functions the frame objects their next calls will use.

    Python 3.10 frames are heap objects: a call takes its frame from the code object's
    cached "zombie" frame, and the first call of a code object allocates one (or takes one
    from the frame free list, grown to fit) and keeps it there afterwards. Making a frame
    for the code and dropping it (``PyFrame_New``, which runs nothing) does that first
    allocation here, before the counting starts, so a counted call reuses it. Called for
    the test function (behind a partial or a bound method, and the functions its
    decorators wrap, through ``__wrapped__``) and for the plugin's own functions that run
    inside a counted region; the functions a test calls are not known in advance. Python
    3.11+ keeps frames on a per-thread stack and needs none of this.
    """
    if sys.version_info >= (3, 11):
        return
    make = _frame_new()
    if make is None:
        return
    for function in functions:
        target: object = function
        for _ in range(100):  # a bounded walk: a __wrapped__ cycle ends it
            if isinstance(target, functools.partial):
                target = target.func
                continue
            if inspect.ismethod(target):
                target = target.__func__
                continue
            if isinstance(target, types.FunctionType):
                make(target.__code__, target.__globals__)
            target = getattr(target, "__wrapped__", None)
            if target is None:
                break


def _measured(item: pytest.Function, plan: _Plan, original: Callable[..., object]) -> Callable[..., object]:
    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> object:
        from memkit import alloc

        call = _bind(original, args, kwargs)
        _prime_frames(call, _call, _switches)  # memkit_no_leaks counts _call's frame too
        scope = _scope(item, plan)
        was_installed = alloc.installed()
        alloc.install()
        try:
            return _run(plan, call, scope)
        finally:
            if plan.report:
                item.user_properties.append(("memkit_peak_bytes", scope.peak_bytes))
                item.user_properties.append(("memkit_allocations", scope.allocations))
            if not was_installed:
                with contextlib.suppress(RuntimeError):  # a hook the test left on top (tracemalloc)
                    alloc.uninstall()

    return run


def _switches(tracker: Tracker) -> tuple[Callable[[], None], Callable[[], None]]:
    """The begin and end of a tracker's scope, bound before the region they delimit. Calling
    them allocates nothing, so the region counts exactly the code in between (``with
    tracker:`` would also count its own ``__exit__``)."""
    return tracker._scope.begin, tracker._scope.end


def _call(call: Callable[[], object], scope: Tracker) -> object:
    """Call the test inside ``scope``. Once the memkit_limit budget refused an allocation,
    whatever the test raised (the MemoryError, or an error some library made of it) fails
    it with a short message instead of a traceback."""
    from memkit.alloc import Limit

    begin, end = _switches(scope)
    begin()
    try:
        result = call()
    except Exception as exc:
        end()
        if not isinstance(scope, Limit) or scope.refused is None:
            raise
        refused = scope.refused
        message = (
            f"memkit_limit: the test went over its budget of {_bytes(scope.max_bytes)}\n"
            f"an allocation of {_bytes(refused)} was refused; the test's peak was {_bytes(scope.peak_bytes)}"
        )
        if not isinstance(exc, MemoryError):
            message += f"\nthen it raised {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    except BaseException:
        end()
        raise
    else:
        end()
        return result
    pytest.fail(message, pytrace=False)  # outside the except block: no chained traceback


def _run(plan: _Plan, call: Callable[[], object], scope: Tracker) -> object:
    """The test's call in ``scope`` (after warm-up runs with memkit_no_leaks), then the checks."""
    from memkit import alloc

    problems = []
    if plan.leak_tolerance is None:
        result = _call(call, scope)
    else:
        for _ in range(plan.warmups):
            call()
        gc.collect()
        kept = alloc.track()
        begin, end = _switches(kept)
        begin()
        try:
            result = _call(call, scope)
            gc.collect()
        finally:
            end()
        if kept.net_bytes > plan.leak_tolerance:
            runs = "run" if plan.warmups == 1 else "runs"
            problems.append(
                f"memkit_no_leaks: the test kept {_bytes(kept.net_bytes)} after {plan.warmups} warm-up {runs} "
                f"and gc.collect(), over its tolerance of {_bytes(plan.leak_tolerance)}"
            )
    if plan.max_allocations is not None and scope.allocations > plan.max_allocations:
        problems.insert(
            0,
            f"memkit_max_allocations: the test made {scope.allocations:,} allocations, "
            f"over its limit of {plan.max_allocations:,}",
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    return result


# ---- the report ----------------------------------------------------------------------------


def _human(n: int) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if round(abs(n) / size, 1) >= 1:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


def _bytes(n: int) -> str:
    return f"{n:,} bytes" if abs(n) < 1024 else f"{n:,} bytes ({_human(n)})"


class _Report:
    """Collects each test's numbers from its call report (sent by xdist workers too) and
    prints them at the end."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, int]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take ``memkit_peak_bytes`` and ``memkit_allocations`` from a call report."""
        if report.when != "call":
            return
        properties = dict(report.user_properties)
        peak, count = properties.get("memkit_peak_bytes"), properties.get("memkit_allocations")
        if isinstance(peak, int) and isinstance(count, int):
            self.rows[report.nodeid] = (peak, count)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the table, largest peak first."""
        terminalreporter.write_sep("=", "memkit: peak net bytes per test")
        rows = sorted(self.rows.items(), key=lambda row: (-row[1][0], row[0]))
        lines = [("peak bytes", "peak", "allocations", "test")]
        lines += [(f"{peak:,}", _human(peak), f"{count:,}", nodeid) for nodeid, (peak, count) in rows]
        w0, w1, w2 = (max(len(line[i]) for line in lines) for i in range(3))
        for exact, human, count, nodeid in lines:
            terminalreporter.write_line(f"{exact:>{w0}}  {human:>{w1}}  {count:>{w2}}  {nodeid}")
        if not rows:
            terminalreporter.write_line("(no test was measured)")
