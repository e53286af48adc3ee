// memkit._core.layout: the hot path of memkit.layout's zero-copy struct views.
//
// The layout engine itself (field types, offsets, padding, ctypes/NumPy interop) is Python
// (memkit/layout.py). What must be fast is reading and writing one field through a view,
// `rec.x`: ctypes does that with a C descriptor and a few loads, and a Python property
// costs three times as much. So the two objects on that path are plain C-API heap types:
//
//   Record  the base of every view class (`@struct` makes each struct class a Python
//           subclass of it, `__slots__ = ()`): a pointer into a buffer, the size it may
//           touch there, a read-only flag, and a private memoryview that holds the
//           buffer's export - so the memory cannot be freed or resized under the view.
//   Field   a data descriptor placed on the struct class, one per field: offset, size and
//           kind. `rec.x` is one type lookup (cached by CPython) and one switch.
//
// Every access is bounds-checked against the record's own size, so no call reachable from
// Python - even a wrongly built Field - can touch memory outside the buffer.
#include "pybind11.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

namespace memkit::bindings {

namespace {

PyTypeObject* record_type = nullptr;
PyTypeObject* field_type = nullptr;

// ---- Record -----------------------------------------------------------------------------------

struct RecordObject {
    PyObject_HEAD
    char* ptr;          // the record's first byte; valid while `mem` is alive
    Py_ssize_t size;    // bytes from ptr this record may touch
    PyObject* mem;      // a memoryview nobody else sees: its export keeps the memory alive
    int readonly;
};

RecordObject* as_record(PyObject* o) noexcept { return reinterpret_cast<RecordObject*>(o); }

// A new record of `cls` over [ptr, ptr + size), sharing `mem` (borrowed here).
PyObject* new_record(PyTypeObject* cls, PyObject* mem, char* ptr, Py_ssize_t size, int readonly) noexcept {
    PyObject* obj = cls->tp_alloc(cls, 0);
    if (obj == nullptr) return nullptr;
    RecordObject* rec = as_record(obj);
    rec->ptr = ptr;
    rec->size = size;
    rec->mem = Py_NewRef(mem);
    rec->readonly = readonly;
    return obj;
}

PyObject* record_new(PyTypeObject* type, PyObject* /*args*/, PyObject* /*kwargs*/) noexcept {
    PyErr_Format(PyExc_TypeError, "%s records are made with %s.view(buffer) or %s(**fields)", type->tp_name,
                 type->tp_name, type->tp_name);
    return nullptr;
}

int record_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_record(self)->mem);
    return 0;
}

void record_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(as_record(self)->mem);
    type->tp_free(self);
    Py_DECREF(type);
}

// The record's bytes: 1-D, format "B", read-only when the record is. view->obj is the
// record, which keeps the private memoryview - and so the memory - alive.
int record_getbuffer(PyObject* self, Py_buffer* view, int flags) noexcept {
    RecordObject* rec = as_record(self);
    if (rec->mem == nullptr) {
        PyErr_SetString(PyExc_ValueError, "the record is not bound to memory");
        view->obj = nullptr;
        return -1;
    }
    return PyBuffer_FillInfo(view, self, rec->ptr, rec->size, rec->readonly, flags);
}

PyObject* record_getattro(PyObject* self, PyObject* name) noexcept;
int record_setattro(PyObject* self, PyObject* name, PyObject* value) noexcept;

PyType_Slot record_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&record_new)},
    {Py_tp_getattro, reinterpret_cast<void*>(&record_getattro)},
    {Py_tp_setattro, reinterpret_cast<void*>(&record_setattro)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&record_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&record_traverse)},
    {Py_bf_getbuffer, reinterpret_cast<void*>(&record_getbuffer)},
    {Py_tp_doc, const_cast<char*>("The base of memkit.layout struct views: a typed window on a buffer.")},
    {0, nullptr},
};

PyType_Spec record_spec = {"memkit.layout.Record", static_cast<int>(sizeof(RecordObject)), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, record_slots};

// ---- Field ------------------------------------------------------------------------------------

enum Kind : int {
    k_u8, k_i8, k_u16, k_i16, k_u32, k_i32, k_u64, k_i64,
    k_f32, k_f64, k_bool, k_char,
    k_bytes,   // Bytes(n): bytes of exactly `size`
    k_enum,    // an IntEnum stored as the integer kind `int_kind`
    k_struct,  // a nested struct: a record of `type` sharing the memory
    k_custom,  // arrays: `type(record, offset)` reads, `extra(record, offset, value)` writes
    k_count
};

const char* const kind_names[k_count] = {"u8",  "i8",  "u16",  "i16",  "u32",   "i32",  "u64",    "i64",
                                         "f32", "f64", "bool", "char", "bytes", "enum", "struct", "custom"};

struct FieldObject {
    PyObject_HEAD
    Py_ssize_t offset;
    Py_ssize_t size;
    int kind;
    int int_kind;      // k_enum: how the value is stored
    PyObject* name;    // "Point.x", for messages
    PyObject* type;    // k_enum: the enum class; k_struct: the nested class; k_custom: getter
    PyObject* extra;   // k_enum: dict value -> member; k_custom: setter
};

FieldObject* as_field(PyObject* o) noexcept { return reinterpret_cast<FieldObject*>(o); }

int parse_kind(PyObject* name) noexcept {
    const char* s = PyUnicode_AsUTF8(name);
    if (s == nullptr) return -1;
    for (int i = 0; i < k_count; ++i) {
        if (std::strcmp(s, kind_names[i]) == 0) return i;
    }
    PyErr_Format(PyExc_ValueError, "unknown field kind %R", name);
    return -1;
}

Py_ssize_t int_size(int kind) noexcept {
    switch (kind) {
        case k_u8: case k_i8: return 1;
        case k_u16: case k_i16: return 2;
        case k_u32: case k_i32: return 4;
        case k_u64: case k_i64: return 8;
        default: return 0;
    }
}

// Field(name, kind, offset, size, type=None, extra=None, int_kind="u8")
PyObject* field_new(PyTypeObject* cls, PyObject* args, PyObject* kwargs) noexcept {
    static const char* kwlist[] = {"name", "kind", "offset", "size", "type", "extra", "int_kind", nullptr};
    PyObject* name = nullptr;
    PyObject* kind_name = nullptr;
    Py_ssize_t offset = 0;
    Py_ssize_t size = 0;
    PyObject* type = Py_None;
    PyObject* extra = Py_None;
    PyObject* int_kind_name = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UUnn|OOU:Field", const_cast<char**>(kwlist), &name, &kind_name,
                                     &offset, &size, &type, &extra, &int_kind_name)) {
        return nullptr;
    }
    const int kind = parse_kind(kind_name);
    if (kind < 0) return nullptr;
    int int_kind = k_u8;
    if (int_kind_name != nullptr) {
        int_kind = parse_kind(int_kind_name);
        if (int_kind < 0) return nullptr;
    }
    if (offset < 0 || size < 0) {
        PyErr_Format(PyExc_ValueError, "Field offset and size must be >= 0, got %zd and %zd", offset, size);
        return nullptr;
    }
    const Py_ssize_t fixed = kind == k_enum ? int_size(int_kind) : int_size(kind);
    const bool sized_ok = kind == k_f32 ? size == 4
                          : kind == k_f64 ? size == 8
                          : kind == k_bool || kind == k_char ? size == 1
                          : kind == k_enum ? fixed != 0 && size == fixed
                          : fixed != 0 ? size == fixed
                                       : true;
    if (!sized_ok) {
        PyErr_Format(PyExc_ValueError, "a %U field cannot be %zd bytes", kind_name, size);
        return nullptr;
    }
    if ((kind == k_enum && !PyDict_Check(extra)) || (kind == k_struct && !PyType_Check(type)) ||
        (kind == k_custom && (!PyCallable_Check(type) || !PyCallable_Check(extra)))) {
        PyErr_Format(PyExc_TypeError, "a %U field needs its type and extra arguments", kind_name);
        return nullptr;
    }
    if (kind == k_struct && !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(type), record_type)) {
        PyErr_SetString(PyExc_TypeError, "a struct field's type must be a Record subclass");
        return nullptr;
    }
    auto* self = PyObject_GC_New(FieldObject, cls);
    if (self == nullptr) return nullptr;
    self->offset = offset;
    self->size = size;
    self->kind = kind;
    self->int_kind = int_kind;
    self->name = Py_NewRef(name);
    self->type = Py_NewRef(type);
    self->extra = Py_NewRef(extra);
    PyObject_GC_Track(self);
    return reinterpret_cast<PyObject*>(self);
}

int field_traverse(PyObject* self, visitproc visit, void* arg) noexcept {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_field(self)->type);
    Py_VISIT(as_field(self)->extra);
    return 0;
}

int field_clear(PyObject* self) noexcept {
    Py_CLEAR(as_field(self)->type);
    Py_CLEAR(as_field(self)->extra);
    return 0;
}

void field_dealloc(PyObject* self) noexcept {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    field_clear(self);
    Py_CLEAR(as_field(self)->name);
    type->tp_free(self);
    Py_DECREF(type);
}

// Whether [offset, offset + size) lies within [0, len), for sizes >= 0. Written so that
// nothing overflows: a Field's offset and size are any Py_ssize_t, and offset + size could
// wrap to a negative number that passes a naive `offset + size > len` test.
constexpr bool fits(Py_ssize_t offset, Py_ssize_t size, Py_ssize_t len) noexcept {
    return offset >= 0 && size >= 0 && offset <= len && size <= len - offset;
}

// offset + size for messages, without signed overflow.
unsigned long long end_of(Py_ssize_t offset, Py_ssize_t size) noexcept {
    return static_cast<unsigned long long>(offset) + static_cast<unsigned long long>(size);
}

// The record `obj` if this field may touch it, else nullptr with an exception set.
RecordObject* checked_record(FieldObject* f, PyObject* obj) noexcept {
    if (!PyObject_TypeCheck(obj, record_type)) {
        PyErr_Format(PyExc_TypeError, "field %U needs a struct record, got %s", f->name, Py_TYPE(obj)->tp_name);
        return nullptr;
    }
    RecordObject* rec = as_record(obj);
    // Also refuses a record that was never bound (size 0) and a field of another struct.
    if (!fits(f->offset, f->size, rec->size) || rec->mem == nullptr) {
        PyErr_Format(PyExc_ValueError, "field %U (bytes %zd..%llu) lies outside this %zd-byte record", f->name,
                     f->offset, end_of(f->offset, f->size), rec->size);
        return nullptr;
    }
    return rec;
}

template <class T>
T load(const char* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class T>
void store(char* p, T v) noexcept {
    std::memcpy(p, &v, sizeof v);
}

PyObject* load_int(int kind, const char* p) noexcept {
    switch (kind) {
        case k_u8: return PyLong_FromLong(load<std::uint8_t>(p));
        case k_i8: return PyLong_FromLong(load<std::int8_t>(p));
        case k_u16: return PyLong_FromLong(load<std::uint16_t>(p));
        case k_i16: return PyLong_FromLong(load<std::int16_t>(p));
        case k_u32: return PyLong_FromUnsignedLong(load<std::uint32_t>(p));
        case k_i32: return PyLong_FromLong(load<std::int32_t>(p));
        case k_u64: return PyLong_FromUnsignedLongLong(load<std::uint64_t>(p));
        case k_i64: return PyLong_FromLongLong(load<std::int64_t>(p));
        default: PyErr_SetString(PyExc_SystemError, "not an integer field"); return nullptr;
    }
}

// Reads field `f` of record `obj`, a Record the field fits in (checked_record).
PyObject* field_read(FieldObject* f, RecordObject* rec, PyObject* obj) noexcept {
    const char* p = rec->ptr + f->offset;
    switch (f->kind) {
        case k_u8: return PyLong_FromLong(load<std::uint8_t>(p));
        case k_i8: return PyLong_FromLong(load<std::int8_t>(p));
        case k_u16: return PyLong_FromLong(load<std::uint16_t>(p));
        case k_i16: return PyLong_FromLong(load<std::int16_t>(p));
        case k_u32: return PyLong_FromUnsignedLong(load<std::uint32_t>(p));
        case k_i32: return PyLong_FromLong(load<std::int32_t>(p));
        case k_u64: return PyLong_FromUnsignedLongLong(load<std::uint64_t>(p));
        case k_i64: return PyLong_FromLongLong(load<std::int64_t>(p));
        case k_f32: return PyFloat_FromDouble(load<float>(p));
        case k_f64: return PyFloat_FromDouble(load<double>(p));
        case k_bool: return PyBool_FromLong(*p != 0);
        case k_char: return PyBytes_FromStringAndSize(p, 1);
        case k_bytes: return PyBytes_FromStringAndSize(p, f->size);
        case k_enum: {
            PyObject* value = load_int(f->int_kind, p);
            if (value == nullptr) return nullptr;
            PyObject* member = PyDict_GetItemWithError(f->extra, value);  // borrowed
            if (member == nullptr) {
                if (!PyErr_Occurred()) {
                    PyErr_Format(PyExc_ValueError, "%U holds %R, which is not a valid %s", f->name, value,
                                 reinterpret_cast<PyTypeObject*>(f->type)->tp_name);
                }
                Py_DECREF(value);
                return nullptr;
            }
            Py_DECREF(value);
            return Py_NewRef(member);
        }
        case k_struct:
            return new_record(reinterpret_cast<PyTypeObject*>(f->type), rec->mem, rec->ptr + f->offset, f->size,
                              rec->readonly);
        case k_custom: {
            PyObject* offset = PyLong_FromSsize_t(f->offset);
            if (offset == nullptr) return nullptr;
            PyObject* out = PyObject_CallFunctionObjArgs(f->type, obj, offset, nullptr);
            Py_DECREF(offset);
            return out;
        }
        default: PyErr_SetString(PyExc_SystemError, "corrupt memkit.layout.Field"); return nullptr;
    }
}

PyObject* field_get(PyObject* self, PyObject* obj, PyObject* /*type*/) noexcept {
    if (obj == nullptr) return Py_NewRef(self);  // Class.field: the descriptor itself
    FieldObject* f = as_field(self);
    RecordObject* rec = checked_record(f, obj);
    if (rec == nullptr) return nullptr;
    return field_read(f, rec, obj);
}

// Bounds of the integer kinds, for messages and checks.
struct IntRange {
    long long lo;
    unsigned long long hi;
    const char* text;
};

IntRange range_of(int kind) noexcept {
    switch (kind) {
        case k_u8: return {0, 0xFFull, "0..255"};
        case k_i8: return {-128, 127, "-128..127"};
        case k_u16: return {0, 0xFFFFull, "0..65535"};
        case k_i16: return {-32768, 32767, "-32768..32767"};
        case k_u32: return {0, 0xFFFFFFFFull, "0..4294967295"};
        case k_i32: return {-2147483648LL, 2147483647ull, "-2147483648..2147483647"};
        case k_u64: return {0, 0xFFFFFFFFFFFFFFFFull, "0..18446744073709551615"};
        default: return {std::numeric_limits<long long>::min(), 0x7FFFFFFFFFFFFFFFull,
                         "-9223372036854775808..9223372036854775807"};
    }
}

// Writes the integer `value` as `kind` at `p`; -1 with TypeError/OverflowError naming the field.
int store_int(FieldObject* f, int kind, char* p, PyObject* value) noexcept {
    PyObject* index = PyNumber_Index(value);
    if (index == nullptr) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%U is a %s field: expected an int, got %s", f->name, kind_names[kind],
                         Py_TYPE(value)->tp_name);
        }
        return -1;
    }
    const IntRange range = range_of(kind);
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        return -1;
    }
    unsigned long long u = 0;
    bool ok = false;
    if (overflow == 0) {
        ok = v >= range.lo && (v < 0 || static_cast<unsigned long long>(v) <= range.hi);
        u = static_cast<unsigned long long>(v);
    } else if (overflow > 0 && kind == k_u64) {
        u = PyLong_AsUnsignedLongLong(index);
        if (u == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
            PyErr_Clear();
        } else {
            ok = true;
        }
    }
    if (!ok) {
        PyErr_Format(PyExc_OverflowError, "%U is a %s field: %R is out of range (%s)", f->name, kind_names[kind],
                     index, range.text);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    switch (kind) {
        case k_u8: case k_i8: store(p, static_cast<std::uint8_t>(u)); break;
        case k_u16: case k_i16: store(p, static_cast<std::uint16_t>(u)); break;
        case k_u32: case k_i32: store(p, static_cast<std::uint32_t>(u)); break;
        default: store(p, static_cast<std::uint64_t>(u)); break;
    }
    return 0;
}

int store_float(FieldObject* f, char* p, PyObject* value) noexcept {
    const double d = PyFloat_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%U is a %s field: expected a float, got %s", f->name,
                         kind_names[f->kind], Py_TYPE(value)->tp_name);
        }
        return -1;
    }
    if (f->kind == k_f64) {
        store(p, d);
        return 0;
    }
    const auto x = static_cast<float>(d);
    if (std::isinf(x) && !std::isinf(d)) {  // struct.pack("f", ...)'s rule
        PyErr_Format(PyExc_OverflowError, "%U is an f32 field: %R is too large for f32", f->name, value);
        return -1;
    }
    store(p, x);
    return 0;
}

// Copies exactly `size` bytes of a bytes-like `value` to `p`.
int store_bytes(FieldObject* f, char* p, Py_ssize_t size, PyObject* value, const char* what) noexcept {
    Py_buffer view;
    if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%U is %s: expected a bytes-like object of %zd bytes, got %s", f->name, what,
                     size, Py_TYPE(value)->tp_name);
        return -1;
    }
    if (view.len != size) {
        PyErr_Format(PyExc_ValueError, "%U is %s: expected exactly %zd bytes, got %zd", f->name, what, size,
                     view.len);
        PyBuffer_Release(&view);
        return -1;
    }
    std::memmove(p, view.buf, static_cast<std::size_t>(size));
    PyBuffer_Release(&view);
    return 0;
}

// Writes `value` to field `f` of record `obj` (checked_record), or deletes (value == nullptr).
int field_write(FieldObject* f, RecordObject* rec, PyObject* obj, PyObject* value) noexcept {
    if (value == nullptr) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %U: struct fields always exist", f->name);
        return -1;
    }
    if (rec->readonly) {
        PyErr_Format(PyExc_TypeError, "cannot set %U: the view is read-only (its buffer is read-only)", f->name);
        return -1;
    }
    char* p = rec->ptr + f->offset;
    switch (f->kind) {
        case k_u8: case k_i8: case k_u16: case k_i16: case k_u32: case k_i32: case k_u64: case k_i64:
            return store_int(f, f->kind, p, value);
        case k_f32: case k_f64: return store_float(f, p, value);
        case k_bool: {
            const int truth = PyObject_IsTrue(value);
            if (truth < 0) return -1;
            *p = static_cast<char>(truth);
            return 0;
        }
        case k_char:
            if (PyLong_Check(value)) return store_int(f, k_u8, p, value);
            return store_bytes(f, p, 1, value, "a c_char field");
        case k_bytes: {
            if (PyUnicode_Check(value)) {
                PyErr_Format(PyExc_TypeError, "%U is Bytes(%zd): expected bytes, got str (encode it first)",
                             f->name, f->size);
                return -1;
            }
            const std::string what = "Bytes(" + std::to_string(f->size) + ")";
            return store_bytes(f, p, f->size, value, what.c_str());
        }
        case k_enum: {
            // A member or its integer value, as an integer field takes them. Anything else is a
            // TypeError before the lookup: 1.0 hashes like 1 and would find RED = 1.
            if (!PyLong_Check(value)) {
                PyErr_Format(PyExc_TypeError, "%U holds a %s: got %s", f->name,
                             reinterpret_cast<PyTypeObject*>(f->type)->tp_name, Py_TYPE(value)->tp_name);
                return -1;
            }
            PyObject* member = PyDict_GetItemWithError(f->extra, value);  // borrowed
            if (member == nullptr) {
                if (!PyErr_Occurred()) {
                    PyErr_Format(PyExc_ValueError, "%R is not a valid %s (field %U)", value,
                                 reinterpret_cast<PyTypeObject*>(f->type)->tp_name, f->name);
                }
                return -1;
            }
            return store_int(f, f->int_kind, p, member);
        }
        case k_struct: {
            if (Py_IS_TYPE(value, reinterpret_cast<PyTypeObject*>(f->type))) {
                RecordObject* src = as_record(value);
                if (src->mem == nullptr || src->size < f->size) {
                    PyErr_Format(PyExc_ValueError, "cannot copy an unbound record into %U", f->name);
                    return -1;
                }
                std::memmove(p, src->ptr, static_cast<std::size_t>(f->size));
                return 0;
            }
            if (PyObject_TypeCheck(value, record_type)) {
                PyErr_Format(PyExc_TypeError, "%U holds a %s, got a %s record", f->name,
                             reinterpret_cast<PyTypeObject*>(f->type)->tp_name, Py_TYPE(value)->tp_name);
                return -1;
            }
            const std::string what = std::string("a ") + reinterpret_cast<PyTypeObject*>(f->type)->tp_name;
            return store_bytes(f, p, f->size, value, what.c_str());
        }
        case k_custom: {
            PyObject* offset = PyLong_FromSsize_t(f->offset);
            if (offset == nullptr) return -1;
            PyObject* out = PyObject_CallFunctionObjArgs(f->extra, obj, offset, value, nullptr);
            Py_DECREF(offset);
            if (out == nullptr) return -1;
            Py_DECREF(out);
            return 0;
        }
        default: PyErr_SetString(PyExc_SystemError, "corrupt memkit.layout.Field"); return -1;
    }
}

int field_set(PyObject* self, PyObject* obj, PyObject* value) noexcept {
    FieldObject* f = as_field(self);
    RecordObject* rec = checked_record(f, obj);
    if (rec == nullptr) return -1;
    return field_write(f, rec, obj, value);
}

// ---- Record attribute access ------------------------------------------------------------------
//
// `rec.x` through PyObject_GenericGetAttr finds the Field in the class (CPython's type cache)
// and calls its __get__, which must re-check that `rec` is a Record. Records take the
// same cached lookup and read the field in place: a Field found on a Record's class is
// read directly, anything else (methods, class attributes) takes the generic path.

// A new reference to `name` looked up on `type` and its bases through CPython's type cache,
// or nullptr (no exception) when no class defines it. The reference is held while the
// field is used: a custom getter or setter may run code that replaces the class attribute.
PyObject* lookup_ref(PyTypeObject* type, PyObject* name) noexcept {
#if defined(Py_GIL_DISABLED)
    return _PyType_LookupRef(type, name);  // another thread may be changing the class
#else
    PyObject* found = _PyType_Lookup(type, name);  // borrowed; valid while the GIL is held
    Py_XINCREF(found);
    return found;
#endif
}

PyObject* record_getattro(PyObject* self, PyObject* name) noexcept {
    if (PyUnicode_CheckExact(name)) {
        PyObject* descr = lookup_ref(Py_TYPE(self), name);
        if (descr != nullptr && Py_IS_TYPE(descr, field_type)) {
            FieldObject* f = as_field(descr);
            RecordObject* rec = as_record(self);
            PyObject* out = !fits(f->offset, f->size, rec->size) || rec->mem == nullptr
                                ? field_get(descr, self, nullptr)  // raises, saying why
                                : field_read(f, rec, self);
            Py_DECREF(descr);
            return out;
        }
        Py_XDECREF(descr);
    }
    return PyObject_GenericGetAttr(self, name);
}

int record_setattro(PyObject* self, PyObject* name, PyObject* value) noexcept {
    if (PyUnicode_CheckExact(name)) {
        PyObject* descr = lookup_ref(Py_TYPE(self), name);
        if (descr != nullptr && Py_IS_TYPE(descr, field_type)) {
            FieldObject* f = as_field(descr);
            RecordObject* rec = as_record(self);
            const int out = !fits(f->offset, f->size, rec->size) || rec->mem == nullptr
                                ? field_set(descr, self, value)  // raises, saying why
                                : field_write(f, rec, self, value);
            Py_DECREF(descr);
            return out;
        }
        Py_XDECREF(descr);
    }
    return PyObject_GenericSetAttr(self, name, value);
}

PyObject* field_repr(PyObject* self) noexcept {
    FieldObject* f = as_field(self);
    return PyUnicode_FromFormat("<memkit field %U: %s at offset %zd, %zd bytes>", f->name, kind_names[f->kind],
                                f->offset, f->size);
}

PyObject* field_get_offset(PyObject* self, void* /*closure*/) noexcept {
    return PyLong_FromSsize_t(as_field(self)->offset);
}

PyObject* field_get_size(PyObject* self, void* /*closure*/) noexcept { return PyLong_FromSsize_t(as_field(self)->size); }

PyObject* field_get_name(PyObject* self, void* /*closure*/) noexcept { return Py_NewRef(as_field(self)->name); }

PyObject* field_get_kind(PyObject* self, void* /*closure*/) noexcept {
    return PyUnicode_FromString(kind_names[as_field(self)->kind]);
}

PyGetSetDef field_getset[] = {
    {"offset", &field_get_offset, nullptr, "Byte offset of the field in its struct.", nullptr},
    {"size", &field_get_size, nullptr, "Size of the field in bytes.", nullptr},
    {"name", &field_get_name, nullptr, "\"Struct.field\".", nullptr},
    {"kind", &field_get_kind, nullptr, "How the field is read: u8 ... f64, bool, char, bytes, enum, struct, custom.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot field_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(&field_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&field_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(&field_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&field_clear)},
    {Py_tp_descr_get, reinterpret_cast<void*>(&field_get)},
    {Py_tp_descr_set, reinterpret_cast<void*>(&field_set)},
    {Py_tp_repr, reinterpret_cast<void*>(&field_repr)},
    {Py_tp_getset, field_getset},
    {Py_tp_doc, const_cast<char*>("A struct field of memkit.layout: reads and writes a record's buffer.")},
    {0, nullptr},
};

PyType_Spec field_spec = {"memkit.layout.Field", static_cast<int>(sizeof(FieldObject)), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, field_slots};

// ---- module functions -------------------------------------------------------------------------

PyTypeObject* record_class(PyObject* cls) noexcept {
    if (!PyType_Check(cls) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls), record_type)) {
        PyErr_Format(PyExc_TypeError, "expected a memkit.layout struct class, got %R", cls);
        return nullptr;
    }
    return reinterpret_cast<PyTypeObject*>(cls);
}

// bind(cls, buffer, offset, size, align, what) -> a record of `cls` over bytes
// [offset, offset + size) of `buffer`, whose address must be a multiple of `align`.
PyObject* bind(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) noexcept {
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "bind() takes 6 arguments (%zd given)", nargs);
        return nullptr;
    }
    PyTypeObject* cls = record_class(args[0]);
    if (cls == nullptr) return nullptr;
    const Py_ssize_t offset = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
    if (offset == -1 && PyErr_Occurred()) return nullptr;
    const Py_ssize_t size = PyLong_AsSsize_t(args[3]);
    if (size == -1 && PyErr_Occurred()) return nullptr;
    const Py_ssize_t align = PyLong_AsSsize_t(args[4]);
    if (align == -1 && PyErr_Occurred()) return nullptr;
    PyObject* what = args[5];
    if (size < 0 || align < 1 || (align & (align - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "bind(): bad size or align");
        return nullptr;
    }
    if (!PyObject_CheckBuffer(args[1])) {
        PyErr_Format(PyExc_TypeError, "%U needs an object with the buffer protocol (bytearray, AlignedBuffer, "
                     "numpy array, mmap, ...), got %s", what, Py_TYPE(args[1])->tp_name);
        return nullptr;
    }
    PyObject* mem = PyMemoryView_FromObject(args[1]);
    if (mem == nullptr) return nullptr;
    const Py_buffer* view = PyMemoryView_GET_BUFFER(mem);
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyErr_Format(PyExc_ValueError, "%U needs a C-contiguous buffer", what);
        Py_DECREF(mem);
        return nullptr;
    }
    if (offset < 0) {
        PyErr_Format(PyExc_ValueError, "%U: offset must be >= 0, got %zd", what, offset);
        Py_DECREF(mem);
        return nullptr;
    }
    if (!fits(offset, size, view->len)) {
        PyErr_Format(PyExc_ValueError,
                     "%U: the buffer is too small: %zd bytes at offset %zd need at least %llu bytes, it has %zd", what,
                     size, offset, end_of(offset, size), view->len);
        Py_DECREF(mem);
        return nullptr;
    }
    char* ptr = static_cast<char*>(view->buf) + offset;
    const auto address = reinterpret_cast<std::uintptr_t>(ptr);
    if (address % static_cast<std::uintptr_t>(align) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%U: misaligned: the record needs an address that is a multiple of %zd, and offset %zd of "
                     "this buffer is at %p (%zd past one); use an AlignedBuffer or an aligned offset",
                     what, align, offset, static_cast<void*>(ptr),
                     static_cast<Py_ssize_t>(address % static_cast<std::uintptr_t>(align)));
        Py_DECREF(mem);
        return nullptr;
    }
    PyObject* out = new_record(cls, mem, ptr, size, view->readonly);
    Py_DECREF(mem);
    return out;
}

// sub(record, cls, offset, size) -> a record of `cls` over [offset, offset + size) of `record`.
PyObject* sub(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) noexcept {
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "sub() takes 4 arguments (%zd given)", nargs);
        return nullptr;
    }
    if (!PyObject_TypeCheck(args[0], record_type)) {
        PyErr_Format(PyExc_TypeError, "sub() needs a record, got %s", Py_TYPE(args[0])->tp_name);
        return nullptr;
    }
    RecordObject* parent = as_record(args[0]);
    PyTypeObject* cls = record_class(args[1]);
    if (cls == nullptr) return nullptr;
    const Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if (offset == -1 && PyErr_Occurred()) return nullptr;
    const Py_ssize_t size = PyLong_AsSsize_t(args[3]);
    if (size == -1 && PyErr_Occurred()) return nullptr;
    if (parent->mem == nullptr || !fits(offset, size, parent->size)) {
        PyErr_Format(PyExc_ValueError, "sub(): %zd bytes at offset %zd lie outside the %zd-byte record", size,
                     offset, parent->size);
        return nullptr;
    }
    return new_record(cls, parent->mem, parent->ptr + offset, size, parent->readonly);
}

// readonly(record) -> bool
PyObject* readonly(PyObject* /*module*/, PyObject* arg) noexcept {
    if (!PyObject_TypeCheck(arg, record_type)) {
        PyErr_Format(PyExc_TypeError, "readonly() needs a record, got %s", Py_TYPE(arg)->tp_name);
        return nullptr;
    }
    return PyBool_FromLong(as_record(arg)->readonly);
}

// address(record) -> int: where the record's first byte is.
PyObject* address(PyObject* /*module*/, PyObject* arg) noexcept {
    if (!PyObject_TypeCheck(arg, record_type)) {
        PyErr_Format(PyExc_TypeError, "address() needs a record, got %s", Py_TYPE(arg)->tp_name);
        return nullptr;
    }
    return PyLong_FromVoidPtr(as_record(arg)->ptr);
}

PyMethodDef module_functions[] = {
    {"bind", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&bind)), METH_FASTCALL,
     "bind(cls, buffer, offset, size, align, what, /)\n--\n\n"
     "A record of `cls` over `size` bytes of `buffer` at `offset` (checked: contiguous, in bounds, aligned)."},
    {"sub", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&sub)), METH_FASTCALL,
     "sub(record, cls, offset, size, /)\n--\n\nA record of `cls` over part of `record`'s memory."},
    {"readonly", reinterpret_cast<PyCFunction>(&readonly), METH_O,
     "readonly(record, /)\n--\n\nWhether the record's memory is read-only."},
    {"address", reinterpret_cast<PyCFunction>(&address), METH_O,
     "address(record, /)\n--\n\nThe address of the record's first byte."},
    {nullptr, nullptr, 0, nullptr},
};

PyObject* make_type(PyType_Spec* spec, PyTypeObject** out) {
    PyObject* type = PyType_FromSpec(spec);
    if (type == nullptr) throw py::error_already_set();
    *out = reinterpret_cast<PyTypeObject*>(type);
    return type;
}

}  // namespace

void register_layout(py::module_& m) {
    m.attr("Record") = py::reinterpret_steal<py::object>(make_type(&record_spec, &record_type));
    m.attr("Field") = py::reinterpret_steal<py::object>(make_type(&field_spec, &field_type));
    // The statics above outlive the module attributes.
    Py_INCREF(record_type);
    Py_INCREF(field_type);
    if (PyModule_AddFunctions(m.ptr(), module_functions) < 0) throw py::error_already_set();
}

}  // namespace memkit::bindings
