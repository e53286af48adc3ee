// Handle buffers: small C-API objects for memory that someone else owns (an Arena's chunk,
// a BufferPool's block) - ArenaBuffer and PooledBuffer.
//
// They are created millions of times, so they are plain heap types (PyType_FromSpec), not
// pybind11 classes: no instance registry, no holder, allocation straight from pymalloc.
// Everything they share lives here - the buffer protocol with counted exports, len(),
// address/nbytes/align/released, release(), the context-manager methods, repr() - and
// each kind supplies a Policy saying when its handle is alive, what an export pins and
// what release() does:
//
//     struct Policy {
//         static constexpr const char* kName;            // "ArenaBuffer"
//         static constexpr const char* kReleased;        // ValueError text for a dead handle
//         static OwnerMutex& mutex(Obj*);                // serialises owner and handle state
//         static bool alive(Obj*);                       // caller holds mutex()
//         static void pin(Obj*, int delta);              // an export began (+1) / ended (-1)
//         static bool release(Obj*);                     // caller holds mutex(); exports == 0;
//                                                        // false with an exception set
//         static PyGetSetDef extra_getter();             // one more attribute, or all-null
//     };
#pragma once

#include "pybind11.hpp"

#include "freelist.hpp"

#include <cstddef>
#include <mutex>
#include <string>

namespace memkit::bindings {

#if defined(Py_GIL_DISABLED)
using OwnerMutex = std::mutex;
#else
// With the GIL every call into these types is already serialised, and none of them
// releases the GIL or runs Python code while it changes owner state, so the lock is free.
struct OwnerMutex {
    void lock() noexcept {}
    void unlock() noexcept {}
};
#endif

// The fields every handle buffer starts with (standard layout: PyObject_HEAD first).
struct HandleBuffer {
    PyObject_HEAD
    PyObject* owner;      // strong reference: the memory's owner outlives the handle
    std::byte* data;      // valid while Policy::alive()
    Py_ssize_t nbytes;    // what len() reports
    std::size_t align;
    Py_ssize_t exports;   // live buffer-protocol views of this handle; guarded by the owner's mutex
    bool released;        // release() ran (the handle is dead whatever the owner says)
};

template <class Obj, class Policy>
struct HandleBufferSlots {
    static Obj* cast(PyObject* self) noexcept { return reinterpret_cast<Obj*>(self); }

    static int set_released(Obj* obj) noexcept {
        (void)obj;
        PyErr_SetString(PyExc_ValueError, Policy::kReleased);
        return -1;
    }

    static int getbuffer(PyObject* self, Py_buffer* view, int flags) noexcept {
        view->obj = nullptr;
        Obj* obj = cast(self);
        std::byte* data = nullptr;
        Py_ssize_t nbytes = 0;
        {
            std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
            if (!Policy::alive(obj)) return set_released(obj);
            ++obj->base.exports;
            Policy::pin(obj, +1);
            data = obj->base.data;
            nbytes = obj->base.nbytes;
        }
        // Sets view->obj to a new reference to self: the handle (and through it the owner)
        // outlives every view.
        if (PyBuffer_FillInfo(view, self, data, nbytes, /*readonly=*/0, flags) < 0) {
            releasebuffer(self, nullptr);
            return -1;
        }
        return 0;
    }

    static void releasebuffer(PyObject* self, Py_buffer* /*view*/) noexcept {
        Obj* obj = cast(self);
        std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
        if (obj->base.exports > 0) {
            --obj->base.exports;
            Policy::pin(obj, -1);
        }
    }

    // Reads a field of a live handle; nullptr with ValueError when it is dead.
    template <class Read>
    static PyObject* read_alive(PyObject* self, Read&& read) noexcept {
        Obj* obj = cast(self);
        std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
        if (!Policy::alive(obj)) {
            set_released(obj);
            return nullptr;
        }
        return read(obj);
    }

    static PyObject* get_address(PyObject* self, void*) noexcept {
        return read_alive(self, [](Obj* o) { return PyLong_FromVoidPtr(o->base.data); });
    }
    static PyObject* get_nbytes(PyObject* self, void*) noexcept {
        return read_alive(self, [](Obj* o) { return PyLong_FromSsize_t(o->base.nbytes); });
    }
    static PyObject* get_align(PyObject* self, void*) noexcept {
        return read_alive(self, [](Obj* o) { return PyLong_FromSize_t(o->base.align); });
    }
    static PyObject* get_released(PyObject* self, void*) noexcept {
        Obj* obj = cast(self);
        std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
        return PyBool_FromLong(Policy::alive(obj) ? 0 : 1);
    }

    static Py_ssize_t length(PyObject* self) noexcept {
        Obj* obj = cast(self);
        std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
        if (!Policy::alive(obj)) return set_released(obj);
        return obj->base.nbytes;
    }

    // release(): BufferError while exported; a no-op on a dead handle.
    static PyObject* release(PyObject* self, PyObject* /*unused*/) noexcept {
        Obj* obj = cast(self);
        std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
        if (obj->base.released) Py_RETURN_NONE;
        if (obj->base.exports > 0) {
            PyErr_Format(PyExc_BufferError,
                         "cannot release a %s while it is exported (%zd live view(s): memoryview, NumPy "
                         "array, ...); release them first",
                         Policy::kName, obj->base.exports);
            return nullptr;
        }
        if (!Policy::release(obj)) return nullptr;
        obj->base.released = true;
        Py_RETURN_NONE;
    }

    static PyObject* enter(PyObject* self, PyObject* /*unused*/) noexcept {
        Obj* obj = cast(self);
        {
            std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
            if (!Policy::alive(obj)) {
                set_released(obj);
                return nullptr;
            }
        }
        return Py_NewRef(self);
    }

    static PyObject* exit(PyObject* self, PyObject* const* /*args*/, Py_ssize_t /*nargs*/) noexcept {
        PyObject* done = release(self, nullptr);
        if (done == nullptr) return nullptr;
        Py_DECREF(done);
        Py_RETURN_FALSE;
    }

    static PyObject* repr(PyObject* self) noexcept {
        Obj* obj = cast(self);
        std::lock_guard<OwnerMutex> lock(Policy::mutex(obj));
        if (!Policy::alive(obj)) return PyUnicode_FromFormat("<%s released>", Policy::kName);
        return PyUnicode_FromFormat("<%s nbytes=%zd align=%zu address=%p>", Policy::kName, obj->base.nbytes,
                                    obj->base.align, static_cast<void*>(obj->base.data));
    }
};

// The methods every handle buffer has. Static storage, as CPython requires.
template <class Obj, class Policy>
PyMethodDef* handle_methods() {
    using S = HandleBufferSlots<Obj, Policy>;
    static PyMethodDef methods[] = {
        {"release", reinterpret_cast<PyCFunction>(&S::release), METH_NOARGS,
         "release($self, /)\n--\n\nEnd this handle now: BufferError while a view of it is alive, a no-op "
         "when already released. Every other use of a released handle raises ValueError."},
        {"__enter__", reinterpret_cast<PyCFunction>(&S::enter), METH_NOARGS,
         "__enter__($self, /)\n--\n\nReturn the buffer itself (ValueError if released)."},
        {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&S::exit)), METH_FASTCALL,
         "__exit__($self, /, *exc_info)\n--\n\nRelease the buffer (BufferError if it is still exported)."},
        {nullptr, nullptr, 0, nullptr},
    };
    return methods;
}

// The attributes every handle buffer has, plus Policy::extra_getter() (one more, or a
// zeroed entry for none).
template <class Obj, class Policy>
PyGetSetDef* handle_getters() {
    using S = HandleBufferSlots<Obj, Policy>;
    static PyGetSetDef getters[] = {
        {"address", &S::get_address, nullptr, "The address of the first byte, a multiple of `align`.", nullptr},
        {"nbytes", &S::get_nbytes, nullptr, "The size in bytes (also len(buf)).", nullptr},
        {"align", &S::get_align, nullptr, "The alignment the buffer was allocated with.", nullptr},
        {"released", &S::get_released, nullptr, "True once the memory behind this handle is gone.", nullptr},
        Policy::extra_getter(),
        {nullptr, nullptr, nullptr, nullptr, nullptr},
    };
    return getters;
}

// Creates the heap type `qualname` ("memkit._core.buffers.ArenaBuffer") for Obj. Instances
// come only from their owner's methods (no constructor), and the type is final.
template <class Obj, class Policy>
py::object make_handle_type(const char* qualname, const char* doc, destructor dealloc) {
    using S = HandleBufferSlots<Obj, Policy>;
    static PyType_Slot slots[] = {
        {Py_tp_dealloc, reinterpret_cast<void*>(dealloc)},
        {Py_tp_repr, reinterpret_cast<void*>(&S::repr)},
        {Py_tp_doc, const_cast<char*>(doc)},
        {Py_tp_methods, handle_methods<Obj, Policy>()},
        {Py_tp_getset, handle_getters<Obj, Policy>()},
        {Py_sq_length, reinterpret_cast<void*>(&S::length)},
        {Py_mp_length, reinterpret_cast<void*>(&S::length)},
        {Py_bf_getbuffer, reinterpret_cast<void*>(&S::getbuffer)},
        {Py_bf_releasebuffer, reinterpret_cast<void*>(&S::releasebuffer)},
        {0, nullptr},
    };
    static PyType_Spec spec = {qualname, static_cast<int>(sizeof(Obj)), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
    PyObject* type = PyType_FromSpec(&spec);
    if (type == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(type);
}

// A new handle of `type` (which make_handle_type made for Obj) owned by `owner`; fields
// past the HandleBuffer part are left for the caller. nullptr with MemoryError on failure.
template <class Obj>
Obj* new_handle(PyTypeObject* type, PyObject* owner, std::byte* data, Py_ssize_t nbytes,
                std::size_t align) noexcept {
    Obj* obj = FreeList<Obj, 0, 128>::pop();
    if (obj == nullptr) obj = static_cast<Obj*>(PyObject_Malloc(sizeof(Obj)));
    if (obj == nullptr) {
        PyErr_NoMemory();
        return nullptr;
    }
    // PyObject_Init takes a reference to a heap type; free_handle gives it back.
    PyObject_Init(reinterpret_cast<PyObject*>(obj), type);
    obj->base.owner = Py_NewRef(owner);
    obj->base.data = data;
    obj->base.nbytes = nbytes;
    obj->base.align = align;
    obj->base.exports = 0;
    obj->base.released = false;
    return obj;
}

// The end of every handle's dealloc: drop the owner, recycle the object, drop the type.
template <class Obj>
void free_handle(Obj* obj) noexcept {
    PyTypeObject* type = Py_TYPE(reinterpret_cast<PyObject*>(obj));
    PyObject* owner = obj->base.owner;
    if (!FreeList<Obj, 0, 128>::push(obj)) PyObject_Free(obj);
    Py_DECREF(owner);
    Py_DECREF(type);
}

}  // namespace memkit::bindings
