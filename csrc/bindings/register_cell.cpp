// memkit._core.cell: Cell, RefCell and its guards Ref and RefMut, and the borrow errors.
//
// These are plain C-API heap types (PyType_FromSpec), not pybind11 classes: a borrow
// creates a guard object, and pybind11's instance machinery would cost several times the
// borrow itself. They take part in garbage collection because the value they hold may
// refer back to them. Guards come from a free list.
#include "pybind11.hpp"

#include <atomic>
#include <mutex>
#include <string>

#include "../core/borrow.hpp"
#include "freelist.hpp"
#include "handle_buffer.hpp"  // OwnerMutex

namespace memkit::bindings {

namespace {

#if defined(Py_GIL_DISABLED)
using BorrowFlag = core::BasicBorrowFlag<true>;
#else
// With the GIL every borrow and release runs start to end under it (none releases it), so
// the flag needs no atomic instructions: racing threads are serialised by the GIL itself.
using BorrowFlag = core::BasicBorrowFlag<false>;
#endif

PyObject* borrow_state_error = nullptr;  // memkit.cell.BorrowStateError(RuntimeError)
PyObject* borrow_error = nullptr;        // BorrowError: borrow() while mutably borrowed
PyObject* borrow_mut_error = nullptr;    // BorrowMutError: borrow_mut() while borrowed

std::atomic<bool> debug_borrows{false};

PyTypeObject* cell_type = nullptr;
PyTypeObject* refcell_type = nullptr;
PyTypeObject* ref_type = nullptr;
PyTypeObject* refmut_type = nullptr;

// "file:line" of the Python code calling into memkit now, or nullptr (no Python frame).
PyObject* caller_location() noexcept {
    PyFrameObject* frame = PyEval_GetFrame();  // borrowed
    if (frame == nullptr) return nullptr;
    PyCodeObject* code = PyFrame_GetCode(frame);  // new reference
    // The field, not getattr(code, "co_filename"): that made a fresh name string on every
    // borrow, which CPython's attribute caches could keep (a leak check saw them pile up).
    PyObject* where = PyUnicode_FromFormat("%U:%d", code->co_filename, PyFrame_GetLineNumber(frame));
    Py_DECREF(code);
    if (where == nullptr) PyErr_Clear();
    return where;
}

// ---- Cell -----------------------------------------------------------------------------------

struct CellObject {
    PyObject_HEAD
    PyObject* value;  // never null
    OwnerMutex mutex;  // free-threaded builds: orders get/set; nothing with the GIL
};

CellObject* as_cell(PyObject* o) noexcept { return reinterpret_cast<CellObject*>(o); }

PyObject* cell_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
    static const char* kwlist[] = {"value", nullptr};
    PyObject* value = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:Cell", const_cast<char**>(kwlist), &value)) return nullptr;
    auto* self = PyObject_GC_New(CellObject, type);
    if (self == nullptr) return nullptr;
    new (&self->mutex) OwnerMutex();
    self->value = Py_NewRef(value);
    PyObject_GC_Track(self);
    return reinterpret_cast<PyObject*>(self);
}

int cell_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_cell(self)->value);
    return 0;
}

int cell_clear(PyObject* self) noexcept {
    // Replace rather than null the value: every method may assume it is set.
    PyObject* old = as_cell(self)->value;
    if (old == Py_None) return 0;
    as_cell(self)->value = Py_NewRef(Py_None);
    Py_DECREF(old);
    return 0;
}

void cell_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    // Cells nested a million deep (Cell(Cell(...))) must not overflow the C stack: the
    // trashcan defers the inner deallocations, as for lists and dicts.
    Py_TRASHCAN_BEGIN(self, cell_dealloc)
    Py_CLEAR(as_cell(self)->value);
    as_cell(self)->mutex.~OwnerMutex();
    type->tp_free(self);
    Py_DECREF(type);
    Py_TRASHCAN_END
}

// Swaps `value` into the cell and returns the old value (a new reference).
PyObject* cell_exchange(CellObject* cell, PyObject* value) noexcept {
    Py_INCREF(value);
    std::lock_guard<OwnerMutex> lock(cell->mutex);
    PyObject* old = cell->value;
    cell->value = value;
    return old;
}

PyObject* cell_get(PyObject* self, PyObject* /*unused*/) noexcept {
    CellObject* cell = as_cell(self);
    std::lock_guard<OwnerMutex> lock(cell->mutex);
    return Py_NewRef(cell->value);
}

PyObject* cell_set(PyObject* self, PyObject* value) noexcept {
    Py_DECREF(cell_exchange(as_cell(self), value));  // the old value may run __del__: after the swap
    Py_RETURN_NONE;
}

PyObject* cell_replace(PyObject* self, PyObject* value) noexcept { return cell_exchange(as_cell(self), value); }

PyObject* cell_take(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "take() takes at most 1 argument (%zd given)", nargs);
        return nullptr;
    }
    return cell_exchange(as_cell(self), nargs == 1 ? args[0] : Py_None);
}

PyObject* cell_swap(PyObject* self, PyObject* other) noexcept {
    if (!PyObject_TypeCheck(other, cell_type)) {
        PyErr_Format(PyExc_TypeError, "swap() needs another Cell, got %s", Py_TYPE(other)->tp_name);
        return nullptr;
    }
    if (other == self) Py_RETURN_NONE;
    CellObject* a = as_cell(self);
    CellObject* b = as_cell(other);
    // Lock in address order, so two threads swapping a<->b and b<->a cannot deadlock.
    CellObject* first = a < b ? a : b;
    CellObject* second = a < b ? b : a;
    std::lock_guard<OwnerMutex> l1(first->mutex);
    std::lock_guard<OwnerMutex> l2(second->mutex);
    PyObject* tmp = a->value;
    a->value = b->value;
    b->value = tmp;
    Py_RETURN_NONE;
}

PyObject* cell_repr(PyObject* self) noexcept {
    PyObject* value = cell_get(self, nullptr);
    PyObject* out = PyUnicode_FromFormat("Cell(%R)", value);
    Py_DECREF(value);
    return out;
}

PyMethodDef cell_methods[] = {
    {"get", reinterpret_cast<PyCFunction>(&cell_get), METH_NOARGS, "get($self, /)\n--\n\nThe value."},
    {"set", reinterpret_cast<PyCFunction>(&cell_set), METH_O, "set($self, value, /)\n--\n\nReplace the value."},
    {"replace", reinterpret_cast<PyCFunction>(&cell_replace), METH_O,
     "replace($self, value, /)\n--\n\nReplace the value; return the old one."},
    {"take", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&cell_take)), METH_FASTCALL,
     "take($self, default=None, /)\n--\n\nReplace the value with `default`; return the old one."},
    {"swap", reinterpret_cast<PyCFunction>(&cell_swap), METH_O,
     "swap($self, other, /)\n--\n\nExchange values with another Cell."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "Cell[T] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot cell_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&cell_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&cell_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&cell_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&cell_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&cell_repr)},
    {Py_tp_methods, cell_methods},
    {Py_tp_doc, const_cast<char*>(
                    "Cell(value=None)\n--\n\n"
                    "A mutable slot (Rust's Cell): get(), set(v), replace(v), take(default), swap(other).\n"
                    "No borrows and no guards: every call swaps or reads the whole value.\n\n"
                    "Example:\n"
                    "    >>> from memkit import Cell\n"
                    "    >>> c = Cell(1)\n"
                    "    >>> c.replace(2), c.get()\n"
                    "    (1, 2)\n")},
    {0, nullptr},
};

PyType_Spec cell_spec = {"memkit.cell.Cell", static_cast<int>(sizeof(CellObject)), 0,
                         Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, cell_slots};

// ---- RefCell ----------------------------------------------------------------------------------

struct RefCellObject {
    PyObject_HEAD
    PyObject* value;       // never null; replaced only under an exclusive borrow
    PyObject* location;    // debug_borrows: where the outstanding borrow was taken, or nullptr
    BorrowFlag flag;
    OwnerMutex location_mutex;
};

RefCellObject* as_refcell(PyObject* o) noexcept { return reinterpret_cast<RefCellObject*>(o); }

PyObject* refcell_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
    static const char* kwlist[] = {"value", nullptr};
    PyObject* value = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:RefCell", const_cast<char**>(kwlist), &value)) return nullptr;
    auto* self = PyObject_GC_New(RefCellObject, type);
    if (self == nullptr) return nullptr;
    self->value = Py_NewRef(value);
    self->location = nullptr;
    new (&self->flag) BorrowFlag();
    new (&self->location_mutex) OwnerMutex();
    PyObject_GC_Track(self);
    return reinterpret_cast<PyObject*>(self);
}

int refcell_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_refcell(self)->value);
    return 0;
}

int refcell_clear(PyObject* self) noexcept {
    RefCellObject* cell = as_refcell(self);
    // Only reached when the cell is unreachable garbage: no guard can be using the value
    // (a live guard would keep the cell reachable... unless the guard is garbage too, and a
    // guard never reads the value after tp_clear ran on the cycle).
    PyObject* old = cell->value;
    if (old != Py_None) {
        cell->value = Py_NewRef(Py_None);
        Py_DECREF(old);
    }
    return 0;
}

void refcell_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, refcell_dealloc)  // deep nesting: see cell_dealloc
    RefCellObject* cell = as_refcell(self);
    Py_CLEAR(cell->value);
    Py_CLEAR(cell->location);
    cell->flag.~BorrowFlag();
    cell->location_mutex.~OwnerMutex();
    type->tp_free(self);
    Py_DECREF(type);
    Py_TRASHCAN_END
}

// Records where a borrow from 0 outstanding was taken (debug_borrows only).
void note_first_borrow(RefCellObject* cell) noexcept {
    if (!debug_borrows.load(std::memory_order_relaxed)) return;
    PyObject* where = caller_location();
    std::lock_guard<OwnerMutex> lock(cell->location_mutex);
    if (cell->flag.count() <= 1) {
        Py_XSETREF(cell->location, where);
    } else {
        Py_XDECREF(where);
    }
}

void forget_borrow_location(RefCellObject* cell) noexcept {
    if (cell->location == nullptr) return;
    std::lock_guard<OwnerMutex> lock(cell->location_mutex);
    if (cell->flag.state() == BorrowFlag::State::unborrowed) Py_CLEAR(cell->location);
}

// Raises `type` with Rust's message, plus where the conflicting borrow was taken when
// debug_borrows is on. Returns nullptr.
PyObject* raise_conflict(RefCellObject* cell, PyObject* type, const char* message) noexcept {
    PyObject* where = nullptr;
    {
        std::lock_guard<OwnerMutex> lock(cell->location_mutex);
        where = Py_XNewRef(cell->location);
    }
    const char* kind = cell->flag.state() == BorrowFlag::State::exclusive ? "mutable" : "shared";
    if (where != nullptr) {
        PyErr_Format(type, "%s (the %s borrow was taken at %U)", message, kind, where);
        Py_DECREF(where);
    } else if (debug_borrows.load(std::memory_order_relaxed)) {
        PyErr_Format(type, "%s (the %s borrow was taken before debug_borrows was on)", message, kind);
    } else {
        PyErr_Format(type, "%s (memkit.cell.debug_borrows(True) or MEMKIT_DEBUG_BORROWS=1 shows where)", message);
    }
    return nullptr;
}

constexpr const char* kAlreadyMutablyBorrowed = "RefCell already mutably borrowed";
constexpr const char* kAlreadyBorrowed = "RefCell already borrowed";

// ---- Ref / RefMut guards ----------------------------------------------------------------------

struct GuardObject {
    PyObject_HEAD
    PyObject* cell;  // the RefCell (strong) while the borrow is held; nullptr once released
    bool exclusive;
};

GuardObject* as_guard(PyObject* o) noexcept { return reinterpret_cast<GuardObject*>(o); }

PyObject* new_guard(PyObject* cell, bool exclusive) noexcept {
    PyTypeObject* type = exclusive ? refmut_type : ref_type;
    GuardObject* g = exclusive ? FreeList<GuardObject, 1>::pop() : FreeList<GuardObject, 0>::pop();
    if (g != nullptr) {
        PyObject_Init(reinterpret_cast<PyObject*>(g), type);  // takes a reference to the type
    } else {
        g = PyObject_GC_New(GuardObject, type);
        if (g == nullptr) return nullptr;
    }
    g->cell = Py_NewRef(cell);
    g->exclusive = exclusive;
    PyObject_GC_Track(g);
    return reinterpret_cast<PyObject*>(g);
}

// Ends the guard's borrow once; later calls do nothing.
void guard_release(GuardObject* g) noexcept {
    PyObject* cell = g->cell;
    if (cell == nullptr) return;
    g->cell = nullptr;
    RefCellObject* rc = as_refcell(cell);
    if (g->exclusive) {
        rc->flag.end_exclusive();
    } else {
        rc->flag.end_shared();
    }
    forget_borrow_location(rc);
    Py_DECREF(cell);
}

int guard_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_guard(self)->cell);
    return 0;
}

int guard_clear(PyObject* self) noexcept {
    guard_release(as_guard(self));
    return 0;
}

void guard_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    GuardObject* g = as_guard(self);
    PyObject_GC_UnTrack(self);
    guard_release(g);  // collection ends the borrow, like Rust's drop
    const bool recycled = g->exclusive ? FreeList<GuardObject, 1>::push(g) : FreeList<GuardObject, 0>::push(g);
    if (!recycled) type->tp_free(self);
    Py_DECREF(type);
}

PyObject* guard_released_error(GuardObject* g) noexcept {
    PyErr_SetString(PyExc_ValueError, g->exclusive ? "RefMut has been released" : "Ref has been released");
    return nullptr;
}

PyObject* guard_get_value(PyObject* self, void*) noexcept {
    GuardObject* g = as_guard(self);
    if (g->cell == nullptr) return guard_released_error(g);
    return Py_NewRef(as_refcell(g->cell)->value);
}

int refmut_set_value(PyObject* self, PyObject* value, void*) noexcept {
    GuardObject* g = as_guard(self);
    if (value == nullptr) {
        PyErr_SetString(PyExc_AttributeError, "RefMut.value cannot be deleted");
        return -1;
    }
    if (g->cell == nullptr) {
        guard_released_error(g);
        return -1;
    }
    RefCellObject* cell = as_refcell(g->cell);
    PyObject* old = cell->value;  // exclusive borrow: nobody else reads or writes it
    cell->value = Py_NewRef(value);
    Py_DECREF(old);
    return 0;
}

int ref_set_value(PyObject* /*self*/, PyObject* /*value*/, void*) noexcept {
    PyErr_SetString(PyExc_AttributeError, "Ref.value is read-only: borrow_mut() gives a writable RefMut");
    return -1;
}

// `g.value` is the whole point of a guard, read and written once or twice per borrow: a
// getattro/setattro that recognises the interned name skips the type lookup and the
// descriptor protocol; every other attribute takes the generic path.
PyObject* value_name = nullptr;  // interned "value"

PyObject* guard_getattro(PyObject* self, PyObject* name) noexcept {
    if (name == value_name) return guard_get_value(self, nullptr);
    return PyObject_GenericGetAttr(self, name);
}

int refmut_setattro(PyObject* self, PyObject* name, PyObject* value) noexcept {
    if (name == value_name) return refmut_set_value(self, value, nullptr);
    return PyObject_GenericSetAttr(self, name, value);
}

PyObject* guard_get_released(PyObject* self, void*) noexcept {
    return PyBool_FromLong(as_guard(self)->cell == nullptr ? 1 : 0);
}

PyObject* guard_release_method(PyObject* self, PyObject* /*unused*/) noexcept {
    guard_release(as_guard(self));
    Py_RETURN_NONE;
}

PyObject* guard_enter(PyObject* self, PyObject* /*unused*/) noexcept {
    GuardObject* g = as_guard(self);
    if (g->cell == nullptr) return guard_released_error(g);
    return Py_NewRef(self);
}

PyObject* guard_exit(PyObject* self, PyObject* const* /*args*/, Py_ssize_t /*nargs*/) noexcept {
    guard_release(as_guard(self));
    Py_RETURN_FALSE;
}

PyObject* guard_repr(PyObject* self) noexcept {
    GuardObject* g = as_guard(self);
    const char* name = g->exclusive ? "RefMut" : "Ref";
    if (g->cell == nullptr) return PyUnicode_FromFormat("<%s released>", name);
    return PyUnicode_FromFormat("%s(%R)", name, as_refcell(g->cell)->value);
}

PyMethodDef guard_methods[] = {
    {"release", reinterpret_cast<PyCFunction>(&guard_release_method), METH_NOARGS,
     "release($self, /)\n--\n\nEnd the borrow now (a second release does nothing). Every later use\n"
     "of the guard raises ValueError."},
    {"__enter__", reinterpret_cast<PyCFunction>(&guard_enter), METH_NOARGS,
     "__enter__($self, /)\n--\n\nReturn the guard itself."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&guard_exit)), METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nEnd the borrow."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "Ref[T] / RefMut[T] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef ref_getters[] = {
    {"value", &guard_get_value, &ref_set_value, "The borrowed value (read-only).", nullptr},
    {"released", &guard_get_released, nullptr, "True once the borrow ended.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyGetSetDef refmut_getters[] = {
    {"value", &guard_get_value, &refmut_set_value, "The borrowed value; assigning replaces it in the RefCell.",
     nullptr},
    {"released", &guard_get_released, nullptr, "True once the borrow ended.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot ref_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&guard_dealloc)},
    {Py_tp_getattro, reinterpret_cast<void*>(&guard_getattro)},
    {Py_tp_traverse, reinterpret_cast<void*>(&guard_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&guard_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&guard_repr)},
    {Py_tp_methods, guard_methods},
    {Py_tp_getset, ref_getters},
    {Py_tp_doc, const_cast<char*>("A shared borrow of a RefCell (RefCell.borrow()): read `.value` while it lives.\n"
                                  "Ends on `with` exit, release() or collection.")},
    {0, nullptr},
};

PyType_Slot refmut_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&guard_dealloc)},
    {Py_tp_getattro, reinterpret_cast<void*>(&guard_getattro)},
    {Py_tp_setattro, reinterpret_cast<void*>(&refmut_setattro)},
    {Py_tp_traverse, reinterpret_cast<void*>(&guard_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&guard_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&guard_repr)},
    {Py_tp_methods, guard_methods},
    {Py_tp_getset, refmut_getters},
    {Py_tp_doc, const_cast<char*>("The exclusive borrow of a RefCell (RefCell.borrow_mut()): read and assign\n"
                                  "`.value` while it lives. Ends on `with` exit, release() or collection.")},
    {0, nullptr},
};

PyType_Spec ref_spec = {"memkit.cell.Ref", static_cast<int>(sizeof(GuardObject)), 0,
                        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION, ref_slots};
PyType_Spec refmut_spec = {"memkit.cell.RefMut", static_cast<int>(sizeof(GuardObject)), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                           refmut_slots};

// ---- RefCell methods ----------------------------------------------------------------------------

PyObject* refcell_borrow_impl(PyObject* self, bool raise) noexcept {
    RefCellObject* cell = as_refcell(self);
    if (!cell->flag.try_shared()) {
        if (!raise) Py_RETURN_NONE;
        return raise_conflict(cell, borrow_error, kAlreadyMutablyBorrowed);
    }
    note_first_borrow(cell);
    PyObject* guard = new_guard(self, /*exclusive=*/false);
    if (guard == nullptr) {
        cell->flag.end_shared();
        forget_borrow_location(cell);
    }
    return guard;
}

PyObject* refcell_borrow_mut_impl(PyObject* self, bool raise) noexcept {
    RefCellObject* cell = as_refcell(self);
    if (!cell->flag.try_exclusive()) {
        if (!raise) Py_RETURN_NONE;
        return raise_conflict(cell, borrow_mut_error, kAlreadyBorrowed);
    }
    note_first_borrow(cell);
    PyObject* guard = new_guard(self, /*exclusive=*/true);
    if (guard == nullptr) {
        cell->flag.end_exclusive();
        forget_borrow_location(cell);
    }
    return guard;
}

PyObject* refcell_borrow(PyObject* self, PyObject*) noexcept { return refcell_borrow_impl(self, true); }
PyObject* refcell_try_borrow(PyObject* self, PyObject*) noexcept { return refcell_borrow_impl(self, false); }
PyObject* refcell_borrow_mut(PyObject* self, PyObject*) noexcept { return refcell_borrow_mut_impl(self, true); }
PyObject* refcell_try_borrow_mut(PyObject* self, PyObject*) noexcept { return refcell_borrow_mut_impl(self, false); }

// Swaps `value` in under a momentary exclusive borrow; returns the old value or nullptr.
PyObject* refcell_exchange(RefCellObject* cell, PyObject* value) noexcept {
    if (!cell->flag.try_exclusive()) return raise_conflict(cell, borrow_mut_error, kAlreadyBorrowed);
    PyObject* old = cell->value;
    cell->value = Py_NewRef(value);
    cell->flag.end_exclusive();
    return old;  // the caller's to drop: any __del__ runs with the cell unborrowed
}

PyObject* refcell_replace(PyObject* self, PyObject* value) noexcept {
    return refcell_exchange(as_refcell(self), value);
}

PyObject* refcell_take(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "take() takes at most 1 argument (%zd given)", nargs);
        return nullptr;
    }
    return refcell_exchange(as_refcell(self), nargs == 1 ? args[0] : Py_None);
}

PyObject* refcell_swap(PyObject* self, PyObject* other) noexcept {
    if (!PyObject_TypeCheck(other, refcell_type)) {
        PyErr_Format(PyExc_TypeError, "swap() needs another RefCell, got %s", Py_TYPE(other)->tp_name);
        return nullptr;
    }
    RefCellObject* a = as_refcell(self);
    RefCellObject* b = as_refcell(other);
    if (a == b) {  // Rust allows swapping a cell with itself when it is not borrowed
        if (a->flag.state() != BorrowFlag::State::unborrowed) return raise_conflict(a, borrow_mut_error, kAlreadyBorrowed);
        Py_RETURN_NONE;
    }
    if (!a->flag.try_exclusive()) return raise_conflict(a, borrow_mut_error, kAlreadyBorrowed);
    if (!b->flag.try_exclusive()) {
        a->flag.end_exclusive();
        return raise_conflict(b, borrow_mut_error, kAlreadyBorrowed);
    }
    PyObject* tmp = a->value;
    a->value = b->value;
    b->value = tmp;
    b->flag.end_exclusive();
    a->flag.end_exclusive();
    Py_RETURN_NONE;
}

PyObject* refcell_get_borrow_state(PyObject* self, void*) noexcept {
    const BorrowFlag& flag = as_refcell(self)->flag;
    const BorrowFlag::State state = flag.state();
    const char* name = state == BorrowFlag::State::unborrowed ? "unborrowed"
                       : state == BorrowFlag::State::shared   ? "shared"
                                                              : "exclusive";
    return Py_BuildValue("(sL)", name, static_cast<long long>(flag.count()));
}

PyObject* refcell_repr(PyObject* self) noexcept {
    RefCellObject* cell = as_refcell(self);
    if (!cell->flag.try_shared()) return PyUnicode_FromString("RefCell(<mutably borrowed>)");
    PyObject* out = PyUnicode_FromFormat("RefCell(%R)", cell->value);
    cell->flag.end_shared();
    return out;
}

PyMethodDef refcell_methods[] = {
    {"borrow", reinterpret_cast<PyCFunction>(&refcell_borrow), METH_NOARGS,
     "borrow($self, /)\n--\n\nA shared borrow (a Ref guard); any number may be live at once.\n"
     "BorrowError while the cell is mutably borrowed."},
    {"borrow_mut", reinterpret_cast<PyCFunction>(&refcell_borrow_mut), METH_NOARGS,
     "borrow_mut($self, /)\n--\n\nThe exclusive borrow (a RefMut guard). BorrowMutError while the cell\n"
     "is borrowed in any way."},
    {"try_borrow", reinterpret_cast<PyCFunction>(&refcell_try_borrow), METH_NOARGS,
     "try_borrow($self, /)\n--\n\nborrow(), or None instead of BorrowError."},
    {"try_borrow_mut", reinterpret_cast<PyCFunction>(&refcell_try_borrow_mut), METH_NOARGS,
     "try_borrow_mut($self, /)\n--\n\nborrow_mut(), or None instead of BorrowMutError."},
    {"replace", reinterpret_cast<PyCFunction>(&refcell_replace), METH_O,
     "replace($self, value, /)\n--\n\nReplace the value; return the old one. BorrowMutError while borrowed."},
    {"take", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&refcell_take)), METH_FASTCALL,
     "take($self, default=None, /)\n--\n\nReplace the value with `default`; return the old one.\n"
     "BorrowMutError while borrowed."},
    {"swap", reinterpret_cast<PyCFunction>(&refcell_swap), METH_O,
     "swap($self, other, /)\n--\n\nExchange values with another RefCell. BorrowMutError while either is borrowed."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "RefCell[T] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef refcell_getters[] = {
    {"borrow_state", &refcell_get_borrow_state, nullptr,
     "(\"unborrowed\" | \"shared\" | \"exclusive\", count): the borrows outstanding now.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot refcell_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&refcell_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&refcell_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&refcell_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&refcell_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&refcell_repr)},
    {Py_tp_methods, refcell_methods},
    {Py_tp_getset, refcell_getters},
    {Py_tp_doc, const_cast<char*>(
                    "RefCell(value)\n--\n\n"
                    "A value reachable only through borrows checked at run time (Rust's RefCell).\n\n"
                    "The sharp edge: a conflicting borrow fails loudly instead of waiting - borrow()\n"
                    "while a RefMut lives raises BorrowError, borrow_mut() while any guard lives raises\n"
                    "BorrowMutError. Guards end on `with` exit, release() or collection; keep them short.\n"
                    "debug_borrows(True) (or MEMKIT_DEBUG_BORROWS=1) makes the error name the file and\n"
                    "line where the conflicting borrow was taken.\n\n"
                    "Example:\n"
                    "    >>> from memkit import RefCell\n"
                    "    >>> cell = RefCell([1])\n"
                    "    >>> with cell.borrow_mut() as g:\n"
                    "    ...     g.value.append(2)\n"
                    "    >>> with cell.borrow() as a, cell.borrow() as b:\n"
                    "    ...     a.value is b.value, cell.borrow_state\n"
                    "    (True, ('shared', 2))\n")},
    {0, nullptr},
};

PyType_Spec refcell_spec = {"memkit.cell.RefCell", static_cast<int>(sizeof(RefCellObject)), 0,
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, refcell_slots};

PyObject* make_type(PyType_Spec* spec, PyTypeObject** out) {
    PyObject* type = PyType_FromSpec(spec);
    if (type == nullptr) throw py::error_already_set();
    *out = reinterpret_cast<PyTypeObject*>(type);
    return type;
}

PyObject* make_error(const char* name, const char* doc, PyObject* base) {
    PyObject* type = PyErr_NewExceptionWithDoc(name, doc, base, nullptr);
    if (type == nullptr) throw py::error_already_set();
    return type;
}

}  // namespace

void register_cell(py::module_& m) {
    value_name = PyUnicode_InternFromString("value");  // kept for the interpreter's life
    if (value_name == nullptr) throw py::error_already_set();
    borrow_state_error = make_error("memkit.cell.BorrowStateError",
                                    "A RefCell borrow conflicted with one outstanding (Rust would panic).",
                                    PyExc_RuntimeError);
    borrow_error = make_error("memkit.cell.BorrowError", "borrow() while the RefCell is mutably borrowed.",
                              borrow_state_error);
    borrow_mut_error = make_error("memkit.cell.BorrowMutError", "borrow_mut() (or replace/take/swap) while the "
                                  "RefCell is borrowed.", borrow_state_error);
    // The module keeps the references for good: the types live as long as the interpreter.
    m.attr("BorrowStateError") = py::reinterpret_borrow<py::object>(borrow_state_error);
    m.attr("BorrowError") = py::reinterpret_borrow<py::object>(borrow_error);
    m.attr("BorrowMutError") = py::reinterpret_borrow<py::object>(borrow_mut_error);

    m.attr("Cell") = py::reinterpret_steal<py::object>(make_type(&cell_spec, &cell_type));
    m.attr("RefCell") = py::reinterpret_steal<py::object>(make_type(&refcell_spec, &refcell_type));
    m.attr("Ref") = py::reinterpret_steal<py::object>(make_type(&ref_spec, &ref_type));
    m.attr("RefMut") = py::reinterpret_steal<py::object>(make_type(&refmut_spec, &refmut_type));
    // Keep the type objects alive past the module attributes (they are reached through
    // the statics above by every guard created later).
    Py_INCREF(cell_type);
    Py_INCREF(refcell_type);
    Py_INCREF(ref_type);
    Py_INCREF(refmut_type);

    m.def(
        "_set_debug_borrows", [](bool on) { return debug_borrows.exchange(on); }, py::arg("enabled"),
        "Private: switch borrow-location tracking; returns the previous setting.");
}

}  // namespace memkit::bindings
