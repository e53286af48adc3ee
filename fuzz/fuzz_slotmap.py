#!/usr/bin/env python3
"""Fuzzes SlotMap against a dict: insert / insert_with_key / get / [] / del / remove / clear,
random, stale, forged and ill-typed keys, iterators and views held across changes,
values whose __del__ changes the map, `fn`s that change it or raise, and generations
pushed to the retirement point (through the private _force_generation hook).

Checked after every step: the map holds exactly the model's entries, iteration visits
them in slot order, no key is ever handed out twice (a stale key stays stale even when
its slot is reused), the core's own invariants hold (_invariant_violation), and an
iterator that outlived a change raises RuntimeError instead of walking a changed map.
"""

from __future__ import annotations

import copy
import pickle

import atheris
from common import EDGE_INTS, UNRAISABLE, Input, drive, run

with atheris.instrument_imports():
    import memkit
    from memkit import SlotMap
    from memkit import slotmap as slotmap_module
    from memkit._core import slotmap as core_slotmap

LAST_GENERATION = 2**32 - 1


class Model:
    def __init__(self) -> None:
        self.sm: SlotMap[object] = SlotMap()
        self.entries: dict[int, int] = {}  # key -> the value's serial
        self.issued: set[int] = set()  # every key the map ever handed out, or reserved
        self.version = 0  # visible changes: inserts, removals, non-empty clears
        self.serial = 0
        # Changes made by Python code the map ran (a value's __del__, insert_with_key's fn),
        # in order: ("insert", key, serial) | ("remove", key) | ("clear",).
        self.log: list[tuple[object, ...]] = []
        self.iters: list[tuple[object, str, int, int]] = []  # (iterator, kind, version, last index)
        self.nested = 0

    def new_serial(self) -> int:
        self.serial += 1
        return self.serial

    def value(self, inp: Input) -> object:
        """A new value: mostly a plain int (its own serial), sometimes a Hostile one."""
        serial = self.new_serial()
        if inp.below(5) == 0:
            return Hostile(self, serial, inp.below(4))
        return serial

    # ---- the model ----

    def record_insert(self, key: int, serial: int) -> None:
        assert key not in self.issued, f"key {key:#x} was handed out twice"
        self.issued.add(key)
        self.entries[key] = serial
        self.version += 1

    def record_remove(self, key: int) -> None:
        del self.entries[key]
        self.version += 1

    def record_clear(self) -> None:
        if self.entries:
            self.version += 1
        self.entries.clear()

    def replay(self) -> None:
        while self.log:
            entry = self.log.pop(0)
            if entry[0] == "insert":
                self.record_insert(entry[1], entry[2])  # type: ignore[arg-type]
            elif entry[0] == "remove":
                self.record_remove(entry[1])  # type: ignore[arg-type]
            else:
                self.record_clear()

    def ordered(self) -> list[int]:
        return sorted(self.entries, key=slotmap_module.key_index)

    def check(self) -> None:
        self.replay()
        sm = self.sm
        assert core_slotmap._invariant_violation(sm) is None, core_slotmap._invariant_violation(sm)
        assert len(sm) == len(self.entries)
        keys = list(sm)
        assert keys == self.ordered(), "iteration order or contents differ from the model"
        for k in keys:
            assert serial_of(sm[k]) == self.entries[k]
            assert slotmap_module.key_generation(k) % 2 == 1
        assert len(sm.keys()) == len(sm.values()) == len(sm.items()) == len(self.entries)

    # ---- operations ----

    def insert(self, inp: Input) -> None:
        v = self.value(inp)
        key = self.sm.insert(v)
        self.record_insert(key, serial_of(v))

    def insert_with_key(self, inp: Input) -> None:
        action = inp.below(5)
        v = self.value(inp)
        seen: list[int] = []
        model = self

        def fn(key: int) -> object:
            seen.append(key)
            assert key not in model.sm, "a reserved key was valid before fn returned"
            assert model.sm.get(key, "missing") == "missing"
            assert key not in model.issued, f"reserved key {key:#x} was handed out before"
            if action == 1:
                raise LookupError("fn refuses")
            if action == 2:  # nested reservation
                inner = model.new_serial()
                k2 = model.sm.insert_with_key(lambda k: inner)
                model.log.append(("insert", k2, inner))
            elif action == 3 and model.sm:
                victim = next(iter(model.sm))
                out = model.sm.remove(victim)
                model.log.append(("remove", victim))
                del out
            elif action == 4:
                k3 = model.sm.insert(model.new_serial())
                model.log.append(("insert", k3, model.serial))
            return v

        try:
            key = self.sm.insert_with_key(fn)
        except LookupError:
            assert action == 1
            self.issued.add(seen[0])  # never valid: a later insert must not hand it out
            self.replay()
            assert seen[0] not in self.sm
            return
        assert seen == [key]
        self.replay()
        self.record_insert(key, serial_of(v))

    def pick_key(self, inp: Input) -> object:
        """A live key, a stale one, a forged one, an out-of-range int, or no int at all."""
        choice = inp.below(10)
        if choice < 4 and self.entries:
            return inp.pick(sorted(self.entries))
        if choice < 6 and self.issued:
            return inp.pick(sorted(self.issued))
        if choice == 6:
            return inp.between(0, 40) | inp.between(0, 9) << 32  # even generations included
        if choice == 7:
            return inp.pick(EDGE_INTS)
        if choice == 8:
            return Index(inp.pick(sorted(self.issued)) if self.issued else 1 << 32, inp.below(3) == 0)
        return inp.pick((True, False, None, 1.0, "1", b"", (1,)))

    def expect_key(self, key: object) -> tuple[str, int]:
        """How the map treats `key`: ("type", 0) TypeError, ("raise", 0) its __index__ raises,
        ("absent", 0) no entry, ("live", k) the entry under k."""
        if isinstance(key, bool) or not isinstance(key, (int, Index)):
            return ("type", 0)
        if isinstance(key, Index):
            if key.fail:
                return ("raise", 0)
            key = key.value
        assert isinstance(key, int)
        return ("live", key) if key in self.entries else ("absent", 0)

    def lookup(self, inp: Input) -> None:
        key = self.pick_key(inp)
        want, k = self.expect_key(key)
        how = inp.below(3)
        try:
            if how == 0:
                got = self.sm[key]  # type: ignore[index]
            elif how == 1:
                got = self.sm.get(key, "default")  # type: ignore[arg-type]
            else:
                got = key in self.sm
        except TypeError:
            assert want == "type", f"{key!r} raised TypeError"
            return
        except KeyError as exc:
            assert how == 0 and want == "absent", f"{key!r} raised KeyError"
            if isinstance(key, int):
                assert exc.args == (key,)
            return
        except IndexRaised:
            assert want == "raise"
            return
        assert want not in ("type", "raise"), f"{key!r} was accepted"
        if how == 0:
            assert want == "live" and serial_of(got) == self.entries[k]
        elif how == 1:
            assert (got == "default") if want == "absent" else serial_of(got) == self.entries[k]
        else:
            assert got is (want == "live")

    def remove(self, inp: Input) -> None:
        key = self.pick_key(inp)
        want, k = self.expect_key(key)
        how = inp.below(2)
        try:
            if how == 0:
                out = self.sm.remove(key)  # type: ignore[arg-type]
            else:
                del self.sm[key]  # type: ignore[arg-type]
                out = None
        except TypeError:
            assert want == "type"
            return
        except KeyError:
            assert want == "absent"
            return
        except IndexRaised:
            assert want == "raise"
            return
        assert want == "live", f"removing {key!r} succeeded"
        serial = self.entries[k]
        self.record_remove(k)
        if out is not None:
            assert serial_of(out) == serial
        del out  # a Hostile value's __del__ runs here (or already ran inside del)

    def replace(self, inp: Input) -> None:
        key = self.pick_key(inp)
        want, k = self.expect_key(key)
        v = self.value(inp)
        try:
            self.sm[key] = v  # type: ignore[index]
        except TypeError:
            assert want == "type"
            return
        except KeyError:
            assert want == "absent"
            return
        except IndexRaised:
            assert want == "raise"
            return
        assert want == "live"
        self.entries[k] = serial_of(v)  # not a visible change: iterators go on

    def clear(self, inp: Input) -> None:
        self.sm.clear()
        self.record_clear()

    def start_iter(self, inp: Input) -> None:
        kind = inp.pick(("iter", "keys", "values", "items"))
        it = iter(self.sm) if kind == "iter" else iter(getattr(self.sm, kind)())
        self.iters.append((it, kind, self.version, -1))

    def step_iter(self, inp: Input) -> None:
        if not self.iters:
            return
        i = inp.below(len(self.iters))
        it, kind, version, last = self.iters[i]
        try:
            got = next(it)  # type: ignore[call-overload]
        except RuntimeError:
            assert version != self.version, "an iterator over an unchanged map raised"
            return
        except StopIteration:
            rest = [k for k in self.ordered() if slotmap_module.key_index(k) > last]
            assert version != self.version or not rest, "an iterator stopped early"
            return
        assert version == self.version, "an iterator went on after the map changed"
        rest = [k for k in self.ordered() if slotmap_module.key_index(k) > last]
        assert rest, "an iterator yielded past the end"
        k = rest[0]
        if kind in ("iter", "keys"):
            assert got == k
        elif kind == "values":
            assert serial_of(got) == self.entries[k]
        else:
            assert got[0] == k and serial_of(got[1]) == self.entries[k]
        self.iters[i] = (it, kind, version, slotmap_module.key_index(k))

    def drop_iter(self, inp: Input) -> None:
        if self.iters:
            del self.iters[inp.below(len(self.iters))]

    def views(self, inp: Input) -> None:
        sm = self.sm
        key = self.pick_key(inp)
        want, k = self.expect_key(key)
        try:
            found = key in sm.keys()
        except TypeError:
            assert want == "type"
        except IndexRaised:
            assert want == "raise"
        else:
            assert found is (want == "live")
        if self.entries and inp.flag():
            k = inp.pick(sorted(self.entries))
            assert (k, sm[k]) in sm.items()
            assert sm[k] in sm.values()
        probe = Probe(self, inp.below(3))
        try:
            # Probe.__eq__ may change the map while the view scans it: the scan stops
            # (RuntimeError) or goes on over a consistent map, never over freed slots.
            assert probe not in sm.values()
            assert (1, probe) not in sm.items()
        except RuntimeError as exc:
            assert "changed during iteration" in str(exc), exc

    def key_parts(self, inp: Input) -> None:
        key = self.pick_key(inp)
        try:
            index = slotmap_module.key_index(key)  # type: ignore[arg-type]
            generation = slotmap_module.key_generation(key)  # type: ignore[arg-type]
        except TypeError:
            assert isinstance(key, bool) or not isinstance(key, (int, Index))
            return
        except ValueError:
            assert isinstance(key, int) and not 0 <= key < 2**64
            return
        except IndexRaised:
            return
        raw = key.value if isinstance(key, Index) else key
        assert raw == generation << 32 | index

    def force_generation(self, inp: Input) -> None:
        """Pushes a slot to (or near) the last generation, so removals retire slots."""
        capacity = core_slotmap._debug_state(self.sm)["capacity"]
        if capacity == 0:
            return
        index = inp.below(capacity)
        generation = LAST_GENERATION - inp.below(4)
        occupied = [k for k in self.entries if slotmap_module.key_index(k) == index]
        try:
            core_slotmap._force_generation(self.sm, index, generation)
        except ValueError:
            return
        if occupied:
            old = occupied[0]
            new = generation << 32 | index
            serial = self.entries.pop(old)
            self.version += 1  # the entry's key changed (or was rewritten): iterators stop
            self.issued.add(new)
            self.entries[new] = serial

    def bad_calls(self, inp: Input) -> None:
        sm = self.sm
        for call in (lambda: sm.insert(), lambda: sm.insert_with_key(5), lambda: SlotMap(1)):  # type: ignore[call-arg,arg-type]
            try:
                call()
            except TypeError:
                continue
            raise AssertionError("a bad call was accepted")
        for call in (lambda: copy.copy(sm), lambda: pickle.dumps(sm)):
            try:
                call()
            except TypeError:
                continue
            raise AssertionError("a SlotMap was copied or pickled")


class IndexRaised(Exception):
    """What a hostile key's __index__ raises."""


class Index:
    """A key given as an object with __index__ (maybe one that raises)."""

    def __init__(self, value: int, fail: bool) -> None:
        self.value = value
        self.fail = fail

    def __index__(self) -> int:
        if self.fail:
            raise IndexRaised(self.value)
        return self.value

    def __repr__(self) -> str:
        return f"Index({self.value:#x}, fail={self.fail})"


class Hostile:
    """A value whose __del__ changes the map that held it (documented as allowed)."""

    def __init__(self, model: Model, serial: int, action: int) -> None:
        self.model = model
        self.serial = serial
        self.action = action

    def __del__(self) -> None:
        m = self.model
        sm = m.sm
        if self.action == 0:
            s = m.new_serial()
            m.log.append(("insert", sm.insert(s), s))
        elif self.action == 1 and sm:
            victim = next(iter(sm))
            out = sm.remove(victim)
            m.log.append(("remove", victim))
            del out
        elif self.action == 2:
            m.log.append(("clear",))  # before the clear: values it drops log after it
            sm.clear()
        else:
            list(sm.items())


class Probe:
    """Compares unequal to everything, changing the map while a view compares it."""

    def __init__(self, model: Model, action: int) -> None:
        self.model = model
        self.action = action

    def __eq__(self, other: object) -> bool:
        m = self.model
        if self.action == 1:
            s = m.new_serial()
            m.log.append(("insert", m.sm.insert(s), s))
        elif self.action == 2 and m.sm:
            victim = next(iter(m.sm))
            out = m.sm.remove(victim)
            m.log.append(("remove", victim))
            del out
        return False

    __hash__ = None  # type: ignore[assignment]


def serial_of(value: object) -> int:
    return value.serial if isinstance(value, Hostile) else value  # type: ignore[return-value]


OPS = (
    Model.insert,
    Model.insert,
    Model.insert,
    Model.insert_with_key,
    Model.lookup,
    Model.lookup,
    Model.remove,
    Model.remove,
    Model.replace,
    Model.clear,
    Model.start_iter,
    Model.step_iter,
    Model.step_iter,
    Model.drop_iter,
    Model.views,
    Model.key_parts,
    Model.force_generation,
    Model.bad_calls,
)


def one_input(data: bytes) -> None:
    inp = Input(data)
    model = Model()
    drive(inp, model, OPS, 80)
    model.iters.clear()
    model.sm.clear()
    model.record_clear()
    model.check()
    UNRAISABLE.check()


if __name__ == "__main__":
    assert memkit.SlotMap is SlotMap
    run(one_input)
