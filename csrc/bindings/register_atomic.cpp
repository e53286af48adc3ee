// memkit._core.atomic: AtomicInt, AtomicBool, AtomicIntArray, ShardedCounter and the
// private contention kernel.
//
// Every operation is a fast-call method (fastcall.hpp): an atomic op costs nanoseconds, so
// pybind11's ~100 ns dispatcher would be the whole cost. Atomics made by from_buffer hold
// a buffer export until release() or collection, so the memory under them cannot be
// closed (SharedMemory.close(), mmap.close() raise BufferError) while they can touch it.
#include "pybind11.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "../core/aligned.hpp"
#include "../core/atomic.hpp"
#include "../core/platform.hpp"
#include "fastcall.hpp"

namespace memkit::bindings {

namespace {

using core::Order;
using core::Rmw;

// ---- arguments -------------------------------------------------------------------------

// A Python int as a signed 64-bit value: TypeError for non-integers, OverflowError outside
// [-2**63, 2**63).
std::int64_t to_i64(PyObject* obj, const char* name) {
    int overflow = 0;
    long long v = 0;
    if (PyLong_Check(obj)) {
        v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    } else if (PyIndex_Check(obj)) {
        py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj));
        if (!index) throw py::error_already_set();
        v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    } else {
        raise(PyExc_TypeError, std::string(name) + " must be an int, got " + Py_TYPE(obj)->tp_name);
    }
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow != 0) {
        raise(PyExc_OverflowError,
              std::string(name) + "=" + repr_of(obj) + " does not fit in a signed 64-bit integer");
    }
    return static_cast<std::int64_t>(v);
}

Order to_order(PyObject* obj, const char* name = "order") {
    if (obj == nullptr) return Order::seq_cst;
    if (!PyLong_Check(obj)) {
        raise(PyExc_TypeError, std::string(name) + " must be an Ordering, got " + Py_TYPE(obj)->tp_name);
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow != 0 || !core::is_order(v)) {
        raise(PyExc_ValueError, std::string(name) + " must be an Ordering (0..4), got " + repr_of(obj));
    }
    return static_cast<Order>(v);
}

void check(const char* error) {
    if (error != nullptr) raise(PyExc_ValueError, error);
}

PyObject* pair(bool ok, PyObject* value) {
    if (value == nullptr) return nullptr;
    PyObject* out = PyTuple_Pack(2, ok ? Py_True : Py_False, value);
    Py_DECREF(value);
    return out;
}

// ---- cells that may live in someone else's buffer ---------------------------------------

// The memory behind AtomicInt and AtomicIntArray: memkit's own (owned != nullptr or the
// inline cell), or a buffer export held in `view` until release().
//
// With the GIL, an operation runs start to end under it, so release() cannot interleave.
// Free-threaded builds count operations in flight and release() waits them out.
struct CellMemory {
    std::atomic<std::int64_t*> base{nullptr};  // nullptr once released (a plain load on x86)
    Py_buffer view{};              // view.obj != nullptr while an export is held
    core::Allocation owned{};      // AtomicIntArray's own storage
    std::atomic<int> kernels{0};   // running contention kernels (GIL released): release refuses
#if defined(Py_GIL_DISABLED)
    std::atomic<int> in_flight{0};
#endif

    CellMemory() = default;
    CellMemory(const CellMemory&) = delete;
    CellMemory& operator=(const CellMemory&) = delete;
    ~CellMemory() {
        if (view.obj != nullptr) PyBuffer_Release(&view);
        core::deallocate_aligned(owned);
    }

    // Takes a writable export of `buffer` and checks [offset, offset + span) fits and
    // base + offset is 8-byte aligned. Sets base.
    void take_export(PyObject* buffer, std::size_t offset, std::size_t span, const char* what) {
        if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE) < 0) throw py::error_already_set();
        const auto len = static_cast<std::size_t>(view.len);
        if (offset > len || span > len - offset) {
            const std::string message = std::string(what) + " needs " + std::to_string(span) + " bytes at offset " +
                                        std::to_string(offset) + ", but the buffer has " + std::to_string(len);
            PyBuffer_Release(&view);
            raise(PyExc_ValueError, message);
        }
        auto* start = static_cast<std::byte*>(view.buf) + offset;
        // An empty array touches no memory, so its address need not be aligned (an empty
        // bytearray's buffer is not, on 3.13).
        if (span != 0 && reinterpret_cast<std::uintptr_t>(start) % alignof(std::int64_t) != 0) {
            const std::string message = std::string(what) + " must be 8-byte aligned: buffer address + offset " +
                                        std::to_string(offset) + " is not";
            PyBuffer_Release(&view);
            raise(PyExc_ValueError, message);
        }
        base.store(reinterpret_cast<std::int64_t*>(start));
    }

    // Ends the export (a no-op for owned memory and when already released).
    void release(const char* what) {
        if (view.obj == nullptr) return;
        if (kernels.load() > 0) {
            raise(PyExc_BufferError, std::string("cannot release an ") + what + " while a contention kernel uses it");
        }
        base.store(nullptr);
#if defined(Py_GIL_DISABLED)
        while (in_flight.load() != 0) std::this_thread::yield();  // operations that pinned it first
#endif
        PyBuffer_Release(&view);
        view.obj = nullptr;
    }
};

// Pins the memory for one operation; base() is nullptr (ValueError set by the caller) once
// released.
class CellPin {
public:
    explicit CellPin(CellMemory& m) noexcept : m_(m) {
#if defined(Py_GIL_DISABLED)
        m_.in_flight.fetch_add(1);
#endif
        base_ = m_.base.load();
    }
    ~CellPin() {
#if defined(Py_GIL_DISABLED)
        m_.in_flight.fetch_sub(1);
#endif
    }
    CellPin(const CellPin&) = delete;
    CellPin& operator=(const CellPin&) = delete;
    std::int64_t* base() const noexcept { return base_; }

private:
    CellMemory& m_;
    std::int64_t* base_;
};

[[noreturn]] void raise_released(const char* what) {
    raise(PyExc_ValueError, std::string(what) + " has been released (its buffer export ended)");
}

// ---- operations shared by AtomicInt and AtomicIntArray ----------------------------------
//
// Each takes `pin_cell`, a callable returning a pin whose cell() is the live cell or nullptr
// once released, and calls it only after every argument is converted: a conversion may run
// Python code (an __index__ method) that releases the atomic and frees the buffer it lived
// in, so a cell looked up before would be a dangling pointer by the time it is written.

// The pinned cell, or ValueError when released.
template <class Pin>
std::int64_t* live_cell(const Pin& pin, const char* what) {
    std::int64_t* cell = pin.cell();
    if (cell == nullptr) raise_released(what);
    return cell;
}

// load(order=SEQ_CST)
template <class PinCell>
PyObject* do_load(PinCell&& pin_cell, const char* what, PyObject* const* args, Py_ssize_t nargs,
                  PyObject* kwnames) {
    Order order = Order::seq_cst;
    if (nargs != 0 || kwnames != nullptr) {
        static const char* const names[] = {"order"};
        PyObject* values[1];
        if (!fastcall::parse_args("load", args, nargs, kwnames, names, 0, 1, values)) return nullptr;
        order = to_order(values[0]);
        check(core::invalid_load_order(order));
    }
    const auto pin = pin_cell();
    return PyLong_FromLongLong(core::atomic_load(live_cell(pin, what), order));
}

// store(v, order=SEQ_CST)
template <class PinCell>
PyObject* do_store(PinCell&& pin_cell, const char* what, PyObject* const* args, Py_ssize_t nargs,
                   PyObject* kwnames) {
    static const char* const names[] = {"v", "order"};
    PyObject* values[2];
    if (!fastcall::parse_args("store", args, nargs, kwnames, names, 1, 2, values)) return nullptr;
    const std::int64_t v = to_i64(values[0], "v");
    const Order order = to_order(values[1]);
    check(core::invalid_store_order(order));
    const auto pin = pin_cell();
    core::atomic_store(live_cell(pin, what), v, order);
    Py_RETURN_NONE;
}

struct RmwSpec {
    Rmw op;
    const char* name;
    const char* value_name;  // "n" (defaults to 1) or "v" (required)
};

// swap/fetch_*(value, order=SEQ_CST) -> previous value
template <class PinCell>
PyObject* do_rmw(const RmwSpec& spec, PinCell&& pin_cell, const char* what, PyObject* const* args, Py_ssize_t nargs,
                 PyObject* kwnames) {
    std::int64_t v = 1;
    Order order = Order::seq_cst;
    if (nargs == 1 && kwnames == nullptr && PyLong_CheckExact(args[0])) {  // fetch_add(1): the hot call
        int overflow = 0;
        v = PyLong_AsLongLongAndOverflow(args[0], &overflow);
        if (overflow != 0) v = to_i64(args[0], spec.value_name);  // raises OverflowError
    } else {
        const char* const names[] = {spec.value_name, "order"};
        PyObject* values[2];
        const bool defaulted = spec.value_name[0] == 'n';
        if (!fastcall::parse_args(spec.name, args, nargs, kwnames, names, defaulted ? 0 : 1, 2, values)) {
            return nullptr;
        }
        if (values[0] != nullptr) v = to_i64(values[0], spec.value_name);
        order = to_order(values[1]);
    }
    const auto pin = pin_cell();
    return PyLong_FromLongLong(core::atomic_rmw(live_cell(pin, what), spec.op, v, order));
}

// compare_exchange[_weak](expected, desired, order=SEQ_CST, failure=None) -> (ok, previous)
template <class PinCell>
PyObject* do_cas(bool weak, PinCell&& pin_cell, const char* what, PyObject* const* args, Py_ssize_t nargs,
                 PyObject* kwnames) {
    static const char* const names[] = {"expected", "desired", "order", "failure"};
    PyObject* values[4];
    const char* fname = weak ? "compare_exchange_weak" : "compare_exchange";
    if (!fastcall::parse_args(fname, args, nargs, kwnames, names, 2, 4, values)) return nullptr;
    std::int64_t expected = to_i64(values[0], "expected");
    const std::int64_t desired = to_i64(values[1], "desired");
    const Order order = to_order(values[2]);
    const Order failure =
        values[3] != nullptr && values[3] != Py_None ? to_order(values[3], "failure") : core::default_failure(order);
    check(core::invalid_failure_order(failure));
    const auto pin = pin_cell();
    const bool ok = core::atomic_compare_exchange(live_cell(pin, what), expected, desired, weak, order, failure);
    return pair(ok, PyLong_FromLongLong(expected));
}

// fetch_update(fn, order=SEQ_CST, failure=None) -> (True, previous) | (False, current)
// `fn` is Python: the memory is pinned only around each atomic step, never across the call.
template <class Pin>
PyObject* do_fetch_update(Pin&& pin_cell, const char* what, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* kwnames) {
    static const char* const names[] = {"fn", "order", "failure"};
    PyObject* values[3];
    if (!fastcall::parse_args("fetch_update", args, nargs, kwnames, names, 1, 3, values)) return nullptr;
    PyObject* fn = values[0];
    if (!PyCallable_Check(fn)) raise(PyExc_TypeError, std::string("fn must be callable, got ") + Py_TYPE(fn)->tp_name);
    const Order order = to_order(values[1]);
    const Order failure =
        values[2] != nullptr && values[2] != Py_None ? to_order(values[2], "failure") : core::default_failure(order);
    check(core::invalid_failure_order(failure));
    std::int64_t current = 0;
    {
        auto pin = pin_cell();
        if (pin.cell() == nullptr) raise_released(what);
        current = core::atomic_load(pin.cell(), failure);
    }
    for (;;) {
        py::object arg = py::reinterpret_steal<py::object>(PyLong_FromLongLong(current));
        if (!arg) throw py::error_already_set();
        py::object result = py::reinterpret_steal<py::object>(PyObject_CallOneArg(fn, arg.ptr()));
        if (!result) throw py::error_already_set();
        if (result.is_none()) return pair(false, PyLong_FromLongLong(current));
        const std::int64_t next = to_i64(result.ptr(), "fn's result");
        auto pin = pin_cell();
        if (pin.cell() == nullptr) raise_released(what);
        if (core::atomic_compare_exchange(pin.cell(), current, next, /*weak=*/true, order, failure)) {
            return pair(true, PyLong_FromLongLong(current));
        }
    }
}

// ---- AtomicInt ---------------------------------------------------------------------------

struct AtomicIntState {
    alignas(8) std::int64_t own = 0;
    CellMemory memory;
    AtomicIntState() { memory.base.store(&own); }
};

constexpr const char* kAtomicInt = "AtomicInt";

// Runs `body(cell)` on a pinned, live cell.
template <class Body>
PyObject* with_cell(AtomicIntState& self, Body&& body) {
    CellPin pin(self.memory);
    if (pin.base() == nullptr) raise_released(kAtomicInt);
    return body(pin.base());
}

struct IntPin {
    CellPin pin;
    explicit IntPin(AtomicIntState& s) : pin(s.memory) {}
    std::int64_t* cell() const noexcept { return pin.base(); }
};

std::unique_ptr<AtomicIntState> make_atomic_int(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"value"};
    PyObject* values[1];
    if (!fastcall::parse_tuple_args("AtomicInt", args, kwargs, names, 0, 1, values)) throw py::error_already_set();
    auto state = std::make_unique<AtomicIntState>();
    if (values[0] != nullptr) state->own = to_i64(values[0], "value");
    return state;
}

PyObject* int_load(AtomicIntState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    return do_load([&s] { return IntPin(s); }, kAtomicInt, a, n, k);
}
PyObject* int_store(AtomicIntState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    return do_store([&s] { return IntPin(s); }, kAtomicInt, a, n, k);
}
template <const RmwSpec& Spec>
PyObject* int_rmw(AtomicIntState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    return do_rmw(Spec, [&s] { return IntPin(s); }, kAtomicInt, a, n, k);
}
template <bool Weak>
PyObject* int_cas(AtomicIntState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    return do_cas(Weak, [&s] { return IntPin(s); }, kAtomicInt, a, n, k);
}
PyObject* int_fetch_update(AtomicIntState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    return do_fetch_update([&s] { return IntPin(s); }, kAtomicInt, a, n, k);
}

// In-place operators: atomic read-modify-write, then the same object back (`a += 1`).
template <Rmw Op>
PyObject* int_inplace(AtomicIntState& s, PyObject* self, PyObject* arg) {
    const std::int64_t v = to_i64(arg, "operand");
    with_cell(s, [&](std::int64_t* c) -> PyObject* {
        core::atomic_rmw(c, Op, v, Order::seq_cst);
        return nullptr;
    });
    return Py_NewRef(self);
}

PyObject* int_int(AtomicIntState& s) {
    return with_cell(s, [](std::int64_t* c) { return PyLong_FromLongLong(core::atomic_load(c, Order::seq_cst)); });
}

PyObject* int_repr(AtomicIntState& s) {
    CellPin pin(s.memory);
    if (pin.base() == nullptr) return PyUnicode_FromString("<AtomicInt released>");
    return PyUnicode_FromFormat("AtomicInt(%lld)", static_cast<long long>(core::atomic_load(pin.base(), Order::seq_cst)));
}

PyObject* int_release(AtomicIntState& s) {
    s.memory.release(kAtomicInt);
    Py_RETURN_NONE;
}

PyObject* int_released(AtomicIntState& s) {
    CellPin pin(s.memory);
    return PyBool_FromLong(pin.base() == nullptr ? 1 : 0);
}

PyObject* int_address(AtomicIntState& s) {
    return with_cell(s, [](std::int64_t* c) { return PyLong_FromVoidPtr(c); });
}

constexpr RmwSpec kFetchAdd{Rmw::add, "fetch_add", "n"};
constexpr RmwSpec kFetchSub{Rmw::sub, "fetch_sub", "n"};
constexpr RmwSpec kFetchAnd{Rmw::bit_and, "fetch_and", "v"};
constexpr RmwSpec kFetchOr{Rmw::bit_or, "fetch_or", "v"};
constexpr RmwSpec kFetchXor{Rmw::bit_xor, "fetch_xor", "v"};
constexpr RmwSpec kFetchMax{Rmw::max, "fetch_max", "v"};
constexpr RmwSpec kFetchMin{Rmw::min, "fetch_min", "v"};
constexpr RmwSpec kSwap{Rmw::swap, "swap", "v"};

PyMethodDef int_methods[] = {
    fastcall::init<make_atomic_int>("__init__($self, /, value=0)\n--\n\nA lock-free signed 64-bit integer."),
    fastcall::keywords<int_load>("load", "load($self, /, order=Ordering.SEQ_CST)\n--\n\n"
                                         "The value. RELEASE and ACQ_REL raise ValueError, as Rust panics."),
    fastcall::keywords<int_store>("store", "store($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                           "Set the value. ACQUIRE and ACQ_REL raise ValueError."),
    fastcall::keywords<int_rmw<kSwap>>("swap", "swap($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                               "Set the value; return the previous one."),
    fastcall::keywords<int_rmw<kFetchAdd>>("fetch_add", "fetch_add($self, /, n=1, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Add n (wrapping at 64 bits); return the previous value."),
    fastcall::keywords<int_rmw<kFetchSub>>("fetch_sub", "fetch_sub($self, /, n=1, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Subtract n (wrapping); return the previous value."),
    fastcall::keywords<int_rmw<kFetchAnd>>("fetch_and", "fetch_and($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Bitwise and; return the previous value."),
    fastcall::keywords<int_rmw<kFetchOr>>("fetch_or", "fetch_or($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                      "Bitwise or; return the previous value."),
    fastcall::keywords<int_rmw<kFetchXor>>("fetch_xor", "fetch_xor($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Bitwise xor; return the previous value."),
    fastcall::keywords<int_rmw<kFetchMax>>("fetch_max", "fetch_max($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Set max(value, v); return the previous value."),
    fastcall::keywords<int_rmw<kFetchMin>>("fetch_min", "fetch_min($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Set min(value, v); return the previous value."),
    fastcall::keywords<int_cas<false>>(
        "compare_exchange",
        "compare_exchange($self, /, expected, desired, order=Ordering.SEQ_CST, failure=None)\n--\n\n"
        "If the value is `expected`, set `desired`. Return (True, previous) or (False, current).\n"
        "`failure` defaults to `order` without its release part; RELEASE/ACQ_REL there raise ValueError."),
    fastcall::keywords<int_cas<true>>(
        "compare_exchange_weak",
        "compare_exchange_weak($self, /, expected, desired, order=Ordering.SEQ_CST, failure=None)\n--\n\n"
        "compare_exchange that may fail spuriously even when the value is `expected`: for loops."),
    fastcall::keywords<int_fetch_update>(
        "fetch_update",
        "fetch_update($self, /, fn, order=Ordering.SEQ_CST, failure=None)\n--\n\n"
        "Call fn(current) and store its result if the value did not change meanwhile, retrying\n"
        "(fn may run several times). fn returns None to give up. Returns (True, previous) or\n"
        "(False, current)."),
    fastcall::onearg_self<int_inplace<Rmw::add>>("__iadd__", "Atomic `a += n`."),
    fastcall::onearg_self<int_inplace<Rmw::sub>>("__isub__", "Atomic `a -= n`."),
    fastcall::onearg_self<int_inplace<Rmw::bit_and>>("__iand__", "Atomic `a &= v`."),
    fastcall::onearg_self<int_inplace<Rmw::bit_or>>("__ior__", "Atomic `a |= v`."),
    fastcall::onearg_self<int_inplace<Rmw::bit_xor>>("__ixor__", "Atomic `a ^= v`."),
    fastcall::noargs<int_int>("__int__", "__int__($self, /)\n--\n\nload(SEQ_CST)."),
    fastcall::noargs<int_repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::noargs<int_release>("release", "release($self, /)\n--\n\n"
                                             "End the buffer export of an atomic made by from_buffer (a no-op\n"
                                             "otherwise, and when already released). Later use raises ValueError."),
    fastcall::end(),
};

PyGetSetDef int_getters[] = {
    fastcall::getter<int_released>("released", "True once release() ended a from_buffer export."),
    fastcall::getter<int_address>("address", "The address of the 8-byte cell."),
    fastcall::end_getters(),
};

// ---- AtomicBool --------------------------------------------------------------------------

struct AtomicBoolState {
    std::uint8_t cell = 0;
};

std::unique_ptr<AtomicBoolState> make_atomic_bool(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"value"};
    PyObject* values[1];
    if (!fastcall::parse_tuple_args("AtomicBool", args, kwargs, names, 0, 1, values)) throw py::error_already_set();
    auto state = std::make_unique<AtomicBoolState>();
    state->cell = values[0] != nullptr && to_flag(values[0]) ? 1 : 0;
    return state;
}

PyObject* bool_load(AtomicBoolState& s, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    Order order = Order::seq_cst;
    if (nargs != 0 || kwnames != nullptr) {
        static const char* const names[] = {"order"};
        PyObject* values[1];
        if (!fastcall::parse_args("load", args, nargs, kwnames, names, 0, 1, values)) return nullptr;
        order = to_order(values[0]);
        check(core::invalid_load_order(order));
    }
    return PyBool_FromLong(core::bool_load(&s.cell, order) ? 1 : 0);
}

PyObject* bool_store(AtomicBoolState& s, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    static const char* const names[] = {"v", "order"};
    PyObject* values[2];
    if (!fastcall::parse_args("store", args, nargs, kwnames, names, 1, 2, values)) return nullptr;
    const bool v = to_flag(values[0]);
    const Order order = to_order(values[1]);
    check(core::invalid_store_order(order));
    core::bool_store(&s.cell, v, order);
    Py_RETURN_NONE;
}

template <const RmwSpec& Spec>
PyObject* bool_rmw(AtomicBoolState& s, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    const char* const names[] = {"v", "order"};
    PyObject* values[2];
    if (!fastcall::parse_args(Spec.name, args, nargs, kwnames, names, 1, 2, values)) return nullptr;
    const bool v = to_flag(values[0]);
    const Order order = to_order(values[1]);
    return PyBool_FromLong(core::bool_rmw(&s.cell, Spec.op, v, order) ? 1 : 0);
}

template <bool Weak>
PyObject* bool_cas(AtomicBoolState& s, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    static const char* const names[] = {"expected", "desired", "order", "failure"};
    PyObject* values[4];
    if (!fastcall::parse_args(Weak ? "compare_exchange_weak" : "compare_exchange", args, nargs, kwnames, names, 2, 4,
                              values)) {
        return nullptr;
    }
    bool expected = to_flag(values[0]);
    const bool desired = to_flag(values[1]);
    const Order order = to_order(values[2]);
    const Order failure =
        values[3] != nullptr && values[3] != Py_None ? to_order(values[3], "failure") : core::default_failure(order);
    check(core::invalid_failure_order(failure));
    const bool ok = core::bool_compare_exchange(&s.cell, expected, desired, Weak, order, failure);
    return pair(ok, PyBool_FromLong(expected ? 1 : 0));
}

PyObject* bool_bool(AtomicBoolState& s) { return PyBool_FromLong(core::bool_load(&s.cell, Order::seq_cst) ? 1 : 0); }

int bool_nb_bool(PyObject* self) noexcept {
    auto* s = fastcall::self_as<AtomicBoolState>(self);
    if (s == nullptr) return -1;
    return core::bool_load(&s->cell, Order::seq_cst) ? 1 : 0;
}

PyObject* bool_repr(AtomicBoolState& s) {
    return PyUnicode_FromString(core::bool_load(&s.cell, Order::seq_cst) ? "AtomicBool(True)" : "AtomicBool(False)");
}

constexpr RmwSpec kBoolAnd{Rmw::bit_and, "fetch_and", "v"};
constexpr RmwSpec kBoolOr{Rmw::bit_or, "fetch_or", "v"};
constexpr RmwSpec kBoolXor{Rmw::bit_xor, "fetch_xor", "v"};
constexpr RmwSpec kBoolSwap{Rmw::swap, "swap", "v"};

PyMethodDef bool_methods[] = {
    fastcall::init<make_atomic_bool>("__init__($self, /, value=False)\n--\n\nA lock-free boolean."),
    fastcall::keywords<bool_load>("load", "load($self, /, order=Ordering.SEQ_CST)\n--\n\nThe value."),
    fastcall::keywords<bool_store>("store", "store($self, /, v, order=Ordering.SEQ_CST)\n--\n\nSet the value."),
    fastcall::keywords<bool_rmw<kBoolSwap>>("swap", "swap($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                    "Set the value; return the previous one."),
    fastcall::keywords<bool_rmw<kBoolAnd>>("fetch_and", "fetch_and($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Logical and; return the previous value."),
    fastcall::keywords<bool_rmw<kBoolOr>>("fetch_or", "fetch_or($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                      "Logical or; return the previous value."),
    fastcall::keywords<bool_rmw<kBoolXor>>("fetch_xor", "fetch_xor($self, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                                        "Logical xor; return the previous value."),
    fastcall::keywords<bool_cas<false>>(
        "compare_exchange", "compare_exchange($self, /, expected, desired, order=Ordering.SEQ_CST, failure=None)\n"
                            "--\n\nIf the value is `expected`, set `desired`. Return (True, previous) or (False, current)."),
    fastcall::keywords<bool_cas<true>>("compare_exchange_weak",
                                       "compare_exchange_weak($self, /, expected, desired, order=Ordering.SEQ_CST, "
                                       "failure=None)\n--\n\ncompare_exchange that may fail spuriously."),
    fastcall::noargs<bool_bool>("__bool__", "__bool__($self, /)\n--\n\nload(SEQ_CST)."),
    fastcall::noargs<bool_repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::end(),
};

// ---- AtomicIntArray ------------------------------------------------------------------------

struct ArrayState {
    CellMemory memory;
    std::size_t length = 0;
    std::size_t stride = sizeof(std::int64_t);  // bytes between elements: 8, or CACHE_PAD when padded
};

constexpr const char* kArray = "AtomicIntArray";

std::size_t stride_for(bool padded) { return padded ? core::kCachePad : sizeof(std::int64_t); }

std::size_t span_of(std::size_t length, std::size_t stride, const char* what) {
    if (length == 0) return 0;
    if (length - 1 > (core::kMaxSize - sizeof(std::int64_t)) / stride) {
        raise(PyExc_OverflowError, std::string(what) + " of " + std::to_string(length) + " elements is too large");
    }
    return (length - 1) * stride + sizeof(std::int64_t);
}

std::unique_ptr<ArrayState> make_array(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"length", "padded"};
    PyObject* values[2];
    if (!fastcall::parse_tuple_args(kArray, args, kwargs, names, 1, 1, values)) throw py::error_already_set();
    auto state = std::make_unique<ArrayState>();
    state->length = to_size(values[0], "length");
    state->stride = stride_for(values[1] != nullptr && to_flag(values[1]));
    const std::size_t bytes = span_of(state->length, state->stride, kArray);
    try {
        // CACHE_PAD-aligned, so a padded element owns its whole padding unit.
        state->memory.owned = core::allocate_aligned(bytes, core::kCachePad, /*zero=*/true);
    } catch (const std::bad_alloc&) {
        raise(PyExc_MemoryError, "could not allocate an AtomicIntArray of " + std::to_string(state->length) + " elements");
    }
    state->memory.base.store(reinterpret_cast<std::int64_t*>(
        state->memory.owned.nbytes != 0 ? state->memory.owned.data : core::dangling(core::kCachePad)));
    return state;
}

// The byte offset of element `index` (args[0]): TypeError for a non-int, IndexError out of
// range, ValueError if the array was released (checked first, so an empty released array
// says so too). The length never changes, so the offset holds whatever happens later.
std::size_t element_offset(ArrayState& s, PyObject* const* args, Py_ssize_t nargs, const char* fname) {
    if (nargs < 1) raise(PyExc_TypeError, std::string(fname) + "() missing required argument 'index'");
    if (!PyLong_Check(args[0])) {
        raise(PyExc_TypeError, std::string("index must be an int, got ") + Py_TYPE(args[0])->tp_name);
    }
    // Released first: a released array raises ValueError for every index (an empty one too).
    CellPin pin(s.memory);
    if (pin.base() == nullptr) raise_released(kArray);
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(args[0], &overflow);
    if (overflow != 0 || i < 0 || static_cast<unsigned long long>(i) >= s.length) {
        raise(PyExc_IndexError, "AtomicIntArray index " + repr_of(args[0]) + " out of range for length " +
                                    std::to_string(s.length));
    }
    return static_cast<std::size_t>(i) * s.stride;
}

// Pins the array's memory; cell() is element `offset`'s cell, or nullptr once released.
struct ElementPin {
    CellPin pin;
    std::size_t offset;
    ElementPin(ArrayState& s, std::size_t off) : pin(s.memory), offset(off) {}
    std::int64_t* cell() const noexcept {
        return pin.base() == nullptr
                   ? nullptr
                   : reinterpret_cast<std::int64_t*>(reinterpret_cast<std::byte*>(pin.base()) + offset);
    }
};

// `body(cell)` on element args[0] of the pinned, live array (for bodies that run no Python).
template <class Body>
PyObject* with_element(ArrayState& s, PyObject* const* args, Py_ssize_t nargs, const char* fname, Body&& body) {
    const ElementPin pin(s, element_offset(s, args, nargs, fname));
    return body(live_cell(pin, kArray));
}

PyObject* arr_load(ArrayState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    const std::size_t off = element_offset(s, a, n, "load");
    return do_load([&s, off] { return ElementPin(s, off); }, kArray, a + 1, n - 1, k);
}
PyObject* arr_store(ArrayState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    const std::size_t off = element_offset(s, a, n, "store");
    return do_store([&s, off] { return ElementPin(s, off); }, kArray, a + 1, n - 1, k);
}
template <const RmwSpec& Spec>
PyObject* arr_rmw(ArrayState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    const std::size_t off = element_offset(s, a, n, Spec.name);
    return do_rmw(Spec, [&s, off] { return ElementPin(s, off); }, kArray, a + 1, n - 1, k);
}
template <bool Weak>
PyObject* arr_cas(ArrayState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    const std::size_t off = element_offset(s, a, n, Weak ? "compare_exchange_weak" : "compare_exchange");
    return do_cas(Weak, [&s, off] { return ElementPin(s, off); }, kArray, a + 1, n - 1, k);
}

PyObject* arr_fetch_update(ArrayState& s, PyObject* const* a, Py_ssize_t n, PyObject* k) {
    const std::size_t off = element_offset(s, a, n, "fetch_update");
    return do_fetch_update([&s, off] { return ElementPin(s, off); }, kArray, a + 1, n - 1, k);
}

PyObject* arr_getitem(ArrayState& s, PyObject* index) {
    PyObject* const args[] = {index};
    return with_element(s, args, 1, "__getitem__",
                        [](std::int64_t* c) { return PyLong_FromLongLong(core::atomic_load(c, Order::seq_cst)); });
}

// len() of a released array raises ValueError, as every other use does.
Py_ssize_t arr_len(ArrayState& s) {
    CellPin pin(s.memory);
    if (pin.base() == nullptr) raise_released(kArray);
    return static_cast<Py_ssize_t>(s.length);
}

PyObject* arr_len_method(ArrayState& s) { return PyLong_FromSsize_t(arr_len(s)); }

PyObject* arr_tolist(ArrayState& s) {
    CellPin pin(s.memory);
    if (pin.base() == nullptr) raise_released(kArray);
    auto out = steal_or_throw<py::list>(PyList_New(static_cast<Py_ssize_t>(s.length)));
    for (std::size_t i = 0; i < s.length; ++i) {
        auto* c = reinterpret_cast<std::int64_t*>(reinterpret_cast<std::byte*>(pin.base()) + i * s.stride);
        PyObject* item = PyLong_FromLongLong(core::atomic_load(c, Order::seq_cst));
        if (item == nullptr) throw py::error_already_set();
        PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), item);
    }
    return out.release().ptr();
}

PyObject* arr_address_of(ArrayState& s, PyObject* index) {
    PyObject* const args[] = {index};
    return with_element(s, args, 1, "address_of", [](std::int64_t* c) { return PyLong_FromVoidPtr(c); });
}

PyObject* arr_release(ArrayState& s) {
    s.memory.release(kArray);
    Py_RETURN_NONE;
}

PyObject* arr_released(ArrayState& s) {
    CellPin pin(s.memory);
    return PyBool_FromLong(pin.base() == nullptr ? 1 : 0);
}

PyObject* arr_stride(ArrayState& s) { return PyLong_FromSize_t(s.stride); }

PyObject* arr_padded(ArrayState& s) { return PyBool_FromLong(s.stride != sizeof(std::int64_t) ? 1 : 0); }

PyObject* arr_repr(ArrayState& s) {
    CellPin pin(s.memory);
    if (pin.base() == nullptr) return PyUnicode_FromString("<AtomicIntArray released>");
    return PyUnicode_FromFormat("<AtomicIntArray length=%zu stride=%zu>", s.length, s.stride);
}

PyMethodDef array_methods[] = {
    fastcall::init<make_array>("__init__($self, /, length, *, padded=False)\n--\n\n"
                               "`length` zeroed atomics; padded=True puts each on its own CACHE_PAD bytes."),
    fastcall::keywords<arr_load>("load", "load($self, index, /, order=Ordering.SEQ_CST)\n--\n\nElement `index`."),
    fastcall::keywords<arr_store>("store", "store($self, index, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                           "Set element `index`."),
    fastcall::keywords<arr_rmw<kSwap>>("swap", "swap($self, index, /, v, order=Ordering.SEQ_CST)\n--\n\n"
                                               "Set element `index`; return its previous value."),
    fastcall::keywords<arr_rmw<kFetchAdd>>("fetch_add", "fetch_add($self, index, /, n=1, order=Ordering.SEQ_CST)\n"
                                                        "--\n\nAdd n to element `index`; return its previous value."),
    fastcall::keywords<arr_rmw<kFetchSub>>("fetch_sub", "fetch_sub($self, index, /, n=1, order=Ordering.SEQ_CST)\n"
                                                        "--\n\nSubtract n; return the previous value."),
    fastcall::keywords<arr_rmw<kFetchAnd>>("fetch_and", "fetch_and($self, index, /, v, order=Ordering.SEQ_CST)\n"
                                                        "--\n\nBitwise and; return the previous value."),
    fastcall::keywords<arr_rmw<kFetchOr>>("fetch_or", "fetch_or($self, index, /, v, order=Ordering.SEQ_CST)\n"
                                                      "--\n\nBitwise or; return the previous value."),
    fastcall::keywords<arr_rmw<kFetchXor>>("fetch_xor", "fetch_xor($self, index, /, v, order=Ordering.SEQ_CST)\n"
                                                        "--\n\nBitwise xor; return the previous value."),
    fastcall::keywords<arr_rmw<kFetchMax>>("fetch_max", "fetch_max($self, index, /, v, order=Ordering.SEQ_CST)\n"
                                                        "--\n\nSet max; return the previous value."),
    fastcall::keywords<arr_rmw<kFetchMin>>("fetch_min", "fetch_min($self, index, /, v, order=Ordering.SEQ_CST)\n"
                                                        "--\n\nSet min; return the previous value."),
    fastcall::keywords<arr_cas<false>>(
        "compare_exchange", "compare_exchange($self, index, /, expected, desired, order=Ordering.SEQ_CST, "
                            "failure=None)\n--\n\nAtomicInt.compare_exchange on element `index`."),
    fastcall::keywords<arr_cas<true>>(
        "compare_exchange_weak", "compare_exchange_weak($self, index, /, expected, desired, "
                                 "order=Ordering.SEQ_CST, failure=None)\n--\n\nMay fail spuriously: for loops."),
    fastcall::keywords<arr_fetch_update>(
        "fetch_update", "fetch_update($self, index, /, fn, order=Ordering.SEQ_CST, failure=None)\n--\n\n"
                        "AtomicInt.fetch_update on element `index`."),
    fastcall::onearg<arr_getitem>("__getitem__", "__getitem__($self, index, /)\n--\n\nload(index)."),
    fastcall::noargs<arr_len_method>("__len__", "__len__($self, /)\n--\n\nThe number of elements."),
    fastcall::noargs<arr_tolist>("tolist", "tolist($self, /)\n--\n\nEvery element, each loaded with SEQ_CST."),
    fastcall::onearg<arr_address_of>("address_of", "address_of($self, index, /)\n--\n\n"
                                                   "The address of element `index` (elements are `stride` apart)."),
    fastcall::noargs<arr_release>("release", "release($self, /)\n--\n\n"
                                             "End the buffer export of an array made by from_buffer (a no-op\n"
                                             "otherwise). Later use raises ValueError."),
    fastcall::noargs<arr_repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::end(),
};

PyGetSetDef array_getters[] = {
    fastcall::getter<arr_stride>("stride", "Bytes between neighbouring elements: 8, or CACHE_PAD when padded."),
    fastcall::getter<arr_padded>("padded", "True when every element has its own CACHE_PAD bytes."),
    fastcall::getter<arr_released>("released", "True once release() ended a from_buffer export."),
    fastcall::end_getters(),
};

// ---- ShardedCounter --------------------------------------------------------------------------

struct ShardedState {
    core::Allocation memory;
    std::size_t shards = 0;
    ~ShardedState() { core::deallocate_aligned(memory); }
    std::int64_t* shard(std::size_t i) const noexcept {
        return reinterpret_cast<std::int64_t*>(memory.data + i * core::kCachePad);
    }
    std::int64_t sum() const noexcept {
        std::uint64_t total = 0;  // wrapping, like the shards themselves
        for (std::size_t i = 0; i < shards; ++i) {
            total += static_cast<std::uint64_t>(core::atomic_load(shard(i), Order::relaxed));
        }
        return static_cast<std::int64_t>(total);
    }
};

std::unique_ptr<ShardedState> make_sharded(PyObject* args, PyObject* kwargs) {
    static const char* const names[] = {"value"};
    PyObject* values[1];
    if (!fastcall::parse_tuple_args("ShardedCounter", args, kwargs, names, 0, 1, values)) throw py::error_already_set();
    auto state = std::make_unique<ShardedState>();
    // Twice the hardware threads, as a power of two (4..256): enough that threads rarely share.
    std::size_t want = 2 * std::max(1u, std::thread::hardware_concurrency());
    std::size_t shards = 4;
    while (shards < want && shards < 256) shards *= 2;
    state->shards = shards;
    state->memory = core::allocate_aligned(shards * core::kCachePad, core::kCachePad, /*zero=*/true);
    if (values[0] != nullptr) *state->shard(0) = to_i64(values[0], "value");
    return state;
}

PyObject* sharded_add(ShardedState& s, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    std::int64_t n = 1;
    if (nargs == 1 && kwnames == nullptr && PyLong_CheckExact(args[0])) {
        int overflow = 0;
        n = PyLong_AsLongLongAndOverflow(args[0], &overflow);
        if (overflow != 0) n = to_i64(args[0], "n");
    } else if (nargs != 0 || kwnames != nullptr) {
        static const char* const names[] = {"n"};
        PyObject* values[1];
        if (!fastcall::parse_args("add", args, nargs, kwnames, names, 0, 1, values)) return nullptr;
        if (values[0] != nullptr) n = to_i64(values[0], "n");
    }
    core::atomic_rmw(s.shard(core::thread_shard(s.shards)), Rmw::add, n, Order::relaxed);
    Py_RETURN_NONE;
}

PyObject* sharded_value(ShardedState& s) { return PyLong_FromLongLong(s.sum()); }

PyObject* sharded_iadd(ShardedState& s, PyObject* self, PyObject* arg) {
    core::atomic_rmw(s.shard(core::thread_shard(s.shards)), Rmw::add, to_i64(arg, "n"), Order::relaxed);
    return Py_NewRef(self);
}

PyObject* sharded_repr(ShardedState& s) {
    return PyUnicode_FromFormat("ShardedCounter(%lld)", static_cast<long long>(s.sum()));
}

PyObject* sharded_shards(ShardedState& s) { return PyLong_FromSize_t(s.shards); }

PyMethodDef sharded_methods[] = {
    fastcall::init<make_sharded>("__init__($self, /, value=0)\n--\n\nA counter with one cache-padded shard per thread."),
    fastcall::keywords<sharded_add>("add", "add($self, /, n=1)\n--\n\n"
                                           "Add n (wrapping) to the calling thread's shard (a relaxed fetch_add)."),
    fastcall::noargs<sharded_value>("value", "value($self, /)\n--\n\n"
                                             "The sum of the shards. Adds racing with it may or may not be counted:\n"
                                             "read it when the writers are done for an exact total."),
    fastcall::noargs<sharded_value>("__int__", "__int__($self, /)\n--\n\nvalue()."),
    fastcall::onearg_self<sharded_iadd>("__iadd__", "Atomic `c += n`."),
    fastcall::noargs<sharded_repr>("__repr__", "__repr__($self, /)\n--\n\nReturn repr(self)."),
    fastcall::end(),
};

PyGetSetDef sharded_getters[] = {
    fastcall::getter<sharded_shards>("shards", "How many cache-padded shards the counter spreads over."),
    fastcall::end_getters(),
};

// ---- from_buffer and the contention kernel -------------------------------------------------

// from_buffer is a plain CPython static method, not pybind11's dispatcher: that dispatcher
// dereferences NULL when memory for a keyword's name runs out (pybind11 3.1's keyword_index).

// AtomicInt.from_buffer(buf, offset=0)
PyObject* int_from_buffer(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    static const char* const names[] = {"buf", "offset"};
    PyObject* values[2];
    if (!fastcall::parse_args("from_buffer", args, nargs, kwnames, names, 1, 2, values)) return nullptr;
    auto state = std::make_unique<AtomicIntState>();
    const std::size_t off = values[1] != nullptr ? to_size(values[1], "offset") : 0;
    state->memory.take_export(values[0], off, sizeof(std::int64_t), kAtomicInt);
    return fastcall::adopt(py::type::of<AtomicIntState>(), std::move(state)).release().ptr();
}

// AtomicIntArray.from_buffer(buf, length, offset=0, padded=False)
PyObject* array_from_buffer(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    static const char* const names[] = {"buf", "length", "offset", "padded"};
    PyObject* values[4];
    if (!fastcall::parse_args("from_buffer", args, nargs, kwnames, names, 2, 4, values)) return nullptr;
    auto state = std::make_unique<ArrayState>();
    state->length = to_size(values[1], "length");
    state->stride = stride_for(values[3] != nullptr && to_flag(values[3]));
    const std::size_t off = values[2] != nullptr ? to_size(values[2], "offset") : 0;
    state->memory.take_export(values[0], off, span_of(state->length, state->stride, kArray), kArray);
    if (state->length == 0) state->memory.base.store(reinterpret_cast<std::int64_t*>(core::dangling(8)));
    return fastcall::adopt(py::type::of<ArrayState>(), std::move(state)).release().ptr();
}

PyMethodDef int_statics[] = {
    fastcall::static_keywords<int_from_buffer>(
        "from_buffer",
        "from_buffer(buf, offset=0)\n--\n\n"
        "An AtomicInt over 8 bytes of a writable buffer at `offset` (8-byte aligned). The\n"
        "buffer stays exported - so SharedMemory.close() or mmap.close() raise BufferError -\n"
        "until release() or collection."),
    fastcall::end(),
};

PyMethodDef array_statics[] = {
    fastcall::static_keywords<array_from_buffer>(
        "from_buffer",
        "from_buffer(buf, length, offset=0, padded=False)\n--\n\n"
        "An AtomicIntArray over a writable buffer (8-byte aligned at `offset`); the buffer stays\n"
        "exported until release() or collection."),
    fastcall::end(),
};

std::uint64_t contend(ArrayState& array, py::handle nthreads_obj, py::handle iterations_obj) {
    const std::size_t nthreads = to_size(nthreads_obj.ptr(), "nthreads");
    const std::size_t iterations = to_size(iterations_obj.ptr(), "iterations");
    if (nthreads == 0 || nthreads > array.length) {
        raise(PyExc_ValueError, "nthreads must be between 1 and len(array) = " + std::to_string(array.length) +
                                    ", got " + std::to_string(nthreads));
    }
    if (nthreads > 1024) raise(PyExc_ValueError, "nthreads must be at most 1024");
    CellPin pin(array.memory);
    if (pin.base() == nullptr) raise_released(kArray);
    // release() refuses while the kernel runs: the GIL is released below.
    array.memory.kernels.fetch_add(1);
    std::uint64_t ns = 0;
    try {
        py::gil_scoped_release unlocked;
        ns = core::contend(pin.base(), array.stride, nthreads, iterations);
    } catch (...) {
        array.memory.kernels.fetch_sub(1);
        throw;
    }
    array.memory.kernels.fetch_sub(1);
    return ns;
}

int set_nb_bool(py::handle cls, inquiry fn) {
    auto* heap = reinterpret_cast<PyHeapTypeObject*>(cls.ptr());
    heap->ht_type.tp_as_number = &heap->as_number;
    heap->as_number.nb_bool = fn;
    return 0;
}

}  // namespace

void register_atomic(py::module_& m) {
    m.attr("CACHE_PAD") = py::int_(core::kCachePad);
    m.def("cache_line_size", &core::cache_line_size,
          "The L1 data cache line size the OS reports, or 0 when it reports none.");

    py::class_<AtomicIntState> atomic_int(m, "AtomicInt", R"doc(
A lock-free signed 64-bit integer (Rust's AtomicI64).

The sharp edge: orderings weaker than SEQ_CST are for experts - use them only when you can
say which happens-before edge each one provides. Every operation takes order=; an ordering
Rust rejects for that operation (a RELEASE load, an ACQUIRE store, a RELEASE failure
ordering) raises ValueError.

AtomicInt(value=0), or AtomicInt.from_buffer(buf, offset=0) for a cell inside a writable
buffer (SharedMemory, mmap, AlignedBuffer) that other processes can share.

Size and alignment: 8 bytes; from_buffer needs an 8-byte aligned address (ValueError).
Arithmetic wraps at 64 bits like Rust's and C++'s atomics; Python ints outside
[-2**63, 2**63) raise OverflowError. `a += 1` is one atomic fetch_add.

Example:
    >>> from memkit import AtomicInt
    >>> a = AtomicInt(5)
    >>> a.fetch_add(2), a.load()
    (5, 7)
    >>> a += 1
    >>> int(a)
    8
)doc");
    fastcall::add_methods(atomic_int, int_methods);
    fastcall::add_getters(atomic_int, int_getters);
    fastcall::set_init<make_atomic_int>(atomic_int);
    fastcall::set_checked_new(atomic_int);
    fastcall::add_static_methods(atomic_int, int_statics);

    py::class_<AtomicBoolState> atomic_bool(m, "AtomicBool", R"doc(
A lock-free boolean (Rust's AtomicBool): load, store, swap, compare_exchange[_weak],
fetch_and, fetch_or, fetch_xor, each with order= validated as Rust does. bool(flag) loads
with SEQ_CST.

Example:
    >>> from memkit import AtomicBool
    >>> flag = AtomicBool()
    >>> flag.compare_exchange(False, True)
    (True, False)
    >>> bool(flag)
    True
)doc");
    fastcall::add_methods(atomic_bool, bool_methods);
    fastcall::set_init<make_atomic_bool>(atomic_bool);
    fastcall::set_checked_new(atomic_bool);
    set_nb_bool(atomic_bool, &bool_nb_bool);

    py::class_<ArrayState> array(m, "AtomicIntArray", R"doc(
`length` lock-free 64-bit integers; every AtomicInt operation takes the index first
(arr.fetch_add(i, 1)).

The sharp edge: neighbouring elements share a cache line, so threads hammering different
elements still slow each other down (false sharing). padded=True gives each element its
own CACHE_PAD bytes (elements exactly CACHE_PAD apart).

AtomicIntArray(length, *, padded=False) - zeroed, CACHE_PAD-aligned memory of its own - or
AtomicIntArray.from_buffer(buf, length, offset=0, padded=False) over a writable buffer.
An index outside [0, length) raises IndexError.

Example:
    >>> from memkit import AtomicIntArray, CACHE_PAD
    >>> arr = AtomicIntArray(4, padded=True)
    >>> arr.fetch_add(2, 5), arr.tolist()
    (0, [0, 0, 5, 0])
    >>> arr.address_of(1) - arr.address_of(0) == CACHE_PAD
    True
)doc");
    fastcall::add_methods(array, array_methods);
    fastcall::add_getters(array, array_getters);
    fastcall::set_init<make_array>(array);
    fastcall::set_checked_new(array);
    fastcall::set_length<arr_len>(array);
    fastcall::add_static_methods(array, array_statics);

    py::class_<ShardedState> sharded(m, "ShardedCounter", R"doc(
A counter for many writers: add() touches the calling thread's own cache-padded shard, so
writers on different cores never contend; value() sums the shards.

ShardedCounter(value=0)

Example:
    >>> from memkit import ShardedCounter
    >>> c = ShardedCounter()
    >>> c.add(); c.add(4)
    >>> int(c)
    5
)doc");
    fastcall::add_methods(sharded, sharded_methods);
    fastcall::add_getters(sharded, sharded_getters);
    fastcall::set_init<make_sharded>(sharded);
    fastcall::set_checked_new(sharded);

    m.def("_contend", &contend, py::arg("array"), py::arg("nthreads"), py::arg("iterations"),
          "Private: run `nthreads` OS threads (GIL released), thread t doing `iterations` relaxed\n"
          "fetch_add(1) on element t of `array`; return the wall-clock nanoseconds.");
}

}  // namespace memkit::bindings
