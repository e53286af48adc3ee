// memkit._core._testing: private helpers for memkit's own tests and benchmarks.
//
// FastCallProbe carries the same trivial method twice, once through fastcall.hpp and once
// through pybind11's dispatcher, so benchmarks/test_bench_fastcall.py can show what the
// glue saves, and tests/test_fastcall.py can exercise every calling convention it offers.
// FaultScope (register_testing_alloc.cpp) fails a chosen allocation, for the
// allocation-failure sweep.
#include "pybind11.hpp"

#include <cstdint>
#include <stdexcept>

#include "fastcall.hpp"

namespace memkit::bindings {

namespace {

struct FastCallProbe {
    bool flag = true;
    std::int64_t total = 0;
};

PyObject* is_set(FastCallProbe& self) { return PyBool_FromLong(self.flag ? 1 : 0); }

PyObject* add(FastCallProbe& self, PyObject* n) {
    const long long v = PyLong_AsLongLong(n);
    if (v == -1 && PyErr_Occurred()) return nullptr;
    self.total += v;
    return PyLong_FromLongLong(self.total);
}

PyObject* count(FastCallProbe& /*self*/, PyObject* const* /*args*/, Py_ssize_t nargs) {
    return PyLong_FromSsize_t(nargs);
}

// echo(a, b=None, *, c=None) -> (a, b, c)
PyObject* echo(FastCallProbe& /*self*/, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    static const char* const names[] = {"a", "b", "c"};
    PyObject* values[3];
    if (!fastcall::parse_args("echo", args, nargs, kwnames, names, 1, 2, values)) return nullptr;
    return PyTuple_Pack(3, values[0], values[1] != nullptr ? values[1] : Py_None,
                        values[2] != nullptr ? values[2] : Py_None);
}

PyObject* fail(FastCallProbe& /*self*/, PyObject* kind) {
    const long k = PyLong_AsLong(kind);
    if (k == -1 && PyErr_Occurred()) return nullptr;
    if (k == 0) throw std::invalid_argument("probe: invalid_argument");
    if (k == 1) throw std::out_of_range("probe: out_of_range");
    if (k == 2) throw std::bad_alloc();
    if (k == 3) raise(PyExc_KeyError, "probe: KeyError");
    throw std::runtime_error("probe: runtime_error");
}

PyObject* get_total(FastCallProbe& self) { return PyLong_FromLongLong(self.total); }

Py_ssize_t length(FastCallProbe& self) {
    if (self.total < 0) throw std::invalid_argument("probe: negative length");
    return static_cast<Py_ssize_t>(self.total);
}

PyMethodDef probe_methods[] = {
    fastcall::noargs<is_set>("is_set", "is_set($self, /)\n--\n\nThe flag, through fastcall.hpp."),
    fastcall::onearg<add>("add", "add($self, n, /)\n--\n\nAdd n to total and return it."),
    fastcall::positional<count>("count", "count($self, /, *args)\n--\n\nThe number of positional arguments."),
    fastcall::keywords<echo>("echo", "echo($self, /, a, b=None, *, c=None)\n--\n\nReturn (a, b, c)."),
    fastcall::onearg<fail>("fail", "fail($self, kind, /)\n--\n\nRaise a C++ exception chosen by kind."),
    fastcall::end(),
};

PyGetSetDef probe_getters[] = {
    fastcall::getter<get_total>("total", "The running total."),
    fastcall::end_getters(),
};

}  // namespace

void register_testing_alloc(py::module_& m);  // register_testing_alloc.cpp

void register_testing(py::module_& m) {
    py::class_<FastCallProbe> cls(m, "FastCallProbe",
                                  "A trivial object whose methods exercise the fast-call glue.");
    cls.def(py::init<>());
    cls.def(
        "pybind_is_set", [](const FastCallProbe& self) { return self.flag; },
        "The flag, through pybind11's dispatcher (the slow path fastcall.hpp avoids).");
    fastcall::add_methods(cls, probe_methods);
    fastcall::add_getters(cls, probe_getters);
    fastcall::set_length<length>(cls);
    fastcall::set_checked_new(cls);
    register_testing_alloc(m);
}

}  // namespace memkit::bindings
