#!/usr/bin/env python3
"""Fuzzes RefCell and Cell: borrow / borrow_mut / try_* / release / replace / take / swap in
any order over a few cells, guards ended by release(), `with` exit or collection, values
whose __del__ borrows and writes the cell, guards caught in reference cycles.

Checked after every step: borrow_state is what the model says (Rust's rules: any number
of shared borrows or one exclusive), each conflict raises BorrowError / BorrowMutError
and changes nothing, a released guard raises ValueError on use, and every cell holds
the value the model expects.
"""

from __future__ import annotations

import gc

import atheris
from common import UNRAISABLE, Input, drive, run

with atheris.instrument_imports():
    import memkit
    import memkit.cell
    from memkit import BorrowError, BorrowMutError, BorrowStateError, Cell, Ref, RefCell, RefMut


class Noisy:
    """A value whose __del__ borrows a cell and, when it can, writes a new value into it.

    The model holds only its serial number, so it dies the moment memkit drops it - inside
    replace(), take(), a guard's assignment - and its __del__ must then find the cell
    consistent (and unborrowed unless one of the caller's guards is alive). What it did
    goes into its model's log, in order: (cell index, value written or None).
    """

    def __init__(self, cells: list[RefCell[object]], log: list[tuple[int, object]], index: int, write: int) -> None:
        self.cells = cells
        self.log = log
        self.index = index
        self.write = write
        self.serial = -write

    def __del__(self) -> None:
        cell = self.cells[self.index]
        guard = cell.try_borrow_mut()
        if guard is None:
            self.log.append((self.index, None))
            return
        guard.value = self.write
        guard.release()
        self.log.append((self.index, self.write))


def key(value: object) -> object:
    """What the model remembers of a value: a Noisy value's serial, or the value itself."""
    return value.serial if isinstance(value, Noisy) else value


class Guard:
    def __init__(self, guard: Ref[object] | RefMut[object], cell: int, exclusive: bool) -> None:
        self.guard = guard
        self.cell = cell
        self.exclusive = exclusive


class Model:
    def __init__(self, n: int) -> None:
        self.cells: list[RefCell[object]] = [RefCell(i) for i in range(n)]
        self.values: list[object] = list(range(n))
        self.shared = [0] * n
        self.exclusive = [False] * n
        self.guards: list[Guard] = []
        self.released: list[Ref[object] | RefMut[object]] = []
        self.plain = [Cell(i) for i in range(2)]
        self.plain_values: list[object] = [0, 1]
        self.counter = 1000
        self.log: list[tuple[int, object]] = []

    def fresh(self, inp: Input) -> object:
        """A new value: a plain int, or (sometimes) a Noisy one aimed at some cell."""
        self.counter += 1
        if inp.below(4) == 0:
            return Noisy(self.cells, self.log, inp.below(len(self.cells)), self.counter + 500000)
        return self.counter

    def state(self, i: int) -> tuple[str, int]:
        if self.exclusive[i]:
            return ("exclusive", 1)
        if self.shared[i]:
            return ("shared", self.shared[i])
        return ("unborrowed", 0)

    def apply_del_log(self) -> None:
        while self.log:
            index, written = self.log.pop(0)
            if written is not None:
                self.values[index] = written

    def check(self) -> None:
        self.apply_del_log()
        for i, cell in enumerate(self.cells):
            assert cell.borrow_state == self.state(i), (i, cell.borrow_state, self.state(i))
            if not self.exclusive[i]:
                with cell.borrow() as g:
                    assert key(g.value) == self.values[i], (i, g.value, self.values[i])
        for g in self.guards:
            assert not g.guard.released
            assert key(g.guard.value) == self.values[g.cell]
        for r in self.released:
            assert r.released
        for c, v in zip(self.plain, self.plain_values, strict=True):
            assert c.get() is v

    def end(self, g: Guard) -> None:
        self.guards.remove(g)
        if g.exclusive:
            self.exclusive[g.cell] = False
        else:
            self.shared[g.cell] -= 1

    # ---- borrows ----

    def borrow(self, inp: Input) -> None:
        i = inp.below(len(self.cells))
        cell = self.cells[i]
        try_ = inp.flag()
        if try_:
            guard = cell.try_borrow()
        else:
            try:
                guard = cell.borrow()
            except BorrowError as exc:
                assert self.exclusive[i], "borrow() refused on a cell with no exclusive borrow"
                assert isinstance(exc, BorrowStateError) and isinstance(exc, RuntimeError)
                return
        if guard is None:
            assert self.exclusive[i]
            return
        assert not self.exclusive[i], "a shared borrow was granted while exclusively borrowed"
        assert type(guard) is Ref
        self.shared[i] += 1
        self.guards.append(Guard(guard, i, False))

    def borrow_mut(self, inp: Input) -> None:
        i = inp.below(len(self.cells))
        cell = self.cells[i]
        if inp.flag():
            guard = cell.try_borrow_mut()
        else:
            try:
                guard = cell.borrow_mut()
            except BorrowMutError:
                assert self.exclusive[i] or self.shared[i], "borrow_mut() refused on an unborrowed cell"
                return
        if guard is None:
            assert self.exclusive[i] or self.shared[i]
            return
        assert not (self.exclusive[i] or self.shared[i]), "an exclusive borrow was granted while borrowed"
        assert type(guard) is RefMut
        self.exclusive[i] = True
        self.guards.append(Guard(guard, i, True))

    def release(self, inp: Input) -> None:
        if not self.guards:
            return
        g = inp.pick(self.guards)
        how = inp.below(3)
        if how == 0:
            g.guard.release()
        elif how == 1:
            assert g.guard.__exit__(None, None, None) is False
        else:
            guard = g.guard
            g.guard = None  # type: ignore[assignment]
            self.end(g)
            del guard  # collected at once: its dealloc ends the borrow
            return
        self.end(g)
        self.released.append(g.guard)
        g.guard.release()  # a second release is a no-op

    def write(self, inp: Input) -> None:
        mine = [g for g in self.guards if g.exclusive]
        if mine:
            g = inp.pick(mine)
            v = self.fresh(inp)
            assert isinstance(g.guard, RefMut)
            self.values[g.cell] = key(v)
            g.guard.value = v  # the old value drops here, with the cell still exclusively borrowed

    def write_shared(self, inp: Input) -> None:
        shared = [g for g in self.guards if not g.exclusive]
        if shared:
            g = inp.pick(shared)
            try:
                g.guard.value = 0  # type: ignore[misc]
            except AttributeError:
                return
            raise AssertionError("a shared guard's value was assignable")

    def use_released(self, inp: Input) -> None:
        if self.released:
            r = inp.pick(self.released)
            try:
                _ = r.value
            except ValueError:
                pass
            else:
                raise AssertionError("a released guard's value was readable")
            if isinstance(r, RefMut):
                try:
                    r.value = 0
                except ValueError:
                    pass
                else:
                    raise AssertionError("a released guard's value was writable")
            try:
                r.__enter__()
            except ValueError:
                pass
            else:
                raise AssertionError("a released guard was entered")

    def enter(self, inp: Input) -> None:
        if self.guards:
            g = inp.pick(self.guards)
            assert g.guard.__enter__() is g.guard

    # ---- replace / take / swap ----

    def replace(self, inp: Input) -> None:
        i = inp.below(len(self.cells))
        kind = inp.below(3)
        v = self.fresh(inp) if kind < 2 else None
        try:
            if kind == 0:
                old = self.cells[i].replace(v)
            elif kind == 1:
                old = self.cells[i].take(v)
            else:
                old = self.cells[i].take()
        except BorrowMutError:
            assert self.exclusive[i] or self.shared[i], "replace refused on an unborrowed cell"
            return
        assert not (self.exclusive[i] or self.shared[i]), "replace went through a live borrow"
        assert key(old) == self.values[i]
        self.values[i] = key(v)
        del old, v  # a Noisy old value's __del__ runs now, with the cell unborrowed

    def swap(self, inp: Input) -> None:
        i, j = inp.below(len(self.cells)), inp.below(len(self.cells))
        try:
            self.cells[i].swap(self.cells[j])
        except BorrowMutError:
            busy = self.exclusive[i] or self.shared[i] or self.exclusive[j] or self.shared[j]
            assert busy, "swap refused between unborrowed cells"
            return
        for k in {i, j}:
            assert not (self.exclusive[k] or self.shared[k]), "swap went through a live borrow"
        self.values[i], self.values[j] = self.values[j], self.values[i]

    def bad_calls(self, inp: Input) -> None:
        cell = inp.pick(self.cells)
        other = inp.pick((Cell(0), 5, None, "x"))
        try:
            cell.swap(other)  # type: ignore[arg-type]
        except TypeError:
            pass
        else:
            raise AssertionError("RefCell.swap accepted a non-RefCell")
        try:
            cell.take(1, 2)  # type: ignore[call-overload]
        except TypeError:
            pass
        else:
            raise AssertionError("take() accepted two arguments")

    # ---- Cell ----

    def plain_op(self, inp: Input) -> None:
        i = inp.below(2)
        c = self.plain[i]
        self.counter += 1
        v = self.counter
        op = inp.below(5)
        if op == 0:
            c.set(v)
        elif op == 1:
            assert c.replace(v) is self.plain_values[i]
        elif op == 2:
            assert c.take() is self.plain_values[i]
            v = None  # type: ignore[assignment]
        elif op == 3:
            j = inp.below(2)
            c.swap(self.plain[j])
            self.plain_values[i], self.plain_values[j] = self.plain_values[j], self.plain_values[i]
            return
        else:
            assert c.get() is self.plain_values[i]
            return
        self.plain_values[i] = v

    # ---- collection ----

    def cycle(self, inp: Input) -> None:
        """A guard reachable only from its own cell's value: garbage the collector must end cleanly."""
        cell: RefCell[list[object]] = RefCell([])
        guard = cell.borrow_mut() if inp.flag() else cell.borrow()
        guard.value.append(guard)
        keep = inp.flag()
        del guard
        # The cycle is young: collecting the youngest generations finds it (a full
        # collection per step would be most of the run time).
        gc.collect(0)
        if keep:
            # Still reachable: the cell is borrowed until the cycle is broken.
            assert cell.borrow_state[0] != "unborrowed"
        del cell
        gc.collect(1)

    def toggle_debug(self, inp: Input) -> None:
        memkit.cell.debug_borrows(inp.flag())


OPS = (
    Model.borrow,
    Model.borrow,
    Model.borrow_mut,
    Model.borrow_mut,
    Model.release,
    Model.release,
    Model.write,
    Model.write_shared,
    Model.use_released,
    Model.enter,
    Model.replace,
    Model.swap,
    Model.bad_calls,
    Model.plain_op,
    Model.cycle,
    Model.toggle_debug,
)


def one_input(data: bytes) -> None:
    inp = Input(data)
    model = Model(inp.between(1, 3))
    drive(inp, model, OPS, 64)
    for g in list(model.guards):
        g.guard.release()
        model.end(g)
    model.check()
    UNRAISABLE.check()
    memkit.cell.debug_borrows(False)


if __name__ == "__main__":
    assert memkit.RefCell is RefCell
    run(one_input)
