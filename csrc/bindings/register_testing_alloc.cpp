// memkit._core._testing.FaultScope: makes one chosen allocation of the calling thread fail,
// for the allocation-failure sweep (tests/test_alloc_failure.py).
//
// Between begin() and end(), the thread that began the scope has its allocation points
// numbered from 0:
//   - every request it makes through CPython's allocators (malloc, calloc or realloc of
//     one byte or more in the raw, mem or object domain), seen by a thin pass-through layer
//     put over the allocators for the scope's duration;
//   - every allocation memkit's core makes for it (aligned buffers, arena chunks, pool
//     blocks, atomic arrays), seen through core::set_allocation_gate.
// The point numbered `fail_at` fails, and no other one (fail_at = -1 only counts). When
// that point cannot fail (see below), the next one that can fails instead; `failed_at`
// says which did. Requests of exactly `spare_size` bytes are not points: CPython 3.12 and
// 3.13.0 crash when a function object cannot be allocated (MAKE_FUNCTION releases the code
// object twice, python/cpython#122752), so there the sweep spares that size.
//
// A CPython request fails through memkit's own budget, exactly as inside a
// memkit.alloc.limit() block: the scope is a hook::Scope with a budget (hook.hpp), roomy
// until the chosen point, where it drops to the bytes the scope holds, so the hook refuses
// the request, sets `refused` and raises nothing itself - CPython turns the NULL into
// MemoryError. Afterwards the budget is roomy again: one failure per scope. A request the
// budget cannot refuse (a realloc that does not grow) passes, and the next point is
// chosen. A core allocation fails by std::bad_alloc, as when the OS refuses.
//
// The layer only passes calls on (it keeps the context pointer of the allocator below, so
// a thread reading the allocator struct while it is swapped sees a consistent pair), and
// only the armed thread's calls are counted. One FaultScope at a time.
#include "pybind11.hpp"

#include <cstdint>
#include <memory>

#include "../core/aligned.hpp"
#include "../hook/hook.hpp"
#include "fastcall.hpp"

namespace memkit::bindings {

namespace {

constexpr std::int64_t kRoomy = std::int64_t{1} << 60;

// What the hook, the layer and the gate point at while a scope is begun. Heap-allocated on
// its own, so that an abandoned scope collected on another thread can leave it behind.
struct FaultState {
    hook::Scope scope;             // the budget: kRoomy except at the chosen point
    std::int64_t fail_at = -1;     // the point to fail, -1 for none
    std::int64_t points = 0;       // points counted so far
    std::int64_t failed_at = -1;   // the point that failed, -1 while none has
    std::size_t spare_size = 0;    // requests of this size are never points (0: none)
    bool begun = false;
    bool ended = false;
    unsigned long thread = 0;

    FaultState() { scope.set_limit(kRoomy); }

    // Counts a point; true when it is the one to fail.
    bool choose() noexcept {
        const std::int64_t index = points++;
        return fail_at >= 0 && failed_at < 0 && index >= fail_at;
    }
};

thread_local FaultState* armed = nullptr;  // the scope counting this thread's points
FaultState* active = nullptr;              // the one scope begun and not ended (GIL-guarded)

constexpr PyMemAllocatorDomain kDomains[] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
PyMemAllocatorEx below[3];  // what the layer passes calls to; kept after end() for stragglers

// A request of `n` bytes that the chosen point must fail: made with the budget lowered to
// what the scope holds, so the hook refuses it (unless it cannot; see the file comment).
//
// A budget is never below zero, so when the scope holds fewer than zero net bytes (it freed
// more than it allocated) its net is lifted to zero for the call and put back after: only
// this thread charges a current-thread scope, so nothing else sees the difference.
template <class Call>
void* refuse(FaultState* fs, Call&& call) noexcept {
    hook::Scope& s = fs->scope;
    const std::int64_t held = s.net.load(std::memory_order_relaxed);
    const std::int64_t lift = held < 0 ? -held : 0;
    s.net.store(held + lift, std::memory_order_relaxed);
    s.set_limit(held + lift);
    void* block = call();
    s.set_limit(kRoomy);
    s.net.store(s.net.load(std::memory_order_relaxed) - lift, std::memory_order_relaxed);
    if (block == nullptr && s.refused.load(std::memory_order_relaxed) >= 0) fs->failed_at = fs->points - 1;
    return block;
}

template <int D>
void* layer_malloc(void* ctx, std::size_t n) noexcept {
    FaultState* fs = armed;
    if (fs == nullptr || n == 0 || n == fs->spare_size || !fs->choose()) return below[D].malloc(ctx, n);
    return refuse(fs, [&] { return below[D].malloc(ctx, n); });
}

template <int D>
void* layer_calloc(void* ctx, std::size_t nelem, std::size_t elsize) noexcept {
    FaultState* fs = armed;
    std::size_t n = 0;
    if (fs == nullptr || __builtin_mul_overflow(nelem, elsize, &n) || n == 0 || n == fs->spare_size ||
        !fs->choose()) {
        return below[D].calloc(ctx, nelem, elsize);
    }
    return refuse(fs, [&] { return below[D].calloc(ctx, nelem, elsize); });
}

template <int D>
void* layer_realloc(void* ctx, void* block, std::size_t n) noexcept {
    FaultState* fs = armed;
    if (fs == nullptr || n == 0 || n == fs->spare_size || !fs->choose()) return below[D].realloc(ctx, block, n);
    return refuse(fs, [&] { return below[D].realloc(ctx, block, n); });
}

template <int D>
void layer_free(void* ctx, void* block) noexcept {
    below[D].free(ctx, block);
}

template <int D>
PyMemAllocatorEx layer_for(void* ctx) noexcept {
    return PyMemAllocatorEx{ctx, &layer_malloc<D>, &layer_calloc<D>, &layer_realloc<D>, &layer_free<D>};
}

PyMemAllocatorEx layer_for(int d, void* ctx) noexcept {
    return d == 0 ? layer_for<0>(ctx) : d == 1 ? layer_for<1>(ctx) : layer_for<2>(ctx);
}

bool core_gate() noexcept {
    FaultState* fs = armed;
    if (fs == nullptr || !fs->choose()) return true;
    fs->failed_at = fs->points - 1;
    return false;
}

void install_layer() noexcept {
    for (int d = 0; d < 3; ++d) {
        PyMem_GetAllocator(kDomains[d], &below[d]);
        PyMemAllocatorEx ours = layer_for(d, below[d].ctx);
        PyMem_SetAllocator(kDomains[d], &ours);
    }
    core::set_allocation_gate(&core_gate);
}

// False (nothing changed) if another allocator was put over the layer meanwhile.
bool remove_layer() noexcept {
    for (int d = 0; d < 3; ++d) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(kDomains[d], &current);
        if (current.malloc != layer_for(d, nullptr).malloc) return false;
    }
    core::set_allocation_gate(nullptr);
    for (int d = 0; d < 3; ++d) PyMem_SetAllocator(kDomains[d], &below[d]);
    return true;
}

// Disarms the thread and takes the scope off the hook and the layer off the allocators.
void finish(FaultState& fs) noexcept {
    armed = nullptr;
    hook::end_scope(&fs.scope);
    fs.ended = true;
    active = nullptr;
}

struct FaultScope {
    FaultState* state = new FaultState();

    FaultScope() = default;
    FaultScope(const FaultScope&) = delete;
    FaultScope& operator=(const FaultScope&) = delete;
    ~FaultScope() {
        if (state->begun && !state->ended) {
            // Abandoned while begun. On its own thread: end it. On another thread, the
            // hook and the layer may still reach the state: leave it allocated.
            if (PyThread_get_thread_ident() != state->thread) return;
            finish(*state);
            (void)remove_layer();
        }
        delete state;
    }
};

PyObject* begin(FaultScope& self) {
    FaultState& fs = *self.state;
    if (fs.begun) raise(PyExc_RuntimeError, "a FaultScope can be begun once");
    if (active != nullptr) raise(PyExc_RuntimeError, "another FaultScope is active");
    if (!hook::install()) throw py::error_already_set();  // the budget needs the hook below the layer
    if (!hook::begin_scope(&fs.scope)) throw py::error_already_set();
    fs.begun = true;
    fs.thread = PyThread_get_thread_ident();
    active = &fs;
    install_layer();
    armed = &fs;  // last: nothing above is counted
    Py_RETURN_NONE;
}

PyObject* end(FaultScope& self) {
    FaultState& fs = *self.state;
    if (!fs.begun || fs.ended) Py_RETURN_NONE;
    if (PyThread_get_thread_ident() != fs.thread) raise(PyExc_RuntimeError, "a FaultScope must end on its own thread");
    finish(fs);
    if (!remove_layer()) {
        raise(PyExc_RuntimeError, "another allocator hook was installed over the FaultScope layer; it stays in place");
    }
    Py_RETURN_NONE;
}

// begin() and end() are plain CPython methods: pybind11's dispatcher allocates, and those
// allocations would count as points of the code under test.
PyMethodDef fault_methods[] = {
    fastcall::noargs<begin>("begin", "begin($self, /)\n--\n\nStart counting (and failing) this thread's allocation points."),
    fastcall::noargs<end>("end", "end($self, /)\n--\n\nStop; the counts stay readable."),
    fastcall::end(),
};

}  // namespace

void register_testing_alloc(py::module_& m) {
    py::class_<FaultScope> cls(m, "FaultScope",
                           "Fails one chosen allocation point of the calling thread (tests only; see\n"
                           "csrc/bindings/register_testing_alloc.cpp). Stands in for the _Scope of a\n"
                           "memkit.alloc.Limit.");
    cls.def(py::init([](std::int64_t fail_at, std::size_t spare_size) {
                 if (fail_at < -1) raise(PyExc_ValueError, "fail_at must be >= -1");
                 auto fs = std::make_unique<FaultScope>();
                 fs->state->fail_at = fail_at;
                 fs->state->spare_size = spare_size;
                 return fs;
             }),
             py::arg("fail_at"), py::arg("spare_size") = 0)
        .def_property_readonly("points", [](const FaultScope& fs) { return fs.state->points; },
                               "Allocation points counted so far.")
        .def_property_readonly("failed_at", [](const FaultScope& fs) { return fs.state->failed_at; },
                               "The point that failed, or -1.")
        .def_property_readonly("allocations", [](const FaultScope& fs) { return fs.state->scope.allocations.load(); })
        .def_property_readonly("frees", [](const FaultScope& fs) { return fs.state->scope.frees.load(); })
        .def_property_readonly("allocated_bytes", [](const FaultScope& fs) { return fs.state->scope.allocated_bytes.load(); })
        .def_property_readonly("freed_bytes", [](const FaultScope& fs) { return fs.state->scope.freed_bytes.load(); })
        .def_property_readonly("net_bytes", [](const FaultScope& fs) { return fs.state->scope.net.load(); })
        .def_property_readonly("peak_bytes", [](const FaultScope& fs) { return fs.state->scope.peak.load(); })
        .def_property_readonly("refused", [](const FaultScope& fs) { return fs.state->scope.refused.load(); });
    fastcall::add_methods(cls, fault_methods);
    fastcall::set_checked_new(cls);
}

}  // namespace memkit::bindings
