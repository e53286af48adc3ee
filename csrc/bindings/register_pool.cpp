// memkit._core.buffers: BufferPool and PooledBuffer.
//
// A PooledBuffer owns one block taken from its pool and gives it back exactly once: on
// release(), at the end of its `with` block, or when it is collected - never while a view
// of it is alive (release() raises BufferError then; collection cannot happen, since every
// view holds a reference to the buffer).
#include "pybind11.hpp"

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../core/pool.hpp"
#include "fastcall.hpp"
#include "handle_buffer.hpp"

namespace memkit::bindings {

namespace {

struct PoolState {
    PoolState(std::vector<std::size_t> classes, std::size_t max_cached, std::size_t align)
        : pool(std::move(classes), max_cached, align) {}
    core::BlockPool pool;
    OwnerMutex mutex;
};

PoolState& state_of(PyObject* pool) noexcept {
    // SAFETY: PooledBuffers are only created by BufferPool.acquire, whose `self` (an
    // initialised BufferPool) becomes their owner.
    return *fastcall::self_as<PoolState>(pool);
}

struct PooledBufferObject {
    HandleBuffer base;
    core::BlockPool::Block block;  // given back exactly once, then base.released is true
};

PyObject* get_capacity(PyObject* self, void*) noexcept;

struct PooledBufferPolicy {
    static constexpr const char* kName = "PooledBuffer";
    static constexpr const char* kReleased = "PooledBuffer has been released (returned to its pool)";
    static OwnerMutex& mutex(PooledBufferObject* b) noexcept { return state_of(b->base.owner).mutex; }
    static bool alive(PooledBufferObject* b) noexcept { return !b->base.released; }
    static void pin(PooledBufferObject* /*b*/, int /*delta*/) noexcept {}  // base.exports is enough
    static bool release(PooledBufferObject* b) noexcept {
        state_of(b->base.owner).pool.give(b->block);
        return true;
    }
    static PyGetSetDef extra_getter() noexcept {
        return {"capacity", &get_capacity, nullptr,
                "The size class the block came from (>= len(); == len() above the largest class).", nullptr};
    }
};

using Slots = HandleBufferSlots<PooledBufferObject, PooledBufferPolicy>;

PyObject* get_capacity(PyObject* self, void*) noexcept {
    return Slots::read_alive(self, [](PooledBufferObject* b) { return PyLong_FromSize_t(b->block.capacity()); });
}

PyTypeObject* pooled_buffer_type = nullptr;

void pooled_buffer_dealloc(PyObject* self) noexcept {
    auto* b = reinterpret_cast<PooledBufferObject*>(self);
    if (!b->base.released) {
        // No export can be alive: each would hold a reference to this object.
        PoolState& st = state_of(b->base.owner);
        std::lock_guard<OwnerMutex> lock(st.mutex);
        st.pool.give(b->block);
        b->base.released = true;
    }
    free_handle(b);
}

// acquire(nbytes, zero=True) -> PooledBuffer
PyObject* pool_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    PoolState* st = fastcall::self_as<PoolState>(self);
    if (st == nullptr) return nullptr;
    return fastcall::detail::guarded<PyObject*>(nullptr, [&]() -> PyObject* {
        std::size_t nbytes = 0;
        bool zero = true;
        if (nargs == 1 && kwnames == nullptr) {
            nbytes = to_size(args[0], "nbytes");
        } else {
            static const char* const names[] = {"nbytes", "zero"};
            PyObject* values[2];
            if (!fastcall::parse_args("acquire", args, nargs, kwnames, names, 1, 2, values)) return nullptr;
            nbytes = to_size(values[0], "nbytes");
            if (values[1] != nullptr) zero = to_flag(values[1]);
        }
        // The handle first, holding no block: if the pool lent a block first and the handle
        // then failed, the pool's statistics would count an acquire nobody holds.
        auto* buf = new_handle<PooledBufferObject>(pooled_buffer_type, self, nullptr, static_cast<Py_ssize_t>(nbytes),
                                                   st->pool.align());
        if (buf == nullptr) return nullptr;
        new (&buf->block) core::BlockPool::Block();  // raw memory from new_handle: construct
        buf->base.released = true;  // nothing to give back until the block is in
        py::object handle = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(buf));  // dropped on failure
        {
            std::lock_guard<OwnerMutex> lock(st->mutex);
            try {
                buf->block = st->pool.take(nbytes);
            } catch (const std::bad_alloc&) {
                raise(PyExc_MemoryError, "could not allocate " + std::to_string(nbytes) +
                                             " bytes for a BufferPool aligned to " + std::to_string(st->pool.align()));
            }
            buf->base.released = false;
        }
        // Zeroing only what len() shows is enough: the rest of the block is never visible
        // through this handle, and a later handle zeroes its own visible part. A fresh
        // mapping is zero already: acquire(2**31) must not write 2 GiB to say so.
        if (zero && nbytes != 0 && !buf->block.zeroed) std::memset(buf->block.memory.data, 0, nbytes);
        buf->base.data = nbytes != 0 ? buf->block.memory.data : core::dangling(st->pool.align());
        return handle.release().ptr();
    });
}

// BufferPool(size_classes=(4096, 65536, 1048576), *, max_cached_bytes=64 MiB, align=64)
std::unique_ptr<PoolState> make_pool(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"size_classes", "max_cached_bytes", "align"};
    PyObject* values[3];
    if (!fastcall::parse_tuple_args("BufferPool", args, kwargs, names, 0, 1, values)) throw py::error_already_set();
    std::vector<std::size_t> classes{4096, 65536, 1048576};
    if (values[0] != nullptr) {
        if (PyIndex_Check(values[0]) || PyUnicode_Check(values[0]) || PyBytes_Check(values[0])) {
            raise(PyExc_TypeError, std::string("size_classes must be an iterable of ints, got ") +
                                       Py_TYPE(values[0])->tp_name);
        }
        py::iterator it = py::reinterpret_steal<py::iterator>(PyObject_GetIter(values[0]));
        if (!it) throw py::error_already_set();
        classes.clear();
        for (py::handle size : it) {
            const std::size_t n = to_size(size.ptr(), "size_classes item");
            if (n == 0) raise(PyExc_ValueError, "size_classes items must be >= 1, got 0");
            classes.push_back(n);
        }
        if (classes.empty()) raise(PyExc_ValueError, "size_classes must not be empty");
    }
    const std::size_t max_cached = values[1] != nullptr ? to_size(values[1], "max_cached_bytes") : (64u << 20);
    const std::size_t align = values[2] != nullptr ? to_align(values[2], core::kMaxAlign) : 64;
    return std::make_unique<PoolState>(std::move(classes), max_cached, align);
}

template <class T, T core::PoolStats::*Field>
PyObject* stat(PoolState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    return PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(st.pool.stats().*Field));
}

PyObject* get_size_classes(PoolState& st) {
    const std::vector<std::size_t>& classes = st.pool.size_classes();
    auto out = steal_or_throw<py::tuple>(PyTuple_New(static_cast<Py_ssize_t>(classes.size())));
    for (std::size_t i = 0; i < classes.size(); ++i) {
        PyObject* item = PyLong_FromSize_t(classes[i]);
        if (item == nullptr) throw py::error_already_set();
        PyTuple_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), item);
    }
    return out.release().ptr();
}

PyObject* get_max_cached_bytes(PoolState& st) { return PyLong_FromSize_t(st.pool.max_cached_bytes()); }

PyObject* get_align(PoolState& st) { return PyLong_FromSize_t(st.pool.align()); }

PyObject* pool_clear(PoolState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    st.pool.clear();
    Py_RETURN_NONE;
}

PyObject* pool_repr(PoolState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    const core::PoolStats s = st.pool.stats();
    return PyUnicode_FromFormat("<BufferPool classes=%zu cached_bytes=%zu outstanding=%zu hits=%llu misses=%llu>",
                                st.pool.size_classes().size(), s.cached_bytes, s.outstanding,
                                static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses));
}

PyMethodDef pool_methods[] = {
    fastcall::init<make_pool>("__init__($self, /, size_classes=(4096, 65536, 1048576), *, "
                              "max_cached_bytes=67108864, align=64)\n--\n\nA pool of reusable aligned buffers."),
    {"acquire", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&pool_acquire)),
     METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, nbytes, zero=True)\n--\n\n"
     "A PooledBuffer of len() == nbytes from the smallest size class that fits (a cached block\n"
     "when there is one), or an exactly sized block above the largest class (never cached).\n"
     "Zeroed unless zero=False. Give it back with `with`, release() or by dropping it."},
    fastcall::noargs<pool_clear>("clear", "clear($self, /)\n--\n\nFree every cached block."),
    fastcall::noargs<pool_repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::end(),
};

PyGetSetDef pool_getters[] = {
    fastcall::getter<stat<std::uint64_t, &core::PoolStats::hits>>("hits", "acquire() calls served from the cache."),
    fastcall::getter<stat<std::uint64_t, &core::PoolStats::misses>>("misses", "acquire() calls that allocated."),
    fastcall::getter<stat<std::size_t, &core::PoolStats::cached_bytes>>(
        "cached_bytes", "Bytes of idle blocks held for reuse (never more than max_cached_bytes)."),
    fastcall::getter<stat<std::size_t, &core::PoolStats::outstanding>>(
        "outstanding", "PooledBuffers acquired and not yet given back."),
    fastcall::getter<get_size_classes>("size_classes", "The block sizes, ascending."),
    fastcall::getter<get_max_cached_bytes>("max_cached_bytes", "The cap on cached_bytes."),
    fastcall::getter<get_align>("align", "The alignment of every block."),
    fastcall::end_getters(),
};

}  // namespace

void register_pool(py::module_& m) {
    py::object buffer_type = make_handle_type<PooledBufferObject, PooledBufferPolicy>(
        "memkit._core.buffers.PooledBuffer",
        "A buffer on loan from a BufferPool: the same buffer protocol and properties as AlignedBuffer,\n"
        "plus `capacity`. It goes back to the pool on release(), at the end of its `with` block or\n"
        "when collected (BufferError from release() while a view is alive); after that every use\n"
        "raises ValueError. It keeps its pool alive.",
        &pooled_buffer_dealloc);
    pooled_buffer_type = reinterpret_cast<PyTypeObject*>(buffer_type.ptr());
    m.attr("PooledBuffer") = buffer_type;

    py::class_<PoolState> cls(m, "BufferPool", R"doc(
Reusable aligned buffers, cached by size class.

The sharp edge: a buffer goes back to the pool - and may be handed to the next acquire() -
when it is released or collected, so keep the PooledBuffer (not just a raw address) while
you use the memory. Views hold it for you: release() raises BufferError while a memoryview
or NumPy array of it is alive.

BufferPool(size_classes=(4096, 65536, 1048576), *, max_cached_bytes=64 MiB, align=64)

acquire(n) takes a block of the smallest class >= n: a cached one (a hit) or a new one (a
miss). Requests above the largest class are allocated exactly and freed on release, never
cached. Released blocks are cached while cached_bytes stays <= max_cached_bytes, freed
otherwise. Reused blocks are zeroed (the visible len() bytes) unless acquire(n, zero=False).

Example:
    >>> from memkit import BufferPool
    >>> pool = BufferPool((4096,))
    >>> with pool.acquire(1000) as buf:
    ...     len(buf), buf.capacity
    (1000, 4096)
    >>> pool.cached_bytes, pool.outstanding
    (4096, 0)
)doc");
    fastcall::add_methods(cls, pool_methods);
    fastcall::add_getters(cls, pool_getters);
    fastcall::set_init<make_pool>(cls);
    fastcall::set_checked_new(cls);
}

}  // namespace memkit::bindings
