// memkit._core.sync: Mutex, RwLock, their guards, Condvar and PoisonError.
//
// Locks that own their data (Rust's Mutex<T> / RwLock<T>): the value is reachable only
// through a guard. C-API heap types with GC support (the value may refer back to its
// lock) and free-listed guards, because an uncontended `with m.lock() as g:` must cost no
// more than `with threading.Lock():`.
//
// Every blocking wait releases the GIL and runs in slices (sync.hpp); between slices it
// takes the GIL back to check for signals (Ctrl-C raises KeyboardInterrupt) and the
// deadline (TimeoutError, or False from Condvar.wait).
#include "pybind11.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "../core/sync.hpp"
#include "freelist.hpp"

namespace memkit::bindings {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kSlice{20};  // how long a wait goes without checking for Ctrl-C

PyObject* poison_error = nullptr;  // memkit.sync.PoisonError(RuntimeError), with .guard

PyTypeObject* mutex_type = nullptr;
PyTypeObject* mutex_guard_type = nullptr;
PyTypeObject* rwlock_type = nullptr;
PyTypeObject* read_guard_type = nullptr;
PyTypeObject* write_guard_type = nullptr;
PyTypeObject* condvar_type = nullptr;
PyObject* value_name = nullptr;  // interned "value"

std::uint64_t this_thread() noexcept { return static_cast<std::uint64_t>(PyThread_get_thread_ident()); }

// ---- timeouts and blocking ------------------------------------------------------------------

struct Deadline {
    bool forever = true;
    Clock::time_point at{};
    double seconds = 0.0;
};

// None = forever; a non-negative real number of seconds; ValueError for negative or NaN,
// TypeError for anything else.
bool parse_timeout(PyObject* obj, Deadline& out) noexcept {
    out = Deadline{};
    if (obj == nullptr || obj == Py_None) return true;
    if (!PyFloat_Check(obj) && !PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "timeout must be a number of seconds or None, got %s", Py_TYPE(obj)->tp_name);
        return false;
    }
    const double seconds = PyFloat_AsDouble(obj);
    if (seconds == -1.0 && PyErr_Occurred()) return false;
    if (std::isnan(seconds) || seconds < 0) {
        PyErr_Format(PyExc_ValueError, "timeout must be >= 0 (or None to wait forever), got %R", obj);
        return false;
    }
    out.seconds = seconds;
    if (std::isinf(seconds) || seconds > 1e9) return true;  // forever, in practice
    out.forever = false;
    out.at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    return true;
}

enum class Wait { done, timed_out, error };

// Calls `attempt(slice)` (which must not touch Python) with the GIL released until it
// returns true, the deadline passes, or a signal handler raises.
template <class Attempt>
Wait blocking(const Deadline& deadline, Attempt&& attempt) {
    for (;;) {
        core::Slice slice = kSlice;
        if (!deadline.forever) {
            const auto left = deadline.at - Clock::now();
            if (left <= Clock::duration::zero()) return Wait::timed_out;
            if (left < slice) slice = std::chrono::duration_cast<core::Slice>(left);
        }
        bool done = false;
        Py_BEGIN_ALLOW_THREADS
        done = attempt(slice);
        Py_END_ALLOW_THREADS
        if (done) return Wait::done;
        if (PyErr_CheckSignals() < 0) return Wait::error;
    }
}

// ---- Mutex ------------------------------------------------------------------------------------

struct MutexObject {
    PyObject_HEAD
    PyObject* value;           // never null; read and written only by the holder of `core`
    core::MutexCore core;
    std::atomic<std::uint64_t> owner;  // thread holding `core`, 0 = none
    std::atomic<bool> poisoned;
    bool poison_enabled;
};

MutexObject* as_mutex(PyObject* o) noexcept { return reinterpret_cast<MutexObject*>(o); }

// ---- guards (shared by Mutex and RwLock) ------------------------------------------------------

enum class GuardKind : int { mutex = 0, read = 1, write = 2 };

struct SyncGuard {
    PyObject_HEAD
    PyObject* lock;          // the Mutex or RwLock (strong) while held; nullptr once released
    std::uint64_t thread;    // the thread that acquired it (RwLock bookkeeping)
    GuardKind kind;
    // Condvar.wait has unlocked the mutex and will lock it again for this guard. Python code
    // can run meanwhile (a signal handler): the guard may then neither release the lock it
    // does not hold right now, nor touch the value another thread may be changing.
    bool waiting;
};

SyncGuard* as_guard(PyObject* o) noexcept { return reinterpret_cast<SyncGuard*>(o); }

struct RwLockObject {
    PyObject_HEAD
    PyObject* value;
    core::RwCore core;
    std::atomic<bool> poisoned;
};

RwLockObject* as_rwlock(PyObject* o) noexcept { return reinterpret_cast<RwLockObject*>(o); }

PyTypeObject* guard_type_for(GuardKind kind) noexcept {
    return kind == GuardKind::mutex ? mutex_guard_type : kind == GuardKind::read ? read_guard_type : write_guard_type;
}

PyObject* new_guard(PyObject* lock, GuardKind kind, std::uint64_t thread) noexcept {
    PyTypeObject* type = guard_type_for(kind);
    SyncGuard* g = nullptr;
    if (kind == GuardKind::mutex) g = FreeList<SyncGuard, 0>::pop();
    if (g != nullptr) {
        PyObject_Init(reinterpret_cast<PyObject*>(g), type);
    } else {
        g = PyObject_GC_New(SyncGuard, type);
        if (g == nullptr) return nullptr;
    }
    g->lock = Py_NewRef(lock);
    g->thread = thread;
    g->kind = kind;
    g->waiting = false;
    PyObject_GC_Track(g);
    return reinterpret_cast<PyObject*>(g);
}

// Unlocks what the guard holds, poisoning first when `poison` (an exception left the
// guard's block). Releasing twice does nothing; so does releasing a guard Condvar.wait is
// waiting with (callers that can raise check guard_waiting first).
void guard_release(SyncGuard* g, bool poison) noexcept {
    PyObject* lock = g->lock;
    if (lock == nullptr || g->waiting) return;
    g->lock = nullptr;
    if (g->kind == GuardKind::mutex) {
        MutexObject* m = as_mutex(lock);
        if (poison && m->poison_enabled) m->poisoned.store(true);
        m->owner.store(0);
        m->core.unlock();
    } else {
        RwLockObject* rw = as_rwlock(lock);
        if (g->kind == GuardKind::write) {
            if (poison) rw->poisoned.store(true);
            rw->core.unlock_write();
        } else {
            rw->core.unlock_read(g->thread);
        }
    }
    Py_DECREF(lock);
}

int guard_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_guard(self)->lock);
    return 0;
}

int guard_clear(PyObject* self) noexcept {
    guard_release(as_guard(self), false);
    return 0;
}

void guard_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    SyncGuard* g = as_guard(self);
    PyObject_GC_UnTrack(self);
    guard_release(g, false);  // collection is a normal drop: it unlocks, it does not poison
    const bool recycled = g->kind == GuardKind::mutex && FreeList<SyncGuard, 0>::push(g);
    if (!recycled) type->tp_free(self);
    Py_DECREF(type);
}

const char* guard_name(GuardKind kind) noexcept {
    return kind == GuardKind::mutex ? "MutexGuard" : kind == GuardKind::read ? "ReadGuard" : "WriteGuard";
}

PyObject*& value_slot(SyncGuard* g) noexcept {
    return g->kind == GuardKind::mutex ? as_mutex(g->lock)->value : as_rwlock(g->lock)->value;
}

PyObject* guard_released(SyncGuard* g) noexcept {
    PyErr_Format(PyExc_ValueError, "%s has been released", guard_name(g->kind));
    return nullptr;
}

// RuntimeError for a guard whose mutex Condvar.wait has let go of for now.
PyObject* guard_waiting(SyncGuard* g) noexcept {
    PyErr_Format(PyExc_RuntimeError,
                 "the %s is waiting in Condvar.wait, which has unlocked its Mutex until the wait ends",
                 guard_name(g->kind));
    return nullptr;
}

PyObject* guard_get_value(PyObject* self, void*) noexcept {
    SyncGuard* g = as_guard(self);
    if (g->lock == nullptr) return guard_released(g);
    if (g->waiting) return guard_waiting(g);
    return Py_NewRef(value_slot(g));
}

int guard_set_value(PyObject* self, PyObject* value, void*) noexcept {
    SyncGuard* g = as_guard(self);
    if (g->kind == GuardKind::read) {
        PyErr_SetString(PyExc_AttributeError, "ReadGuard.value is read-only: write() gives a writable WriteGuard");
        return -1;
    }
    if (value == nullptr) {
        PyErr_Format(PyExc_AttributeError, "%s.value cannot be deleted", guard_name(g->kind));
        return -1;
    }
    if (g->lock == nullptr) {
        guard_released(g);
        return -1;
    }
    if (g->waiting) {
        guard_waiting(g);
        return -1;
    }
    PyObject*& slot = value_slot(g);  // this guard holds the lock exclusively
    PyObject* old = slot;
    slot = Py_NewRef(value);
    Py_DECREF(old);
    return 0;
}

PyObject* guard_getattro(PyObject* self, PyObject* name) noexcept {
    if (name == value_name) return guard_get_value(self, nullptr);  // the hot attribute, directly
    return PyObject_GenericGetAttr(self, name);
}

int guard_setattro(PyObject* self, PyObject* name, PyObject* value) noexcept {
    if (name == value_name) return guard_set_value(self, value, nullptr);
    return PyObject_GenericSetAttr(self, name, value);
}

PyObject* guard_get_released(PyObject* self, void*) noexcept {
    return PyBool_FromLong(as_guard(self)->lock == nullptr ? 1 : 0);
}

PyObject* guard_release_method(PyObject* self, PyObject*) noexcept {
    SyncGuard* g = as_guard(self);
    if (g->waiting) return guard_waiting(g);
    guard_release(g, false);
    Py_RETURN_NONE;
}

PyObject* guard_enter(PyObject* self, PyObject*) noexcept {
    SyncGuard* g = as_guard(self);
    if (g->lock == nullptr) return guard_released(g);
    if (g->waiting) return guard_waiting(g);
    return Py_NewRef(self);
}

// __exit__(exc_type, exc, tb): an exception leaving the block poisons the lock (Rust's
// panic while holding the guard); GeneratorExit, a generator closed early, does not.
PyObject* guard_exit(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
    bool failed = false;
    if (nargs >= 1 && args[0] != Py_None) {
        failed = !(PyType_Check(args[0]) &&
                   PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(args[0]),
                                    reinterpret_cast<PyTypeObject*>(PyExc_GeneratorExit)));
    }
    SyncGuard* g = as_guard(self);
    if (g->waiting) return guard_waiting(g);
    guard_release(g, failed);
    Py_RETURN_FALSE;
}

PyObject* guard_repr(PyObject* self) noexcept {
    SyncGuard* g = as_guard(self);
    if (g->lock == nullptr) return PyUnicode_FromFormat("<%s released>", guard_name(g->kind));
    if (g->waiting) return PyUnicode_FromFormat("<%s waiting>", guard_name(g->kind));
    return PyUnicode_FromFormat("%s(%R)", guard_name(g->kind), value_slot(g));
}

PyMethodDef guard_methods[] = {
    {"release", reinterpret_cast<PyCFunction>(&guard_release_method), METH_NOARGS,
     "release($self, /)\n--\n\nUnlock now (never poisons; a second release does nothing). Every later use\n"
     "of the guard raises ValueError."},
    {"__enter__", reinterpret_cast<PyCFunction>(&guard_enter), METH_NOARGS,
     "__enter__($self, /)\n--\n\nReturn the guard itself."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&guard_exit)), METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nUnlock; poison the lock if an exception is leaving the block."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "Guard[T] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef guard_getters[] = {
    {"value", &guard_get_value, &guard_set_value, "The protected value (read-only on a ReadGuard).", nullptr},
    {"released", &guard_get_released, nullptr, "True once the guard unlocked.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

// Raises PoisonError carrying `guard` (which holds the lock, so the caller may repair the
// value and clear_poison()). Steals `guard`.
PyObject* raise_poisoned(PyObject* guard, const char* what) noexcept {
    PyObject* exc = PyObject_CallFunction(poison_error, "s",
                                          what[0] == 'M' ? "the Mutex is poisoned: a thread raised while holding it"
                                                         : "the RwLock is poisoned: a writer raised while holding it");
    if (exc == nullptr) {
        Py_DECREF(guard);
        return nullptr;
    }
    if (PyObject_SetAttrString(exc, "guard", guard) < 0) {
        Py_DECREF(exc);
        Py_DECREF(guard);
        return nullptr;
    }
    Py_DECREF(guard);
    PyErr_SetObject(poison_error, exc);
    Py_DECREF(exc);
    return nullptr;
}

// A guard for a lock just acquired, or PoisonError carrying it.
PyObject* hand_out(PyObject* lock, GuardKind kind, std::uint64_t thread, bool poisoned) noexcept {
    PyObject* guard = new_guard(lock, kind, thread);
    if (guard == nullptr) {
        SyncGuard tmp{};
        tmp.lock = Py_NewRef(lock);
        tmp.kind = kind;
        tmp.thread = thread;
        guard_release(&tmp, false);
        return nullptr;
    }
    if (poisoned) return raise_poisoned(guard, kind == GuardKind::mutex ? "Mutex" : "RwLock");
    return guard;
}

PyObject* timeout_error(const char* what, const Deadline& d) noexcept {
    char seconds[32];
    std::snprintf(seconds, sizeof(seconds), "%g", d.seconds);  // PyErr_Format has no %g
    PyErr_Format(PyExc_TimeoutError, "could not acquire the %s within %s s", what, seconds);
    return nullptr;
}

bool parse_one_timeout(const char* fname, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                       Deadline& deadline) noexcept {
    PyObject* timeout = nullptr;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", fname, nargs);
        return false;
    }
    if (nargs == 1) timeout = args[0];
    const Py_ssize_t nkw = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, k);
        if (PyUnicode_CompareWithASCIIString(key, "timeout") != 0 || timeout != nullptr) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected or repeated keyword argument %R", fname, key);
            return false;
        }
        timeout = args[nargs + k];
    }
    return parse_timeout(timeout, deadline);
}

// ---- Mutex methods ------------------------------------------------------------------------------

PyObject* mutex_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
    static const char* kwlist[] = {"value", "poison", nullptr};
    PyObject* value = nullptr;
    int poison = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$p:Mutex", const_cast<char**>(kwlist), &value, &poison)) {
        return nullptr;
    }
    auto* self = PyObject_GC_New(MutexObject, type);
    if (self == nullptr) return nullptr;
    self->value = Py_NewRef(value);
    new (&self->core) core::MutexCore();
    new (&self->owner) std::atomic<std::uint64_t>(0);
    new (&self->poisoned) std::atomic<bool>(false);
    self->poison_enabled = poison != 0;
    PyObject_GC_Track(self);
    return reinterpret_cast<PyObject*>(self);
}

int mutex_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_mutex(self)->value);
    return 0;
}

int mutex_clear(PyObject* self) noexcept {
    MutexObject* m = as_mutex(self);
    if (m->value != Py_None) Py_SETREF(m->value, Py_NewRef(Py_None));
    return 0;
}

void mutex_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    // Mutexes nested a million deep (Mutex(Mutex(...))) must not overflow the C stack: the
    // trashcan defers the inner deallocations, as for lists and dicts.
    Py_TRASHCAN_BEGIN(self, mutex_dealloc)
    MutexObject* m = as_mutex(self);
    Py_CLEAR(m->value);
    m->core.~MutexCore();
    type->tp_free(self);
    Py_DECREF(type);
    Py_TRASHCAN_END
}

// lock(timeout=None) -> MutexGuard
PyObject* mutex_lock(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    MutexObject* m = as_mutex(self);
    Deadline deadline;
    if ((nargs != 0 || kwnames != nullptr) && !parse_one_timeout("lock", args, nargs, kwnames, deadline)) {
        return nullptr;
    }
    const std::uint64_t me = this_thread();
    if (m->owner.load() == me) {
        PyErr_SetString(PyExc_RuntimeError, "this thread already holds the Mutex: locking it again would deadlock");
        return nullptr;
    }
    if (!m->core.try_lock()) {
        const Wait w = blocking(deadline, [m](core::Slice slice) { return m->core.lock_for(slice); });
        if (w == Wait::timed_out) return timeout_error("Mutex", deadline);
        if (w == Wait::error) return nullptr;
    }
    m->owner.store(me);
    return hand_out(self, GuardKind::mutex, me, m->poisoned.load());
}

PyObject* mutex_try_lock(PyObject* self, PyObject*) noexcept {
    MutexObject* m = as_mutex(self);
    const std::uint64_t me = this_thread();
    if (m->owner.load() == me || !m->core.try_lock()) Py_RETURN_NONE;
    m->owner.store(me);
    return hand_out(self, GuardKind::mutex, me, m->poisoned.load());
}

PyObject* mutex_locked(PyObject* self, PyObject*) noexcept { return PyBool_FromLong(as_mutex(self)->core.locked()); }

PyObject* mutex_is_poisoned(PyObject* self, PyObject*) noexcept {
    return PyBool_FromLong(as_mutex(self)->poisoned.load() ? 1 : 0);
}

PyObject* mutex_clear_poison(PyObject* self, PyObject*) noexcept {
    as_mutex(self)->poisoned.store(false);
    Py_RETURN_NONE;
}

PyObject* mutex_repr(PyObject* self) noexcept {
    MutexObject* m = as_mutex(self);
    const std::uint64_t me = this_thread();
    if (m->owner.load() == me || !m->core.try_lock()) return PyUnicode_FromString("Mutex(<locked>)");
    PyObject* out = PyUnicode_FromFormat("Mutex(%R%s)", m->value, m->poisoned.load() ? ", poisoned" : "");
    m->core.unlock();
    return out;
}

PyMethodDef mutex_methods[] = {
    {"lock", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&mutex_lock)), METH_FASTCALL | METH_KEYWORDS,
     "lock($self, /, timeout=None)\n--\n\n"
     "Block until the lock is free (GIL released, Ctrl-C works) and return a MutexGuard.\n"
     "TimeoutError after `timeout` seconds; RuntimeError if this thread holds it already;\n"
     "PoisonError (with .guard holding the lock) if a holder raised."},
    {"try_lock", reinterpret_cast<PyCFunction>(&mutex_try_lock), METH_NOARGS,
     "try_lock($self, /)\n--\n\nA MutexGuard if the lock is free now, else None (also when this thread holds it)."},
    {"locked", reinterpret_cast<PyCFunction>(&mutex_locked), METH_NOARGS,
     "locked($self, /)\n--\n\nWhether some thread holds the lock now."},
    {"is_poisoned", reinterpret_cast<PyCFunction>(&mutex_is_poisoned), METH_NOARGS,
     "is_poisoned($self, /)\n--\n\nWhether a holder raised (lock() then raises PoisonError)."},
    {"clear_poison", reinterpret_cast<PyCFunction>(&mutex_clear_poison), METH_NOARGS,
     "clear_poison($self, /)\n--\n\nMark the value as repaired: lock() succeeds again."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "Mutex[T] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

// ---- RwLock methods -----------------------------------------------------------------------------

PyObject* rwlock_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
    static const char* kwlist[] = {"value", nullptr};
    PyObject* value = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:RwLock", const_cast<char**>(kwlist), &value)) return nullptr;
    auto* self = PyObject_GC_New(RwLockObject, type);
    if (self == nullptr) return nullptr;
    self->value = Py_NewRef(value);
    new (&self->core) core::RwCore();
    new (&self->poisoned) std::atomic<bool>(false);
    PyObject_GC_Track(self);
    return reinterpret_cast<PyObject*>(self);
}

int rwlock_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_rwlock(self)->value);
    return 0;
}

int rwlock_clear(PyObject* self) noexcept {
    RwLockObject* rw = as_rwlock(self);
    if (rw->value != Py_None) Py_SETREF(rw->value, Py_NewRef(Py_None));
    return 0;
}

void rwlock_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, rwlock_dealloc)  // deep nesting: see mutex_dealloc
    RwLockObject* rw = as_rwlock(self);
    Py_CLEAR(rw->value);
    rw->core.~RwCore();
    type->tp_free(self);
    Py_DECREF(type);
    Py_TRASHCAN_END
}

const char* refusal_message(core::RwCore::Refusal r) noexcept {
    switch (r) {
        case core::RwCore::Refusal::read_while_writing:
            return "this thread holds the RwLock's write lock: reading it too would deadlock";
        case core::RwCore::Refusal::write_while_reading:
            return "this thread holds a read lock of the RwLock: writing would wait for itself";
        case core::RwCore::Refusal::write_while_writing:
            return "this thread holds the RwLock's write lock already";
        case core::RwCore::Refusal::read_while_writer_waits:
            return "this thread holds a read lock and a writer waits: reading again would deadlock";
        default:
            return nullptr;
    }
}

template <bool Write>
PyObject* rwlock_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    RwLockObject* rw = as_rwlock(self);
    Deadline deadline;
    if ((nargs != 0 || kwnames != nullptr) && !parse_one_timeout(Write ? "write" : "read", args, nargs, kwnames, deadline)) {
        return nullptr;
    }
    const std::uint64_t me = this_thread();
    try {
        const core::RwCore::Refusal refusal = Write ? rw->core.check_write(me) : rw->core.check_read(me);
        if (refusal != core::RwCore::Refusal::none) {
            PyErr_SetString(PyExc_RuntimeError, refusal_message(refusal));
            return nullptr;
        }
        if (Write) {
            if (!rw->core.try_write(me)) {
                rw->core.begin_write_wait();
                const Wait w = blocking(deadline, [rw, me](core::Slice s) { return rw->core.write_for(me, s); });
                rw->core.end_write_wait();
                if (w == Wait::timed_out) return timeout_error("RwLock for writing", deadline);
                if (w == Wait::error) return nullptr;
            }
        } else if (!rw->core.try_read(me)) {
            const Wait w = blocking(deadline, [rw, me](core::Slice s) { return rw->core.read_for(me, s); });
            if (w == Wait::timed_out) return timeout_error("RwLock for reading", deadline);
            if (w == Wait::error) return nullptr;
        }
    } catch (const std::exception& e) {  // std::system_error from the OS's mutex: rare
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }
    return hand_out(self, Write ? GuardKind::write : GuardKind::read, me, rw->poisoned.load());
}

template <bool Write>
PyObject* rwlock_try(PyObject* self, PyObject*) noexcept {
    RwLockObject* rw = as_rwlock(self);
    const std::uint64_t me = this_thread();
    try {
        if ((Write ? rw->core.check_write(me) : rw->core.check_read(me)) != core::RwCore::Refusal::none) Py_RETURN_NONE;
        if (!(Write ? rw->core.try_write(me) : rw->core.try_read(me))) Py_RETURN_NONE;
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }
    return hand_out(self, Write ? GuardKind::write : GuardKind::read, me, rw->poisoned.load());
}

PyObject* rwlock_is_poisoned(PyObject* self, PyObject*) noexcept {
    return PyBool_FromLong(as_rwlock(self)->poisoned.load() ? 1 : 0);
}

PyObject* rwlock_clear_poison(PyObject* self, PyObject*) noexcept {
    as_rwlock(self)->poisoned.store(false);
    Py_RETURN_NONE;
}

PyObject* rwlock_repr(PyObject* self) noexcept {
    RwLockObject* rw = as_rwlock(self);
    const std::uint64_t me = this_thread();
    try {
        if (rw->core.check_read(me) != core::RwCore::Refusal::none || !rw->core.try_read(me)) {
            return PyUnicode_FromString("RwLock(<locked>)");
        }
    } catch (const std::exception&) {
        return PyUnicode_FromString("RwLock(<locked>)");
    }
    PyObject* out = PyUnicode_FromFormat("RwLock(%R%s)", rw->value, rw->poisoned.load() ? ", poisoned" : "");
    rw->core.unlock_read(me);
    return out;
}

PyMethodDef rwlock_methods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&rwlock_acquire<false>)),
     METH_FASTCALL | METH_KEYWORDS,
     "read($self, /, timeout=None)\n--\n\nA shared ReadGuard (read-only .value); waits while a writer holds or\n"
     "waits for the lock. TimeoutError, RuntimeError on re-entry that would deadlock, PoisonError."},
    {"write", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&rwlock_acquire<true>)),
     METH_FASTCALL | METH_KEYWORDS,
     "write($self, /, timeout=None)\n--\n\nThe exclusive WriteGuard. Readers arriving while it waits wait\n"
     "behind it (writer preference). TimeoutError, RuntimeError on re-entry, PoisonError."},
    {"try_read", reinterpret_cast<PyCFunction>(&rwlock_try<false>), METH_NOARGS,
     "try_read($self, /)\n--\n\nA ReadGuard if one can be had now, else None."},
    {"try_write", reinterpret_cast<PyCFunction>(&rwlock_try<true>), METH_NOARGS,
     "try_write($self, /)\n--\n\nA WriteGuard if the lock is free now, else None."},
    {"is_poisoned", reinterpret_cast<PyCFunction>(&rwlock_is_poisoned), METH_NOARGS,
     "is_poisoned($self, /)\n--\n\nWhether a writer raised while holding the lock."},
    {"clear_poison", reinterpret_cast<PyCFunction>(&rwlock_clear_poison), METH_NOARGS,
     "clear_poison($self, /)\n--\n\nMark the value as repaired."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "RwLock[T] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

// ---- Condvar ------------------------------------------------------------------------------------

struct CondvarObject {
    PyObject_HEAD
    core::CondvarCore core;
};

CondvarObject* as_condvar(PyObject* o) noexcept { return reinterpret_cast<CondvarObject*>(o); }

PyObject* condvar_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Condvar() takes no arguments");
        return nullptr;
    }
    auto* self = reinterpret_cast<CondvarObject*>(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    new (&self->core) core::CondvarCore();
    return reinterpret_cast<PyObject*>(self);
}

void condvar_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    as_condvar(self)->core.~CondvarCore();
    type->tp_free(self);
    Py_DECREF(type);
}

// The MutexGuard `obj`, live and held by this thread; nullptr with an exception otherwise.
SyncGuard* held_guard(PyObject* obj) noexcept {
    if (!PyObject_TypeCheck(obj, mutex_guard_type)) {
        PyErr_Format(PyExc_TypeError, "Condvar waits with a MutexGuard, got %s", Py_TYPE(obj)->tp_name);
        return nullptr;
    }
    SyncGuard* g = as_guard(obj);
    if (g->lock == nullptr) {
        guard_released(g);
        return nullptr;
    }
    if (g->waiting) {
        guard_waiting(g);
        return nullptr;
    }
    if (as_mutex(g->lock)->owner.load() != this_thread()) {
        PyErr_SetString(PyExc_RuntimeError, "the MutexGuard belongs to another thread");
        return nullptr;
    }
    return g;
}

// Waits on `cv` with `g`'s mutex released; holds it again on return. Returns 1 notified,
// 0 timed out, -1 error (the mutex is held again in every case).
int condvar_wait_once(CondvarObject* cv, SyncGuard* g, const Deadline& deadline) noexcept {
    MutexObject* m = as_mutex(g->lock);
    try {
        cv->core.begin_wait();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return -1;
    }
    // From here until the mutex is ours again, signal handlers may run Python code that
    // reaches the guard: `waiting` keeps it from releasing (and freeing) the unlocked mutex.
    g->waiting = true;
    m->owner.store(0);
    m->core.unlock();
    const Wait w = blocking(deadline, [cv](core::Slice s) { return cv->core.wait_for(s); });
    if (w != Wait::done) cv->core.cancel_wait();
    // Hold the mutex again whatever happened: the guard must stay valid. A signal arriving
    // meanwhile is raised once the mutex is back.
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    if (!m->core.try_lock()) {
        Py_BEGIN_ALLOW_THREADS
        while (!m->core.lock_for(kSlice)) {
        }
        Py_END_ALLOW_THREADS
    }
    m->owner.store(this_thread());
    g->waiting = false;
    PyErr_Restore(type, value, tb);
    return w == Wait::done ? 1 : w == Wait::timed_out ? 0 : -1;
}

PyObject* condvar_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "wait() missing required argument 'guard'");
        return nullptr;
    }
    // The timeout first: converting it may run Python code (an int subclass's __float__)
    // that releases the guard, so the guard is checked only after.
    Deadline deadline;
    if (!parse_one_timeout("wait", args + 1, nargs - 1, kwnames, deadline)) return nullptr;
    SyncGuard* g = held_guard(args[0]);
    if (g == nullptr) return nullptr;
    const int r = condvar_wait_once(as_condvar(self), g, deadline);
    if (r < 0) return nullptr;
    return PyBool_FromLong(r);
}

// wait_while(guard, predicate, timeout=None): wait while predicate(guard.value) is true.
PyObject* condvar_wait_while(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "wait_while() needs guard and predicate");
        return nullptr;
    }
    // The timeout first, as in wait(): its conversion may release the guard.
    Deadline deadline;
    if (!parse_one_timeout("wait_while", args + 2, nargs - 2, kwnames, deadline)) return nullptr;
    SyncGuard* g = held_guard(args[0]);
    if (g == nullptr) return nullptr;
    PyObject* predicate = args[1];
    if (!PyCallable_Check(predicate)) {
        PyErr_Format(PyExc_TypeError, "predicate must be callable, got %s", Py_TYPE(predicate)->tp_name);
        return nullptr;
    }
    for (;;) {
        PyObject* value = Py_NewRef(as_mutex(g->lock)->value);
        PyObject* keep = PyObject_CallOneArg(predicate, value);
        Py_DECREF(value);
        if (keep == nullptr) return nullptr;
        const int truth = PyObject_IsTrue(keep);
        Py_DECREF(keep);
        if (truth < 0) return nullptr;
        if (truth == 0) Py_RETURN_TRUE;
        if (g->lock == nullptr) return guard_released(g);  // the predicate released the guard
        const int r = condvar_wait_once(as_condvar(self), g, deadline);
        if (r < 0) return nullptr;
        if (r == 0) {
            // Timed out: report whether the predicate still holds, as Rust's wait_timeout_while.
            value = Py_NewRef(as_mutex(g->lock)->value);
            keep = PyObject_CallOneArg(predicate, value);
            Py_DECREF(value);
            if (keep == nullptr) return nullptr;
            const int still = PyObject_IsTrue(keep);
            Py_DECREF(keep);
            if (still < 0) return nullptr;
            return PyBool_FromLong(still == 0);
        }
    }
}

PyObject* condvar_notify_one(PyObject* self, PyObject*) noexcept {
    try {
        as_condvar(self)->core.notify_one();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* condvar_notify_all(PyObject* self, PyObject*) noexcept {
    try {
        as_condvar(self)->core.notify_all();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyMethodDef condvar_methods[] = {
    {"wait", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&condvar_wait)), METH_FASTCALL | METH_KEYWORDS,
     "wait($self, guard, /, timeout=None)\n--\n\nRelease the guard's mutex, wait for a notify (GIL released,\n"
     "Ctrl-C works), hold the mutex again. False if it timed out. May wake spuriously: loop, or\n"
     "use wait_while."},
    {"wait_while", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&condvar_wait_while)),
     METH_FASTCALL | METH_KEYWORDS,
     "wait_while($self, guard, predicate, /, timeout=None)\n--\n\nWait while predicate(guard.value) is true.\n"
     "True once it is false; False if the timeout passed with the predicate still true."},
    {"notify_one", reinterpret_cast<PyCFunction>(&condvar_notify_one), METH_NOARGS,
     "notify_one($self, /)\n--\n\nWake one waiting thread (none is remembered if nobody waits)."},
    {"notify_all", reinterpret_cast<PyCFunction>(&condvar_notify_all), METH_NOARGS,
     "notify_all($self, /)\n--\n\nWake every waiting thread."},
    {nullptr, nullptr, 0, nullptr},
};

// ---- types --------------------------------------------------------------------------------------

PyType_Slot mutex_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&mutex_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&mutex_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&mutex_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&mutex_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&mutex_repr)},
    {Py_tp_methods, mutex_methods},
    {Py_tp_doc, const_cast<char*>(
                    "Mutex(value, *, poison=True)\n--\n\n"
                    "A lock that owns its value (Rust's Mutex<T>): the value is reachable only through\n"
                    "the MutexGuard that lock() returns.\n\n"
                    "The sharp edge: an exception leaving a `with m.lock()` block poisons the mutex -\n"
                    "the value may be half-updated - and every later lock() raises PoisonError until\n"
                    "clear_poison(). poison=False opts out. Locking a mutex this thread holds raises\n"
                    "RuntimeError instead of deadlocking.\n\n"
                    "Example:\n"
                    "    >>> from memkit import Mutex\n"
                    "    >>> m = Mutex(0)\n"
                    "    >>> with m.lock() as g:\n"
                    "    ...     g.value += 1\n"
                    "    >>> m.try_lock().value\n"
                    "    1\n")},
    {0, nullptr},
};

PyType_Slot guard_slots_for_mutex[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&guard_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&guard_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&guard_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&guard_repr)},
    {Py_tp_getattro, reinterpret_cast<void*>(&guard_getattro)},
    {Py_tp_setattro, reinterpret_cast<void*>(&guard_setattro)},
    {Py_tp_methods, guard_methods},
    {Py_tp_getset, guard_getters},
    {Py_tp_doc, const_cast<char*>("The lock held: `.value` reads and assigns the protected value. Unlocks on\n"
                                  "`with` exit (poisoning on exception), release() or collection.")},
    {0, nullptr},
};

PyType_Slot rwlock_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&rwlock_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&rwlock_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&rwlock_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&rwlock_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(&rwlock_repr)},
    {Py_tp_methods, rwlock_methods},
    {Py_tp_doc, const_cast<char*>(
                    "RwLock(value)\n--\n\n"
                    "A readers-writer lock that owns its value (Rust's RwLock<T>): any number of\n"
                    "ReadGuards or one WriteGuard. Writers are not starved: once one waits, new readers\n"
                    "wait behind it. A WriteGuard leaving its block by exception poisons the lock.\n"
                    "Re-entry that would deadlock (read after write, write after read, a second read\n"
                    "while a writer waits) raises RuntimeError.\n")},
    {0, nullptr},
};

PyType_Slot condvar_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&condvar_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&condvar_dealloc)},
    {Py_tp_methods, condvar_methods},
    {Py_tp_doc, const_cast<char*>(
                    "Condvar()\n--\n\n"
                    "A condition variable used with a MutexGuard (Rust's Condvar): wait(guard) releases\n"
                    "the guard's mutex while it waits and holds it again on return.\n")},
    {0, nullptr},
};

constexpr unsigned long kGcFinal = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
constexpr unsigned long kGuardFlags = kGcFinal | Py_TPFLAGS_DISALLOW_INSTANTIATION;

PyType_Spec mutex_spec = {"memkit.sync.Mutex", static_cast<int>(sizeof(MutexObject)), 0, kGcFinal, mutex_slots};
PyType_Spec mutex_guard_spec = {"memkit.sync.MutexGuard", static_cast<int>(sizeof(SyncGuard)), 0, kGuardFlags,
                                guard_slots_for_mutex};
PyType_Spec read_guard_spec = {"memkit.sync.ReadGuard", static_cast<int>(sizeof(SyncGuard)), 0, kGuardFlags,
                               guard_slots_for_mutex};
PyType_Spec write_guard_spec = {"memkit.sync.WriteGuard", static_cast<int>(sizeof(SyncGuard)), 0, kGuardFlags,
                                guard_slots_for_mutex};
PyType_Spec rwlock_spec = {"memkit.sync.RwLock", static_cast<int>(sizeof(RwLockObject)), 0, kGcFinal, rwlock_slots};
PyType_Spec condvar_spec = {"memkit.sync.Condvar", static_cast<int>(sizeof(CondvarObject)), 0, Py_TPFLAGS_DEFAULT,
                            condvar_slots};

void add_type(py::module_& m, const char* name, PyType_Spec* spec, PyTypeObject** out) {
    PyObject* type = PyType_FromSpec(spec);
    if (type == nullptr) throw py::error_already_set();
    *out = reinterpret_cast<PyTypeObject*>(type);
    m.attr(name) = py::reinterpret_borrow<py::object>(type);  // our own reference stays in *out
}

}  // namespace

void register_sync(py::module_& m) {
    value_name = PyUnicode_InternFromString("value");
    if (value_name == nullptr) throw py::error_already_set();
    poison_error = PyErr_NewExceptionWithDoc(
        "memkit.sync.PoisonError",
        "The lock's holder raised while holding it; the value may be inconsistent. `.guard` holds\n"
        "the lock: repair the value through it, then clear_poison().",
        PyExc_RuntimeError, nullptr);
    if (poison_error == nullptr) throw py::error_already_set();
    m.attr("PoisonError") = py::reinterpret_borrow<py::object>(poison_error);
    add_type(m, "Mutex", &mutex_spec, &mutex_type);
    add_type(m, "MutexGuard", &mutex_guard_spec, &mutex_guard_type);
    add_type(m, "ReadGuard", &read_guard_spec, &read_guard_type);
    add_type(m, "WriteGuard", &write_guard_spec, &write_guard_type);
    add_type(m, "RwLock", &rwlock_spec, &rwlock_type);
    add_type(m, "Condvar", &condvar_spec, &condvar_type);
}

}  // namespace memkit::bindings
