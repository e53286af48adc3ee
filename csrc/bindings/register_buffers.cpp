// memkit._core.buffers: AlignedBuffer.
#include "pybind11.hpp"

#include <memory>
#include <new>
#include <string>

#include "../core/aligned.hpp"
#include "fastcall.hpp"

namespace memkit::bindings {

namespace {

using core::PinnableBlock;
using Status = PinnableBlock::Status;

constexpr const char* kReleased = "AlignedBuffer has been released";

[[noreturn]] void raise_exported(const PinnableBlock& block, const char* action) {
    raise(PyExc_BufferError, std::string("cannot ") + action + " an AlignedBuffer while it is exported (" +
                                 std::to_string(block.exports()) +
                                 " live view(s): memoryview, NumPy array, ...); release them first");
}

// Status -> Python exception; returns on ok.
void check(Status status, const PinnableBlock& block, const char* action) {
    if (status == Status::released) raise(PyExc_ValueError, kReleased);
    if (status == Status::exported) raise_exported(block, action);
}

PinnableBlock::View view_of(const PinnableBlock& block) {
    PinnableBlock::View v{};
    check(block.view(v), block, "use");
    return v;
}

[[noreturn]] void raise_no_memory(std::size_t nbytes, std::size_t align) {
    raise(PyExc_MemoryError, "could not allocate " + std::to_string(nbytes) + " bytes aligned to " +
                                 std::to_string(align));
}

// AlignedBuffer(nbytes, align=64, *, zero=True)
std::unique_ptr<PinnableBlock> make_block(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"nbytes", "align", "zero"};
    PyObject* values[3];
    if (!fastcall::parse_tuple_args("AlignedBuffer", args, kwargs, names, 1, 2, values)) {
        throw py::error_already_set();
    }
    const std::size_t nbytes = to_size(values[0], "nbytes");
    const std::size_t align = values[1] != nullptr ? to_align(values[1], core::kMaxAlign) : 64;
    const bool zero = values[2] != nullptr ? to_flag(values[2]) : true;
    // The GIL stays held: heap blocks are under 1 MiB (a memset of microseconds) and larger
    // ones are mapped, which needs no zeroing.
    try {
        return std::make_unique<PinnableBlock>(nbytes, align, zero);
    } catch (const std::bad_alloc&) {
        raise_no_memory(nbytes, align);
    }
}

// ---- hot path: plain CPython functions (fastcall.hpp) ----

PyObject* get_address(PinnableBlock& self) {
    return PyLong_FromVoidPtr(view_of(self).data);
}

PyObject* get_nbytes(PinnableBlock& self) { return PyLong_FromSize_t(view_of(self).size); }

PyObject* get_align(PinnableBlock& self) { return PyLong_FromSize_t(view_of(self).align); }

PyObject* get_released(PinnableBlock& self) { return PyBool_FromLong(self.released() ? 1 : 0); }

Py_ssize_t length(PinnableBlock& self) { return static_cast<Py_ssize_t>(view_of(self).size); }

PyObject* len_method(PinnableBlock& self) { return PyLong_FromSsize_t(length(self)); }

PyObject* release(PinnableBlock& self) {
    check(self.release(), self, "release");
    Py_RETURN_NONE;
}

PyObject* resize(PinnableBlock& self, PyObject* nbytes) {
    const std::size_t n = to_size(nbytes, "nbytes");
    try {
        check(self.resize(n), self, "resize");
    } catch (const std::bad_alloc&) {
        PinnableBlock::View v{};
        self.view(v);
        raise_no_memory(n, v.align);
    }
    Py_RETURN_NONE;
}

// __enter__ and __exit__ need `self` as a Python object, so they take it through the
// descriptor's own calling convention rather than self_as<>.
PyObject* enter(PyObject* self, PyObject* /*unused*/) noexcept {
    auto* block = fastcall::self_as<PinnableBlock>(self);
    if (block == nullptr) return nullptr;
    if (block->released()) {
        PyErr_SetString(PyExc_ValueError, kReleased);
        return nullptr;
    }
    return Py_NewRef(self);
}

PyObject* exit_(PinnableBlock& self, PyObject* const* /*args*/, Py_ssize_t /*nargs*/) {
    check(self.release(), self, "release");
    Py_RETURN_FALSE;
}

int getbuffer(PyObject* self, Py_buffer* view, int flags) noexcept {
    view->obj = nullptr;
    auto* block = fastcall::self_as<PinnableBlock>(self);
    if (block == nullptr) return -1;
    PinnableBlock::View v{};
    Status status = Status::released;
    try {
        status = block->pin(v);
    } catch (...) {
        py::detail::try_translate_exceptions();
        return -1;
    }
    if (status != Status::ok) {
        PyErr_SetString(PyExc_ValueError, kReleased);
        return -1;
    }
    // Fills a 1-D, format "B", writable view honouring `flags`, and sets view->obj to a new
    // reference to `self`, so the owner outlives every view of its memory.
    if (PyBuffer_FillInfo(view, self, v.data, static_cast<Py_ssize_t>(v.size), /*readonly=*/0, flags) < 0) {
        block->unpin();
        return -1;
    }
    return 0;
}

void releasebuffer(PyObject* self, Py_buffer* /*view*/) noexcept {
    // SAFETY: only reached for a view getbuffer filled, whose view->obj keeps `self` (and so
    // its C++ object) alive until this call.
    auto* block = fastcall::self_as<PinnableBlock>(self);
    if (block != nullptr) block->unpin();
}

PyObject* repr(PinnableBlock& self) {
    PinnableBlock::View v{};
    if (self.view(v) != Status::ok) return PyUnicode_FromString("<AlignedBuffer released>");
    return PyUnicode_FromFormat("<AlignedBuffer nbytes=%zu align=%zu address=%p>", v.size, v.align,
                                static_cast<void*>(v.data));
}

// PyMethodDef/PyGetSetDef tables must outlive the type: static storage.
PyMethodDef hot_methods[] = {
    fastcall::init<make_block>("__init__($self, /, nbytes, align=64, *, zero=True)\n--\n\n"
                               "Allocate `nbytes` at a multiple of `align` (zeroed unless zero=False)."),
    fastcall::noargs<release>(
        "release",
        "release($self, /)\n--\n\n"
        "Free the memory now. Raises BufferError (and frees nothing) while a memoryview, NumPy\n"
        "array or other view of the buffer is alive. Releasing twice is a no-op; every other\n"
        "use of a released buffer raises ValueError."),
    fastcall::onearg<resize>(
        "resize",
        "resize($self, nbytes, /)\n--\n\n"
        "Change the size to `nbytes`, keeping the first min(old, new) bytes and the alignment;\n"
        "bytes added at the end read as zero. The address may change. Raises BufferError while\n"
        "exported, ValueError once released, MemoryError when the allocation fails."),
    {"__enter__", reinterpret_cast<PyCFunction>(&enter), METH_NOARGS,
     "__enter__($self, /)\n--\n\nReturn the buffer itself (ValueError if released)."},
    fastcall::positional<exit_>("__exit__",
                                "__exit__($self, /, *exc_info)\n--\n\n"
                                "Release the buffer (BufferError if it is still exported)."),
    fastcall::noargs<repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::noargs<len_method>("__len__", "__len__($self, /)\n--\n\nReturn len(self), the size in bytes."),
    fastcall::end(),
};

PyGetSetDef hot_getters[] = {
    fastcall::getter<get_address>("address", "The address of the first byte, a multiple of `align`."),
    fastcall::getter<get_nbytes>("nbytes", "The size in bytes (also len(buf))."),
    fastcall::getter<get_align>("align", "The alignment the buffer was created with."),
    fastcall::getter<get_released>("released", "True once release() has freed the memory."),
    fastcall::end_getters(),
};

}  // namespace

void register_buffers(py::module_& m) {
    m.attr("MAX_ALIGN") = py::int_(core::kMaxAlign);

    py::class_<PinnableBlock> cls(m, "AlignedBuffer", R"doc(
Owned memory whose address is a multiple of `align`.

The sharp edge: the memory is freed by `release()` (or the `with` block, or garbage
collection) - and only when nothing still points into it. While a memoryview, a NumPy
array or any other buffer-protocol view is alive, `release()` and `resize()` raise
BufferError and change nothing.

AlignedBuffer(nbytes, align=64, *, zero=True)

Size and alignment: `align` is a power of two from 1 to MAX_ALIGN (1 GiB). `nbytes` may be 0:
the buffer then has an aligned, never-dereferenced address (Rust's `NonNull::dangling()`).
Blocks of 1 MiB or more, or aligned past the page size, are mapped from the OS.

Buffer protocol: writable, 1-D, format "B", so memoryview, numpy.frombuffer,
socket.recv_into and file.readinto work on it without copying.

Raises: TypeError for non-integer sizes, ValueError for negative sizes or a bad alignment,
OverflowError for sizes past sys.maxsize, MemoryError when the OS refuses. With
`zero=False` the contents are whatever the allocator returned.

Example:
    >>> from memkit import AlignedBuffer
    >>> with AlignedBuffer(4096, align=64) as buf:
    ...     buf.address % 64, len(buf)
    (0, 4096)
)doc");
    fastcall::add_methods(cls, hot_methods);
    fastcall::add_getters(cls, hot_getters);
    fastcall::set_init<make_block>(cls);
    fastcall::set_checked_new(cls);
    fastcall::set_length<length>(cls);
    fastcall::set_buffer_procs(cls, &getbuffer, &releasebuffer);
}

}  // namespace memkit::bindings
