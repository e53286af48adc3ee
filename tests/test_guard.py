"""defer, ScopeGuard, on_success, on_error, restoring, restoring_item (API.md, memkit.guard)."""

from __future__ import annotations

import gc
import os
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from memkit import ScopeGuard, defer, on_error, on_success, restoring, restoring_item


def test_defer_runs_on_normal_exit_and_on_exception() -> None:
    log: list[str] = []
    with defer(log.append, "a"):
        log.append("body")
    with pytest.raises(ValueError):
        with defer(log.append, "b"):
            raise ValueError
    assert log == ["body", "a", "b"]


def test_defer_passes_args_and_kwargs() -> None:
    seen: list[Any] = []
    with defer(lambda *a, **k: seen.append((a, k)), 1, 2, key="v"):
        pass
    assert seen == [((1, 2), {"key": "v"})]


def test_disarm_cancels() -> None:
    log: list[str] = []
    with defer(log.append, "x") as guard:
        assert guard.armed
        guard.disarm()
        guard.disarm()
    assert log == [] and not guard.armed


def test_guard_fires_once_even_when_run_early() -> None:
    log: list[str] = []
    with defer(log.append, "x") as guard:
        guard.run()
    guard.run()
    assert log == ["x"]


def test_on_success_and_on_error() -> None:
    log: list[str] = []
    with on_success(log.append, "commit"), on_error(log.append, "rollback"):
        pass
    with pytest.raises(KeyError):
        with on_success(log.append, "commit2"), on_error(log.append, "rollback2"):
            raise KeyError
    with pytest.raises(KeyboardInterrupt):
        with on_error(log.append, "interrupted"):
            raise KeyboardInterrupt
    assert log == ["commit", "rollback2", "interrupted"]


def test_nested_guards_unwind_in_reverse_order() -> None:
    log: list[int] = []
    with defer(log.append, 1), defer(log.append, 2):
        with defer(log.append, 3):
            pass
    assert log == [3, 2, 1]


def test_guard_collected_outside_a_with_block_runs_like_a_drop() -> None:
    log: list[str] = []
    guard = defer(log.append, "dropped")
    success = on_success(log.append, "success")
    error = on_error(log.append, "error")
    del guard, success, error
    gc.collect()
    assert sorted(log) == ["dropped", "success"]


def test_callback_exception_propagates_chained_to_the_block_error() -> None:
    def fail() -> None:
        raise RuntimeError("cleanup failed")

    with pytest.raises(RuntimeError, match="cleanup failed") as info:
        with defer(fail):
            raise ValueError("body failed")
    assert isinstance(info.value.__context__, ValueError)


def test_generators_closed_early_count_as_normal_exit() -> None:
    log: list[str] = []

    def gen() -> Iterator[int]:
        with on_success(log.append, "success"), on_error(log.append, "error"), defer(log.append, "always"):
            yield 1
            yield 2

    g = gen()
    next(g)
    g.close()
    assert log == ["always", "success"]

    def failing() -> Iterator[int]:
        with on_error(log.append, "gen error"):
            yield 1
            raise ValueError

    g2 = failing()
    next(g2)
    with pytest.raises(ValueError):
        next(g2)
    assert log[-1] == "gen error"


def test_threads_exiting_one_guard_fire_it_once(run_concurrently: Callable[..., list[Any]]) -> None:
    count = [0]
    lock = threading.Lock()

    def bump() -> None:
        with lock:
            count[0] += 1

    for _ in range(50):
        guard = defer(bump)
        run_concurrently(lambda i, g=guard: g.run(), 4)
    assert count[0] == 50


def test_defer_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="fn must be callable, got int"):
        defer(3)  # type: ignore[arg-type]
    guard = defer(print)
    assert isinstance(guard, ScopeGuard)
    guard.disarm()


# ---- restoring ------------------------------------------------------------------------------------


def test_restoring_sets_now_and_restores_on_exit_and_exception() -> None:
    ns = types.SimpleNamespace(level=1)
    guard = restoring(ns, "level", 2)
    assert ns.level == 2
    with guard:
        ns.level = 3
    assert ns.level == 1
    with pytest.raises(ZeroDivisionError):
        with restoring(ns, "level", 9):
            _ = 1 / 0
    assert ns.level == 1


def test_restoring_deletes_attributes_that_did_not_exist() -> None:
    ns = types.SimpleNamespace()
    with restoring(ns, "new", 1):
        assert ns.new == 1
    assert not hasattr(ns, "new")


def test_restoring_nests() -> None:
    ns = types.SimpleNamespace(x="orig")
    with restoring(ns, "x", "outer"):
        with restoring(ns, "x", "inner"):
            assert ns.x == "inner"
        assert ns.x == "outer"
    assert ns.x == "orig"


def test_restoring_item_on_dicts_and_environ() -> None:
    d = {"a": 1}
    with restoring_item(d, "a", 2), restoring_item(d, "b", 3):
        assert d == {"a": 2, "b": 3}
    assert d == {"a": 1}
    with restoring_item(os.environ, "MEMKIT_TEST_VAR", "x"):
        assert os.environ["MEMKIT_TEST_VAR"] == "x"
    assert "MEMKIT_TEST_VAR" not in os.environ


def test_restoring_bad_input() -> None:
    with pytest.raises(TypeError, match="attr must be a str"):
        restoring(types.SimpleNamespace(), 3, 1)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        restoring(object(), "x", 1)  # object() has no __dict__: nothing changes
    with pytest.raises(TypeError):
        restoring_item([1], "k", 2)  # type: ignore[arg-type]


def test_disarmed_restoring_keeps_the_new_value() -> None:
    ns = types.SimpleNamespace(x=1)
    with restoring(ns, "x", 2) as guard:
        guard.disarm()
    assert ns.x == 2
