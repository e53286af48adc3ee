"""Loads memkit's compiled core; every Python module takes it from here (``from ._native import core``).

The core is ``memkit._core``, beside this file in an installed copy. A source checkout
finds the installed copy's core instead:

``python -m memkit`` run in the project root imports the ``memkit/`` directory there (the
current directory comes first on sys.path), but ``pip install .`` put the compiled
``_core`` only into site-packages. When it is not beside this package, the installed
package's directory joins this package's search path, so ``memkit._core`` resolves there.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import _core as core


def _has_core(directory: str) -> bool:
    return any(os.path.isfile(os.path.join(directory, "_core" + suffix)) for suffix in EXTENSION_SUFFIXES)


def find_installed_core(here: str, search: list[str]) -> str | None:
    """The first ``memkit`` directory on ``search`` other than ``here`` holding ``_core``."""
    for entry in search:
        candidate = os.path.join(os.path.abspath(entry or os.curdir), "memkit")
        if os.path.realpath(candidate) != os.path.realpath(here) and _has_core(candidate):
            return candidate
    return None


def _extend_package_path() -> None:
    package = sys.modules[__package__ or "memkit"]
    here = os.path.dirname(os.path.abspath(__file__))
    if _has_core(here):
        return
    installed = find_installed_core(here, sys.path)
    if installed is None:
        raise ImportError(
            f"memkit's compiled core (_core) is missing from {here} and no installed copy has it; "
            "build it with `pip install .`"
        )
    package.__path__.append(installed)


_extend_package_path()

if not TYPE_CHECKING:
    core = importlib.import_module(f"{__package__}._core")

__all__ = ["core", "find_installed_core"]
