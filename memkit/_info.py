"""`python -m memkit info`: what was built, how, and the machine it runs on."""

from __future__ import annotations

import platform
import sys
import sysconfig
from pathlib import Path
from typing import Any

from ._native import core as _core
from ._version import __version__

_THP_PATH = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def transparent_huge_pages(path: Path = _THP_PATH) -> str:
    """The transparent-huge-page mode ("always", "madvise" or "never"), or "unavailable".

    Linux shows the modes with the active one in brackets, e.g. ``always [madvise] never``.
    """
    try:
        text = path.read_text()
    except OSError:
        return "unavailable"
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return "unavailable"


def python_build() -> str:
    """ "free-threaded" or "GIL", with whether the GIL is on now in a free-threaded build."""
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        enabled = getattr(sys, "_is_gil_enabled", lambda: False)()
        return "free-threaded (GIL " + ("re-enabled" if enabled else "disabled") + " at run time)"
    return "GIL"


def collect() -> dict[str, Any]:
    """Every fact `info` shows, as a flat dict of JSON-friendly values."""
    build = dict(_core.info.BUILD)
    line = _core.info.cache_line_size()
    return {
        "memkit": __version__,
        "extension": _core.__file__,
        "compiler": build["compiler"],
        "c++ standard": build["cplusplus"],
        "build flags": build["flags"],
        "build system": build["build_system"],
        "pybind11": build["pybind11"],
        "assertions": build["assertions"],
        "sanitizers": build["sanitizers"],
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python build": python_build(),
        "machine": platform.machine() or "unknown",
        "cache line size": line if line else "unknown",
        "CACHE_PAD": _core.info.CACHE_PAD,
        "page size": _core.info.page_size(),
        "transparent huge pages": transparent_huge_pages(),
        "max alignment": _core.info.MAX_ALIGN,
        "allocator hook": "installed" if _core.alloc.installed() else "not installed",
    }


def format_table(facts: dict[str, Any]) -> str:
    """Two aligned columns, one fact a line."""
    width = max(len(k) for k in facts)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in facts.items())
