"""The bad-input audit (API.md's shared rules): every public callable, hostile input, no crash.

Every name in ``__all__`` of memkit and its public modules - functions, classes, and each
public method, property and protocol method of those classes, on instances in several
states (live, released, exported, locked, poisoned, made without ``__init__``, copied) -
is called with wrong types and hostile values: None, -1, 0, 2**63, 2**64, -2**63-1, huge
sizes, non-power-of-two alignments, floats, NaN, strings, bytes, released objects, objects
of other memkit types, callbacks and ``__index__``/``__del__`` methods that release or
clear the very objects the call is using. Each call must succeed or raise one of the
documented exception kinds; nothing may crash, hang or raise SystemError.

The calls run in tests/_audit_driver.py, one subprocess per module, so that a crash fails
one test and names the call that crashed. Discovery is automatic: a new public name is
audited without editing anything, and a new class without an entry in FACTORIES
(tests/_audit_inputs.py) fails ``test_every_public_class_has_a_factory``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import memkit

DRIVER_PATH = Path(__file__).with_name("_audit_driver.py")


def _load_driver() -> Any:
    # The driver imports its tables (_audit_inputs.py) from beside itself, as a script does.
    if str(DRIVER_PATH.parent) not in sys.path:
        sys.path.insert(0, str(DRIVER_PATH.parent))
    spec = importlib.util.spec_from_file_location("_memkit_audit_driver", DRIVER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass-like machinery looks modules up by name
    spec.loader.exec_module(module)
    return module


driver = _load_driver()
PUBLIC = driver.public_objects()
# The modules with something to audit (memkit itself only re-exports, today).
TARGETS = [m for m, group in PUBLIC.items() if group["classes"] or group["functions"] or m in driver.EXTRA_CLASSES]


def run_driver(module: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the driver on one module; returns the process and the last call it began."""
    progress = tmp_path / "progress.txt"
    env = dict(os.environ)
    # The child must import the memkit this test imported (a source tree or an install).
    root = str(Path(memkit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    # Under AddressSanitizer a huge request must fail as it does in a plain build (NULL, so
    # MemoryError) instead of aborting in the sanitizer's allocator.
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "allocator_may_return_null=1"]))
    proc = subprocess.run(
        [sys.executable, str(DRIVER_PATH), module, str(progress)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    last = progress.read_text(errors="replace").strip() if progress.exists() else "<nothing>"
    return proc, last


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.parametrize("module", TARGETS)
def test_bad_input_never_crashes_and_raises_documented_errors(module: str, tmp_path: Path) -> None:
    proc, last = run_driver(module, tmp_path)
    if proc.returncode != 0:
        pytest.fail(
            f"the audit of {module} died (exit status {proc.returncode}) during:\n    {last}\n"
            f"stderr (last lines):\n{_tail(proc.stderr)}",
            pytrace=False,
        )
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = report["failures"]
    assert not failures, f"{len(failures)} calls raised undocumented errors:\n" + "\n".join(failures[:30])
    # The audit made its calls (a driver that found nothing to call would pass vacuously).
    assert report["calls"] > 1000


def test_every_public_class_has_a_factory() -> None:
    missing = [
        f"{module}.{name}"
        for module, group in PUBLIC.items()
        for name, cls in group["classes"]
        if cls not in driver.FACTORIES
    ]
    assert not missing, f"add instances of these to FACTORIES in _audit_inputs.py: {missing}"


def test_discovery_covers_methods_properties_and_protocols() -> None:
    # What the audit walks for one class of each kind: a pybind11 class with fast-call
    # methods, a C-API heap type, and a Python class.
    names = {cls: {m[0] for m in driver.members(cls)} for cls in (memkit.AlignedBuffer, memkit.SlotMap, memkit.Cow)}
    assert {"release", "resize", "address", "nbytes", "__enter__", "__exit__", "__init__"} <= names[
        memkit.AlignedBuffer
    ]
    assert {"insert", "remove", "__getitem__", "__delitem__", "__contains__", "keys"} <= names[memkit.SlotMap]
    assert {"to_mut", "into_owned", "value", "is_borrowed", "owned"} <= names[memkit.Cow]
    assert not any(name.startswith("_") and not name.endswith("__") for ns in names.values() for name in ns)


def test_a_crash_fails_the_test_and_names_the_call(tmp_path: Path) -> None:
    # The driver's self-check: it records a call, then dies of SIGSEGV inside it.
    proc, last = run_driver("<selftest-crash>", tmp_path)
    assert proc.returncode != 0
    assert last == "selftest: a call that crashes the interpreter"
