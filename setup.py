"""Build of memkit's C++ extension, used by `pip install .`.

Metadata lives in pyproject.toml; this file only describes the extension. The sources are a
sorted glob, so every build (and CMakeLists.txt, which globs the same tree) compiles the
same files in the same order.

Environment:
    MEMKIT_SANITIZE   e.g. "address,undefined": build with those sanitizers (CI uses it).
    MEMKIT_BUILD_JOBS compile processes (default: one per CPU).
"""

from __future__ import annotations

import os
import sys
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

SOURCES = sorted(glob("csrc/**/*.cpp", recursive=True))
# setuptools does not scan #includes: without these, an edited header leaves stale objects.
HEADERS = sorted(glob("csrc/**/*.hpp", recursive=True))


def _stale(obj: str, src: str) -> bool:
    """Whether an object file is older than its source or any header (headers are shared)."""
    return max(os.path.getmtime(path) for path in (src, *HEADERS)) > os.path.getmtime(obj)


# Sources compile in parallel (one process per CPU unless MEMKIT_BUILD_JOBS says otherwise);
# an object is rebuilt when its source or any header is newer.
ParallelCompile("MEMKIT_BUILD_JOBS", needs_recompile=_stale).install()

sanitize = "" if sys.platform == "win32" else os.environ.get("MEMKIT_SANITIZE", "").strip()
compile_args: list[str] = []
link_args: list[str] = []
macros: list[tuple[str, str | None]] = []

if sys.platform == "win32":
    compile_args += ["/O2", "/W4"]
else:
    compile_args += ["-O2", "-Wall", "-Wextra", "-Wpedantic"]
    if sanitize:
        compile_args += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-g"]
        link_args += [f"-fsanitize={sanitize}"]
        macros.append(("MEMKIT_SANITIZE", f'"{sanitize}"'))

macros += [
    ("MEMKIT_BUILD_FLAGS", '"' + " ".join(compile_args) + '"'),
    ("MEMKIT_BUILD_SYSTEM", '"setuptools"'),
]

ext = Pybind11Extension(
    "memkit._core",
    SOURCES,
    depends=HEADERS,
    cxx_std=17,
    include_dirs=["csrc"],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    define_macros=macros,
)

# A sanitizer build gets its own build tree: setuptools skips compiling objects that look
# up to date, and objects built with other flags must never be reused.
options = {"build": {"build_base": "build/sanitize-" + sanitize.replace(",", "-")}} if sanitize else {}

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext}, options=options)
