// memkit._core.buffers: Arena, ArenaBuffer and ArenaScope.
//
// Scopes form a stack of frames; frames[0] is the arena's root. Each frame has an id that
// is never reused, and each ArenaBuffer remembers the (level, id) of the frame it was
// allocated in: it is alive exactly while frames[level].id == id. Exiting a scope pops its
// frame (and any still open inside it) and rewinds the bump allocator; reset() replaces
// the root. Each frame counts the live exports of its buffers, so exit and reset can
// refuse (BufferError) while any memory they would free is still viewed.
#include "pybind11.hpp"

#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../core/arena.hpp"
#include "fastcall.hpp"
#include "handle_buffer.hpp"

namespace memkit::bindings {

namespace {

struct Frame {
    std::uint64_t id;
    core::BumpArena::Checkpoint checkpoint;
    Py_ssize_t exports;  // live exports of buffers allocated in this frame
};

struct ArenaState {
    ArenaState(std::size_t chunk_size, std::size_t max_bytes) : arena(chunk_size, max_bytes) {
        frames.push_back(Frame{next_id++, arena.checkpoint(), 0});
    }

    bool frame_alive(std::uint32_t level, std::uint64_t id) const noexcept {
        return level < frames.size() && frames[level].id == id;
    }
    Py_ssize_t exports_from(std::size_t level) const noexcept {
        Py_ssize_t total = 0;
        for (std::size_t i = level; i < frames.size(); ++i) total += frames[i].exports;
        return total;
    }

    core::BumpArena arena;
    std::vector<Frame> frames;  // never empty; frames.back() receives new allocations
    std::uint64_t next_id = 1;
    OwnerMutex mutex;
};

ArenaState& state_of(PyObject* arena) noexcept {
    // SAFETY: handles and scopes are only ever created by Arena methods, with the Arena
    // instance (initialised: the method ran on it) as their owner.
    return *fastcall::self_as<ArenaState>(arena);
}

// ---- ArenaBuffer ----

struct ArenaBufferObject {
    HandleBuffer base;
    std::uint32_t level;  // the frame it was allocated in ...
    std::uint64_t id;     // ... and that frame's id
};

struct ArenaBufferPolicy {
    static constexpr const char* kName = "ArenaBuffer";
    static constexpr const char* kReleased =
        "ArenaBuffer has been released (released, or freed by its scope's exit or the arena's reset)";
    static OwnerMutex& mutex(ArenaBufferObject* b) noexcept { return state_of(b->base.owner).mutex; }
    static bool alive(ArenaBufferObject* b) noexcept {
        return !b->base.released && state_of(b->base.owner).frame_alive(b->level, b->id);
    }
    static void pin(ArenaBufferObject* b, int delta) noexcept {
        ArenaState& st = state_of(b->base.owner);
        // The frame is alive: exit and reset refuse while this export lives.
        if (st.frame_alive(b->level, b->id)) st.frames[b->level].exports += delta;
    }
    static bool release(ArenaBufferObject* /*b*/) noexcept { return true; }  // the arena frees in bulk
    static PyGetSetDef extra_getter() noexcept { return {nullptr, nullptr, nullptr, nullptr, nullptr}; }
};

PyTypeObject* arena_buffer_type = nullptr;
PyTypeObject* arena_scope_type = nullptr;

void arena_buffer_dealloc(PyObject* self) noexcept {
    free_handle(reinterpret_cast<ArenaBufferObject*>(self));
}

// ---- Arena.alloc: the hot path ----

[[noreturn]] void raise_limit(const ArenaState& st, std::size_t nbytes) {
    raise(PyExc_MemoryError, "Arena max_bytes=" + std::to_string(st.arena.max_bytes()) + " reached: " +
                                 std::to_string(st.arena.stats().bytes_reserved) + " bytes reserved, " +
                                 std::to_string(nbytes) + " more requested");
}

// alloc(nbytes, align=8, *, zero=True) -> ArenaBuffer
PyObject* arena_alloc(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    ArenaState* st = fastcall::self_as<ArenaState>(self);
    if (st == nullptr) return nullptr;
    return fastcall::detail::guarded<PyObject*>(nullptr, [&]() -> PyObject* {
        std::size_t nbytes = 0;
        std::size_t align = 8;
        bool zero = true;
        if (nargs == 1 && kwnames == nullptr) {
            nbytes = to_size(args[0], "nbytes");  // the common call: alloc(n)
        } else {
            static const char* const names[] = {"nbytes", "align", "zero"};
            PyObject* values[3];
            if (!fastcall::parse_args("alloc", args, nargs, kwnames, names, 1, 2, values)) return nullptr;
            nbytes = to_size(values[0], "nbytes");
            if (values[1] != nullptr) align = to_align(values[1], core::kMaxAlign);
            if (values[2] != nullptr) zero = to_flag(values[2]);
        }
        // The handle first: if the arena allocated first and the handle then failed, the
        // arena would count an allocation nobody holds.
        auto* buf = new_handle<ArenaBufferObject>(arena_buffer_type, self, nullptr, static_cast<Py_ssize_t>(nbytes),
                                                  align);
        if (buf == nullptr) return nullptr;
        // Dropped if the arena refuses; a handle with no frame is never alive, and its
        // dealloc only gives back the object.
        py::object handle = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(buf));
        buf->level = std::numeric_limits<std::uint32_t>::max();
        buf->id = 0;
        {
            std::lock_guard<OwnerMutex> lock(st->mutex);
            try {
                buf->base.data = st->arena.allocate(nbytes, align, zero);
            } catch (const core::ArenaLimitError&) {
                raise_limit(*st, nbytes);
            } catch (const std::bad_alloc&) {
                raise(PyExc_MemoryError, "could not allocate " + std::to_string(nbytes) + " bytes aligned to " +
                                             std::to_string(align) + " for an Arena");
            }
            buf->level = static_cast<std::uint32_t>(st->frames.size() - 1);
            buf->id = st->frames.back().id;
        }
        return handle.release().ptr();
    });
}

// ---- ArenaScope ----

struct ArenaScopeObject {
    PyObject_HEAD
    PyObject* arena;  // strong reference
    std::uint32_t level;
    std::uint64_t id;
    int state;  // 0: not entered, 1: entered (frame pushed), 2: exited
};

PyObject* arena_scope(PyObject* self, PyObject* /*unused*/) noexcept {
    if (fastcall::self_as<ArenaState>(self) == nullptr) return nullptr;
    auto* scope = PyObject_New(ArenaScopeObject, arena_scope_type);
    if (scope == nullptr) return nullptr;
    scope->arena = Py_NewRef(self);
    scope->level = 0;
    scope->id = 0;
    scope->state = 0;
    return reinterpret_cast<PyObject*>(scope);
}

void arena_scope_dealloc(PyObject* self) noexcept {
    auto* scope = reinterpret_cast<ArenaScopeObject*>(self);
    PyTypeObject* type = Py_TYPE(self);
    PyObject* arena = scope->arena;
    PyObject_Free(scope);
    Py_DECREF(arena);
    Py_DECREF(type);
}

PyObject* scope_enter(PyObject* self, PyObject* /*unused*/) noexcept {
    auto* scope = reinterpret_cast<ArenaScopeObject*>(self);
    if (scope->state != 0) {
        PyErr_SetString(PyExc_RuntimeError, "an ArenaScope can be entered once; call arena.scope() again");
        return nullptr;
    }
    ArenaState& st = state_of(scope->arena);
    return fastcall::detail::guarded<PyObject*>(nullptr, [&]() -> PyObject* {
        std::lock_guard<OwnerMutex> lock(st.mutex);
        if (st.frames.size() >= std::numeric_limits<std::uint32_t>::max()) {
            raise(PyExc_RecursionError, "too many nested Arena scopes");
        }
        st.frames.push_back(Frame{st.next_id++, st.arena.checkpoint(), 0});
        scope->level = static_cast<std::uint32_t>(st.frames.size() - 1);
        scope->id = st.frames.back().id;
        scope->state = 1;
        return Py_NewRef(scope->arena);
    });
}

// Frees what the scope allocated. BufferError (nothing freed, the scope stays open) while
// any of it is exported; a no-op when an outer scope's exit or reset() already freed it.
PyObject* scope_close(PyObject* self, PyObject* /*unused*/) noexcept {
    auto* scope = reinterpret_cast<ArenaScopeObject*>(self);
    if (scope->state == 0) {
        PyErr_SetString(PyExc_RuntimeError, "this ArenaScope was never entered");
        return nullptr;
    }
    if (scope->state == 2) Py_RETURN_NONE;
    ArenaState& st = state_of(scope->arena);
    std::lock_guard<OwnerMutex> lock(st.mutex);
    if (st.frame_alive(scope->level, scope->id)) {
        const Py_ssize_t exported = st.exports_from(scope->level);
        if (exported > 0) {
            PyErr_Format(PyExc_BufferError,
                         "cannot end an Arena scope while %zd view(s) of its buffers are alive (memoryview, "
                         "NumPy array, ...); release them first",
                         exported);
            return nullptr;
        }
        st.arena.rewind(st.frames[scope->level].checkpoint);
        st.frames.resize(scope->level);
    }
    scope->state = 2;
    Py_RETURN_NONE;
}

PyObject* scope_exit(PyObject* self, PyObject* const* /*args*/, Py_ssize_t /*nargs*/) noexcept {
    PyObject* done = scope_close(self, nullptr);
    if (done == nullptr) return nullptr;
    Py_DECREF(done);
    Py_RETURN_FALSE;
}

PyObject* scope_get_active(PyObject* self, void*) noexcept {
    auto* scope = reinterpret_cast<ArenaScopeObject*>(self);
    if (scope->state != 1) Py_RETURN_FALSE;
    ArenaState& st = state_of(scope->arena);
    std::lock_guard<OwnerMutex> lock(st.mutex);
    return PyBool_FromLong(st.frame_alive(scope->level, scope->id) ? 1 : 0);
}

PyMethodDef scope_methods[] = {
    {"__enter__", reinterpret_cast<PyCFunction>(&scope_enter), METH_NOARGS,
     "__enter__($self, /)\n--\n\nTake the checkpoint; return the arena."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&scope_exit)), METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nFree everything allocated since the checkpoint (see close())."},
    {"close", reinterpret_cast<PyCFunction>(&scope_close), METH_NOARGS,
     "close($self, /)\n--\n\nFree everything allocated since the checkpoint, scopes opened inside it\n"
     "included; their buffers become released. BufferError (nothing freed, the scope stays open)\n"
     "while any of them is exported. A no-op once the scope is closed."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef scope_getters[] = {
    {"active", &scope_get_active, nullptr, "True between entering and closing the scope.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot scope_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&arena_scope_dealloc)},
    {Py_tp_doc, const_cast<char*>("A checkpoint of an Arena, made by Arena.scope(); use it in a `with` block.")},
    {Py_tp_methods, scope_methods},
    {Py_tp_getset, scope_getters},
    {0, nullptr},
};

PyType_Spec scope_spec = {"memkit._core.buffers.ArenaScope", static_cast<int>(sizeof(ArenaScopeObject)), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, scope_slots};

// ---- Arena: construction, reset, statistics ----

// Arena(chunk_size=65536, *, max_bytes=None)
std::unique_ptr<ArenaState> make_arena(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"chunk_size", "max_bytes"};
    PyObject* values[2];
    if (!fastcall::parse_tuple_args("Arena", args, kwargs, names, 0, 1, values)) throw py::error_already_set();
    const std::size_t chunk_size = values[0] != nullptr ? to_size(values[0], "chunk_size") : 65536;
    if (chunk_size == 0) raise(PyExc_ValueError, "chunk_size must be >= 1, got 0");
    std::size_t max_bytes = core::BumpArena::kUnlimited;
    if (values[1] != nullptr && values[1] != Py_None) max_bytes = to_size(values[1], "max_bytes");
    return std::make_unique<ArenaState>(chunk_size, max_bytes);
}

PyObject* arena_reset(ArenaState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    const Py_ssize_t exported = st.exports_from(0);
    if (exported > 0) {
        raise(PyExc_BufferError, "cannot reset an Arena while " + std::to_string(exported) +
                                     " view(s) of its buffers are alive (memoryview, NumPy array, ...); "
                                     "release them first");
    }
    st.arena.reset();
    st.frames.clear();  // shrinking: no allocation, cannot throw
    st.frames.push_back(Frame{st.next_id++, st.arena.checkpoint(), 0});  // capacity kept: no throw
    Py_RETURN_NONE;
}

template <std::size_t core::ArenaStats::*Field>
PyObject* stat(ArenaState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    return PyLong_FromSize_t(st.arena.stats().*Field);
}

PyObject* get_chunk_size(ArenaState& st) { return PyLong_FromSize_t(st.arena.chunk_size()); }

PyObject* get_max_bytes(ArenaState& st) {
    if (st.arena.max_bytes() == core::BumpArena::kUnlimited) Py_RETURN_NONE;
    return PyLong_FromSize_t(st.arena.max_bytes());
}

PyObject* get_depth(ArenaState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    return PyLong_FromSize_t(st.frames.size() - 1);
}

PyObject* arena_repr(ArenaState& st) {
    std::lock_guard<OwnerMutex> lock(st.mutex);
    const core::ArenaStats s = st.arena.stats();
    return PyUnicode_FromFormat("<Arena chunk_size=%zu bytes_used=%zu bytes_reserved=%zu chunks=%zu>",
                                st.arena.chunk_size(), s.bytes_used, s.bytes_reserved, s.chunk_count);
}

PyMethodDef arena_methods[] = {
    fastcall::init<make_arena>("__init__($self, /, chunk_size=65536, *, max_bytes=None)\n--\n\n"
                               "A bump allocator taking chunks of `chunk_size` bytes (growing, capped)."),
    {"alloc", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&arena_alloc)),
     METH_FASTCALL | METH_KEYWORDS,
     "alloc($self, /, nbytes, align=8, *, zero=True)\n--\n\n"
     "Carve `nbytes` at a multiple of `align` from the current chunk and return them as an\n"
     "ArenaBuffer (zeroed unless zero=False). MemoryError past max_bytes or when the OS refuses."},
    {"scope", reinterpret_cast<PyCFunction>(&arena_scope), METH_NOARGS,
     "scope($self, /)\n--\n\n"
     "A checkpoint for a `with` block: on exit everything allocated inside is freed at once and\n"
     "its ArenaBuffers become released. BufferError (nothing freed) while any is exported.\n"
     "`with arena.scope() as a:` binds the arena itself."},
    fastcall::noargs<arena_reset>("reset",
                                  "reset($self, /)\n--\n\n"
                                  "Free every allocation (open scopes included), keeping the largest chunk for\n"
                                  "reuse. BufferError (nothing freed) while any buffer is exported."),
    fastcall::noargs<arena_repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::end(),
};

PyGetSetDef arena_getters[] = {
    fastcall::getter<stat<&core::ArenaStats::bytes_used>>(
        "bytes_used", "Bytes handed out, alignment padding included (live: scopes' exits give them back)."),
    fastcall::getter<stat<&core::ArenaStats::bytes_reserved>>("bytes_reserved",
                                                              "Bytes held in chunks (capped by max_bytes)."),
    fastcall::getter<stat<&core::ArenaStats::chunk_count>>("chunk_count", "Chunks held, oversized ones included."),
    fastcall::getter<stat<&core::ArenaStats::allocation_count>>("allocation_count",
                                                                "Live allocations (since creation or reset)."),
    fastcall::getter<get_chunk_size>("chunk_size", "The first chunk's size; later chunks grow to 16x it."),
    fastcall::getter<get_max_bytes>("max_bytes", "The cap on bytes_reserved, or None."),
    fastcall::getter<get_depth>("depth", "How many scopes are open."),
    fastcall::end_getters(),
};

}  // namespace

void register_arena(py::module_& m) {
    py::object buffer_type = make_handle_type<ArenaBufferObject, ArenaBufferPolicy>(
        "memkit._core.buffers.ArenaBuffer",
        "Memory carved from an Arena by Arena.alloc(): the same buffer protocol and properties as\n"
        "AlignedBuffer. It keeps its arena alive. When its scope exits or the arena is reset it\n"
        "becomes released (every use raises ValueError); release() ends just this handle.",
        &arena_buffer_dealloc);
    arena_buffer_type = reinterpret_cast<PyTypeObject*>(buffer_type.ptr());
    m.attr("ArenaBuffer") = buffer_type;

    PyObject* scope_type = PyType_FromSpec(&scope_spec);
    if (scope_type == nullptr) throw py::error_already_set();
    arena_scope_type = reinterpret_cast<PyTypeObject*>(scope_type);
    m.attr("ArenaScope") = py::reinterpret_steal<py::object>(scope_type);

    py::class_<ArenaState> cls(m, "Arena", R"doc(
A bump allocator: allocation is a pointer increment, and memory is freed all at once.

The sharp edge: nothing allocated from an arena is freed on its own. A scope's exit or
reset() frees everything allocated since - and only when no memoryview, NumPy array or
other view of that memory is alive: otherwise it raises BufferError and frees nothing.
Buffers it frees become released; any later use raises ValueError.

Arena(chunk_size=65536, *, max_bytes=None)

Chunks: the first has `chunk_size` bytes; each new one doubles, up to 16 x chunk_size. A
request larger than the next chunk gets a chunk of its own. Scope exits keep chunks for
reuse (oversized ones are freed); reset() keeps only the largest.

Limits: `max_bytes` caps bytes_reserved, checked on every allocation; a chunk shrinks to
fit under it (Arena(max_bytes=1024) serves 400 + 400 bytes); past it alloc raises
MemoryError.

Example:
    >>> from memkit import Arena
    >>> arena = Arena()
    >>> with arena.scope() as a:
    ...     buf = a.alloc(64, align=64)
    ...     buf.address % 64, len(buf)
    (0, 64)
    >>> buf.released
    True
)doc");
    fastcall::add_methods(cls, arena_methods);
    fastcall::add_getters(cls, arena_getters);
    fastcall::set_init<make_arena>(cls);
    fastcall::set_checked_new(cls);
}

}  // namespace memkit::bindings
