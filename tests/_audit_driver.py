"""The bad-input audit's worker: calls every public callable of memkit with hostile input.

tests/test_audit.py runs it in a subprocess, one per module, so that a crash is reported
as a failed test naming the call that crashed rather than as a dead test session::

    python tests/_audit_driver.py memkit.buffers PROGRESS_FILE

Before each call the driver writes the call's description to PROGRESS_FILE (overwriting
the previous one), so after a crash that file names the culprit. At the end it prints one
JSON object on stdout: {"calls": N, "failures": [...]}; a failure is a call that raised an
exception outside the documented kinds (SystemError included), took more than
SLOW_CALL_SECONDS, or left an exception nobody could catch (sys.unraisablehook).

What is audited (discovered, so new public names are covered without editing this file):
- every name in ``__all__`` of the audited modules; each class is audited with the first
  submodule that exports it, each function likewise;
- every public method, property and protocol method (dunder) a memkit class defines or
  inherits from another memkit class, on several instances per class (FACTORIES in
  tests/_audit_inputs.py: live, released, exported, locked, ... and, discovered,
  ``cls.__new__(cls)`` without ``__init__``, a Python subclass, ``copy.copy`` of each),
  called with no arguments, with each hostile value in each position (the other
  positions holding valid arguments), and with each hostile value for each keyword;
- every method and attribute descriptor called on instances of *other* memkit classes;
- generic protocol operations on every instance (repr, hash, len, iteration, buffer
  export, copy, pickle, comparison, subscription, ...).

A class that FACTORIES has no entry for fails the audit, so new classes get covered.
"""

from __future__ import annotations

import ast
import copy
import enum
import faulthandler
import gc
import inspect
import json
import operator
import os
import pickle
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _audit_inputs import (
    ATTRIBUTE_PROTOCOL,
    BLOCKING,
    EXTRA_ALLOWED,
    EXTRA_CLASSES,
    FACTORIES,
    HOSTILE_STATES,
    KEEP,
    MEDDLE_TARGETS,
    SAFE_TIMEOUTS,
    SLOW_CALL_SECONDS,
    SMALL_EXTRAS,
    VALID_ARGS,
    DelMeddler,
    HostileError,
    plain_values,
    valid_args,
)

import memkit
import memkit.alloc
import memkit.atomic
import memkit.buffers
import memkit.cell
import memkit.cow
import memkit.guard
import memkit.layout
import memkit.slotmap
import memkit.sync

# Deep enough that a deallocator recursing once per level overflows NESTING_STACK many
# times over (each level takes a few dozen bytes of C stack), shallow enough to stay well
# inside it with CPython's trashcan, which on 3.13 unwinds only after thousands of levels.
NESTING_DEPTH = 100_000
NESTING_STACK = 1 << 20

try:
    import numpy  # noqa: F401 - only whether it is there
except ImportError:
    NUMPY_AVAILABLE = False
else:
    NUMPY_AVAILABLE = True

AUDITED_MODULES = (
    "memkit",
    "memkit.alloc",
    "memkit.atomic",
    "memkit.buffers",
    "memkit.cell",
    "memkit.cow",
    "memkit.guard",
    "memkit.layout",
    "memkit.slotmap",
    "memkit.sync",
)

# The exception kinds API.md documents for bad input. Everything else is a failure, except
# where EXTRA_ALLOWED documents more for one callable.
DOCUMENTED = (
    TypeError,
    ValueError,
    OverflowError,
    IndexError,
    KeyError,
    MemoryError,
    BufferError,
    RuntimeError,
)


# ---- discovery ----------------------------------------------------------------------------------


def _modules() -> list[Any]:
    return [sys.modules[name] for name in AUDITED_MODULES]


def public_objects() -> dict[str, dict[str, list[tuple[str, Any]]]]:
    """{module: {"classes": [(name, cls)], "functions": [(name, fn)]}}, each object once.

    An object exported by a submodule and by ``memkit`` is attributed to the submodule.
    """
    owner: dict[int, tuple[str, str, Any]] = {}
    for module in _modules():
        names = getattr(module, "__all__", None)
        if names is None:
            raise AssertionError(f"{module.__name__} has no __all__: the audit cannot tell its public names")
        for name in names:
            obj = getattr(module, name)
            if not (isinstance(obj, type) or inspect.isroutine(obj)):
                continue  # constants: CACHE_PAD, and u8, f64 ... (covered by the FieldType factory)
            key = id(obj)
            if key not in owner or owner[key][0] == "memkit":
                owner[key] = (module.__name__, name, obj)
    out: dict[str, dict[str, list[tuple[str, Any]]]] = {m: {"classes": [], "functions": []} for m in AUDITED_MODULES}
    for module_name, name, obj in owner.values():
        out[module_name]["classes" if isinstance(obj, type) else "functions"].append((name, obj))
    return out


def _is_memkit_class(cls: type) -> bool:
    return (cls.__module__ or "").startswith("memkit")


# Class-dict entries that are data, bookkeeping or interpreter plumbing rather than API.
_NOT_API = {
    "__dict__",
    "__doc__",
    "__module__",
    "__qualname__",
    "__slots__",
    "__weakref__",
    "__annotations__",
    "__dataclass_fields__",
    "__dataclass_params__",
    "__match_args__",
    "__parameters__",
    "__orig_bases__",
    "__abstractmethods__",
    "__memkit_struct__",
    "__firstlineno__",
    "__static_attributes__",
    "__text_signature__",
}


def members(cls: type) -> list[tuple[str, Any, type]]:
    """(name, raw class-dict entry, defining class) of every public method/attribute and
    dunder that ``cls`` (a struct class's fields too) or a memkit base defines, nearest
    definition first."""
    seen: set[str] = set()
    out = []
    for klass in cls.__mro__:
        if klass is not cls and not _is_memkit_class(klass):
            continue  # object, pybind11_object, Generic, ABC, ...: not memkit's API
        for name, raw in vars(klass).items():
            if name in seen or name in _NOT_API:
                continue
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                continue
            if isinstance(klass, enum.EnumMeta) and name in getattr(klass, "_member_map_", {}):
                continue  # enum members are values
            seen.add(name)
            if _kind(raw) is not None:
                out.append((name, raw, klass))
    return out


def _kind(raw: Any) -> str | None:
    """'attr' for data descriptors, 'static'/'class' for static and class methods,
    'method' for anything else callable, None for plain data."""
    if isinstance(raw, staticmethod):
        return "static"
    if isinstance(raw, classmethod) or type(raw).__name__ == "classmethod_descriptor":
        return "class"
    if isinstance(raw, property) or inspect.isgetsetdescriptor(raw) or inspect.ismemberdescriptor(raw):
        return "attr"
    if hasattr(type(raw), "__set__") and hasattr(type(raw), "__get__") and not callable(raw):
        return "attr"  # memkit.layout's Field descriptors
    if callable(raw):
        return "method"
    return None


# ---- signatures: inspect first, then the stubs (memkit/_core/*.pyi) --------------------------------


def _stub_signatures() -> dict[str, list[tuple[str, str, bool]]]:
    """{"Class.method" or "function": [(param, kind, has_default)]} from the stubs; kind is
    'pos' (positional-only), 'any', 'kw' (keyword-only), 'var' (*args)."""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    stub_dir = Path(memkit.__file__).parent / "_core"
    for path in sorted(stub_dir.glob("*.pyi")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                out[node.name] = _params(node, method=False)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        out[f"{node.name}.{item.name}"] = _params(item, method=True)
    return out


def _params(fn: ast.FunctionDef, method: bool) -> list[tuple[str, str, bool]]:
    a = fn.args
    positional = [(p.arg, "pos") for p in a.posonlyargs] + [(p.arg, "any") for p in a.args]
    defaults = len(a.defaults)
    params = []
    for i, (name, kind) in enumerate(positional):
        params.append((name, kind, i >= len(positional) - defaults))
    if method and params and not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list):
        params = params[1:]  # self / cls
    if a.vararg is not None:
        params.append((a.vararg.arg, "var", True))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append((p.arg, "kw", d is not None))
    return params


STUBS = _stub_signatures()


def signature_of(fn: Any, stub_key: str) -> list[tuple[str, str, bool]] | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return STUBS.get(stub_key)
    params = []
    for p in sig.parameters.values():
        kind = {
            p.POSITIONAL_ONLY: "pos",
            p.POSITIONAL_OR_KEYWORD: "any",
            p.VAR_POSITIONAL: "var",
            p.KEYWORD_ONLY: "kw",
            p.VAR_KEYWORD: "varkw",
        }[p.kind]
        params.append((p.name, kind, p.default is not p.empty or kind in ("var", "varkw")))
    return params


class Audit:
    """Makes the calls, records what went wrong, and keeps PROGRESS_FILE current."""

    def __init__(self, progress_path: str) -> None:
        self.progress = os.open(progress_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.where = "<start>"
        self.calls = 0
        self.failures: list[str] = []
        self.unraisable: list[str] = []
        self.hostile: list[tuple[str, Any]] = []  # every hostile value
        self.small: list[tuple[str, Any]] = []  # the plain ones and a few memkit objects
        self.installed_at_start = memkit.alloc.installed()
        self.debug_at_start = memkit.debug_borrows(False)
        memkit.debug_borrows(self.debug_at_start)
        sys.unraisablehook = self._unraisable

    def _unraisable(self, info: Any) -> None:
        if isinstance(info.exc_value, HostileError):
            return  # a callback of the audit's raised where nobody could catch it
        if getattr(info.object, "__qualname__", "") == "ScopeGuard.__del__":
            return  # a guard's callback failed at collection: reported there as documented
        self.unraisable.append(f"{self.where}: unraisable {type(info.exc_value).__name__}: {info.exc_value}")

    def note(self, where: str) -> None:
        self.where = where
        data = where.encode("utf-8", "replace")[:2000]
        os.pwrite(self.progress, data + b"\n" + b" " * (2048 - len(data)), 0)

    def call(self, where: str, allowed: tuple[type[BaseException], ...], fn: Callable[[], Any]) -> None:
        """Make one call; record it as a failure if it raises something not allowed."""
        self.note(where)
        self.calls += 1
        start = time.perf_counter()
        try:
            result = fn()
            del result
        except HostileError:
            pass
        except NotImplementedError as exc:  # a RuntimeError, but a stub left behind is a finding
            self.fail(where, exc)
        except allowed:
            pass
        except ImportError as exc:
            if NUMPY_AVAILABLE or "NumPy" not in str(exc):  # NumPy is optional, and says so
                self.fail(where, exc)
        except SystemError as exc:
            self.fail(where, exc)
        except BaseException as exc:  # anything else is a finding, recorded not raised
            self.fail(where, exc)
        elapsed = time.perf_counter() - start
        if elapsed > SLOW_CALL_SECONDS:
            self.failures.append(f"{where}: took {elapsed:.1f} s (a call that waits or works that long is a finding)")

    def fail(self, where: str, exc: BaseException) -> None:
        if len(self.failures) < 200:
            text = f"{where}: {type(exc).__name__}: {exc}"
            self.failures.append(text.encode("utf-8", "backslashreplace").decode("utf-8"))

    # -- hostile values

    def build_hostile(self, classes: list[tuple[str, type]]) -> None:
        values = plain_values()
        # One live instance of every public class, its other hostile states (released,
        # after scope exit, poisoned, ...) and one made without __init__: objects from
        # another memkit type, and released objects.
        small = list(values)  # the plain values, for positions past the first
        for name, cls in classes:
            factory = FACTORIES.get(cls)
            if factory is None:
                continue  # reported by audit_class
            for i, (label, obj) in enumerate(factory()):
                if i == 0 or label in HOSTILE_STATES:
                    values.append((f"<{name} {label}>", obj))
                    if label in HOSTILE_STATES:
                        small.append(values[-1])
            if _is_native(cls):
                try:
                    values.append((f"<{name} uninitialised>", cls.__new__(cls)))  # type: ignore[call-overload]
                except Exception:
                    pass
        # a few live objects of other memkit types for the later positions too
        small += [v for v in values if v[0] in SMALL_EXTRAS]
        self.small = small
        self.hostile = values

    def hostiles(self, full: bool = True) -> list[tuple[str, Any]]:
        """The shared pool (or its small part) plus values made fresh for each use."""
        return [*(self.hostile if full else self.small), ("DelMeddler()", DelMeddler())]

    # -- one callable

    def battery(
        self,
        where: str,
        fn: Callable[..., Any],
        params: list[tuple[str, str, bool]] | None,
        key: str,
        allowed: tuple[type[BaseException], ...],
        targets: list[Any],
        primary: bool = True,
    ) -> None:
        """fn() with hostile values in each position and each keyword.

        The primary battery puts every hostile value in the first position and the small
        pool in the others and in each keyword; a secondary one (for the other states of a
        receiver) only the small pool, in the first position.
        """
        blocking = BLOCKING.get(key)
        if params is None:
            positional, keywords, required = 3, [], 0
        else:
            pos = [p for p in params if p[1] in ("pos", "any")]
            positional = len(pos) + (1 if any(p[1] == "var" for p in params) else 0)
            keywords = [p[0] for p in params if p[1] in ("any", "kw")]
            required = sum(1 for p in params if p[1] in ("pos", "any") and not p[2])
        extra_kw: dict[str, Any] = {}
        if blocking is not None:
            positional = blocking
            keywords = [k for k in keywords if k != "timeout"]
            extra_kw = {"timeout": 0}

        def run(label: str, make: Callable[[], tuple[list[Any], dict[str, Any]]]) -> None:
            args, kwargs = make()
            MEDDLE_TARGETS[:] = [*targets, *(a for a in args if _fresh_memkit(a))]
            self.call(f"{where}({label})", allowed, lambda: fn(*args, **kwargs))
            MEDDLE_TARGETS.clear()

        run("", lambda: ([], dict(extra_kw)))
        run(f"{positional + 1} args", lambda: (valid_args(key, positional + 1), dict(extra_kw)))
        arities = sorted({1, positional}) if positional else []
        for n in arities:
            run(f"{n} valid", lambda n=n: (valid_args(key, n), dict(extra_kw)))
            for p in range(n if primary else 1):
                for label, value in self.hostiles(full=primary and p == 0):
                    shown = ", ".join(label if i == p else "v" for i in range(n))

                    def make(n: int = n, p: int = p, value: Any = value) -> tuple[list[Any], dict[str, Any]]:
                        args = valid_args(key, n)
                        args[p] = value
                        return args, dict(extra_kw)

                    run(shown, make)
        for name in keywords if primary else ():
            for label, value in self.hostiles(full=False):

                def make_kw(name: str = name, value: Any = value) -> tuple[list[Any], dict[str, Any]]:
                    return valid_args(key, required), {**extra_kw, name: value}

                run(f"{name}={label}", make_kw)
        if blocking is not None:
            for label, value in SAFE_TIMEOUTS:

                def make_timeout(value: Any = value) -> tuple[list[Any], dict[str, Any]]:
                    return valid_args(key, blocking), {"timeout": value}

                run(f"timeout={label}", make_timeout)

    # -- classes

    def audit_class(self, name: str, cls: type) -> None:
        """The constructor, every member on every receiver state, generic operations,
        and every member applied to objects of other classes."""
        factory = FACTORIES.get(cls)
        if factory is None:
            self.failures.append(
                f"{name}: no factory in FACTORIES (tests/_audit_inputs.py) - add one so the audit covers it"
            )
            return
        mems = members(cls)
        # the constructor
        allowed = DOCUMENTED + EXTRA_ALLOWED.get(name, ())
        self.battery(name, cls, signature_of(cls, f"{name}.__init__"), name, allowed, [])
        # every receiver state, including discovered ones
        for i, (label, receiver) in enumerate(self.receivers(name, cls, factory)):
            for mname, raw, owner in mems:
                self.audit_member(name, cls, label, mname, raw, owner, factory, primary=i == 0)
                self.restore()
            self.generic_ops(f"{name}<{label}>", receiver, primary=i == 0)
            self.restore()
        self.wrong_receivers(name, cls, mems)
        self.restore()
        self.deep_nesting(name, cls)

    def receivers(self, name: str, cls: type, factory: Callable[[], list[tuple[str, Any]]]) -> list[tuple[str, Any]]:
        """The factory's instances, then discovered ones: made without __init__, of a
        Python subclass, copied and deep-copied (when those work at all)."""
        out = list(factory())
        if _is_native(cls):
            self.note(f"{name}.__new__({name}) without __init__")
            try:
                bare = cls.__new__(cls)  # type: ignore[call-overload]
            except Exception:
                pass
            else:
                out.append(("uninitialised", bare))
        sub = _subclass_instance(name, cls)
        if sub is not None:
            out.append(("subclass", sub))
        first = out[0][1]
        for how, dup in (("copy", copy.copy), ("deepcopy", copy.deepcopy)):
            self.note(f"copy.{how}({name}<{out[0][0]}>)")
            try:
                duplicate = dup(first)
            except Exception:
                continue
            if duplicate is not first:
                out.append((how, duplicate))
        return out

    def fresh_receiver(self, factory: Callable[[], list[tuple[str, Any]]], label: str, cls: type) -> Any:
        """A new instance in state `label`: each member gets its own, so one member's
        battery (a release(), a clear()) does not decide the state the next one sees."""
        for lab, obj in factory():
            if lab == label:
                return obj
        if label == "uninitialised":
            return cls.__new__(cls)  # type: ignore[call-overload]
        if label == "subclass":
            return _subclass_instance(cls.__name__, cls)
        if label in ("copy", "deepcopy"):
            first = factory()[0][1]
            return copy.copy(first) if label == "copy" else copy.deepcopy(first)
        raise AssertionError(label)

    def audit_member(
        self,
        name: str,
        cls: type,
        label: str,
        mname: str,
        raw: Any,
        owner: type,
        factory: Callable[[], list[tuple[str, Any]]],
        primary: bool,
    ) -> None:
        kind = _kind(raw)
        key = f"{owner.__name__}.{mname}" if f"{owner.__name__}.{mname}" in VALID_ARGS else f"{name}.{mname}"
        allowed = (
            DOCUMENTED + EXTRA_ALLOWED.get(f"{name}.{mname}", ()) + EXTRA_ALLOWED.get(f"{owner.__name__}.{mname}", ())
        )
        where = f"{name}<{label}>.{mname}"
        if mname in ("__del__",):
            return  # finalisers are exercised by dropping every receiver
        try:
            receiver = self.fresh_receiver(factory, label, cls)
        except Exception as exc:  # a factory must work
            self.fail(f"{where}: making the receiver", exc)
            return
        if mname in ATTRIBUTE_PROTOCOL:
            allowed = (*allowed, AttributeError)
        if kind == "attr":
            attr_allowed = (*allowed, AttributeError)
            self.call(f"{where} (get)", attr_allowed, lambda: getattr(receiver, mname))
            for hl, hv in self.hostiles(full=primary):
                MEDDLE_TARGETS[:] = [receiver]
                self.call(f"{where} = {hl}", attr_allowed, lambda hv=hv: setattr(receiver, mname, hv))
                MEDDLE_TARGETS.clear()
            self.call(f"del {where}", attr_allowed, lambda: delattr(receiver, mname))
            self.call(f"{where} (get again)", attr_allowed, lambda: getattr(receiver, mname))
            return
        if mname in ("__init__",):
            allowed = (*allowed, AttributeError)
        self.note(f"{where} (getattr)")
        try:
            bound = getattr(receiver, mname) if kind != "static" else getattr(cls, mname)
        except AttributeError:
            return  # e.g. __getattr__ of an uninitialised Python object
        except Exception as exc:
            self.fail(f"{where} (getattr)", exc)
            return
        owner_key = f"{owner.__name__}.{mname}"
        params = signature_of(bound, owner_key if owner_key in STUBS else f"{name}.{mname}")
        if label == "uninitialised" and not _is_native(cls):
            allowed = (*allowed, AttributeError)  # Python objects without their slots
        self.battery(where, bound, params, key, allowed, [receiver], primary)

    def wrong_receivers(self, name: str, cls: type, mems: list[tuple[str, Any, type]]) -> None:
        """Each method and attribute descriptor of cls applied to instances of other classes."""
        others = [(lab, obj) for lab, obj in self.hostile if lab.startswith("<") and type(obj) is not cls]
        others += [("1", 1), ("None", None), ("bytearray", bytearray(8))]
        allowed = (*DOCUMENTED, AttributeError)
        for mname, raw, _owner in mems:
            kind = _kind(raw)
            for olabel, other in others:
                where = f"{name}.{mname} on {olabel}"
                if kind == "attr":
                    if hasattr(raw, "__get__"):
                        self.call(f"{where} (get)", allowed, lambda raw=raw, o=other: raw.__get__(o, type(o)))
                    if hasattr(raw, "__set__"):
                        self.call(f"{where} (set)", allowed, lambda raw=raw, o=other: raw.__set__(o, 1))
                    if hasattr(raw, "__delete__"):
                        self.call(f"{where} (delete)", allowed, lambda raw=raw, o=other: raw.__delete__(o))
                elif kind == "method" and mname != "__del__":
                    unbound = getattr(cls, mname, None)
                    if unbound is None or key_is_blocking(name, mname):
                        continue
                    self.call(where, allowed, lambda u=unbound, o=other: u(o))
                    self.call(f"{where} with 1", allowed, lambda u=unbound, o=other: u(o, 1))

    def deep_nesting(self, name: str, cls: type) -> None:
        """A compiled class that holds any value, nested NESTING_DEPTH deep (Cell(Cell(...)))
        and freed on a thread with a small stack: a deallocator that recurses once per level
        in C overflows it, where CPython's trashcan (what lists and dicts use) does not."""
        if not _is_native(cls) or issubclass(cls, BaseException):
            return
        try:
            cls(cls(None))
        except Exception:
            return  # not a holder of arbitrary values
        self.note(f"{name}({name}(...)) {NESTING_DEPTH} deep, freed on a thread with a {NESTING_STACK >> 10} KiB stack")
        self.calls += 1
        errors: list[BaseException] = []

        def build_and_drop() -> None:
            try:
                value: object = None
                for _ in range(NESTING_DEPTH):
                    value = cls(value)
                del value
            except BaseException as exc:
                errors.append(exc)

        previous = threading.stack_size(NESTING_STACK)
        try:
            worker = threading.Thread(target=build_and_drop)
            worker.start()
            worker.join()
        finally:
            threading.stack_size(previous)
        for exc in errors:
            self.fail(self.where, exc)

    def generic_ops(self, where: str, obj: Any, primary: bool) -> None:
        """Protocol operations any object may meet: repr, hash, len, iteration, buffer
        export, copy, pickle, weakref, conversions, comparison, subscription, +=."""
        allowed = (*DOCUMENTED, AttributeError, pickle.PicklingError)
        ops: list[tuple[str, Callable[[], Any]]] = [
            ("repr", lambda: repr(obj)),
            ("str", lambda: str(obj)),
            ("hash", lambda: hash(obj)),
            ("bool", lambda: bool(obj)),
            ("len", lambda: len(obj)),
            ("iter", lambda: [x for _, x in zip(range(5), iter(obj), strict=False)]),
            ("reversed", lambda: next(reversed(obj))),
            ("memoryview", lambda: _view_roundtrip(obj)),
            ("copy", lambda: copy.copy(obj)),
            ("deepcopy", lambda: copy.deepcopy(obj)),
            ("pickle", lambda: pickle.loads(pickle.dumps(obj))),
            ("weakref", lambda: weakref.ref(obj)()),
            ("dir", lambda: dir(obj)),
            ("format", lambda: format(obj, "")),
            ("int", lambda: int(obj)),
            ("float", lambda: float(obj)),
            ("index", lambda: operator.index(obj)),
            ("neg", lambda: -obj),
            ("gc.get_referents", lambda: gc.get_referents(obj)),
            ("with", lambda: _with(obj)),
        ]
        for label, op in ops:
            self.call(f"{label}({where})", (*allowed, StopIteration), op)
        for hl, hv in self.hostiles(full=primary):
            MEDDLE_TARGETS[:] = [obj]
            for label, op in (
                ("==", lambda hv=hv: obj == hv),
                ("<", lambda hv=hv: obj < hv),
                ("in", lambda hv=hv: hv in obj),
                ("[]", lambda hv=hv: obj[hv]),
                ("[]=", lambda hv=hv: obj.__setitem__(hv, hv)),
                ("del []", lambda hv=hv: obj.__delitem__(hv)),
                ("+=", lambda hv=hv: operator.iadd(obj, hv)),
            ):
                self.call(f"{where} {label} {hl}", (*allowed, StopIteration), op)
            MEDDLE_TARGETS.clear()

    # -- module functions

    def audit_function(self, name: str, fn: Callable[..., Any]) -> None:
        params = signature_of(fn, name)
        allowed = DOCUMENTED + EXTRA_ALLOWED.get(name, ())
        self.battery(name, fn, params, name, allowed, [])
        self.restore()

    def restore(self) -> None:
        """Put process-wide state back: the allocator hook, borrow debugging."""
        MEDDLE_TARGETS.clear()
        try:
            if memkit.alloc.installed() and not self.installed_at_start:
                memkit.alloc.uninstall()
            elif not memkit.alloc.installed() and self.installed_at_start:
                memkit.alloc.install()
        except RuntimeError:
            pass
        memkit.debug_borrows(self.debug_at_start)

    def report(self) -> dict[str, Any]:
        return {"calls": self.calls, "failures": self.failures + self.unraisable}


_SUBCLASSES: dict[type, type | None] = {}


def _subclass_instance(name: str, cls: type) -> Any:
    """An instance of a plain Python subclass of a compiled class, or None when the class
    is final or its constructor needs arguments the audit does not know."""
    if not _is_native(cls) or issubclass(cls, BaseException):
        return None
    if cls not in _SUBCLASSES:
        try:
            _SUBCLASSES[cls] = type(f"{cls.__name__}Subclass", (cls,), {})
        except TypeError:
            _SUBCLASSES[cls] = None  # final
    sub = _SUBCLASSES[cls]
    if sub is None:
        return None
    try:
        return sub(*(VALID_ARGS[name]() if name in VALID_ARGS else ()))
    except Exception:
        return None


def key_is_blocking(name: str, mname: str) -> bool:
    return f"{name}.{mname}" in BLOCKING


def _is_native(cls: type) -> bool:
    """Whether a memkit class in cls's MRO is implemented in C/C++ (a class statement always
    leaves a Python function in its dict)."""
    return any(_is_memkit_class(k) and not any(inspect.isfunction(v) for v in vars(k).values()) for k in cls.__mro__)


def _fresh_memkit(obj: Any) -> bool:
    return _is_memkit_class(type(obj)) and not isinstance(obj, type)


def _view_roundtrip(obj: Any) -> Any:
    with memoryview(obj) as view:
        return bytes(view[:16])


def _with(obj: Any) -> None:
    with obj:
        pass


def main(argv: list[str]) -> int:
    module_name, progress_path = argv[1], argv[2]
    faulthandler.enable()
    # A hang is a finding: dump every thread's stack and die well before the test's timeout.
    faulthandler.dump_traceback_later(float(os.environ.get("MEMKIT_AUDIT_HANG_SECONDS", "150")), exit=True)
    warnings.simplefilter("error")
    audit = Audit(progress_path)
    if module_name == "<selftest-crash>":
        audit.note("selftest: a call that crashes the interpreter")
        faulthandler._sigsegv()
    objects = public_objects()
    everything = [item for group in objects.values() for item in group["classes"]]
    everything += [item for mod, items in EXTRA_CLASSES.items() for item in items]
    audit.build_hostile(everything)
    target = objects[module_name]
    classes = target["classes"] + EXTRA_CLASSES.get(module_name, [])
    for name, fn in sorted(target["functions"], key=lambda x: x[0]):
        audit.audit_function(name, fn)
    for name, cls in sorted(classes, key=lambda x: x[0]):
        audit.audit_class(name, cls)
    audit.note("<done: collecting garbage>")
    MEDDLE_TARGETS.clear()
    KEEP.clear()
    audit.hostile.clear()
    audit.small.clear()
    gc.collect()
    audit.note("<done>")
    print(json.dumps(audit.report()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
