"""The bad-input audit's inputs: hostile values, meddling callbacks, and the tables that
say how to make valid instances of every public class (FACTORIES) and valid arguments for
the callables that need them (VALID_ARGS). tests/_audit_driver.py does the calling.

A new public class needs an entry in FACTORIES (the audit fails until it has one): a few
instances in the states worth attacking - live, released, exported, locked, poisoned.
"""

from __future__ import annotations

import enum
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import memkit
import memkit.alloc
import memkit.layout
import memkit.slotmap


class HostileError(Exception):
    """Raised by the audit's own callbacks and dunder methods; memkit must let it through."""


# ---- hostile values -------------------------------------------------------------------------------

# Objects the meddling callbacks below act on: the receiver of the current call and the
# fresh valid arguments made for it (never the shared hostile pool).
MEDDLE_TARGETS: list[Any] = []
# What an object lives on (an atomic's buffer, a buffer's arena, a guard's lock): meddling
# with an object meddles with these too, so memory under a call can really go away.
BACKING: dict[int, list[Any]] = {}


def backed(obj: Any, *backing: Any) -> Any:
    BACKING.setdefault(id(obj), []).extend(backing)
    _keep(obj)  # ids stay unique while the entry exists
    return obj


def meddle() -> None:
    """Do destructive things to the objects of the call in progress: release, clear,
    reset, take, shrink - what a callback or a __del__ running inside a memkit call could
    do to the very objects that call is working on."""
    targets = list(MEDDLE_TARGETS)
    for target in list(targets):
        targets.extend(BACKING.get(id(target), ()))
    for target in targets:
        for name, args in (
            ("release", ()),
            ("clear", ()),
            ("reset", ()),
            ("take", ()),
            ("close", ()),
            ("disarm", ()),
            ("resize", (0,)),
            ("notify_all", ()),
        ):
            method = getattr(target, name, None) if not isinstance(target, type) else None
            if callable(method):
                try:
                    method(*args)
                except Exception:
                    pass


def meddling_callback(*args: Any, **kwargs: Any) -> int:
    meddle()
    return 1


def meddling_none(*args: Any, **kwargs: Any) -> None:
    meddle()


def raising_callback(*args: Any, **kwargs: Any) -> Any:
    raise HostileError("a callback that raises")


def huge_callback(*args: Any, **kwargs: Any) -> int:
    return 2**64


class IndexMeddler:
    """An int-like whose conversions meddle with the call's objects, then say 0."""

    def __index__(self) -> int:
        meddle()
        return 0

    def __int__(self) -> int:
        meddle()
        return 0

    def __float__(self) -> float:
        meddle()
        return 0.0

    def __bool__(self) -> bool:
        meddle()
        return False


class MeddlingInt(int):
    """An int whose float conversion meddles: C code that accepts int subclasses and then
    calls PyFloat_AsDouble (or PyNumber_Float) runs this Python code."""

    def __float__(self) -> float:
        meddle()
        return 0.0

    def __index__(self) -> int:
        meddle()
        return 0

    def __bool__(self) -> bool:
        meddle()
        return False


class MeddlingFloat(float):
    def __index__(self) -> int:
        meddle()
        return 0

    def __bool__(self) -> bool:
        meddle()
        return False


class HugeIndex:
    def __index__(self) -> int:
        return 2**64


class RaisingDunders:
    """Every conversion and comparison raises HostileError."""

    def __index__(self) -> int:
        raise HostileError("__index__")

    def __int__(self) -> int:
        raise HostileError("__int__")

    def __float__(self) -> float:
        raise HostileError("__float__")

    def __bool__(self) -> bool:
        raise HostileError("__bool__")

    def __eq__(self, other: object) -> bool:
        raise HostileError("__eq__")

    def __hash__(self) -> int:
        raise HostileError("__hash__")

    def __repr__(self) -> str:
        raise HostileError("__repr__")

    def __len__(self) -> int:
        raise HostileError("__len__")

    def __iter__(self) -> Iterator[Any]:
        raise HostileError("__iter__")


class DelMeddler:
    """A value whose destruction meddles with the call's objects (made fresh per call)."""

    def __del__(self) -> None:
        meddle()


class IntSubclass(int):
    pass


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


@memkit.layout.struct
class Inner:
    a: memkit.layout.u16
    b: memkit.layout.u8


@memkit.layout.struct
class Sample:
    x: memkit.layout.i32
    y: memkit.layout.f64
    arr: memkit.layout.Array(memkit.layout.u8, 3)  # type: ignore[valid-type]
    name: memkit.layout.Bytes(4)  # type: ignore[valid-type]
    c: memkit.layout.c_char
    flag: memkit.layout.bool_
    p: memkit.layout.ptr
    inner: Inner
    color: Annotated[Color, memkit.layout.u8]


@memkit.layout.struct(repr="packed")
class Packed:
    a: memkit.layout.u8
    b: memkit.layout.u32


class BufferAndAtomic(memkit.AlignedBuffer, memkit.AtomicInt):  # type: ignore[misc]
    """Python-side multiple inheritance of two compiled classes: each base's methods must
    find their own C++ object, or say it was never initialised."""

    def __init__(self, nbytes: int = 64) -> None:
        memkit.AlignedBuffer.__init__(self, nbytes)
        memkit.AtomicInt.__init__(self, 5)


def _half_initialised(init: Callable[[Any], None]) -> Any:
    obj = BufferAndAtomic.__new__(BufferAndAtomic)
    init(obj)
    return obj


# Extra classes audited with their module because user code makes them with the public API
# (struct classes' dicts hold memkit's Field descriptors; subclasses of compiled classes).
EXTRA_CLASSES = {
    "memkit.layout": [("Sample", Sample), ("Packed", Packed)],
    "memkit.buffers": [("BufferAndAtomic", BufferAndAtomic)],
}

# Objects that must outlive the run: views pinning exports, guards holding locks, owners.
KEEP: list[Any] = []


def _keep(*objs: Any) -> Any:
    KEEP.extend(objs)
    return objs[0]


# ---- factories: valid instances of every public class, in several states ------------------------


def _released(obj: Any) -> Any:
    obj.release()
    return obj


def _exported(obj: Any) -> Any:
    _keep(memoryview(obj))
    return obj


def _arena_buffer_after_scope() -> Any:
    arena = memkit.Arena(1024)
    with arena.scope():
        buf = arena.alloc(32)
    return buf


def _pooled(zero: bool = True) -> Any:
    return memkit.BufferPool((64, 128)).acquire(32, zero=zero)


def _poison_error() -> Any:
    m = memkit.Mutex([1])
    try:
        with m.lock():
            raise HostileError("poison it")
    except HostileError:
        pass
    try:
        m.lock(timeout=0)
    except memkit.PoisonError as exc:
        return exc
    raise AssertionError("the Mutex did not poison")


def _poisoned_mutex() -> Any:
    exc = _poison_error()
    exc.guard.release()
    return exc.guard  # released guard of a poisoned mutex


def _poisoned(lock: Any, guard_of: Callable[[Any], Any]) -> Any:
    try:
        with guard_of(lock):
            raise HostileError("poison it")
    except HostileError:
        pass
    return lock


def _held(lock: Any, guard_of: Callable[[Any], Any]) -> Any:
    _keep(guard_of(lock))
    return lock


def _atomic_from_buffer() -> Any:
    # A mapped buffer (1 MiB): once released, its pages are gone and a stray access faults.
    buf = memkit.AlignedBuffer(1 << 20)
    return backed(memkit.AtomicInt.from_buffer(buf, 8), buf)


def _array_from_buffer() -> Any:
    buf = bytearray(64)
    return backed(memkit.AtomicIntArray.from_buffer(buf, 4, 8), buf)


def _mapped_array_from_buffer() -> Any:
    buf = memkit.AlignedBuffer(1 << 20)
    return backed(memkit.AtomicIntArray.from_buffer(buf, 4, 8), buf)


def _slotmap() -> Any:
    sm = memkit.SlotMap()
    for i in range(5):
        sm.insert(i)
    del sm[sm.insert("gone")]
    return sm


def _stale_iterator() -> Any:
    sm = _slotmap()
    it = iter(sm)
    sm.insert("changed")
    return it


def _entered(cm: Any) -> Any:
    cm.__enter__()
    return cm


def _exited(cm: Any) -> Any:
    cm.__enter__()
    cm.__exit__(None, None, None)
    return cm


def _backed_by_owner(owner: Any, make: Callable[[Any], Any]) -> Any:
    return backed(make(owner), owner)


def _ref() -> Any:
    return _backed_by_owner(memkit.RefCell([1]), lambda c: c.borrow())


def _refmut() -> Any:
    return _backed_by_owner(memkit.RefCell([1]), lambda c: c.borrow_mut())


def _record_over_released_buffer() -> Any:
    buf = memkit.AlignedBuffer(64)
    rec = Sample.view(buf)
    return rec  # the record pins the buffer: release() must refuse


def _soa() -> Any:
    @memkit.layout.struct
    class Particle:
        id: memkit.layout.u32
        mass: memkit.layout.f64
        pos: memkit.layout.Array(memkit.layout.f32, 2)  # type: ignore[valid-type]

    return memkit.SoA(Particle, 4)


def _soa_without_numpy() -> Any:
    @memkit.layout.struct
    class Particle:
        id: memkit.layout.u32
        mass: memkit.layout.f64

    return memkit.SoA(Particle, 3, numpy=False)


FACTORIES: dict[type, Callable[[], list[tuple[str, Any]]]] = {
    # memkit.buffers
    memkit.AlignedBuffer: lambda: [
        ("live", memkit.AlignedBuffer(64)),
        ("empty", memkit.AlignedBuffer(0, 4096)),
        ("released", _released(memkit.AlignedBuffer(64))),
        ("exported", _exported(memkit.AlignedBuffer(64))),
        ("mapped", memkit.AlignedBuffer(1 << 20, zero=False)),
    ],
    memkit.Arena: lambda: [
        ("fresh", memkit.Arena(256)),
        ("capped", memkit.Arena(128, max_bytes=512)),
        ("in-scope", _keep_scope(memkit.Arena(256))),
        ("exported", _arena_with_export()),
    ],
    memkit.ArenaBuffer: lambda: [
        ("live", _backed_by_owner(memkit.Arena(256), lambda a: a.alloc(16))),
        ("after-scope", _arena_buffer_after_scope()),
        ("released", _released(memkit.Arena(256).alloc(16))),
        ("exported", _exported(memkit.Arena(256).alloc(16))),
    ],
    memkit.ArenaScope: lambda: [
        ("unentered", _backed_by_owner(memkit.Arena(256), lambda a: a.scope())),
        ("entered", _entered(_backed_by_owner(memkit.Arena(256), lambda a: a.scope()))),
        ("exited", _exited(memkit.Arena(256).scope())),
    ],
    memkit.BufferPool: lambda: [
        ("fresh", memkit.BufferPool()),
        ("lending", _pool_lending()),
        ("tiny", memkit.BufferPool((64,), max_cached_bytes=0, align=1)),
    ],
    memkit.PooledBuffer: lambda: [
        ("live", _backed_by_owner(memkit.BufferPool((64, 128)), lambda p: p.acquire(32))),
        ("released", _released(_pooled())),
        ("exported", _exported(_pooled())),
        ("oversized", memkit.BufferPool((64,)).acquire(1000, zero=False)),
    ],
    # memkit.atomic
    memkit.AtomicInt: lambda: [
        ("fresh", memkit.AtomicInt(5)),
        ("in-buffer", _atomic_from_buffer()),
        ("released", _released(_atomic_from_buffer())),
    ],
    memkit.AtomicBool: lambda: [("fresh", memkit.AtomicBool(True))],
    memkit.AtomicIntArray: lambda: [
        ("fresh", memkit.AtomicIntArray(4)),
        ("padded", memkit.AtomicIntArray(3, padded=True)),
        ("empty", memkit.AtomicIntArray(0)),
        ("in-buffer", _array_from_buffer()),
        ("in-mapping", _mapped_array_from_buffer()),
        ("released", _released(_array_from_buffer())),
    ],
    memkit.ShardedCounter: lambda: [("fresh", memkit.ShardedCounter())],
    memkit.Ordering: lambda: [("seq_cst", memkit.Ordering.SEQ_CST), ("release", memkit.Ordering.RELEASE)],
    # memkit.cell
    memkit.Cell: lambda: [("fresh", memkit.Cell([1]))],
    memkit.RefCell: lambda: [
        ("fresh", memkit.RefCell([1])),
        ("shared", _held(memkit.RefCell([1]), lambda c: c.borrow())),
        ("exclusive", _held(memkit.RefCell([1]), lambda c: c.borrow_mut())),
    ],
    memkit.Ref: lambda: [("live", _ref()), ("released", _released(_ref()))],
    memkit.RefMut: lambda: [("live", _refmut()), ("released", _released(_refmut()))],
    memkit.OnceCell: lambda: [("empty", memkit.OnceCell()), ("set", _set_once(memkit.OnceCell()))],
    memkit.BorrowStateError: lambda: [("error", memkit.BorrowStateError("x"))],
    memkit.BorrowError: lambda: [("error", memkit.BorrowError("x"))],
    memkit.BorrowMutError: lambda: [("error", memkit.BorrowMutError("x"))],
    # memkit.sync
    memkit.Mutex: lambda: [
        ("fresh", memkit.Mutex([1])),
        ("held", _held(memkit.Mutex([1]), lambda m: m.lock())),
        ("poisoned", _poisoned(memkit.Mutex([1]), lambda m: m.lock())),
        ("unpoisonable", memkit.Mutex([1], poison=False)),
    ],
    memkit.MutexGuard: lambda: [
        ("live", _backed_by_owner(memkit.Mutex([1]), lambda m: m.lock())),
        ("released", _released(memkit.Mutex([1]).lock())),
        ("poisoned", _poisoned_mutex()),
    ],
    memkit.RwLock: lambda: [
        ("fresh", memkit.RwLock([1])),
        ("read", _held(memkit.RwLock([1]), lambda r: r.read())),
        ("written", _held(memkit.RwLock([1]), lambda r: r.write())),
        ("poisoned", _poisoned(memkit.RwLock([1]), lambda r: r.write())),
    ],
    memkit.ReadGuard: lambda: [
        ("live", _backed_by_owner(memkit.RwLock([1]), lambda r: r.read())),
        ("released", _released(memkit.RwLock([1]).read())),
    ],
    memkit.WriteGuard: lambda: [
        ("live", _backed_by_owner(memkit.RwLock([1]), lambda r: r.write())),
        ("released", _released(memkit.RwLock([1]).write())),
    ],
    memkit.Condvar: lambda: [("fresh", memkit.Condvar())],
    memkit.PoisonError: lambda: [("real", _poison_error()), ("bare", memkit.PoisonError("x"))],
    memkit.lock_all: lambda: [
        ("fresh", memkit.lock_all(memkit.Mutex(1), memkit.RwLock(2))),
        ("entered", _entered(memkit.lock_all(memkit.Mutex(1), memkit.RwLock(2)))),
    ],
    # memkit.slotmap
    memkit.SlotMap: lambda: [("empty", memkit.SlotMap()), ("filled", _slotmap())],
    memkit.slotmap.SlotMapKeys: lambda: [("keys", _backed_by_owner(_slotmap(), lambda sm: sm.keys()))],
    memkit.slotmap.SlotMapValues: lambda: [("values", _backed_by_owner(_slotmap(), lambda sm: sm.values()))],
    memkit.slotmap.SlotMapItems: lambda: [("items", _backed_by_owner(_slotmap(), lambda sm: sm.items()))],
    memkit.slotmap.SlotMapIterator: lambda: [
        ("keys", _backed_by_owner(_slotmap(), iter)),
        ("values", _backed_by_owner(_slotmap(), lambda sm: iter(sm.values()))),
        ("items", _backed_by_owner(_slotmap(), lambda sm: iter(sm.items()))),
        ("stale", _stale_iterator()),
    ],
    # memkit.guard / memkit.cow
    memkit.ScopeGuard: lambda: [
        ("armed", memkit.defer(list)),
        ("disarmed", _disarmed(memkit.on_error(list))),
        ("restoring", memkit.restoring_item({}, "k", 1)),
    ],
    memkit.Cow: lambda: [
        ("borrowed", memkit.Cow(b"abc")),
        ("bytearray", _backed_by_owner(bytearray(b"abc"), memkit.Cow)),
        ("owned", memkit.Cow.owned([1, 2])),
        ("memoryview", memkit.Cow(memoryview(b"xyz"))),
    ],
    # memkit.alloc
    memkit.Tracker: lambda: [("fresh", memkit.alloc.Tracker()), ("all", memkit.alloc.Tracker("all"))],
    memkit.alloc.Limit: lambda: [("fresh", memkit.alloc.Limit(1 << 30))],
    memkit.AllocStats: lambda: [("stats", memkit.alloc.stats())],
    memkit.alloc.DomainStats: lambda: [("raw", memkit.alloc.stats().by_domain["raw"])],
    memkit.MemoryLimitError: lambda: [("error", memkit.MemoryLimitError(1, 2, 3))],
    # memkit.layout
    memkit.Layout: lambda: [("16/8", memkit.Layout(16, 8)), ("0/1", memkit.Layout(0, 1))],
    memkit.LayoutError: lambda: [("error", memkit.LayoutError("x"))],
    memkit.layout.FieldType: lambda: [
        ("u8", memkit.layout.field_type(memkit.layout.u8)),
        ("f64", memkit.layout.field_type(memkit.layout.f64)),
        ("bool", memkit.layout.field_type(memkit.layout.bool_)),
        ("c_char", memkit.layout.field_type(memkit.layout.c_char)),
        ("ptr", memkit.layout.field_type(memkit.layout.ptr)),
        ("bytes", memkit.layout.Bytes(4)),
        ("array", memkit.layout.Array(memkit.layout.u16, 3)),
        ("struct", memkit.layout.field_type(Sample)),
        ("enum", memkit.layout.field_type(Annotated[Color, memkit.layout.u8])),
    ],
    memkit.layout.FieldInfo: lambda: [("field", memkit.layout.fields(Sample)[0])],
    memkit.ArrayView: lambda: [
        ("field", Sample().arr),
        ("on-buffer", _backed_by_owner(memkit.AlignedBuffer(1 << 20), lambda b: Sample.view(b).arr)),
        ("structs", Sample.array_view(bytearray(memkit.size_of(Sample) * 2), 2)),
        ("readonly", Sample.array_view(bytes(memkit.size_of(Sample) * 2), 2)),
        ("empty", Sample.array_view(bytearray(8), 0)),
    ],
    memkit.SoA: lambda: [("numpy", _soa()), ("memoryview", _soa_without_numpy())],
    memkit.Struct: lambda: [
        ("fresh", Sample()),
        ("on-buffer", _backed_by_owner(memkit.AlignedBuffer(1 << 20), Sample.view)),
        ("readonly", Sample.view(bytes(memkit.size_of(Sample)))),
        ("pinning", _record_over_released_buffer()),
        ("packed", Packed(1, 2)),
    ],
    Sample: lambda: [("fresh", Sample()), ("readonly", Sample.view(bytes(memkit.size_of(Sample))))],
    BufferAndAtomic: lambda: [
        ("both", BufferAndAtomic(64)),
        ("buffer-only", _half_initialised(lambda o: memkit.AlignedBuffer.__init__(o, 64))),
        ("atomic-only", _half_initialised(lambda o: memkit.AtomicInt.__init__(o, 5))),
    ],
    Packed: lambda: [("fresh", Packed(1, 2)), ("offset", Packed.view(bytearray(16), 3))],
}


def _keep_scope(arena: Any) -> Any:
    scope = arena.scope()
    scope.__enter__()
    _keep(scope, arena.alloc(8))
    return arena


def _arena_with_export() -> Any:
    arena = memkit.Arena(256)
    _keep(memoryview(arena.alloc(16)))
    return arena


def _pool_lending() -> Any:
    pool = memkit.BufferPool((64, 128))
    _keep(pool.acquire(10), memoryview(pool.acquire(100)))
    pool.acquire(20).release()
    return pool


def _set_once(cell: Any) -> Any:
    cell.set([1])
    return cell


def _disarmed(guard: Any) -> Any:
    guard.disarm()
    return guard


# ---- per-callable rules ---------------------------------------------------------------------------

# Exceptions a callable documents beyond DOCUMENTED.
EXTRA_ALLOWED: dict[str, tuple[type[BaseException], ...]] = {
    "Mutex.lock": (TimeoutError,),
    "RwLock.read": (TimeoutError,),
    "RwLock.write": (TimeoutError,),
    "lock_all.__enter__": (TimeoutError,),
    "restoring": (AttributeError,),  # setattr/getattr of the named attribute
    "offset_of": (AttributeError,),  # documented: a name the struct does not have
    "SoA.__getattr__": (AttributeError,),
    "SoA.column": (AttributeError,),  # documented: a path with no column
    "SoA.__setattr__": (AttributeError,),
    "SlotMapIterator.__next__": (StopIteration,),
}

SLOW_CALL_SECONDS = float(os.environ.get("MEMKIT_AUDIT_SLOW_SECONDS", "2"))

# Attribute access itself: AttributeError is its documented failure.
ATTRIBUTE_PROTOCOL = {"__getattribute__", "__getattr__", "__setattr__", "__delattr__"}

# Calls that wait: their timeout is always given, from SAFE_TIMEOUTS, and the positional
# arguments stop before it (the number is how many come first).
BLOCKING = {"Condvar.wait": 1, "Condvar.wait_while": 2}
SAFE_TIMEOUTS: list[tuple[str, Any]] = [
    ("0", 0),
    ("0.0", 0.0),
    ("1e-4", 1e-4),
    ("-1", -1),
    ("-1e-9", -1e-9),
    ("nan", math.nan),
    ("-inf", -math.inf),
    ("'x'", "x"),
    ("b''", b""),
    ("IntSubclass(0)", IntSubclass(0)),
    ("RaisingDunders()", RaisingDunders()),
    ("IndexMeddler()", IndexMeddler()),
    ("MeddlingInt(0)", MeddlingInt(0)),
    ("MeddlingFloat(0.0)", MeddlingFloat(0.0)),
]


# Live objects of other memkit types that join the small pool used past the first position.
SMALL_EXTRAS = {
    "<AlignedBuffer live>",
    "<ArenaBuffer live>",
    "<Mutex fresh>",
    "<MutexGuard live>",
    "<Cell fresh>",
    "<SlotMap empty>",
    "<AtomicInt fresh>",
    "<Layout 16/8>",
    "<AlignedBuffer uninitialised>",
    "<Arena uninitialised>",
}

# Instance states that join the hostile pool besides each class's first one.
HOSTILE_STATES = {"released", "after-scope", "exited", "poisoned", "stale", "exported"}


def _buf() -> Any:
    return memkit.AlignedBuffer(64)


# Valid arguments for callables whose first parameters are not happy with 1: the audit puts
# each hostile value in each position of these, so later positions get exercised too.
# Makers run per call, so meddling callbacks act on fresh objects.
VALID_ARGS: dict[str, Callable[[], tuple[Any, ...]]] = {
    "AlignedBuffer.__init__": lambda: (64, 8),
    "AlignedBuffer.from_layout": lambda: (memkit.Layout(16, 8),),
    "AlignedBuffer.resize": lambda: (32,),
    "AlignedBuffer": lambda: (64, 8),
    "Arena.alloc": lambda: (16, 8),
    "Arena": lambda: (256,),
    "BufferPool.acquire": lambda: (16, True),
    "BufferPool": lambda: ((64, 128),),
    "AtomicInt.from_buffer": lambda: (_buf(), 8),
    "AtomicInt.compare_exchange": lambda: (5, 6, 4, 4),
    "AtomicInt.compare_exchange_weak": lambda: (5, 6, 4, 4),
    "AtomicInt.fetch_update": lambda: (lambda v: v + 1, 4, 4),
    "AtomicInt.store": lambda: (1, 4),
    "AtomicBool.compare_exchange": lambda: (True, False, 4, 4),
    "AtomicBool.compare_exchange_weak": lambda: (True, False, 4, 4),
    "AtomicIntArray.from_buffer": lambda: (_buf(), 2, 8, False),
    "AtomicIntArray.store": lambda: (0, 5, 4),
    "AtomicIntArray.swap": lambda: (0, 5, 4),
    "AtomicIntArray.fetch_add": lambda: (0, 5, 4),
    "AtomicIntArray.compare_exchange": lambda: (0, 0, 5, 4, 4),
    "AtomicIntArray.compare_exchange_weak": lambda: (0, 0, 5, 4, 4),
    "AtomicIntArray.fetch_update": lambda: (0, lambda v: v + 1, 4, 4),
    "Cell.swap": lambda: (memkit.Cell(2),),
    "RefCell.swap": lambda: (memkit.RefCell(2),),
    "Condvar.wait": lambda: (memkit.Mutex([1]).lock(),),
    "Condvar.wait_while": lambda: (memkit.Mutex([1]).lock(), lambda v: False),
    "SlotMap.__getitem__": lambda: (1 << 32,),
    "SlotMap.__setitem__": lambda: (1 << 32, "v"),
    "SlotMap.get": lambda: (1 << 32, None),
    "SlotMap.insert_with_key": lambda: (lambda k: k,),
    "Layout.extend": lambda: (memkit.Layout(4, 4),),
    "Layout.of": lambda: (memkit.layout.u8,),
    "Layout.align_to": lambda: (16,),
    "Struct.view": lambda: (bytearray(memkit.size_of(Sample)), 0),
    "Struct.array_view": lambda: (bytearray(memkit.size_of(Sample) * 2), 2, 0),
    "SoA": lambda: (Inner, 2),
    "SoA.from_aos": lambda: (Inner.array_view(bytearray(8), 2),),
    "SoA.column": lambda: ("id",),
    "ArrayView": lambda: (Sample(), 16, memkit.layout.Array(memkit.layout.u8, 3), "label"),
    "ArrayView.__setitem__": lambda: (0, 1),
    "ArrayView.assign": lambda: ([1, 2, 3],),
    "lock_all": lambda: (memkit.Mutex(1), memkit.Mutex(2)),
    "Mutex": lambda: ([1],),
    "RwLock": lambda: ([1],),
    "Cell": lambda: ([1],),
    "RefCell": lambda: ([1],),
    "Cow": lambda: (b"abc",),
    "Cow.owned": lambda: (b"abc",),
    "ScopeGuard": lambda: (list, (), {}, "always"),
    "defer": lambda: (list,),
    "on_success": lambda: (list,),
    "on_error": lambda: (list,),
    "restoring": lambda: (_Attrs(), "a", 2),
    "restoring_item": lambda: ({}, "k", 2),
    "Tracker": lambda: ("current",),
    "Limit": lambda: (1 << 30, "current"),
    "MemoryLimitError": lambda: (1, 2, 3),
    "Layout": lambda: (16, 8),
    "Layout.from_size_align": lambda: (16, 8),
    "size_of": lambda: (Sample,),
    "align_of": lambda: (Sample,),
    "offset_of": lambda: (Sample, "inner.a"),
    "describe": lambda: (Sample,),
    "optimize": lambda: (Sample,),
    "fields": lambda: (Sample,),
    "asdict": lambda: (Sample(),),
    "Array": lambda: (memkit.layout.u8, 2),
    "aligned_empty": lambda: ((2, 2), "f8", 64),
    "aligned_zeros": lambda: ((2, 2), "f8", 64),
    "limit": lambda: ("1 MiB", "current"),
    "field_type": lambda: (memkit.layout.u8, "label"),
    "DomainStats": lambda: (0, 0, 0, 0, 0, 0, {}),
    "AllocStats": lambda: (0, 0, 0, 0, 0, 0, {}),
    "FieldInfo": lambda: ("x", memkit.layout.u8, 0),
}


class _Attrs:
    a = 1


def valid_args(key: str, n: int) -> list[Any]:
    made = list(VALID_ARGS[key]()) if key in VALID_ARGS else []
    while len(made) < n:
        made.append(1)
    return made[:n]


# ---- the audit ------------------------------------------------------------------------------------


def _released_view() -> memoryview:
    view = memoryview(bytearray(8))
    view.release()
    return view


def plain_values() -> list[tuple[str, Any]]:
    """Wrong types and hostile values, each with the label failures show."""
    return [
        ("None", None),
        ("True", True),
        ("-1", -1),
        ("0", 0),
        ("1", 1),
        ("3", 3),
        ("6", 6),
        ("2**31", 2**31),
        ("2**40+1", 2**40 + 1),
        ("2**62", 2**62),
        ("sys.maxsize", sys.maxsize),
        ("2**63", 2**63),
        ("2**64", 2**64),
        ("-2**63", -(2**63)),
        ("-2**63-1", -(2**63) - 1),
        ("-2**64", -(2**64)),
        ("0.5", 0.5),
        ("-0.0", -0.0),
        ("1e300", 1e300),
        ("nan", math.nan),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("'x'", "x"),
        ("''", ""),
        ("'64 MiB'", "64 MiB"),
        ("'\\ud800'", "\ud800"),
        ("b'x'", b"x"),
        ("bytearray(16)", bytearray(16)),
        ("memoryview(b'abcdefgh')", memoryview(b"abcdefgh")),
        ("memoryview(released)", _released_view()),
        ("object()", object()),
        ("[]", []),
        ("{}", {}),
        ("(1, 2)", (1, 2)),
        ("IntSubclass(7)", IntSubclass(7)),
        ("HugeIndex()", HugeIndex()),
        ("RaisingDunders()", RaisingDunders()),
        ("IndexMeddler()", IndexMeddler()),
        ("MeddlingInt(0)", MeddlingInt(0)),
        ("MeddlingFloat(0.0)", MeddlingFloat(0.0)),
        ("Color.GREEN", Color.GREEN),
        ("int", int),
        ("Sample", Sample),
        ("meddling_callback", meddling_callback),
        ("meddling_none", meddling_none),
        ("raising_callback", raising_callback),
        ("huge_callback", huge_callback),
    ]
