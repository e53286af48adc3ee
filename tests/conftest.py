"""Shared fixtures for memkit's tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import memkit

if not hasattr(memkit, "AlignedBuffer"):  # pragma: no cover - a broken setup, not a test
    raise RuntimeError(f"memkit imported from {memkit.__file__} without its compiled core; pip install . first")


def _run_concurrently(worker: Callable[..., Any], nthreads: int, *args: Any) -> list[Any]:
    """Run ``worker(index, *args)`` in ``nthreads`` threads released together by a barrier.

    Returns the workers' results in index order; re-raises the first worker exception.
    """
    barrier = threading.Barrier(nthreads)
    results: list[Any] = [None] * nthreads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = worker(index, *args)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def run_concurrently() -> Callable[..., list[Any]]:
    """``run_concurrently(worker, nthreads, *args)``: barrier-started threads, errors re-raised."""
    return _run_concurrently
