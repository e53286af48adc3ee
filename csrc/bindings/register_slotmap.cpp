// memkit._core.slotmap: SlotMap, its views (SlotMapKeys, SlotMapValues, SlotMapItems) and
// their iterator, key_index, key_generation, and private test hooks.
//
// Plain C-API heap types (PyType_FromSpec), like cell's: `sm[key]` must cost what `d[key]`
// costs, so the subscript slot parses the key and reaches the core with nothing between.
// Values are strong references, and the map takes part in garbage collection because a
// value may refer back to it.
//
// Re-entrancy: Python code runs when a value is dropped (its __del__, weakref callbacks),
// when we call out (insert_with_key's fn, __eq__, __repr__) and - with the GIL - whenever a
// GC-tracked object is allocated (that may start a collection, which runs finalisers). So a
// value always leaves the map before it is dropped, and nothing is called or allocated
// while the core is mid-change or being walked.
#include "pybind11.hpp"

#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../core/slotmap.hpp"

namespace memkit::bindings {

namespace {

using core::SlotKey;
using Map = core::SlotMap<PyObject*>;

#if defined(Py_GIL_DISABLED)
// Free-threaded builds (3.13+): PyMutex detaches the waiting thread from the interpreter,
// so a thread blocked here never holds up a stop-the-world pause. It is held only around
// core calls, increfs and plain allocations - never around Python code.
struct MapLock {
    PyMutex mutex{};
    void lock() noexcept { PyMutex_Lock(&mutex); }
    void unlock() noexcept { PyMutex_Unlock(&mutex); }
};
#else
// With the GIL every operation below runs start to end under it (none releases it, none
// runs Python code while it uses the core), so the lock is free.
struct MapLock {
    void lock() noexcept {}
    void unlock() noexcept {}
};
#endif

using Locked = std::lock_guard<MapLock>;

PyTypeObject* slotmap_type = nullptr;
PyTypeObject* iterator_type = nullptr;
PyTypeObject* view_types[3] = {nullptr, nullptr, nullptr};

struct SlotMapObject {
    PyObject_HEAD
    Map map;       // each occupied slot holds a strong reference to its value
    MapLock lock;  // guards `map` (free-threaded builds)
};

SlotMapObject* as_map(PyObject* o) noexcept { return reinterpret_cast<SlotMapObject*>(o); }

// ---- keys ------------------------------------------------------------------------------------

enum class KeyStatus {
    ok,      // *out holds the key
    absent,  // an int no key equals (negative, or 2**64 and above): a lookup misses
    error,   // not an int (TypeError set), or __index__ raised
};

// A Python int (exact or subclass) as a 64-bit key.
KeyStatus convert_int(PyObject* obj, SlotKey* out) noexcept {
#if ULONG_MAX == UINT64_MAX
    // On LP64 PyLong_AsUnsignedLong is a short loop over the digits, where the long long
    // variant goes through _PyLong_AsByteArray (3.11): the subscript's hot path.
    const unsigned long value = PyLong_AsUnsignedLong(obj);
    if (value != ULONG_MAX || !PyErr_Occurred()) {
#else
    const unsigned long long value = PyLong_AsUnsignedLongLong(obj);
    if (value != ULLONG_MAX || !PyErr_Occurred()) {
#endif
        *out = static_cast<SlotKey>(value);
        return KeyStatus::ok;
    }
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return KeyStatus::error;
    PyErr_Clear();  // negative or too big
    return KeyStatus::absent;
}

KeyStatus parse_key_slow(PyObject* obj, SlotKey* out) noexcept {
    // A bool is an int, but never a key the map handed out: sm[flag] is a bug.
    if (PyBool_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "SlotMap keys are ints, not bool");
        return KeyStatus::error;
    }
    if (PyLong_Check(obj)) return convert_int(obj, out);
    if (!PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "SlotMap keys are ints, got %s", Py_TYPE(obj)->tp_name);
        return KeyStatus::error;
    }
    PyObject* index = PyNumber_Index(obj);  // numpy.uint64 and friends
    if (index == nullptr) return KeyStatus::error;
    const KeyStatus status = convert_int(index, out);
    Py_DECREF(index);
    return status;
}

inline KeyStatus parse_key(PyObject* obj, SlotKey* out) noexcept {
    if (PyLong_CheckExact(obj)) return convert_int(obj, out);
    return parse_key_slow(obj, out);
}

PyObject* raise_key_error(PyObject* key) noexcept {
    // Wrapped in a tuple so the exception's args are (key,) whatever the key is.
    PyObject* args = PyTuple_Pack(1, key);
    if (args != nullptr) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
    return nullptr;
}

PyObject* raise_full() noexcept {
    PyErr_Format(PyExc_OverflowError, "SlotMap is full: all %lu slots are in use or retired",
                 static_cast<unsigned long>(Map::kMaxSlots));
    return nullptr;
}

// ---- SlotMap ---------------------------------------------------------------------------------

PyObject* slotmap_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) noexcept {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "SlotMap() takes no arguments");
        return nullptr;
    }
    auto* self = PyObject_GC_New(SlotMapObject, type);
    if (self == nullptr) return nullptr;
    new (&self->map) Map();
    new (&self->lock) MapLock();
    PyObject_GC_Track(self);
    return reinterpret_cast<PyObject*>(self);
}

int slotmap_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    // No lock: the collector runs with the GIL held, or (free-threaded) with the world stopped.
    Map& map = as_map(self)->map;
    for (std::uint32_t i = map.next_occupied(0); i < map.capacity(); i = map.next_occupied(i + 1)) {
        Py_VISIT(map.value_at(i));
    }
    return 0;
}

// Removes every entry and then drops the values, so a value's __del__ finds the map empty
// and consistent (and may use it). Never fails.
void drain(SlotMapObject* sm) noexcept {
    std::vector<PyObject*> values;
    bool drained = false;
    {
        Locked lock(sm->lock);
        try {
            values.reserve(sm->map.size());
            // push_back within the reserved capacity cannot throw.
            sm->map.clear([&values](PyObject*&& value) noexcept { values.push_back(value); });
            drained = true;
        } catch (const std::bad_alloc&) {
        }
    }
    if (drained) {
        for (PyObject* value : values) Py_DECREF(value);
        return;
    }
    // No memory for the list: one entry at a time, each out of the map before it is dropped.
    for (std::uint32_t i = 0;; ++i) {
        PyObject* value = nullptr;
        {
            Locked lock(sm->lock);
            i = sm->map.next_occupied(i);
            if (i < sm->map.capacity()) sm->map.remove(sm->map.key_at(i), value);
        }
        if (value == nullptr) return;
        Py_DECREF(value);
    }
}

int slotmap_clear_slot(PyObject* self) noexcept {
    drain(as_map(self));
    return 0;
}

void slotmap_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    // Maps nested a million deep must not overflow the C stack: the trashcan defers the
    // inner deallocations.
    Py_TRASHCAN_BEGIN(self, slotmap_dealloc)
    SlotMapObject* sm = as_map(self);
    drain(sm);
    sm->map.~Map();
    sm->lock.~MapLock();
    type->tp_free(self);
    Py_DECREF(type);
    Py_TRASHCAN_END
}

Py_ssize_t slotmap_length(PyObject* self) noexcept {
    SlotMapObject* sm = as_map(self);
    Locked lock(sm->lock);
    return static_cast<Py_ssize_t>(sm->map.size());
}

PyObject* slotmap_subscript(PyObject* self, PyObject* key) noexcept {
    SlotKey k = 0;
    const KeyStatus status = parse_key(key, &k);
    if (status == KeyStatus::ok) {
        SlotMapObject* sm = as_map(self);
        PyObject* value = nullptr;
        {
            Locked lock(sm->lock);
            if (PyObject** slot = sm->map.get(k)) value = Py_NewRef(*slot);
        }
        if (value != nullptr) return value;
    } else if (status == KeyStatus::error) {
        return nullptr;
    }
    return raise_key_error(key);
}

// sm[key] = value replaces the value of a live key; del sm[key] removes it.
int slotmap_ass_subscript(PyObject* self, PyObject* key, PyObject* value) noexcept {
    SlotKey k = 0;
    const KeyStatus status = parse_key(key, &k);
    if (status == KeyStatus::error) return -1;
    SlotMapObject* sm = as_map(self);
    PyObject* old = nullptr;
    if (status == KeyStatus::ok) {
        Locked lock(sm->lock);
        if (value == nullptr) {
            sm->map.remove(k, old);
        } else if (PyObject** slot = sm->map.get(k)) {
            old = *slot;
            *slot = Py_NewRef(value);
        }
    }
    if (old == nullptr) {
        raise_key_error(key);
        return -1;
    }
    Py_DECREF(old);  // the map is consistent again: old's __del__ may use it
    return 0;
}

int slotmap_contains(PyObject* self, PyObject* key) noexcept {
    SlotKey k = 0;
    const KeyStatus status = parse_key(key, &k);
    if (status != KeyStatus::ok) return status == KeyStatus::error ? -1 : 0;
    SlotMapObject* sm = as_map(self);
    Locked lock(sm->lock);
    return sm->map.contains(k) ? 1 : 0;
}

// The int for a key just stored. If even that allocation fails, the entry is taken out
// again (nobody could name it) and nullptr returned.
PyObject* key_object(SlotMapObject* sm, SlotKey key) noexcept {
    PyObject* obj = PyLong_FromUnsignedLongLong(key);
    if (obj != nullptr) return obj;
    PyObject* value = nullptr;
    {
        Locked lock(sm->lock);
        sm->map.remove(key, value);
    }
    Py_XDECREF(value);
    return nullptr;
}

PyObject* slotmap_insert(PyObject* self, PyObject* value) noexcept {
    SlotMapObject* sm = as_map(self);
    SlotKey key = 0;
    bool full = false;
    bool no_memory = false;
    Py_INCREF(value);  // the map's reference, taken first: another thread may remove the entry at once
    {
        Locked lock(sm->lock);
        try {
            key = sm->map.insert(value);
        } catch (const std::length_error&) {
            full = true;
        } catch (const std::bad_alloc&) {
            no_memory = true;
        }
    }
    if (full || no_memory) {
        Py_DECREF(value);  // the caller still holds one: no __del__ runs here
        return full ? raise_full() : PyErr_NoMemory();
    }
    return key_object(sm, key);
}

PyObject* slotmap_insert_with_key(PyObject* self, PyObject* fn) noexcept {
    SlotMapObject* sm = as_map(self);
    SlotKey key = 0;
    bool full = false;
    bool no_memory = false;
    {
        Locked lock(sm->lock);
        try {
            key = sm->map.reserve();
        } catch (const std::length_error&) {
            full = true;
        } catch (const std::bad_alloc&) {
            no_memory = true;
        }
    }
    if (full) return raise_full();
    if (no_memory) return PyErr_NoMemory();
    PyObject* key_obj = PyLong_FromUnsignedLongLong(key);
    // fn may use the map freely (insert, remove, clear, even recurse): the reserved slot
    // is off the free list and invisible until the commit below.
    PyObject* value = key_obj != nullptr ? PyObject_CallOneArg(fn, key_obj) : nullptr;
    if (value == nullptr) {
        {
            Locked lock(sm->lock);
            sm->map.abort(key);  // skips the key's generation: it is never valid
        }
        Py_XDECREF(key_obj);
        return nullptr;
    }
    {
        Locked lock(sm->lock);
        sm->map.commit(key, value);  // steals fn's result
    }
    return key_obj;
}

PyObject* slotmap_get(PyObject* self, PyObject* const* args, Py_ssize_t nargs) noexcept {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return nullptr;
    }
    SlotKey k = 0;
    const KeyStatus status = parse_key(args[0], &k);
    if (status == KeyStatus::error) return nullptr;
    PyObject* value = nullptr;
    if (status == KeyStatus::ok) {
        SlotMapObject* sm = as_map(self);
        Locked lock(sm->lock);
        if (PyObject** slot = sm->map.get(k)) value = Py_NewRef(*slot);
    }
    if (value != nullptr) return value;
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

PyObject* slotmap_remove(PyObject* self, PyObject* key) noexcept {
    SlotKey k = 0;
    const KeyStatus status = parse_key(key, &k);
    if (status == KeyStatus::error) return nullptr;
    PyObject* value = nullptr;
    if (status == KeyStatus::ok) {
        SlotMapObject* sm = as_map(self);
        Locked lock(sm->lock);
        sm->map.remove(k, value);
    }
    if (value == nullptr) return raise_key_error(key);
    return value;  // the map's reference, handed to the caller
}

PyObject* slotmap_clear(PyObject* self, PyObject* /*unused*/) noexcept {
    drain(as_map(self));
    Py_RETURN_NONE;
}

enum ViewKind { kKeys = 0, kValues = 1, kItems = 2 };

struct ViewObject {
    PyObject_HEAD
    PyObject* map;  // the SlotMap (strong), set for life
    int kind;       // ViewKind
};

PyObject* new_view(PyObject* map, int kind) noexcept {
    auto* view = PyObject_GC_New(ViewObject, view_types[kind]);
    if (view == nullptr) return nullptr;
    view->map = Py_NewRef(map);
    view->kind = kind;
    PyObject_GC_Track(view);
    return reinterpret_cast<PyObject*>(view);
}

PyObject* slotmap_keys(PyObject* self, PyObject*) noexcept { return new_view(self, kKeys); }
PyObject* slotmap_values(PyObject* self, PyObject*) noexcept { return new_view(self, kValues); }
PyObject* slotmap_items(PyObject* self, PyObject*) noexcept { return new_view(self, kItems); }

PyObject* slotmap_reduce(PyObject* /*self*/, PyObject* /*unused*/) noexcept {
    PyErr_SetString(PyExc_TypeError,
                    "cannot pickle or copy a SlotMap: its keys name slots of this map only "
                    "(pickle dict(sm.items()) to keep the data)");
    return nullptr;
}

// Snapshot of the entries: (key, new reference) pairs, taken without allocating Python
// objects under the lock. False with MemoryError set.
bool snapshot(SlotMapObject* sm, std::vector<std::pair<SlotKey, PyObject*>>& out) noexcept {
    try {
        Locked lock(sm->lock);
        Map& map = sm->map;
        out.reserve(map.size());
        for (std::uint32_t i = map.next_occupied(0); i < map.capacity(); i = map.next_occupied(i + 1)) {
            out.emplace_back(map.key_at(i), Py_NewRef(map.value_at(i)));
        }
        return true;
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return false;
    }
}

PyObject* slotmap_repr(PyObject* self) noexcept {
    const int seen = Py_ReprEnter(self);
    if (seen != 0) return seen > 0 ? PyUnicode_FromString("SlotMap({...})") : nullptr;
    std::vector<std::pair<SlotKey, PyObject*>> entries;
    PyObject* result = nullptr;
    if (snapshot(as_map(self), entries)) {
        PyObject* parts = PyList_New(static_cast<Py_ssize_t>(entries.size()));
        bool ok = parts != nullptr;
        for (std::size_t i = 0; ok && i < entries.size(); ++i) {
            PyObject* part = PyUnicode_FromFormat("%llu: %R", static_cast<unsigned long long>(entries[i].first),
                                                  entries[i].second);
            ok = part != nullptr;
            if (ok) PyList_SET_ITEM(parts, static_cast<Py_ssize_t>(i), part);
        }
        if (ok) {
            PyObject* sep = PyUnicode_FromString(", ");
            PyObject* joined = sep != nullptr ? PyUnicode_Join(sep, parts) : nullptr;
            if (joined != nullptr) result = PyUnicode_FromFormat("SlotMap({%U})", joined);
            Py_XDECREF(joined);
            Py_XDECREF(sep);
        }
        Py_XDECREF(parts);
        for (auto& entry : entries) Py_DECREF(entry.second);
    }
    Py_ReprLeave(self);
    return result;
}

// ---- iterator --------------------------------------------------------------------------------

struct IterObject {
    PyObject_HEAD
    PyObject* map;          // the SlotMap (strong), set for life
    std::uint64_t version;  // the map's version when iteration began
    std::uint32_t next;     // the first slot index not yet looked at; guarded by the map's lock
    int kind;               // ViewKind
    bool exhausted;         // StopIteration was raised (and will be again); guarded by the lock
};

PyObject* new_iterator(PyObject* map, int kind) noexcept {
    auto* it = PyObject_GC_New(IterObject, iterator_type);
    if (it == nullptr) return nullptr;
    it->map = Py_NewRef(map);
    {
        SlotMapObject* sm = as_map(map);
        Locked lock(sm->lock);
        it->version = sm->map.version();
    }
    it->next = 0;
    it->kind = kind;
    it->exhausted = false;
    PyObject_GC_Track(it);
    return reinterpret_cast<PyObject*>(it);
}

PyObject* slotmap_iter(PyObject* self) noexcept { return new_iterator(self, kKeys); }

PyObject* iter_next(PyObject* self) noexcept {
    auto* it = reinterpret_cast<IterObject*>(self);
    SlotMapObject* sm = as_map(it->map);
    SlotKey key = 0;
    PyObject* value = nullptr;
    bool changed = false;
    {
        Locked lock(sm->lock);
        if (it->exhausted) return nullptr;
        if (sm->map.version() != it->version) {
            changed = true;  // sticky: the version never comes back
        } else {
            const std::uint32_t i = sm->map.next_occupied(it->next);
            if (i >= sm->map.capacity()) {
                it->exhausted = true;
                return nullptr;
            }
            key = sm->map.key_at(i);
            if (it->kind != kKeys) value = Py_NewRef(sm->map.value_at(i));
            it->next = i + 1;
        }
    }
    if (changed) {
        PyErr_SetString(PyExc_RuntimeError, "SlotMap changed during iteration");
        return nullptr;
    }
    if (it->kind == kValues) return value;
    PyObject* key_obj = PyLong_FromUnsignedLongLong(key);
    if (it->kind == kKeys || key_obj == nullptr) {
        Py_XDECREF(value);
        return key_obj;
    }
    PyObject* item = PyTuple_Pack(2, key_obj, value);
    Py_DECREF(key_obj);
    Py_DECREF(value);
    return item;
}

// No tp_clear for iterators and views: every cycle through one passes through its SlotMap,
// whose tp_clear breaks it - and their `map` then never needs a null check.
int holder_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    // IterObject and ViewObject both start with PyObject_HEAD then `map`.
    Py_VISIT(reinterpret_cast<ViewObject*>(self)->map);
    return 0;
}

void holder_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_DECREF(reinterpret_cast<ViewObject*>(self)->map);
    type->tp_free(self);
    Py_DECREF(type);
}

PyType_Slot iterator_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&holder_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&holder_traverse)},
    {Py_tp_iter, reinterpret_cast<void*>(&PyObject_SelfIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(&iter_next)},
    {Py_tp_doc, const_cast<char*>("An iterator over a SlotMap's keys, values or items, in slot order.\n"
                                  "RuntimeError if the map gains or loses an entry meanwhile.")},
    {0, nullptr},
};

PyType_Spec iterator_spec = {"memkit.slotmap.SlotMapIterator", static_cast<int>(sizeof(IterObject)), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
                             iterator_slots};

// ---- views -----------------------------------------------------------------------------------

ViewObject* as_view(PyObject* o) noexcept { return reinterpret_cast<ViewObject*>(o); }

Py_ssize_t view_length(PyObject* self) noexcept { return slotmap_length(as_view(self)->map); }

PyObject* view_iter(PyObject* self) noexcept { return new_iterator(as_view(self)->map, as_view(self)->kind); }

// `x in values` / `(k, v) in items`: compares with ==, which runs Python code, so each value
// is compared after it has been taken out of the map under the lock (with a reference).
int view_contains(PyObject* self, PyObject* x) noexcept {
    ViewObject* view = as_view(self);
    if (view->kind == kKeys) return slotmap_contains(view->map, x);
    if (view->kind == kItems) {
        if (!PyTuple_Check(x) || PyTuple_GET_SIZE(x) != 2) return 0;
        SlotKey k = 0;
        const KeyStatus status = parse_key(PyTuple_GET_ITEM(x, 0), &k);
        if (status != KeyStatus::ok) return status == KeyStatus::error ? -1 : 0;
        PyObject* value = nullptr;
        {
            SlotMapObject* sm = as_map(view->map);
            Locked lock(sm->lock);
            if (PyObject** slot = sm->map.get(k)) value = Py_NewRef(*slot);
        }
        if (value == nullptr) return 0;
        const int equal = PyObject_RichCompareBool(value, PyTuple_GET_ITEM(x, 1), Py_EQ);
        Py_DECREF(value);
        return equal;
    }
    PyObject* it = new_iterator(view->map, kValues);
    if (it == nullptr) return -1;
    int found = 0;
    while (found == 0) {
        PyObject* value = iter_next(it);
        if (value == nullptr) break;
        found = PyObject_RichCompareBool(value, x, Py_EQ);
        Py_DECREF(value);
    }
    Py_DECREF(it);
    if (found == 0 && PyErr_Occurred()) return -1;
    return found;
}

PyObject* view_repr(PyObject* self) noexcept {
    const int seen = Py_ReprEnter(self);
    const char* full_name = Py_TYPE(self)->tp_name;  // "memkit.slotmap.SlotMapKeys"
    const char* dot = std::strrchr(full_name, '.');
    const char* name = dot != nullptr ? dot + 1 : full_name;
    if (seen != 0) return seen > 0 ? PyUnicode_FromFormat("%s(...)", name) : nullptr;
    PyObject* list = PySequence_List(self);
    PyObject* result = list != nullptr ? PyUnicode_FromFormat("%s(%R)", name, list) : nullptr;
    Py_XDECREF(list);
    Py_ReprLeave(self);
    return result;
}

PyMethodDef view_methods[] = {
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "SlotMapValues[V] / SlotMapItems[V] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

#define MEMKIT_VIEW_SLOTS(doc)                                                      \
    {                                                                               \
        {Py_tp_dealloc, reinterpret_cast<void*>(&holder_dealloc)},                  \
        {Py_tp_traverse, reinterpret_cast<void*>(&holder_traverse)},                \
        {Py_tp_iter, reinterpret_cast<void*>(&view_iter)},                          \
        {Py_tp_repr, reinterpret_cast<void*>(&view_repr)},                          \
        {Py_sq_length, reinterpret_cast<void*>(&view_length)},                      \
        {Py_sq_contains, reinterpret_cast<void*>(&view_contains)},                  \
        {Py_tp_methods, view_methods},                                              \
        {Py_tp_doc, const_cast<char*>(doc)},                                        \
        {0, nullptr},                                                               \
    }

PyType_Slot keys_slots[] = MEMKIT_VIEW_SLOTS("A live view of a SlotMap's keys: len(), iteration, `key in keys`.");
PyType_Slot values_slots[] = MEMKIT_VIEW_SLOTS("A live view of a SlotMap's values: len(), iteration, `v in values` (==).");
PyType_Slot items_slots[] = MEMKIT_VIEW_SLOTS(
    "A live view of a SlotMap's (key, value) pairs: len(), iteration, `(k, v) in items`.");
#undef MEMKIT_VIEW_SLOTS

constexpr unsigned kViewFlags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION;
PyType_Spec view_specs[3] = {
    {"memkit.slotmap.SlotMapKeys", static_cast<int>(sizeof(ViewObject)), 0, kViewFlags, keys_slots},
    {"memkit.slotmap.SlotMapValues", static_cast<int>(sizeof(ViewObject)), 0, kViewFlags, values_slots},
    {"memkit.slotmap.SlotMapItems", static_cast<int>(sizeof(ViewObject)), 0, kViewFlags, items_slots},
};

// ---- the SlotMap type ------------------------------------------------------------------------

PyMethodDef slotmap_methods[] = {
    {"insert", reinterpret_cast<PyCFunction>(&slotmap_insert), METH_O,
     "insert($self, value, /)\n--\n\nStore `value` and return its new key."},
    {"insert_with_key", reinterpret_cast<PyCFunction>(&slotmap_insert_with_key), METH_O,
     "insert_with_key($self, fn, /)\n--\n\nStore `fn(key)` under `key` and return the key (for values that\n"
     "need to know their own key). If fn raises, nothing is stored and that key is never valid."},
    {"get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&slotmap_get)), METH_FASTCALL,
     "get($self, key, default=None, /)\n--\n\nThe value under `key`, or `default` when the key is not valid."},
    {"remove", reinterpret_cast<PyCFunction>(&slotmap_remove), METH_O,
     "remove($self, key, /)\n--\n\nRemove the entry and return its value; KeyError when the key is not\n"
     "valid. The key (and every other key of that slot) is stale from now on."},
    {"clear", reinterpret_cast<PyCFunction>(&slotmap_clear), METH_NOARGS,
     "clear($self, /)\n--\n\nRemove every entry; every key issued so far becomes stale."},
    {"keys", reinterpret_cast<PyCFunction>(&slotmap_keys), METH_NOARGS,
     "keys($self, /)\n--\n\nA live view of the keys, in slot order."},
    {"values", reinterpret_cast<PyCFunction>(&slotmap_values), METH_NOARGS,
     "values($self, /)\n--\n\nA live view of the values, in slot order."},
    {"items", reinterpret_cast<PyCFunction>(&slotmap_items), METH_NOARGS,
     "items($self, /)\n--\n\nA live view of the (key, value) pairs, in slot order."},
    {"__reduce__", reinterpret_cast<PyCFunction>(&slotmap_reduce), METH_NOARGS,
     "SlotMaps cannot be pickled or copied: TypeError."},
    {"__class_getitem__", reinterpret_cast<PyCFunction>(&Py_GenericAlias), METH_O | METH_CLASS,
     "SlotMap[V] in type annotations."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot slotmap_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&slotmap_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&slotmap_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&slotmap_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&slotmap_clear_slot)},
    {Py_tp_repr, reinterpret_cast<void*>(&slotmap_repr)},
    {Py_tp_iter, reinterpret_cast<void*>(&slotmap_iter)},
    {Py_mp_length, reinterpret_cast<void*>(&slotmap_length)},
    {Py_mp_subscript, reinterpret_cast<void*>(&slotmap_subscript)},
    {Py_mp_ass_subscript, reinterpret_cast<void*>(&slotmap_ass_subscript)},
    {Py_sq_contains, reinterpret_cast<void*>(&slotmap_contains)},
    {Py_tp_methods, slotmap_methods},
    {Py_tp_doc, const_cast<char*>(
                    "SlotMap()\n--\n\n"
                    "A generational arena (Rust's slotmap): insert(value) returns a key, an int packing\n"
                    "(generation << 32 | index), and sm[key] finds the value in O(1).\n\n"
                    "The sharp edge: a key is only an index and a generation. It stays valid until its\n"
                    "entry is removed or the map cleared, and never again - even when the slot is\n"
                    "reused - but it does not know which map made it: a key from another SlotMap may\n"
                    "name an entry here.\n\n"
                    "Example:\n"
                    "    >>> from memkit import SlotMap\n"
                    "    >>> sm = SlotMap()\n"
                    "    >>> k = sm.insert('player')\n"
                    "    >>> sm[k], sm.remove(k), k in sm\n"
                    "    ('player', 'player', False)\n"
                    "    >>> k2 = sm.insert('enemy')  # reuses the slot, with a new generation\n"
                    "    >>> sm.get(k) is None, sm[k2]\n"
                    "    (True, 'enemy')\n")},
    {0, nullptr},
};

PyType_Spec slotmap_spec = {"memkit.slotmap.SlotMap", static_cast<int>(sizeof(SlotMapObject)), 0,
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, slotmap_slots};

// ---- module functions ------------------------------------------------------------------------

// A key for the module functions: TypeError as for lookups, ValueError for ints out of range.
SlotKey key_argument(py::handle obj) {
    SlotKey key = 0;
    const KeyStatus status = parse_key(obj.ptr(), &key);
    if (status == KeyStatus::error) throw py::error_already_set();
    if (status == KeyStatus::absent) {
        raise(PyExc_ValueError, "not a SlotMap key: " + repr_of(obj.ptr()) + " (keys are ints in [0, 2**64))");
    }
    return key;
}

SlotMapObject* slotmap_argument(py::handle obj) {
    if (!PyObject_TypeCheck(obj.ptr(), slotmap_type)) {
        raise(PyExc_TypeError, std::string("expected a SlotMap, got ") + Py_TYPE(obj.ptr())->tp_name);
    }
    return as_map(obj.ptr());
}

PyObject* make_type(PyType_Spec* spec, PyTypeObject** out) {
    PyObject* type = PyType_FromSpec(spec);
    if (type == nullptr) throw py::error_already_set();
    *out = reinterpret_cast<PyTypeObject*>(type);
    Py_INCREF(type);  // the static outlives the module attribute
    return type;
}

}  // namespace

void register_slotmap(py::module_& m) {
    m.attr("SlotMap") = py::reinterpret_steal<py::object>(make_type(&slotmap_spec, &slotmap_type));
    m.attr("SlotMapKeys") = py::reinterpret_steal<py::object>(make_type(&view_specs[kKeys], &view_types[kKeys]));
    m.attr("SlotMapValues") =
        py::reinterpret_steal<py::object>(make_type(&view_specs[kValues], &view_types[kValues]));
    m.attr("SlotMapItems") = py::reinterpret_steal<py::object>(make_type(&view_specs[kItems], &view_types[kItems]));
    m.attr("SlotMapIterator") = py::reinterpret_steal<py::object>(make_type(&iterator_spec, &iterator_type));

    m.def(
        "key_index", [](py::handle key) { return core::slot_key_index(key_argument(key)); }, py::arg("key"),
        py::pos_only(), "The slot index a key names: its low 32 bits.");
    m.def(
        "key_generation", [](py::handle key) { return core::slot_key_generation(key_argument(key)); },
        py::arg("key"), py::pos_only(), "The generation a key carries: its high 32 bits (odd for every real key).");

    m.def(
        "_force_generation",
        [](py::handle sm, std::uint32_t index, std::uint32_t generation) {
            SlotMapObject* obj = slotmap_argument(sm);
            bool ok = false;
            {
                Locked lock(obj->lock);
                ok = obj->map.force_generation(index, generation);
            }
            if (!ok) {
                raise(PyExc_ValueError, "cannot set slot " + std::to_string(index) + " to generation " +
                                            std::to_string(generation) +
                                            " (occupied slots need odd, free ones even, never lower; "
                                            "not reserved or retired)");
            }
        },
        py::arg("sm"), py::arg("index"), py::arg("generation"), py::pos_only(),
        "Private test hook: set a slot's generation (to reach the wrap point fast).");
    m.def(
        "_invariant_violation",
        [](py::handle sm) -> py::object {
            SlotMapObject* obj = slotmap_argument(sm);
            const char* broken = nullptr;
            {
                Locked lock(obj->lock);
                broken = obj->map.invariant_violation();
            }
            if (broken == nullptr) return py::none();
            return py::str(broken);
        },
        py::arg("sm"), py::pos_only(), "Private: None when the map's invariants hold, else the first broken one.");
    m.def(
        "_debug_state",
        [](py::handle sm) {
            SlotMapObject* obj = slotmap_argument(sm);
            std::size_t len = 0;
            std::uint32_t capacity = 0, retired = 0;
            std::uint64_t version = 0;
            {
                Locked lock(obj->lock);
                len = obj->map.size();
                capacity = obj->map.capacity();
                retired = obj->map.retired();
                version = obj->map.version();
            }
            py::dict state;
            state["len"] = len;
            state["capacity"] = capacity;
            state["retired"] = retired;
            state["version"] = version;
            return state;
        },
        py::arg("sm"), py::pos_only(), "Private: len, capacity (slots), retired slots and the version counter.");
}

}  // namespace memkit::bindings
