"""Struct layout: reading and writing a struct field beside ctypes and the struct module; SoA beside AoS.

The rows of ``python -m memkit bench --filter layout`` and of benchmarks/test_bench_layout.py.
"""

from __future__ import annotations

import ctypes
import functools
import struct as pystruct
from itertools import repeat
from typing import Any

from ..buffers import AlignedBuffer
from ..layout import Struct
from .model import Case, Group, Params, Prepared, at_most, expect, faster


@functools.cache
def _particle_types() -> tuple[Any, type[ctypes.Structure]]:
    """The record of the layout benchmarks (34 bytes of fields, 40 with padding), as a
    memkit struct and as ctypes declares it. Built on first use: the layout engine's work
    would otherwise slow every ``python -m memkit`` command's start."""
    from ..layout import f64, struct, u16, u32, u64

    @struct
    class Particle(Struct):
        id: u64
        x: f64
        y: f64
        kind: u32
        flags: u16

    class CParticle(ctypes.Structure):
        _fields_ = [
            ("id", ctypes.c_uint64),
            ("x", ctypes.c_double),
            ("y", ctypes.c_double),
            ("kind", ctypes.c_uint32),
            ("flags", ctypes.c_uint16),
        ]

    return Particle, CParticle


def _particle_buffer() -> AlignedBuffer:
    from ..layout import size_of

    particle = _particle_types()[0]
    buf = AlignedBuffer(size_of(particle))
    particle.view(buf).x = 1.5
    return buf


def _x_offset() -> int:
    from ..layout import offset_of

    return offset_of(_particle_types()[0], "x")


def _read_ctypes(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[1].from_buffer(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            _ = rec.x

    def check(_: object) -> None:
        expect(rec.x == 1.5, "the field reads 1.5")

    return Prepared(run, check)


def _read_view(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[0].view(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            _ = rec.x

    def check(_: object) -> None:
        expect(rec.x == 1.5, "the field reads 1.5")

    return Prepared(run, check)


def _read_unpack(p: Params) -> Prepared:
    calls, buf = p["calls"], _particle_buffer()
    unpack_from, at = pystruct.Struct("d").unpack_from, _x_offset()

    def run() -> None:
        for _ in repeat(None, calls):
            _ = unpack_from(buf, at)[0]

    def check(_: object) -> None:
        expect(unpack_from(buf, at)[0] == 1.5, "the field reads 1.5")

    return Prepared(run, check)


def _read_loop(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[0].view(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            _ = rec  # the bare loop: the other rows load a field where this loads the record

    return Prepared(run)


_LAYOUT_READ = Group(
    key="layout.read",
    area="layout",
    title="read one f64 field of a struct in a buffer, {calls} times",
    op="read",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("ctypes", "ctypes.Structure.from_buffer(buf).x", _read_ctypes, baseline=True),
        Case("view", "memkit S.view(buf).x", _read_view, bars=(at_most(1.0),)),
        Case("unpack_from", "struct.Struct('d').unpack_from(buf, off)[0]", _read_unpack),
        Case("loop", "the bare loop", _read_loop, loop_overhead=True),
    ),
)


def _write_ctypes(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[1].from_buffer(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            rec.x = 2.5

    def check(_: object) -> None:
        expect(rec.x == 2.5, "the field was written")

    return Prepared(run, check)


def _write_view(p: Params) -> Prepared:
    calls, rec = p["calls"], _particle_types()[0].view(_particle_buffer())

    def run() -> None:
        for _ in repeat(None, calls):
            rec.x = 2.5

    def check(_: object) -> None:
        expect(rec.x == 2.5, "the field was written")

    return Prepared(run, check)


def _write_pack(p: Params) -> Prepared:
    calls, buf = p["calls"], _particle_buffer()
    pack_into, at = pystruct.Struct("d").pack_into, _x_offset()

    def run() -> None:
        for _ in repeat(None, calls):
            pack_into(buf, at, 2.5)

    def check(_: object) -> None:
        expect(_particle_types()[0].view(buf).x == 2.5, "the field was written")

    return Prepared(run, check)


_LAYOUT_WRITE = Group(
    key="layout.write",
    area="layout",
    title="write one f64 field of a struct in a buffer, {calls} times",
    op="write",
    ops="calls",
    params={"calls": 1000},
    cases=(
        Case("ctypes", "ctypes.Structure.from_buffer(buf).x = v", _write_ctypes, baseline=True),
        Case("view", "memkit S.view(buf).x = v", _write_view),
        Case("pack_into", "struct.Struct('d').pack_into(buf, off, v)", _write_pack),
    ),
)


def _update_aos(p: Params) -> Prepared:
    import numpy as np

    from ..layout import size_of

    particle = _particle_types()[0]
    arr: Any = np.zeros(p["records"], dtype=particle.to_numpy_dtype())
    expect(arr.strides == (size_of(particle),), "the AoS array is strided by the record size")

    def run() -> None:
        arr["x"] += 1

    def check(_: object) -> None:
        expect(arr["x"][0] == arr["x"][-1] > 0, "every record was updated")

    return Prepared(run, check)


def _update_soa(p: Params) -> Prepared:
    from ..layout import SoA

    soa: Any = SoA(_particle_types()[0], p["records"])
    expect(soa.x.strides == (8,), "the SoA column is contiguous")

    def run() -> None:
        soa.x += 1

    def check(_: object) -> None:
        expect(soa.x[0] == soa.x[-1] > 0, "every record was updated")

    return Prepared(run, check)


_LAYOUT_SOA = Group(
    key="layout.soa",
    area="layout",
    title="update one field in {records} records",
    op="update of all records",
    ops=None,
    params={"records": 1_000_000},
    cases=(
        Case("aos", "NumPy structured array (AoS, strided)", _update_aos, baseline=True, requires=("numpy",)),
        Case("soa", "memkit SoA column", _update_soa, bars=(faster(5),), requires=("numpy",)),
    ),
    weight=1.5,
    round_ns=20_000_000,
    note="each round repeats the update back to back, as a loop over time steps does: the 8 MB column can "
    "stay in a large last-level cache where the 40 MB array cannot; with caches flushed in between, ~3x",
)


GROUPS: tuple[Group, ...] = (_LAYOUT_READ, _LAYOUT_WRITE, _LAYOUT_SOA)
