// Must be the first include of every binding file: Python.h has to come before any standard
// header, and this is where the helpers shared by all register_<area>.cpp files live.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>

namespace py = pybind11;

namespace memkit::bindings {

// One register function per area; module.cpp calls them in order.
void register_buffers(py::module_& m);
void register_arena(py::module_& m);
void register_pool(py::module_& m);
void register_atomic(py::module_& m);
void register_cell(py::module_& m);
void register_slotmap(py::module_& m);
void register_sync(py::module_& m);
void register_alloc(py::module_& m);
void register_info(py::module_& m);
void register_layout(py::module_& m);
void register_testing(py::module_& m);

// Raises `type` with `message` (the pybind11 way of leaving a bound function with a Python
// exception set).
[[noreturn]] inline void raise(PyObject* type, const std::string& message) {
    PyErr_SetString(type, message.c_str());
    throw py::error_already_set();
}

// A new reference from the C API as a pybind11 object, or error_already_set when it is
// nullptr (MemoryError when memory ran out). pybind11's own constructors - py::dict(),
// py::list(n), py::int_(v) - report a failed allocation as RuntimeError ("Could not
// allocate dict object!"), and a returned C++ value it cannot convert as TypeError; memkit's
// rule is MemoryError.
template <class T = py::object>
T steal_or_throw(PyObject* obj) {
    if (obj == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<T>(obj);
}

// repr() of an object, for error messages that name the value received.
inline std::string repr_of(PyObject* obj) {
    PyObject* r = PyObject_Repr(obj);
    if (r == nullptr) {
        PyErr_Clear();
        return "<unrepresentable object>";
    }
    const char* s = PyUnicode_AsUTF8(r);
    std::string out = s != nullptr ? s : "<unrepresentable object>";
    if (s == nullptr) PyErr_Clear();
    Py_DECREF(r);
    return out;
}

// A byte count from Python: anything with __index__ (so not float, not str).
// TypeError for other types, ValueError when negative, OverflowError past PY_SSIZE_T_MAX.
// Every message names the argument and the value received.
inline std::size_t to_size(PyObject* obj, const char* name) {
    if (PyLong_CheckExact(obj)) {  // the common case, without PyNumber_Index's new reference
        const Py_ssize_t n = PyLong_AsSsize_t(obj);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (n == -1 && PyErr_Occurred()) PyErr_Clear();  // overflow: the general path explains it
    }
    if (!PyIndex_Check(obj)) {
        raise(PyExc_TypeError, std::string(name) + " must be an int, got " + Py_TYPE(obj)->tp_name);
    }
    PyObject* index = PyNumber_Index(obj);
    if (index == nullptr) throw py::error_already_set();
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        throw py::error_already_set();
    }
    if (overflow < 0 || (overflow == 0 && value < 0)) {
        const std::string shown = repr_of(index);
        Py_DECREF(index);
        raise(PyExc_ValueError, std::string(name) + " must be >= 0, got " + shown);
    }
    if (overflow > 0 || static_cast<unsigned long long>(value) > PY_SSIZE_T_MAX) {
        const std::string shown = repr_of(index);
        Py_DECREF(index);
        raise(PyExc_OverflowError, std::string(name) + " must be at most " +
                                       std::to_string(PY_SSIZE_T_MAX) + ", got " + shown);
    }
    Py_DECREF(index);
    return static_cast<std::size_t>(value);
}

// An alignment from Python: a power of two in [1, max_align]. ValueError (never
// OverflowError) for anything else that is an int, TypeError for non-integers.
inline std::size_t to_align(PyObject* obj, std::size_t max_align, const char* name = "align") {
    if (!PyIndex_Check(obj)) {
        raise(PyExc_TypeError, std::string(name) + " must be an int, got " + Py_TYPE(obj)->tp_name);
    }
    PyObject* index = PyNumber_Index(obj);
    if (index == nullptr) throw py::error_already_set();
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        throw py::error_already_set();
    }
    const auto u = static_cast<unsigned long long>(value);
    if (overflow != 0 || value <= 0 || (u & (u - 1)) != 0 || u > max_align) {
        const std::string shown = repr_of(index);
        Py_DECREF(index);
        raise(PyExc_ValueError, std::string(name) + " must be a power of two between 1 and " +
                                    std::to_string(max_align) + ", got " + shown);
    }
    Py_DECREF(index);
    return static_cast<std::size_t>(u);
}

// Truthiness, as Python's own flag arguments take it.
inline bool to_flag(PyObject* obj) {
    const int truth = PyObject_IsTrue(obj);
    if (truth < 0) throw py::error_already_set();
    return truth != 0;
}

}  // namespace memkit::bindings
