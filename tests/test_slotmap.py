"""SlotMap, key_index, key_generation (API.md, memkit.slotmap)."""

from __future__ import annotations

import copy
import doctest
import gc
import pickle
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import memkit
import memkit.slotmap
from memkit import SlotMap, key_generation, key_index
from memkit._native import core

_hooks = core.slotmap
LAST_GENERATION = 2**32 - 1


def check(sm: SlotMap[Any]) -> None:
    assert _hooks._invariant_violation(sm) is None


def make_key(index: int, generation: int) -> int:
    return generation << 32 | index


class Obj:
    """A plain object that can be weakly referenced."""


# ---- the API ------------------------------------------------------------------------------------


def test_every_api_name() -> None:
    sm: SlotMap[str] = SlotMap()
    a = sm.insert("a")
    b = sm.insert_with_key(lambda k: f"b{k}")
    assert isinstance(a, int) and isinstance(b, int) and a != b
    assert sm[a] == "a" and sm[b] == f"b{b}"
    assert sm.get(a) == "a" and sm.get(a, "d") == "a"
    assert a in sm and len(sm) == 2
    assert list(sm) == [a, b]
    assert list(sm.keys()) == [a, b]
    assert list(sm.values()) == ["a", f"b{b}"]
    assert list(sm.items()) == [(a, "a"), (b, f"b{b}")]
    sm[a] = "A"  # replaces the value of a live key
    assert sm[a] == "A"
    assert sm.remove(a) == "A"
    assert a not in sm and sm.get(a) is None and sm.get(a, "d") == "d"
    del sm[b]
    assert len(sm) == 0 and list(sm) == []
    c = sm.insert("c")
    sm.clear()
    assert c not in sm and len(sm) == 0
    assert key_index(make_key(5, 9)) == 5 and key_generation(make_key(5, 9)) == 9


def test_exports() -> None:
    for name in ("SlotMap", "key_index", "key_generation"):
        assert name in memkit.__all__
        assert getattr(memkit, name) is getattr(memkit.slotmap, name)
    assert set(memkit.slotmap.__all__) <= set(dir(memkit.slotmap))
    assert SlotMap.__module__ == "memkit.slotmap"


def test_generic_alias_and_repr() -> None:
    assert str(SlotMap[int]) == "memkit.slotmap.SlotMap[int]"
    assert memkit.slotmap.SlotMapValues[int] is not None
    sm: SlotMap[object] = SlotMap()
    assert repr(sm) == "SlotMap({})"
    k = sm.insert("x")
    j = sm.insert([1])
    assert repr(sm) == f"SlotMap({{{k}: 'x', {j}: [1]}})"
    sm[j] = sm  # a map that contains itself
    assert repr(sm) == f"SlotMap({{{k}: 'x', {j}: SlotMap({{...}})}})"
    assert repr(sm.keys()) == f"SlotMapKeys([{k}, {j}])"
    assert repr(sm.values()).startswith("SlotMapValues(['x', SlotMap(")
    assert repr(sm.items()).startswith(f"SlotMapItems([({k}, 'x'), ({j}, SlotMap(")
    sm.clear()


def test_constructor_and_type_rules() -> None:
    with pytest.raises(TypeError, match="takes no arguments"):
        SlotMap([1])  # type: ignore[call-arg]
    with pytest.raises(TypeError):

        class Sub(SlotMap):  # type: ignore[misc, type-arg]
            pass

    for view_type in (memkit.slotmap.SlotMapKeys, memkit.slotmap.SlotMapValues, memkit.slotmap.SlotMapItems):
        with pytest.raises(TypeError):
            view_type()
    with pytest.raises(TypeError):
        memkit.slotmap.SlotMapIterator()
    sm: SlotMap[int] = SlotMap()
    with pytest.raises(TypeError, match="get expected 1 or 2 arguments"):
        sm.get()  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="get expected 1 or 2 arguments"):
        sm.get(1, 2, 3)  # type: ignore[call-overload]


def test_pickle_and_copy_are_refused() -> None:
    sm: SlotMap[int] = SlotMap()
    sm.insert(1)
    with pytest.raises(TypeError, match="cannot pickle or copy a SlotMap"):
        pickle.dumps(sm)
    with pytest.raises(TypeError, match="cannot pickle or copy a SlotMap"):
        copy.copy(sm)
    with pytest.raises(TypeError, match="cannot pickle or copy a SlotMap"):
        copy.deepcopy(sm)


def test_doctests() -> None:
    result = doctest.testmod(memkit.slotmap, raise_on_error=False)
    assert result.failed == 0 and result.attempted >= 2
    runner = doctest.DocTestRunner()
    tests = doctest.DocTestFinder().find(SlotMap, "SlotMap", globs={})
    assert sum(len(t.examples) for t in tests) > 0
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


# ---- keys ------------------------------------------------------------------------------------


def test_keys_pack_generation_above_index() -> None:
    sm: SlotMap[int] = SlotMap()
    keys = [sm.insert(i) for i in range(5)]
    assert keys == [make_key(i, 1) for i in range(5)]  # fresh slots: generation 1
    sm.remove(keys[2])
    k = sm.insert(99)
    assert key_index(k) == 2 and key_generation(k) == 3  # reused: generation 1 -> 2 (vacant) -> 3
    for key in [*keys, k]:
        assert key_generation(key) % 2 == 1
        assert make_key(key_index(key), key_generation(key)) == key
    assert key_index(2**64 - 1) == 2**32 - 1 and key_generation(2**64 - 1) == 2**32 - 1
    assert key_index(0) == 0 and key_generation(0) == 0


def test_a_removed_key_stays_stale_through_100k_reuses() -> None:
    sm: SlotMap[int] = SlotMap()
    old: list[int] = []
    key = sm.insert(0)
    for i in range(1, 100_001):
        old.append(key)
        assert sm.remove(key) == i - 1
        key = sm.insert(i)
        assert key_index(key) == 0  # the same slot every time...
    assert key_generation(key) == 2 * 100_000 + 1
    assert not any(k in sm for k in old)  # ...and no earlier key reaches it
    assert all(sm.get(k, "stale") == "stale" for k in old)
    for k in old[::1000]:
        with pytest.raises(KeyError):
            sm[k]
        with pytest.raises(KeyError):
            sm.remove(k)
        with pytest.raises(KeyError):
            del sm[k]
        with pytest.raises(KeyError):
            sm[k] = -1
    assert sm[key] == 100_000 and len(sm) == 1
    assert _hooks._debug_state(sm)["capacity"] == 1
    check(sm)


def test_clear_makes_every_key_stale_even_after_the_slots_are_reused() -> None:
    sm: SlotMap[str] = SlotMap()
    first = [sm.insert(f"a{i}") for i in range(100)]
    sm.clear()
    assert len(sm) == 0 and not any(k in sm for k in first)
    second = [sm.insert(f"b{i}") for i in range(100)]
    assert {key_index(k) for k in second} == {key_index(k) for k in first}  # same slots...
    assert not set(first) & set(second)  # ...new keys
    assert not any(k in sm for k in first)
    assert _hooks._debug_state(sm)["capacity"] == 100
    check(sm)


def test_a_slot_at_the_last_generation_is_retired_not_reused() -> None:
    sm: SlotMap[str] = SlotMap()
    a = sm.insert("a")
    sm.insert("b")
    _hooks._force_generation(sm, 0, LAST_GENERATION)
    assert a not in sm  # forcing re-keys the entry
    last = make_key(0, LAST_GENERATION)
    assert sm[last] == "a"
    assert sm.remove(last) == "a"
    state = _hooks._debug_state(sm)
    assert state["retired"] == 1
    for _ in range(1000):  # slot 0 never comes back
        k = sm.insert("x")
        assert key_index(k) != 0
        sm.remove(k)
    for stale in (a, last, make_key(0, 0), make_key(0, 1)):
        assert stale not in sm
        with pytest.raises(KeyError):
            sm[stale]
    assert [key_index(k) for k in sm] == [1]
    check(sm)


def test_clear_and_aborted_insert_with_key_retire_at_the_last_generation() -> None:
    sm: SlotMap[str] = SlotMap()
    sm.insert("a")
    _hooks._force_generation(sm, 0, LAST_GENERATION)
    sm.clear()
    assert _hooks._debug_state(sm)["retired"] == 1
    assert key_index(sm.insert("b")) == 1
    sm.remove(make_key(1, 1))
    _hooks._force_generation(sm, 1, LAST_GENERATION - 1)  # vacant: the next occupant gets the last generation
    seen: list[int] = []

    def fail(key: int) -> str:
        seen.append(key)
        raise ValueError("no")

    with pytest.raises(ValueError):
        sm.insert_with_key(fail)
    assert seen == [make_key(1, LAST_GENERATION)]
    assert _hooks._debug_state(sm)["retired"] == 2
    assert key_index(sm.insert("c")) == 2
    check(sm)


def test_force_generation_refuses_what_would_break_an_invariant() -> None:
    sm: SlotMap[int] = SlotMap()
    sm.insert(1)
    for index, generation in ((0, 4), (1, 3), (0, 0)):
        with pytest.raises(ValueError, match="cannot set slot"):
            _hooks._force_generation(sm, index, generation)
    with pytest.raises(TypeError, match="expected a SlotMap"):
        _hooks._force_generation({}, 0, 1)  # type: ignore[arg-type]
    check(sm)


# ---- bad keys ---------------------------------------------------------------------------------

OUT_OF_RANGE = [-1, -(2**70), 2**64, 2**64 + make_key(0, 1), 2**200]
WRONG_TYPE = [1.5, "1", b"1", None, True, False, object(), (1,), [4294967296]]


@pytest.mark.parametrize("key", OUT_OF_RANGE, ids=repr)
def test_ints_outside_64_bits_are_absent_keys(key: int) -> None:
    sm: SlotMap[str] = SlotMap()
    sm.insert("v")
    with pytest.raises(KeyError) as info:
        sm[key]
    assert info.value.args == (key,)
    with pytest.raises(KeyError):
        sm.remove(key)
    with pytest.raises(KeyError):
        del sm[key]
    with pytest.raises(KeyError):
        sm[key] = "w"
    assert key not in sm
    assert sm.get(key) is None and sm.get(key, "d") == "d"
    assert key not in sm.keys() and (key, "v") not in sm.items()
    with pytest.raises(ValueError, match="not a SlotMap key"):
        key_index(key)
    with pytest.raises(ValueError, match="not a SlotMap key"):
        key_generation(key)
    assert len(sm) == 1
    check(sm)


@pytest.mark.parametrize("key", WRONG_TYPE, ids=repr)
def test_non_int_keys_are_type_errors(key: Any) -> None:
    sm: SlotMap[str] = SlotMap()
    sm.insert("v")
    message = "not bool" if isinstance(key, bool) else "SlotMap keys are ints, got"
    calls: list[Callable[[], object]] = [
        lambda: sm[key],
        lambda: sm.get(key),
        lambda: sm.get(key, "d"),
        lambda: sm.remove(key),
        lambda: key in sm,
        lambda: key in sm.keys(),
        lambda: (key, "v") in sm.items(),
        lambda: key_index(key),
        lambda: key_generation(key),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=message):
            call()
    with pytest.raises(TypeError, match=message):
        del sm[key]
    with pytest.raises(TypeError, match=message):
        sm[key] = "w"
    assert len(sm) == 1
    check(sm)


def test_index_objects_and_int_subclasses_are_keys() -> None:
    class MyInt(int):
        pass

    class Raises:
        def __index__(self) -> int:
            raise ArithmeticError("boom")

    sm: SlotMap[str] = SlotMap()
    k = sm.insert("v")
    assert sm[np.uint64(k)] == "v"
    assert sm[MyInt(k)] == "v"
    assert MyInt(k) in sm and np.uint64(k) in sm
    assert key_index(np.uint64(k)) == 0
    assert sm.get(np.int64(-1)) is None
    with pytest.raises(ArithmeticError, match="boom"):
        sm[Raises()]
    with pytest.raises(ArithmeticError, match="boom"):
        _ = Raises() in sm


# ---- references ----------------------------------------------------------------------------------


def test_reference_counts() -> None:
    value = Obj()
    base = sys.getrefcount(value)
    sm: SlotMap[Obj] = SlotMap()
    k = sm.insert(value)
    assert sys.getrefcount(value) == base + 1
    for _ in range(3):
        assert sm[k] is value and sm.get(k) is value
        list(sm.items())
        list(sm.values())
        assert value in sm.values() and (k, value) in sm.items()
        repr(sm)
    assert sys.getrefcount(value) == base + 1
    assert sm.remove(k) is value
    assert sys.getrefcount(value) == base
    k = sm.insert(value)
    del sm[k]
    assert sys.getrefcount(value) == base
    k = sm.insert(value)
    other = Obj()
    sm[k] = other  # replacing drops the old value
    assert sys.getrefcount(value) == base
    sm[k] = value
    assert sys.getrefcount(value) == base + 1
    sm.clear()
    assert sys.getrefcount(value) == base
    for _ in range(10):
        sm.insert(value)
    assert sys.getrefcount(value) == base + 10
    del sm
    assert sys.getrefcount(value) == base


def test_insert_with_key_reference_counts() -> None:
    value = Obj()
    base = sys.getrefcount(value)
    sm: SlotMap[Obj] = SlotMap()
    k = sm.insert_with_key(lambda key: value)
    assert sys.getrefcount(value) == base + 1

    def fail(key: int) -> Obj:
        raise RuntimeError(value)  # the exception holds the value until it is dropped

    with pytest.raises(RuntimeError):
        sm.insert_with_key(fail)
    assert sys.getrefcount(value) == base + 1
    sm.remove(k)
    assert sys.getrefcount(value) == base


def test_values_are_collected_when_the_map_is_deleted() -> None:
    sm: SlotMap[Obj] = SlotMap()
    values = [Obj() for _ in range(100)]
    refs = [weakref.ref(v) for v in values]
    for v in values:
        sm.insert(v)
    del values, v
    assert all(r() is not None for r in refs)
    del sm  # no cycles: plain reference counting frees them, no gc.collect()
    assert all(r() is None for r in refs)


def test_cycles_through_the_map_are_collected() -> None:
    class Node:
        def __init__(self, sm: SlotMap[Any]) -> None:
            self.sm = sm
            self.key = sm.insert(self)

    gc.collect()
    sm: SlotMap[Any] = SlotMap()
    nodes = [Node(sm) for _ in range(10)]
    first_ref = weakref.ref(nodes[0])
    node_refs = [weakref.ref(n) for n in nodes]
    sm.insert(sm)  # the map holds itself
    sm.insert(iter(sm))  # and an iterator over itself
    sm.insert(sm.items())  # and a view of itself
    del nodes, sm
    assert first_ref() is not None  # only the collector can free a cycle
    gc.collect()
    assert first_ref() is None and all(r() is None for r in node_refs)


def test_deeply_nested_maps_deallocate_without_overflowing_the_stack() -> None:
    outer: SlotMap[Any] = SlotMap()
    inner = outer
    for _ in range(200_000):
        nested: SlotMap[Any] = SlotMap()
        inner.insert(nested)
        inner = nested
    del inner, nested
    del outer  # would recurse 200k C frames without the trashcan


# ---- re-entrancy: a value's __del__ uses the map -----------------------------------------------


class Reenters:
    """On collection, runs `action(sm)`; records what it saw."""

    def __init__(self, sm: SlotMap[Any], action: Callable[[SlotMap[Any]], object]) -> None:
        self.sm = sm
        self.action = action
        self.log: list[object] = []

    def __del__(self) -> None:
        self.log.append(self.action(self.sm))


@pytest.mark.parametrize(
    "action",
    [
        lambda sm: sm.insert("from __del__"),
        lambda sm: sm.clear(),
        lambda sm: list(sm.items()),
        lambda sm: [sm.remove(k) for k in list(sm)],
        lambda sm: (len(sm), repr(sm)),
    ],
    ids=["insert", "clear", "iterate", "remove-all", "len-repr"],
)
@pytest.mark.parametrize("how", ["remove", "del", "replace", "clear", "many-clear"])
def test_del_that_touches_the_map_during_removal(action: Callable[[SlotMap[Any]], object], how: str) -> None:
    sm: SlotMap[Any] = SlotMap()
    survivors = [sm.insert(i) for i in range(5)]
    value = Reenters(sm, action)
    log = value.log
    k = sm.insert(value)
    others = [sm.insert(Reenters(sm, action)) for _ in range(3)] if how == "many-clear" else []
    del value
    if how == "remove":
        sm.remove(k)  # the value's last reference comes back to us and dies here
    elif how == "del":
        del sm[k]
    elif how == "replace":
        sm[k] = "replacement"
    else:
        sm.clear()
    assert len(log) == 1
    check(sm)
    assert k not in sm or how == "replace"
    assert all(o not in sm for o in others)
    if how in ("clear", "many-clear"):
        assert not any(s in sm for s in survivors)
    sm.clear()
    check(sm)


def test_del_that_touches_the_map_while_the_collector_frees_it() -> None:
    log: list[object] = []

    class Node:
        def __init__(self, sm: SlotMap[Any]) -> None:
            self.sm = sm
            self.key = sm.insert(self)

        def __del__(self) -> None:  # runs while the map is garbage but intact (PEP 442)
            log.append((self.key in self.sm, len(self.sm)))
            self.sm.insert("late")
            log.append(sorted(map(str, self.sm.values()))[:1])

    gc.collect()
    sm: SlotMap[Any] = SlotMap()
    for _ in range(3):
        Node(sm)
    probe = Obj()
    sm.insert(probe)
    probe_ref = weakref.ref(probe)  # SlotMap, like dict, takes no weak references
    del sm, probe
    gc.collect()
    assert probe_ref() is None
    assert len(log) == 6 and all(entry[0] is True for entry in log[::2])


def test_del_during_dealloc_runs_with_the_map_emptied_first() -> None:
    seen: list[int] = []
    other: SlotMap[str] = SlotMap()

    class Watcher:
        def __del__(self) -> None:
            seen.append(len(other))
            other.insert("from __del__")

    sm: SlotMap[Any] = SlotMap()
    for _ in range(3):
        sm.insert(Watcher())
    del sm  # each Watcher dies after leaving the map; its __del__ may use any map
    assert seen == [0, 1, 2] and len(other) == 3


# ---- iteration --------------------------------------------------------------------------------


ITERATORS: list[Callable[[SlotMap[Any]], Iterator[Any]]] = [
    iter,
    lambda sm: iter(sm.keys()),
    lambda sm: iter(sm.values()),
    lambda sm: iter(sm.items()),
]


@pytest.mark.parametrize("change", ["insert", "remove", "clear", "insert_with_key", "del"])
def test_changing_the_map_while_iterating_raises(change: str) -> None:
    sm: SlotMap[int] = SlotMap()
    keys = [sm.insert(i) for i in range(5)]
    for make_iterator in ITERATORS:
        it = make_iterator(sm)
        next(it)
        if change == "insert":
            keys.append(sm.insert(9))
        elif change == "remove":
            sm.remove(keys.pop())
        elif change == "clear":
            sm.clear()
        elif change == "insert_with_key":
            keys.append(sm.insert_with_key(lambda k: 9))
        else:
            del sm[keys.pop()]
        with pytest.raises(RuntimeError, match="SlotMap changed during iteration"):
            next(it)
        with pytest.raises(RuntimeError, match="SlotMap changed during iteration"):
            next(it)  # sticky, as for dicts
        if change == "clear":
            keys = [sm.insert(i) for i in range(5)]
    with pytest.raises(RuntimeError, match="changed during iteration"):
        for k in sm:  # the common way to hit it
            del sm[k]


def test_replacing_values_while_iterating_is_allowed() -> None:
    sm: SlotMap[int] = SlotMap()
    for i in range(5):
        sm.insert(i)
    for k in sm:
        sm[k] = sm[k] * 10
    assert list(sm.values()) == [0, 10, 20, 30, 40]


def test_iterators_and_views() -> None:
    sm: SlotMap[str] = SlotMap()
    a, b, c = sm.insert("a"), sm.insert("b"), sm.insert("c")
    sm.remove(b)
    keys, values, items = sm.keys(), sm.values(), sm.items()
    assert len(keys) == len(values) == len(items) == 2
    assert a in keys and b not in keys
    assert "a" in values and "b" not in values
    assert (c, "c") in items and (c, "a") not in items and (b, "b") not in items
    assert "not a pair" not in items and (a,) not in items
    d = sm.insert("d")  # views are live
    assert list(keys) == [a, d, c] and len(values) == 3  # d reused b's slot (index 1)
    it = iter(keys)
    assert iter(it) is it
    assert list(it) == [a, d, c]
    sm.insert("e")
    with pytest.raises(StopIteration):  # an exhausted iterator stays exhausted
        next(it)
    assert isinstance(iter(sm), memkit.slotmap.SlotMapIterator)
    assert isinstance(keys, memkit.slotmap.SlotMapKeys)


def test_value_equality_that_raises_or_changes_the_map() -> None:
    class Bad:
        def __eq__(self, other: object) -> bool:
            raise ValueError("no compare")

        __hash__ = object.__hash__

    sm: SlotMap[object] = SlotMap()
    k = sm.insert(Bad())
    with pytest.raises(ValueError, match="no compare"):
        _ = 1 in sm.values()
    with pytest.raises(ValueError, match="no compare"):
        _ = (k, 1) in sm.items()

    class Mutates:
        def __eq__(self, other: object) -> bool:
            sm.insert("more")
            return False

        __hash__ = object.__hash__

    sm.clear()
    sm.insert(Mutates())
    sm.insert("x")
    with pytest.raises(RuntimeError, match="changed during iteration"):
        _ = "y" in sm.values()


# ---- insert_with_key ---------------------------------------------------------------------------


def test_insert_with_key_gives_fn_its_key() -> None:
    sm: SlotMap[tuple[int, str]] = SlotMap()
    seen: list[int] = []

    def make(key: int) -> tuple[int, str]:
        seen.append(key)
        assert key not in sm  # not inserted until fn returns
        assert sm.get(key) is None
        assert len(sm) == 0
        return (key, "entity")

    k = sm.insert_with_key(make)
    assert seen == [k] and sm[k] == (k, "entity") and len(sm) == 1
    check(sm)


def test_insert_with_key_whose_fn_raises_leaves_a_key_that_is_never_valid() -> None:
    sm: SlotMap[str] = SlotMap()
    seen: list[int] = []

    def fail(key: int) -> str:
        seen.append(key)
        raise LookupError("fn failed")

    with pytest.raises(LookupError, match="fn failed"):
        sm.insert_with_key(fail)
    assert len(sm) == 0 and list(sm) == []
    check(sm)
    later = [sm.insert("x") for _ in range(3)]
    assert key_index(later[0]) == key_index(seen[0])  # the slot is reused...
    assert seen[0] not in later and seen[0] not in sm  # ...under a newer generation
    assert key_generation(later[0]) > key_generation(seen[0])
    with pytest.raises(TypeError):
        sm.insert_with_key(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sm.insert_with_key(lambda: "no key parameter")  # type: ignore[arg-type, misc]
    assert len(sm) == 3
    check(sm)


def test_insert_with_key_whose_fn_reenters_the_map() -> None:
    sm: SlotMap[Any] = SlotMap()
    existing = sm.insert("existing")
    inner: list[int] = []

    def nested(key: int) -> str:
        inner.append(sm.insert("inside"))
        inner.append(sm.insert_with_key(lambda k2: f"nested {k2}"))
        sm.remove(existing)
        sm.clear()  # removes what fn inserted, not the reserved slot
        inner.append(sm.insert("after clear"))
        return f"outer {key}"

    k = sm.insert_with_key(nested)
    assert sm[k] == f"outer {k}"
    assert sorted(sm.values()) == ["after clear", f"outer {k}"]
    assert k not in inner and len(set(inner)) == 3
    check(sm)

    def recurse(depth: int) -> Callable[[int], Any]:
        return lambda key: key if depth == 0 else (key, sm.insert_with_key(recurse(depth - 1)))

    top = sm.insert_with_key(recurse(50))
    assert len(sm) == 2 + 51
    value = sm[top]
    for _ in range(50):
        assert isinstance(value, tuple)
        value = sm[value[1]]
    check(sm)


# ---- model-based --------------------------------------------------------------------------------


class SlotMapMachine(RuleBasedStateMachine):
    """SlotMap against a dict, including stale keys, clears and slots pushed to their last generation."""

    def __init__(self) -> None:
        super().__init__()
        self.sm: SlotMap[int] = SlotMap()
        self.model: dict[int, int] = {}
        self.issued: list[int] = []  # every key ever handed out, live or stale
        self.counter = 0

    def _new_key(self, key: int) -> None:
        assert key not in self.issued, "a key was handed out twice"
        assert key_generation(key) % 2 == 1
        self.issued.append(key)

    @rule()
    def insert(self) -> None:
        self.counter += 1
        key = self.sm.insert(self.counter)
        self._new_key(key)
        self.model[key] = self.counter

    @rule(fail=st.booleans())
    def insert_with_key(self, fail: bool) -> None:
        self.counter += 1
        seen: list[int] = []

        def make(key: int) -> int:
            seen.append(key)
            if fail:
                raise ArithmeticError
            return key

        if fail:
            with pytest.raises(ArithmeticError):
                self.sm.insert_with_key(make)
            self._new_key(seen[0])  # handed to fn, never valid
        else:
            key = self.sm.insert_with_key(make)
            assert seen == [key]
            self._new_key(key)
            self.model[key] = key

    @precondition(lambda self: bool(self.issued))
    @rule(data=st.data(), use_del=st.booleans())
    def remove(self, data: st.DataObject, use_del: bool) -> None:
        key = data.draw(st.sampled_from(self.issued))
        if key in self.model:
            expected = self.model.pop(key)
            if use_del:
                del self.sm[key]
            else:
                assert self.sm.remove(key) == expected
        else:
            with pytest.raises(KeyError):
                if use_del:
                    del self.sm[key]
                else:
                    self.sm.remove(key)

    @precondition(lambda self: bool(self.issued))
    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.issued))
        assert (key in self.sm) == (key in self.model)
        assert self.sm.get(key, -1) == self.model.get(key, -1)
        if key in self.model:
            assert self.sm[key] == self.model[key]
        else:
            with pytest.raises(KeyError):
                self.sm[key]

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def replace(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        self.counter += 1
        self.sm[key] = self.counter
        self.model[key] = self.counter

    @rule(key=st.integers(min_value=-(2**65), max_value=2**65))
    def arbitrary_key(self, key: int) -> None:
        expect = self.model.get(key, "absent")
        assert self.sm.get(key, "absent") == expect

    @rule()
    def clear(self) -> None:
        self.sm.clear()
        self.model.clear()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def age_slot(self, data: st.DataObject) -> None:
        """Push a live entry's slot to one of the last generations (re-keys the entry)."""
        key = data.draw(st.sampled_from(sorted(self.model)))
        generation = data.draw(st.sampled_from([LAST_GENERATION - 2, LAST_GENERATION]))
        if generation < key_generation(key):
            return
        _hooks._force_generation(self.sm, key_index(key), generation)
        new_key = make_key(key_index(key), generation)
        if new_key != key:
            self._new_key(new_key)
            self.model[new_key] = self.model.pop(key)

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert len(self.sm) == len(self.model)
        assert dict(self.sm.items()) == self.model
        assert sorted(self.sm) == sorted(self.model)
        assert list(self.sm) == list(self.sm.keys())
        assert list(self.sm.values()) == [self.sm[k] for k in self.sm]
        assert _hooks._invariant_violation(self.sm) is None


TestSlotMapMachine = SlotMapMachine.TestCase
TestSlotMapMachine.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)


# ---- threads -------------------------------------------------------------------------------------


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, so their operations interleave finely."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_inserts_and_removes_keep_every_invariant(run_concurrently: Callable[..., list[Any]]) -> None:
    sm: SlotMap[tuple[int, int]] = SlotMap()
    per_thread = 5000
    shared: list[int] = []  # keys any thread may try to remove
    lock = threading.Lock()

    def worker(t: int) -> tuple[list[int], dict[int, tuple[int, int]], int]:
        issued: list[int] = []
        kept: dict[int, tuple[int, int]] = {}
        stolen = 0
        for i in range(per_thread):
            value = (t, i)
            key = sm.insert(value)
            issued.append(key)
            assert sm[key] is value
            if i % 3 == 0:
                assert sm.remove(key) is value
            elif i % 3 == 1:
                with lock:
                    shared.append(key)
            else:
                kept[key] = value
            if i % 7 == 0:
                with lock:
                    victim = shared.pop() if shared else None
                if victim is not None:
                    sm.remove(victim)  # each shared key is popped by exactly one thread
                    stolen += 1
        return issued, kept, stolen

    results = run_concurrently(worker, 4)
    all_issued = [k for issued, _, _ in results for k in issued]
    assert len(all_issued) == len(set(all_issued)) == 4 * per_thread  # no key handed out twice
    kept = {k: v for _, kept_part, _ in results for k, v in kept_part.items()}
    stolen = sum(s for _, _, s in results)
    assert len(sm) == len(kept) + len(shared)
    assert len(shared) + stolen == sum(1 for i in range(per_thread) if i % 3 == 1) * 4
    for k, v in kept.items():
        assert sm[k] is v
    for k in shared:
        assert k in sm
    assert set(sm) == set(kept) | set(shared)
    check(sm)


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_readers_never_see_a_wrong_value(run_concurrently: Callable[..., list[Any]]) -> None:
    sm: SlotMap[int] = SlotMap()
    readers, min_checks = 3, 2_000
    stop = threading.Event()
    # Set by each reader once it has made min_checks checks (or failed): the writer churns
    # until then, so every reader's checks overlap the churn however the threads are scheduled.
    checked_enough = [threading.Event() for _ in range(readers)]

    def worker(t: int) -> int:
        if t == 0:  # the writer: churns slots so readers hold stale keys
            i = 0
            try:
                while i < 20_000 or not all(e.is_set() for e in checked_enough):
                    sm.remove(sm.insert(-i))  # never a reader's value, however long it churns
                    if i % 100 == 0:
                        sm.clear()
                    i += 1
            finally:
                stop.set()
            return i
        checked = 0
        try:
            mine = {sm.insert(t * 1_000_000 + i): t * 1_000_000 + i for i in range(50)}
            while not stop.is_set():
                for k, v in mine.items():
                    got = sm.get(k)
                    assert got is None or got == v  # a stale key never finds another entry
                    checked += 1
                if checked >= min_checks:
                    checked_enough[t - 1].set()
        finally:
            checked_enough[t - 1].set()  # a failed reader must not keep the writer going
        return checked

    churned, *checks = run_concurrently(worker, 1 + readers)
    assert churned >= 20_000
    assert all(n >= min_checks for n in checks), checks
    check(sm)
