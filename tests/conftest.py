"""Shared fixtures for memkit's tests."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import memkit

if not hasattr(memkit, "AlignedBuffer"):  # pragma: no cover - a broken setup, not a test
    raise RuntimeError(f"memkit imported from {memkit.__file__} without its compiled core; pip install . first")

MEMKIT_PARENT = str(Path(memkit.__file__).resolve().parent.parent)
"""The directory the memkit under test was imported from: a source tree, or site-packages."""


@pytest.fixture(scope="session", autouse=True)
def child_pythons_import_this_memkit() -> Iterator[None]:
    """Every Python process a test starts imports the memkit these tests imported.

    A child started outside the source tree (``python -m memkit`` in a temporary directory)
    would import whichever memkit its sys.path finds: in a development checkout, perhaps an
    installed one rather than the tree under test. So memkit's parent directory goes first
    on PYTHONPATH: the tree in a checkout; site-packages when the tests run against an
    installed wheel, where the child looks anyway.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [MEMKIT_PARENT, os.environ.get("PYTHONPATH")])))
        yield


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
