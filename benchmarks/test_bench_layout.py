"""memkit.layout struct views and SoA beside what a user would otherwise write, in one run.

- "read one field" / "write one field": `rec.x` on `S.view(buf)` against the same field of
  `ctypes.Structure.from_buffer(buf)` (baseline) and `struct.unpack_from` / `pack_into`
  with a precompiled `struct.Struct`, 1000 accesses in a bare loop.
- "update one field in 1,000,000 records": `soa.x += 1` on a SoA column against
  `arr["x"] += 1` on a NumPy structured array (AoS, strided; baseline).

    pytest benchmarks/test_bench_layout.py --benchmark-enable
"""

from __future__ import annotations

import ctypes
import struct as pystruct
from itertools import repeat
from typing import Any

import pytest
from _bench import baseline, loop_overhead

from memkit import AlignedBuffer
from memkit.layout import SoA, f64, offset_of, size_of, struct, u16, u32, u64

np = pytest.importorskip("numpy")

CALLS = 1000
READ = f"layout: read one field, {CALLS} times"
WRITE = f"layout: write one field, {CALLS} times"
RECORDS = 1_000_000
UPDATE = "layout: update one field in 1,000,000 records"


@struct
class Particle:
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


def _buffer() -> AlignedBuffer:
    buf = AlignedBuffer(size_of(Particle))
    Particle.view(buf).x = 1.5
    return buf


# ---- read --------------------------------------------------------------------------------------


@pytest.mark.benchmark(group=READ)
def test_read_ctypes_from_buffer(benchmark: Any) -> None:
    baseline(benchmark)
    rec = CParticle.from_buffer(_buffer())

    def run() -> None:
        for _ in repeat(None, CALLS):
            _ = rec.x

    benchmark(run)
    assert rec.x == 1.5


@pytest.mark.benchmark(group=READ)
def test_read_memkit_view(benchmark: Any) -> None:
    rec = Particle.view(_buffer())

    def run() -> None:
        for _ in repeat(None, CALLS):
            _ = rec.x

    benchmark(run)
    assert rec.x == 1.5


@pytest.mark.benchmark(group=READ)
def test_read_struct_unpack_from(benchmark: Any) -> None:
    buf = _buffer()
    unpack_from = pystruct.Struct("d").unpack_from
    at = offset_of(Particle, "x")

    def run() -> None:
        for _ in repeat(None, CALLS):
            _ = unpack_from(buf, at)[0]

    benchmark(run)
    assert unpack_from(buf, at)[0] == 1.5


@pytest.mark.benchmark(group=READ)
def test_read_loop_overhead(benchmark: Any) -> None:
    loop_overhead(benchmark)
    rec = Particle.view(_buffer())

    def run() -> None:
        for _ in repeat(None, CALLS):
            _ = rec  # the bare loop: the rows above load a field where this loads the record

    benchmark(run)


# ---- write -------------------------------------------------------------------------------------


@pytest.mark.benchmark(group=WRITE)
def test_write_ctypes_from_buffer(benchmark: Any) -> None:
    baseline(benchmark)
    rec = CParticle.from_buffer(_buffer())

    def run() -> None:
        for _ in repeat(None, CALLS):
            rec.x = 2.5

    benchmark(run)
    assert rec.x == 2.5


@pytest.mark.benchmark(group=WRITE)
def test_write_memkit_view(benchmark: Any) -> None:
    rec = Particle.view(_buffer())

    def run() -> None:
        for _ in repeat(None, CALLS):
            rec.x = 2.5

    benchmark(run)
    assert rec.x == 2.5


@pytest.mark.benchmark(group=WRITE)
def test_write_struct_pack_into(benchmark: Any) -> None:
    buf = _buffer()
    pack_into = pystruct.Struct("d").pack_into
    at = offset_of(Particle, "x")

    def run() -> None:
        for _ in repeat(None, CALLS):
            pack_into(buf, at, 2.5)

    benchmark(run)
    assert Particle.view(buf).x == 2.5


# ---- SoA vs AoS --------------------------------------------------------------------------------


@pytest.mark.benchmark(group=UPDATE)
def test_update_aos_numpy_strided(benchmark: Any) -> None:
    baseline(benchmark)
    arr = np.zeros(RECORDS, dtype=Particle.to_numpy_dtype())
    assert arr.strides == (size_of(Particle),)

    def run() -> None:
        arr["x"] += 1

    benchmark(run)
    assert arr["x"][0] == arr["x"][-1] > 0


@pytest.mark.benchmark(group=UPDATE)
def test_update_soa_column(benchmark: Any) -> None:
    soa = SoA(Particle, RECORDS)
    assert soa.x.strides == (8,)

    def run() -> None:
        soa.x += 1

    benchmark(run)
    assert soa.x[0] == soa.x[-1] > 0
