"""AlignedBuffer, aligned_empty and aligned_zeros (API.md, memkit.buffers)."""

from __future__ import annotations

import gc
import io
import mmap
import os
import socket
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memkit
from memkit import MAX_ALIGN, AlignedBuffer

np = pytest.importorskip("numpy")

POWERS_OF_TWO = [1 << k for k in range(31)]  # 1 .. 1 GiB


# ---- construction, size and alignment -------------------------------------------------


@pytest.mark.parametrize("align", POWERS_OF_TWO)
def test_address_is_a_multiple_of_every_power_of_two_alignment(align: int) -> None:
    for nbytes in (1, 100, 4096):
        buf = AlignedBuffer(nbytes, align)
        assert buf.address % align == 0
        assert (buf.nbytes, len(buf), buf.align) == (nbytes, nbytes, align)
        buf.release()


def test_defaults_are_64_byte_alignment_and_zeroed_contents() -> None:
    buf = AlignedBuffer(1000)
    assert buf.align == 64
    assert bytes(buf) == bytes(1000)


@pytest.mark.parametrize("nbytes", [1, 4095, 4096, (1 << 20) - 1, 1 << 20, 3 << 20])
def test_zeroed_on_heap_and_mapped_paths(nbytes: int) -> None:
    # Dirty the heap first so a recycled block would show old bytes if zeroing were skipped.
    junk = [bytes([0xAB]) * nbytes for _ in range(4)]
    del junk
    buf = AlignedBuffer(nbytes, 64)
    assert memoryview(buf).tobytes().count(0) == nbytes


def test_zero_false_gives_writable_memory_of_the_right_size() -> None:
    buf = AlignedBuffer(256, 32, zero=False)
    view = memoryview(buf)
    view[:] = bytes(range(256))
    assert bytes(buf) == bytes(range(256))


def test_zero_size_buffer_has_an_aligned_address_and_no_bytes() -> None:
    buf = AlignedBuffer(0, align=4096)
    assert len(buf) == 0
    assert buf.address != 0
    assert buf.address % 4096 == 0
    assert bytes(buf) == b""
    assert memoryview(buf).nbytes == 0
    assert np.frombuffer(buf, dtype=np.uint8).size == 0


def test_one_gib_alignment_costs_address_space_not_memory() -> None:
    bufs = [AlignedBuffer(64, align=MAX_ALIGN) for _ in range(4)]
    assert all(b.address % MAX_ALIGN == 0 for b in bufs)
    assert len({b.address for b in bufs}) == 4
    for b in bufs:
        memoryview(b)[0] = 7
        assert bytes(b)[:2] == b"\x07\x00"


def test_keyword_arguments() -> None:
    buf = AlignedBuffer(nbytes=16, align=16, zero=True)
    assert (len(buf), buf.align) == (16, 16)


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "error", "message"),
    [
        (-1, ValueError, "nbytes must be >= 0, got -1"),
        (-(2**70), ValueError, "nbytes must be >= 0"),
        (2**63, OverflowError, "nbytes must be at most"),
        (2**64, OverflowError, "got 18446744073709551616"),
        (1.0, TypeError, "nbytes must be an int, got float"),
        ("8", TypeError, "got str"),
        (None, TypeError, "got NoneType"),
        (b"12", TypeError, "got bytes"),
    ],
)
def test_bad_sizes_raise_clear_errors(nbytes: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        AlignedBuffer(nbytes)  # type: ignore[arg-type]


@pytest.mark.parametrize("align", [0, -1, -64, 3, 6, 48, 100, MAX_ALIGN * 2, 2**63, 2**64])
def test_bad_alignments_raise_value_error_naming_the_value(align: int) -> None:
    with pytest.raises(ValueError, match=rf"align must be a power of two between 1 and {MAX_ALIGN}, got {align}"):
        AlignedBuffer(8, align)


@pytest.mark.parametrize("align", [64.0, "64", None])
def test_non_integer_alignment_is_a_type_error(align: object) -> None:
    with pytest.raises(TypeError, match="align must be an int"):
        AlignedBuffer(8, align)  # type: ignore[arg-type]


def test_index_protocol_is_accepted_for_sizes() -> None:
    assert len(AlignedBuffer(np.int64(12), np.uint16(16))) == 12  # type: ignore[arg-type]
    assert len(AlignedBuffer(True)) == 1


@pytest.mark.parametrize("nbytes", [2**62, sys.maxsize, sys.maxsize - 4096])
def test_impossible_allocations_raise_memory_error(nbytes: int) -> None:
    with pytest.raises(MemoryError, match=f"could not allocate {nbytes} bytes aligned to 64"):
        AlignedBuffer(nbytes)


def test_argument_count_and_keyword_errors() -> None:
    with pytest.raises(TypeError, match="missing required argument 'nbytes'"):
        AlignedBuffer()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="at most 2 positional"):
        AlignedBuffer(1, 8, True)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'size'"):
        AlignedBuffer(size=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'nbytes'"):
        AlignedBuffer(1, nbytes=1)  # type: ignore[misc]


def test_zero_flag_uses_truthiness_and_propagates_its_errors() -> None:
    class Bad:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth")

    assert len(AlignedBuffer(4, zero=0)) == 4  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no truth"):
        AlignedBuffer(4, zero=Bad())  # type: ignore[arg-type]


def test_init_twice_is_refused_and_changes_nothing() -> None:
    buf = AlignedBuffer(10)
    with pytest.raises(TypeError, match="already initialized"):
        buf.__init__(20)  # type: ignore[misc]
    assert len(buf) == 10


# ---- buffer protocol: zero copy ------------------------------------------------------------


def test_memoryview_is_writable_1d_bytes_owned_by_the_buffer() -> None:
    buf = AlignedBuffer(64)
    view = memoryview(buf)
    assert (view.format, view.itemsize, view.ndim, view.shape, view.readonly) == ("B", 1, 1, (64,), False)
    assert view.obj is buf
    view[3] = 42
    assert bytes(buf)[3] == 42
    assert view.c_contiguous


def test_numpy_array_shares_the_memory() -> None:
    buf = AlignedBuffer(8 * 16, align=128)
    arr = np.frombuffer(buf, dtype=np.float64)
    assert arr.ctypes.data == buf.address
    arr[:] = np.arange(16)
    assert np.frombuffer(bytes(buf), dtype=np.float64).tolist() == list(range(16))


def test_recv_into_writes_in_place() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"hello aligned world")
        buf = AlignedBuffer(64)
        n = left.recv_into(buf)
    assert bytes(buf)[:n] == b"hello aligned world"


def test_readinto_writes_in_place(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "data.bin")
    with open(path, "wb") as f:
        f.write(bytes(range(200)))
    buf = AlignedBuffer(200, align=4096)
    with open(path, "rb", buffering=0) as raw:
        assert raw.readinto(buf) == 200
    assert bytes(buf) == bytes(range(200))
    assert io.BytesIO(b"xyz").readinto(buf) == 3
    assert bytes(buf)[:3] == b"xyz"


def test_readonly_consumers_and_copies() -> None:
    buf = AlignedBuffer(4)
    memoryview(buf)[:] = b"abcd"
    assert bytes(buf) == b"abcd"
    assert bytearray(buf) == bytearray(b"abcd")
    assert b"ab" + buf == b"ababcd"  # type: ignore[operator]
    mm = mmap.mmap(-1, 4)
    mm.write(buf)
    mm.seek(0)
    assert mm.read() == b"abcd"


# ---- export rules ----------------------------------------------------------------------------


def test_release_while_exported_raises_buffer_error_and_frees_nothing() -> None:
    buf = AlignedBuffer(16)
    view = memoryview(buf)
    with pytest.raises(BufferError, match=r"cannot release an AlignedBuffer while it is exported \(1 live"):
        buf.release()
    view[0] = 1  # still valid memory
    assert not buf.released
    view.release()
    buf.release()
    assert buf.released


def test_resize_while_exported_raises_buffer_error() -> None:
    buf = AlignedBuffer(16)
    arr = np.frombuffer(buf, dtype=np.uint8)
    with pytest.raises(BufferError, match="cannot resize"):
        buf.resize(32)
    assert len(buf) == 16
    del arr
    buf.resize(32)
    assert len(buf) == 32


def test_every_export_counts() -> None:
    buf = AlignedBuffer(16)
    views = [memoryview(buf) for _ in range(3)] + [np.frombuffer(buf, dtype=np.uint8)]
    with pytest.raises(BufferError, match=r"\(4 live"):
        buf.release()
    for v in views[:3]:
        v.release()  # type: ignore[union-attr]
    with pytest.raises(BufferError, match=r"\(1 live"):
        buf.release()
    del views
    buf.release()


def test_slices_of_views_keep_the_export() -> None:
    buf = AlignedBuffer(16)
    part = memoryview(buf)[4:8]
    with pytest.raises(BufferError):
        buf.release()
    del part
    buf.release()


def test_view_keeps_the_owner_alive() -> None:
    buf = AlignedBuffer(32)
    ref = weakref.ref(buf) if hasattr(buf, "__weakref__") else None
    view = memoryview(buf)
    del buf
    gc.collect()
    view[0] = 5  # the owner is alive through view.obj
    assert view.obj is not None
    assert ref is None or ref() is not None


# ---- release and use after release -----------------------------------------------------------


def test_second_release_is_a_no_op() -> None:
    buf = AlignedBuffer(8)
    buf.release()
    buf.release()
    assert buf.released


@pytest.mark.parametrize(
    "use",
    [
        lambda b: b.address,
        lambda b: b.nbytes,
        lambda b: b.align,
        lambda b: len(b),
        lambda b: memoryview(b),
        lambda b: bytes(b),
        lambda b: np.frombuffer(b, dtype=np.uint8),
        lambda b: b.resize(4),
        lambda b: b.__enter__(),
        lambda b: type(b).__len__(b),
    ],
)
def test_every_use_after_release_raises_value_error(use: object) -> None:
    buf = AlignedBuffer(8)
    buf.release()
    with pytest.raises(ValueError, match="AlignedBuffer has been released"):
        use(buf)  # type: ignore[operator]


def test_repr_shows_size_alignment_address_or_released() -> None:
    buf = AlignedBuffer(8, 16)
    assert repr(buf) == f"<AlignedBuffer nbytes=8 align=16 address={buf.address:#x}>"
    buf.release()
    assert repr(buf) == "<AlignedBuffer released>"


# ---- context manager ---------------------------------------------------------------------------


def test_with_block_returns_the_buffer_and_releases_it() -> None:
    with AlignedBuffer(8) as buf:
        assert isinstance(buf, AlignedBuffer)
        memoryview(buf)[0] = 1
    assert buf.released


def test_with_block_releases_on_exception_and_lets_it_propagate() -> None:
    with pytest.raises(KeyError):
        with AlignedBuffer(8) as buf:
            raise KeyError("boom")
    assert buf.released


def test_with_block_exit_while_exported_raises_buffer_error() -> None:
    with pytest.raises(BufferError):
        with AlignedBuffer(8) as buf:
            view = memoryview(buf)
    assert not buf.released
    view.release()
    buf.release()


# ---- resize ------------------------------------------------------------------------------------


@pytest.mark.parametrize("align", [1, 64, 4096, 1 << 16])
def test_resize_keeps_contents_and_alignment(align: int) -> None:
    buf = AlignedBuffer(100, align)
    memoryview(buf)[:] = bytes(range(100))
    for size in (1000, 3 << 20, 50, 0, 10):  # grows across the heap/mapped boundary and back
        buf.resize(size)
        assert len(buf) == size
        assert buf.address % align == 0
    assert bytes(buf) == bytes(range(10))[:0] + bytes(10)  # shrunk to 0 first: all zero now
    buf.resize(20)
    memoryview(buf)[:5] = b"abcde"
    buf.resize(10)
    buf.resize(30)
    assert bytes(buf) == b"abcde" + bytes(25)


def test_grown_bytes_are_zero_even_when_created_unzeroed() -> None:
    buf = AlignedBuffer(8, zero=False)
    memoryview(buf)[:] = b"\xff" * 8
    buf.resize(4096)
    assert bytes(buf)[:8] == b"\xff" * 8
    assert bytes(buf)[8:] == bytes(4088)


@pytest.mark.parametrize(("size", "error"), [(-1, ValueError), (2**63, OverflowError), (1.5, TypeError)])
def test_resize_bad_input(size: object, error: type[Exception]) -> None:
    buf = AlignedBuffer(8)
    with pytest.raises(error, match="nbytes"):
        buf.resize(size)  # type: ignore[arg-type]
    assert len(buf) == 8


def test_resize_failure_leaves_the_buffer_intact() -> None:
    buf = AlignedBuffer(8)
    memoryview(buf)[:] = b"12345678"
    with pytest.raises(MemoryError):
        buf.resize(2**62)
    assert bytes(buf) == b"12345678"


# ---- subclassing -------------------------------------------------------------------------------


def test_subclass_that_skips_base_init_is_refused() -> None:
    class Broken(AlignedBuffer):
        def __init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__init__"):
        Broken()


def test_subclass_init_chain_works() -> None:
    class Page(AlignedBuffer):
        def __init__(self) -> None:
            super().__init__(4096, align=4096)

    page = Page()
    assert page.address % 4096 == 0
    assert len(memoryview(page)) == 4096


# ---- threads -----------------------------------------------------------------------------------


def test_threads_racing_exports_against_resize_never_free_live_memory(
    run_concurrently: Callable[..., list[Any]],
) -> None:
    shared = AlignedBuffer(4096)
    rounds = 2000

    def exporter(index: int) -> int:
        if index == 0:
            refused = 0
            for i in range(rounds):
                try:
                    shared.resize(4096 if i % 2 else 8192)  # moves the memory whenever it is allowed
                except BufferError:
                    refused += 1
            return refused
        for i in range(rounds):
            with memoryview(shared) as view:
                view[index] = i & 0xFF
                assert view[index] == i & 0xFF
        return 0

    run_concurrently(exporter, 4)
    shared.release()  # all exports ended: allowed
    assert shared.released


def test_threads_creating_and_releasing_their_own_buffers(run_concurrently: Callable[..., list[Any]]) -> None:
    def worker(index: int) -> int:
        total = 0
        for n in range(300):
            with AlignedBuffer(n * 37 % 5000, 1 << (n % 13)) as buf:
                memoryview(buf)[:] = bytes([index]) * len(buf)
                total += bytes(buf).count(index)
        return total

    results = run_concurrently(worker, 4)
    expected = sum(n * 37 % 5000 for n in range(300))
    assert results == [expected] * 4


# ---- NumPy helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize("align", [1, 16, 64, 4096, 1 << 21])
@pytest.mark.parametrize("shape", [7, (3, 5), (2, 0, 4), ()])
def test_aligned_empty_and_zeros_shape_dtype_alignment(align: int, shape: int | tuple[int, ...]) -> None:
    for make in (memkit.aligned_empty, memkit.aligned_zeros):
        arr = make(shape, "float32", align=align)
        expected_shape = (shape,) if isinstance(shape, int) else shape
        assert arr.shape == expected_shape
        assert arr.dtype == np.float32
        assert arr.ctypes.data % align == 0
        assert isinstance(memkit.owner_of(arr), AlignedBuffer)
        assert arr.flags.writeable and arr.flags.c_contiguous
    assert not memkit.aligned_zeros(shape, "float32", align=align).any()


def test_aligned_default_dtype_is_float64_like_numpy() -> None:
    assert memkit.aligned_zeros(3).dtype == np.empty(3).dtype


def test_aligned_array_pins_its_buffer() -> None:
    arr = memkit.aligned_zeros(10, np.int32)
    buf = memkit.owner_of(arr)
    assert isinstance(buf, AlignedBuffer)
    with pytest.raises(BufferError):
        buf.release()
    view = arr[2:5]
    del arr
    with pytest.raises(BufferError):
        buf.release()
    del view
    buf.release()


@pytest.mark.parametrize(
    ("shape", "error"),
    [(-1, ValueError), ((2, -3), ValueError), (2.5, TypeError), ((1 << 40, 1 << 40), OverflowError)],
)
def test_aligned_arrays_bad_shapes(shape: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        memkit.aligned_empty(shape, np.float64)  # type: ignore[arg-type]


def test_aligned_arrays_bad_alignment() -> None:
    with pytest.raises(ValueError, match="align must be a power of two"):
        memkit.aligned_zeros(4, align=24)


def test_aligned_arrays_without_numpy_raise_import_error_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(ImportError, match="need NumPy"):
        memkit.aligned_empty(4)


def test_owner_of_follows_bases_and_memoryviews() -> None:
    buf = AlignedBuffer(8)
    view = memoryview(buf)[2:]
    assert memkit.owner_of(view) is buf
    assert memkit.owner_of(np.frombuffer(view, np.uint8)[1:]) is buf
    assert memkit.owner_of(42) == 42


# ---- model check -------------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("resize"), st.integers(0, 3 << 20)),
        st.tuples(st.just("write"), st.integers(0, 1 << 12), st.binary(min_size=1, max_size=64)),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(align=st.sampled_from([1, 8, 64, 4096, 1 << 16]), initial=st.integers(0, 5000), ops=_ops)
def test_resize_and_writes_match_a_bytearray_model(align: int, initial: int, ops: list[tuple[object, ...]]) -> None:
    buf = AlignedBuffer(initial, align)
    model = bytearray(initial)
    for op in ops:
        if op[0] == "resize":
            size = op[1]
            assert isinstance(size, int)
            buf.resize(size)
            if size < len(model):
                del model[size:]
            else:
                model.extend(bytes(size - len(model)))
        else:
            _, offset, data = op
            assert isinstance(offset, int) and isinstance(data, bytes)
            if offset + len(data) <= len(model):
                with memoryview(buf) as view:
                    view[offset : offset + len(data)] = data
                model[offset : offset + len(data)] = data
        assert len(buf) == len(model)
        assert buf.address % align == 0
    assert bytes(buf) == bytes(model)
    buf.release()


def test_uninitialised_instance_is_refused_everywhere() -> None:
    bare = AlignedBuffer.__new__(AlignedBuffer)
    for use in (repr, len, memoryview, lambda b: b.release(), lambda b: b.address, lambda b: b.resize(1)):
        with pytest.raises(TypeError, match="not initialized"):
            use(bare)


def test_buffers_are_not_picklable_or_copyable() -> None:
    # Memory identity (the address) cannot survive a round trip; copy explicitly with bytes().
    import copy
    import pickle

    buf = AlignedBuffer(8)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot pickle"):
            attempt(buf)
