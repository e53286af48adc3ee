// Hot methods as plain CPython fast-call functions on pybind11 classes.
//
// pybind11's dispatcher costs ~100 ns a call (argument casters, overload loop, policy
// handling); a builtin method costs ~15 ns. For what users call millions of times
// (atomics, borrows, lookups) that difference is the product, so hot methods skip the
// dispatcher: each is a `METH_NOARGS`/`METH_O`/`METH_FASTCALL` C function wrapped in a
// method descriptor (PyDescr_NewMethod) that is set on the pybind11 type. CPython's
// descriptor checks `self` is an instance of the type before the call, and the call
// reaches the C++ object straight from pybind11's instance layout (self_as<T> below).
// pybind11 keeps the class, its constructor, docstrings and the long tail of methods.
//
// A hot method is written as a free function taking the C++ object first:
//
//     PyObject* is_set(Probe& self) { return PyBool_FromLong(self.flag); }
//     static PyMethodDef hot[] = {fastcall::noargs<is_set>("is_set", "doc"), fastcall::end()};
//     fastcall::add_methods(cls, hot);
//
// It returns a new reference, or nullptr with a Python exception set; C++ exceptions are
// translated as pybind11 translates them (std::invalid_argument -> ValueError, ...).
#pragma once

#include "pybind11.hpp"

#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace memkit::fastcall {

// The C++ object behind `self`, an instance of the pybind11 class bound to T (or of a
// Python subclass of it). nullptr with TypeError set when the instance was never
// initialised (a subclass whose __init__ did not call the base __init__).
//
// SAFETY: the caller guarantees Py_TYPE(self) is T's bound class or a subclass. Method and
// getset descriptors check exactly that before calling; type slots are only reached
// through the type they are set on.
//
// The common case is inlined into every fast-call wrapper (it is a load and a test); the
// rest is out of line.
template <class T>
__attribute__((noinline)) T* self_as_slow(PyObject* self) noexcept {
    auto* inst = reinterpret_cast<py::detail::instance*>(self);
    void* value = nullptr;
    if (inst->simple_layout) {
        value = inst->simple_value_holder[0];
    } else {
        // Python-side multiple inheritance: look T up among the bases' value slots.
        const py::detail::type_info* info = py::detail::get_type_info(typeid(T));
        if (info != nullptr) {
            py::detail::value_and_holder vh =
                inst->get_value_and_holder(info, /*throw_if_missing=*/false);
            if (vh.inst != nullptr) value = vh.value_ptr();
        }
    }
    if (value == nullptr) {
        PyErr_Format(PyExc_TypeError, "%s object is not initialized (did __init__ run?)",
                     Py_TYPE(self)->tp_name);
    }
    return static_cast<T*>(value);
}

template <class T>
__attribute__((always_inline)) inline T* self_as(PyObject* self) noexcept {
    auto* inst = reinterpret_cast<py::detail::instance*>(self);
    if (__builtin_expect(inst->simple_layout, 1)) {
        // [value*][holder]: one bound base and a unique_ptr holder.
        if (void* value = inst->simple_value_holder[0]; __builtin_expect(value != nullptr, 1)) {
            return static_cast<T*>(value);
        }
    }
    return self_as_slow<T>(self);
}

namespace detail {

template <class F>
struct first_param;
template <class R, class T, class... A>
struct first_param<R (*)(T&, A...)> {
    using type = T;
};
template <class R, class T, class... A>
struct first_param<R (*)(T&, A...) noexcept> {
    using type = T;
};
template <auto Fn>
using self_type = typename first_param<decltype(Fn)>::type;

// Runs `body`, turning a C++ exception into the Python exception pybind11 would raise.
template <class R, class Body>
R guarded(R failure, Body&& body) noexcept {
    try {
        return body();
    } catch (...) {
        py::detail::try_translate_exceptions();
        return failure;
    }
}

template <auto Fn>
PyObject* call_noargs(PyObject* self, PyObject* /*unused*/) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj); });
}

template <auto Fn>
PyObject* call_onearg(PyObject* self, PyObject* arg) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj, arg); });
}

template <auto Fn>
PyObject* call_fast(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj, args, nargs); });
}

template <auto Fn>
PyObject* call_fast_kw(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                       PyObject* kwnames) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj, args, nargs, kwnames); });
}

template <auto Fn>
PyObject* call_onearg_self(PyObject* self, PyObject* arg) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj, self, arg); });
}

template <auto Fn>
PyObject* call_fast_kw_self(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj, self, args, nargs, kwnames); });
}

template <auto Fn>
PyObject* call_getter(PyObject* self, void* /*closure*/) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return nullptr;
    return guarded<PyObject*>(nullptr, [&] { return Fn(*obj); });
}

template <auto Fn>
Py_ssize_t call_length(PyObject* self) noexcept {
    auto* obj = self_as<self_type<Fn>>(self);
    if (obj == nullptr) return -1;
    return guarded<Py_ssize_t>(-1, [&] { return Fn(*obj); });
}

template <class F>
PyCFunction as_cfunction(F* fn) noexcept {
    // The documented CPython idiom: ml_meth is typed PyCFunction whatever the flags say.
    return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn));
}

}  // namespace detail

// `Fn(T&) -> PyObject*`, called as `obj.name()`.
template <auto Fn>
PyMethodDef noargs(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_noargs<Fn>), METH_NOARGS, doc};
}

// `Fn(T&, PyObject* arg) -> PyObject*`, called as `obj.name(arg)`.
template <auto Fn>
PyMethodDef onearg(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_onearg<Fn>), METH_O, doc};
}

// `Fn(T&, PyObject* const* args, Py_ssize_t nargs) -> PyObject*`: positional only.
template <auto Fn>
PyMethodDef positional(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_fast<Fn>), METH_FASTCALL, doc};
}

// `Fn(T&, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) -> PyObject*`;
// parse with parse_args below.
template <auto Fn>
PyMethodDef keywords(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_fast_kw<Fn>), METH_FASTCALL | METH_KEYWORDS,
            doc};
}

// `Fn(T&, PyObject* self, PyObject* arg)`: METH_O for methods that need `self` itself
// (to return it, or to make objects that keep it alive).
template <auto Fn>
PyMethodDef onearg_self(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_onearg_self<Fn>), METH_O, doc};
}

// `Fn(T&, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames)`.
template <auto Fn>
PyMethodDef keywords_self(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_fast_kw_self<Fn>), METH_FASTCALL | METH_KEYWORDS, doc};
}

namespace detail {

template <auto Fn>
PyObject* call_static_kw(PyObject* /*unused*/, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    return guarded<PyObject*>(nullptr, [&] { return Fn(args, nargs, kwnames); });
}

}  // namespace detail

// `Fn(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) -> PyObject*` as a static
// method (add_static_methods): factories like `AtomicInt.from_buffer(buf, offset=8)`.
template <auto Fn>
PyMethodDef static_keywords(const char* name, const char* doc) noexcept {
    return {name, detail::as_cfunction(&detail::call_static_kw<Fn>), METH_FASTCALL | METH_KEYWORDS, doc};
}

// `Fn(T&) -> PyObject*` as a read-only attribute.
template <auto Fn>
PyGetSetDef getter(const char* name, const char* doc) noexcept {
    return {name, &detail::call_getter<Fn>, nullptr, doc, nullptr};
}

// The sentinels that end a PyMethodDef / PyGetSetDef table.
inline PyMethodDef end() noexcept { return {nullptr, nullptr, 0, nullptr}; }
inline PyGetSetDef end_getters() noexcept { return {nullptr, nullptr, nullptr, nullptr, nullptr}; }

// Sets each method of `defs` (ended by end()) on `cls`. `defs` must outlive the type:
// declare the table `static`.
inline void add_methods(py::handle cls, PyMethodDef* defs) {
    auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
    for (; defs->ml_name != nullptr; ++defs) {
        py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewMethod(type, defs));
        if (!descr) throw py::error_already_set();
        if (PyObject_SetAttrString(cls.ptr(), defs->ml_name, descr.ptr()) < 0) {
            throw py::error_already_set();
        }
    }
}

// Sets each function of `defs` (ended by end(); made by static_keywords) on `cls` as a
// staticmethod. `defs` must be static.
inline void add_static_methods(py::handle cls, PyMethodDef* defs) {
    for (; defs->ml_name != nullptr; ++defs) {
        py::object fn = py::reinterpret_steal<py::object>(PyCFunction_NewEx(defs, nullptr, nullptr));
        if (!fn) throw py::error_already_set();
        py::object method = py::reinterpret_steal<py::object>(PyStaticMethod_New(fn.ptr()));
        if (!method) throw py::error_already_set();
        if (PyObject_SetAttrString(cls.ptr(), defs->ml_name, method.ptr()) < 0) throw py::error_already_set();
    }
}

// Sets each attribute of `defs` (ended by end_getters()) on `cls`; `defs` must be static.
inline void add_getters(py::handle cls, PyGetSetDef* defs) {
    auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
    for (; defs->name != nullptr; ++defs) {
        py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewGetSet(type, defs));
        if (!descr) throw py::error_already_set();
        if (PyObject_SetAttrString(cls.ptr(), defs->name, descr.ptr()) < 0) {
            throw py::error_already_set();
        }
    }
}

// Makes `len(obj)` call `Fn(T&) -> Py_ssize_t` directly (no Python-level __len__ lookup).
// Call after every add_methods on `cls`: setting a dunder attribute re-points the slot.
template <auto Fn>
void set_length(py::handle cls) noexcept {
    auto* heap = reinterpret_cast<PyHeapTypeObject*>(cls.ptr());
    heap->ht_type.tp_as_sequence = &heap->as_sequence;
    heap->ht_type.tp_as_mapping = &heap->as_mapping;
    heap->as_sequence.sq_length = &detail::call_length<Fn>;
    heap->as_mapping.mp_length = &detail::call_length<Fn>;
}

// Gives `cls` its own buffer protocol. pybind11's def_buffer cannot count exports nor set
// Py_buffer.obj to the owner, and memkit's safety model needs both (ARCHITECTURE.md).
inline void set_buffer_procs(py::handle cls, getbufferproc get, releasebufferproc release) {
    auto* heap = reinterpret_cast<PyHeapTypeObject*>(cls.ptr());
    heap->as_buffer.bf_getbuffer = get;
    heap->as_buffer.bf_releasebuffer = release;
    heap->ht_type.tp_as_buffer = &heap->as_buffer;
#if PY_VERSION_HEX >= 0x030C0000
    // Since 3.12 (PEP 688) the buffer slots have names, __buffer__ and __release_buffer__,
    // and a Python subclass takes its slots from those names in its MRO - clearing them
    // when no class defines the names. So define them: wrapper descriptors around our
    // functions, built from the slot wrappers CPython itself uses (borrowed from
    // bytearray, whose descriptors carry them), so a subclass gets our functions directly.
    const char* const names[] = {"__buffer__", "__release_buffer__"};
    void* const wrapped[] = {reinterpret_cast<void*>(get), reinterpret_cast<void*>(release)};
    for (int i = 0; i < 2; ++i) {
        py::object donor = py::reinterpret_steal<py::object>(
            PyObject_GetAttrString(reinterpret_cast<PyObject*>(&PyByteArray_Type), names[i]));
        if (!donor) throw py::error_already_set();
        if (!Py_IS_TYPE(donor.ptr(), &PyWrapperDescr_Type)) {
            throw std::runtime_error(std::string("bytearray.") + names[i] + " is not a slot wrapper");
        }
        struct wrapperbase* base = reinterpret_cast<PyWrapperDescrObject*>(donor.ptr())->d_base;
        py::object descr = py::reinterpret_steal<py::object>(
            PyDescr_NewWrapper(&heap->ht_type, base, wrapped[i]));
        if (!descr) throw py::error_already_set();
        if (PyObject_SetAttrString(cls.ptr(), names[i], descr.ptr()) < 0) throw py::error_already_set();
    }
    // Setting the names re-pointed the slots; point them at our functions again.
    heap->as_buffer.bf_getbuffer = get;
    heap->as_buffer.bf_releasebuffer = release;
#endif
}

namespace detail {

// Whether the keyword `key` (a str) spells `name`. Keywords are almost always compact
// ASCII, compared here without PyUnicode_CompareWithASCIIString's call and conversions.
inline bool keyword_is(PyObject* key, const char* name) noexcept {
    if (PyUnicode_IS_COMPACT_ASCII(key)) {
        const auto len = static_cast<std::size_t>(PyUnicode_GET_LENGTH(key));
        return std::strlen(name) == len && std::memcmp(PyUnicode_DATA(key), name, len) == 0;
    }
    return PyUnicode_CompareWithASCIIString(key, name) == 0;
}

// Puts one keyword argument into `out` at its parameter's position. False with TypeError
// set when no parameter has that name or the parameter already has a value.
template <std::size_t N>
bool assign_keyword(const char* fname, PyObject* key, PyObject* value, const char* const (&names)[N],
                    PyObject* (&out)[N]) noexcept {
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "%s() keywords must be strings", fname);
        return false;
    }
    for (std::size_t i = 0; i < N; ++i) {
        if (keyword_is(key, names[i])) {
            if (out[i] != nullptr) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                             names[i]);
                return false;
            }
            out[i] = value;
            return true;
        }
    }
    PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
    return false;
}

template <std::size_t N>
bool take_positional(const char* fname, PyObject* const* args, Py_ssize_t nargs,
                     std::size_t max_positional, PyObject* (&out)[N]) noexcept {
    for (auto& slot : out) slot = nullptr;
    if (static_cast<std::size_t>(nargs) > max_positional) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zu positional argument%s (%zd given)",
                     fname, max_positional, max_positional == 1 ? "" : "s", nargs);
        return false;
    }
    for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
    return true;
}

template <std::size_t N>
bool check_required(const char* fname, const char* const (&names)[N], std::size_t required,
                    PyObject* (&out)[N]) noexcept {
    for (std::size_t i = 0; i < required; ++i) {
        if (out[i] == nullptr) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return false;
        }
    }
    return true;
}

}  // namespace detail

// Matches fast-call arguments to parameters the way a `def` would. `names` lists every
// parameter; the first `max_positional` may come by position, the first `required` must
// come somehow; the rest are keyword-only. Absent optional parameters are left nullptr
// (borrowed references otherwise). Returns false with TypeError set on a mismatch.
template <std::size_t N>
bool parse_args(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                const char* const (&names)[N], std::size_t required, std::size_t max_positional,
                PyObject* (&out)[N]) noexcept {
    if (!detail::take_positional(fname, args, nargs, max_positional, out)) return false;
    const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
        if (!detail::assign_keyword(fname, PyTuple_GET_ITEM(kwnames, k), args[nargs + k], names, out)) {
            return false;
        }
    }
    return detail::check_required(fname, names, required, out);
}

// parse_args for the tuple-and-dict convention (tp_init, METH_VARARGS | METH_KEYWORDS).
template <std::size_t N>
bool parse_tuple_args(const char* fname, PyObject* args, PyObject* kwargs, const char* const (&names)[N],
                      std::size_t required, std::size_t max_positional, PyObject* (&out)[N]) noexcept {
    // SAFETY: a tuple's items are a contiguous PyObject* array that lives as long as `args`.
    PyObject* const* items = &PyTuple_GET_ITEM(args, 0);
    if (!detail::take_positional(fname, items, PyTuple_GET_SIZE(args), max_positional, out)) return false;
    if (kwargs != nullptr) {
        Py_ssize_t pos = 0;
        PyObject* key = nullptr;
        PyObject* value = nullptr;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            if (!detail::assign_keyword(fname, key, value, names, out)) return false;
        }
    }
    return detail::check_required(fname, names, required, out);
}

// ---- construction without pybind11's dispatcher ----
//
// `Make(PyObject* args, PyObject* kwargs) -> std::unique_ptr<T>` builds the C++ object from
// the constructor's arguments (parse them with parse_tuple_args). The object is handed to
// pybind11 exactly as its own factory constructors do: the value pointer is set and the
// class's init_instance moves the holder in and registers the instance.

namespace detail {

template <auto Make>
int init_instance(PyObject* self, PyObject* args, PyObject* kwargs) noexcept {
    using Holder = decltype(Make(nullptr, nullptr));
    using T = typename Holder::element_type;
    return guarded<int>(-1, [&] {
        static const py::detail::type_info* const tinfo = py::detail::get_type_info(typeid(T));
        auto* inst = reinterpret_cast<py::detail::instance*>(self);
        py::detail::value_and_holder vh = inst->get_value_and_holder(tinfo, /*throw_if_missing=*/true);
        if (vh.holder_constructed()) {
            bindings::raise(PyExc_TypeError, std::string(Py_TYPE(self)->tp_name) + " object is already initialized");
        }
        Holder holder = Make(args, kwargs);
        vh.value_ptr() = holder.get();
        tinfo->init_instance(inst, &holder);  // moves from `holder`
        return 0;
    });
}

template <auto Make>
PyObject* init_method(PyObject* self, PyObject* args, PyObject* kwargs) noexcept {
    if (init_instance<Make>(self, args, kwargs) < 0) return nullptr;
    Py_RETURN_NONE;
}

}  // namespace detail

// The `__init__` entry of a method table; pair it with set_init<Make>(cls).
template <auto Make>
PyMethodDef init(const char* doc) noexcept {
    return {"__init__", detail::as_cfunction(&detail::init_method<Make>), METH_VARARGS | METH_KEYWORDS, doc};
}

// Points the type's tp_init straight at Make (Type(...) then skips the __init__ lookup).
// Call after add_methods: setting `__init__` re-points the slot to the generic lookup.
template <auto Make>
void set_init(py::handle cls) noexcept {
    reinterpret_cast<PyTypeObject*>(cls.ptr())->tp_init = &detail::init_instance<Make>;
}

// ---- instances that survive a failed allocation ----
//
// pybind11 3.1's own tp_new (make_new_instance) uses tp_alloc's result without checking it,
// so a class instantiated while memory runs out - inside a memkit.alloc.limit() block, say -
// dereferences NULL. Every memkit class therefore gets checked_new below as its tp_new
// (set_checked_new), and static factories create their instances through it (adopt).

namespace detail {

// pybind11's instance creation, checking each step. A new reference, or nullptr with an
// exception set.
inline PyObject* checked_new(PyTypeObject* type, PyObject* /*args*/, PyObject* /*kwargs*/) noexcept {
    PyObject* self = type->tp_alloc(type, 0);
    if (self == nullptr) return nullptr;
    try {
        reinterpret_cast<py::detail::instance*>(self)->allocate_layout();
    } catch (...) {
        // The layout is not set, so pybind11's dealloc must not see the object: free it
        // the way tp_alloc made it (tracked if the type is GC, a reference to a heap type).
        if (PyType_IS_GC(type)) PyObject_GC_UnTrack(self);
        type->tp_free(self);
        if (type->tp_flags & Py_TPFLAGS_HEAPTYPE) Py_DECREF(type);
        py::detail::try_translate_exceptions();
        return nullptr;
    }
    return self;
}

// `cls.__new__(subtype, *args, **kwargs)`, as CPython's own __new__ wrappers check it.
inline PyObject* checked_new_method(PyObject* cls, PyObject* args, PyObject* kwargs) noexcept {
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_Format(PyExc_TypeError, "%s.__new__(): not enough arguments", reinterpret_cast<PyTypeObject*>(cls)->tp_name);
        return nullptr;
    }
    PyObject* subtype = PyTuple_GET_ITEM(args, 0);
    if (!PyType_Check(subtype) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(subtype), reinterpret_cast<PyTypeObject*>(cls))) {
        PyErr_Format(PyExc_TypeError, "%s.__new__(X): X is not a subtype of %s",
                     reinterpret_cast<PyTypeObject*>(cls)->tp_name, reinterpret_cast<PyTypeObject*>(cls)->tp_name);
        return nullptr;
    }
    return checked_new(reinterpret_cast<PyTypeObject*>(subtype), args, kwargs);
}

}  // namespace detail

// Makes `cls` (a pybind11 class) create its instances through detail::checked_new, both
// when called and through an explicit `cls.__new__(cls)`.
inline void set_checked_new(py::handle cls) {
    static PyMethodDef def = {"__new__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&detail::checked_new_method)),
                              METH_VARARGS | METH_KEYWORDS,
                              "__new__(type, /, *args, **kwargs)\n--\n\nCreate an uninitialised instance of `type`."};
    py::object method = py::reinterpret_steal<py::object>(PyCFunction_NewEx(&def, cls.ptr(), nullptr));
    if (!method) throw py::error_already_set();
    if (PyObject_SetAttrString(cls.ptr(), "__new__", method.ptr()) < 0) throw py::error_already_set();
    // Setting __new__ pointed the slot at the generic Python-level lookup: point it at the
    // function directly (Python subclasses keep the lookup, which reaches the same place).
    reinterpret_cast<PyTypeObject*>(cls.ptr())->tp_new = &detail::checked_new;
}

// A new instance of `cls` (the pybind11 class bound to T, or a subclass) owning `value`:
// what a static factory returns, made without pybind11's unchecked instance creation.
template <class T>
py::object adopt(py::handle cls, std::unique_ptr<T> value) {
    auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
    py::object self = py::reinterpret_steal<py::object>(detail::checked_new(type, nullptr, nullptr));
    if (!self) throw py::error_already_set();
    static const py::detail::type_info* const tinfo = py::detail::get_type_info(typeid(T));
    auto* inst = reinterpret_cast<py::detail::instance*>(self.ptr());
    py::detail::value_and_holder vh = inst->get_value_and_holder(tinfo, /*throw_if_missing=*/true);
    vh.value_ptr() = value.get();
    tinfo->init_instance(inst, &value);  // moves from `value`
    return self;
}

}  // namespace memkit::fastcall
