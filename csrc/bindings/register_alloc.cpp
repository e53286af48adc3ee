// memkit._core.alloc: the allocator hook's Python face (csrc/hook/hook.hpp), plus private
// helpers that make exact-size allocations in a chosen domain for memkit's own tests.
#include "pybind11.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "../hook/hook.hpp"
#include "fastcall.hpp"

namespace memkit::bindings {

namespace {

py::object int_of(std::uint64_t v) { return steal_or_throw(PyLong_FromUnsignedLongLong(v)); }
py::object int_of(std::int64_t v) { return steal_or_throw(PyLong_FromLongLong(v)); }

py::dict as_dict(const hook::Counters& c) {
    auto d = steal_or_throw<py::dict>(PyDict_New());
    d["allocations"] = int_of(c.allocations);
    d["frees"] = int_of(c.frees);
    d["reallocs"] = int_of(c.reallocs);
    d["current_bytes"] = int_of(c.current_bytes);
    d["peak_bytes"] = int_of(c.peak_bytes);
    d["total_bytes"] = int_of(c.total_bytes);
    auto histogram = steal_or_throw<py::dict>(PyDict_New());  // {upper bound in bytes: allocations}, non-empty only
    for (int b = 0; b < hook::kBuckets; ++b) {
        if (c.histogram[b] != 0) histogram[int_of(std::uint64_t{1} << b)] = int_of(c.histogram[b]);
    }
    d["histogram"] = histogram;
    return d;
}

hook::Domain to_domain(const std::string& name) {
    if (name == "raw") return hook::kRaw;
    if (name == "mem") return hook::kMem;
    if (name == "object") return hook::kObj;
    raise(PyExc_ValueError, "domain must be 'raw', 'mem' or 'object', got " + name);
}

void* allocate_in(hook::Domain d, std::size_t n) noexcept {
    switch (d) {
        case hook::kRaw: return PyMem_RawMalloc(n);
        case hook::kMem: return PyMem_Malloc(n);
        default: return PyObject_Malloc(n);
    }
}

void* realloc_in(hook::Domain d, void* block, std::size_t n) noexcept {
    switch (d) {
        case hook::kRaw: return PyMem_RawRealloc(block, n);
        case hook::kMem: return PyMem_Realloc(block, n);
        default: return PyObject_Realloc(block, n);
    }
}

void free_in(hook::Domain d, void* block) noexcept {
    switch (d) {
        case hook::kRaw: PyMem_RawFree(block); break;
        case hook::kMem: PyMem_Free(block); break;
        default: PyObject_Free(block); break;
    }
}

// A helper's int result, built uncounted (hook::Uncounted): inside a tripped limit() the
// block a helper was just granted may leave no room for the int that reports it, and a
// refused int would lose the block (pybind11 would report it as a TypeError, too). nullptr
// with MemoryError set only when the system itself has no memory left.
PyObject* uncounted_int(std::uint64_t v) noexcept {
    hook::Uncounted quiet;
    return PyLong_FromUnsignedLongLong(v);
}

py::object int_result(std::uint64_t v) { return steal_or_throw(uncounted_int(v)); }

// The address of `block` as an int; if even that cannot be made, the block is freed (in
// domain `d`) and MemoryError raised: nothing is left that the caller could not free.
py::object address_or_free(hook::Domain d, void* block) {
    PyObject* address = uncounted_int(reinterpret_cast<std::uintptr_t>(block));
    if (address == nullptr) {
        free_in(d, block);
        throw py::error_already_set();
    }
    return py::reinterpret_steal<py::object>(address);
}

[[noreturn]] void no_memory() {
    PyErr_NoMemory();
    throw py::error_already_set();
}

py::object test_allocate(const std::string& domain, py::handle nbytes) {
    const std::size_t n = to_size(nbytes.ptr(), "nbytes");
    const hook::Domain d = to_domain(domain);
    void* p = allocate_in(d, n);
    if (p == nullptr) no_memory();  // refused (or out of memory): nothing was made
    return address_or_free(d, p);
}

py::object test_realloc(const std::string& domain, std::uintptr_t address, py::handle nbytes) {
    const std::size_t n = to_size(nbytes.ptr(), "nbytes");
    const hook::Domain d = to_domain(domain);
    void* p = realloc_in(d, reinterpret_cast<void*>(address), n);
    if (p == nullptr) no_memory();  // refused: the block is untouched, still the caller's to free
    return address_or_free(d, p);
}

void test_free(const std::string& domain, std::uintptr_t address) {
    free_in(to_domain(domain), reinterpret_cast<void*>(address));
}

constexpr std::size_t kMaxHelperThreads = 64;

// Runs `body(t)` on `nthreads` OS threads (at most kMaxHelperThreads, else ValueError), the
// GIL released, all started before any begins (so they race), and joins them. If the OS
// refuses a thread, those already made are released to finish and joined before
// RuntimeError is raised: a joinable std::thread destroyed would end the process.
template <class Body>
void run_threads(std::size_t nthreads, Body&& body) {
    if (nthreads > kMaxHelperThreads) {
        raise(PyExc_ValueError, "at most " + std::to_string(kMaxHelperThreads) + " threads, got " + std::to_string(nthreads));
    }
    bool started = true;
    {
        py::gil_scoped_release unlocked;
        std::atomic<int> gate{0};  // 0 wait, 1 go, -1 stop
        std::vector<std::thread> threads;
        threads.reserve(nthreads);
        try {
            for (std::size_t t = 0; t < nthreads; ++t) {
                threads.emplace_back([&gate, &body, t] {
                    int g;
                    while ((g = gate.load()) == 0) std::this_thread::yield();
                    if (g > 0) body(t);
                });
            }
            gate.store(1);
        } catch (const std::system_error&) {
            gate.store(-1);
            started = false;
        }
        for (std::thread& th : threads) th.join();
    }
    if (!started) raise(PyExc_RuntimeError, "could not start the helper's threads");
}

// `nthreads` OS threads each allocate and free `iterations` raw-domain blocks of varying
// size without the GIL (what C extensions may do), holding a few at a time. Returns the
// number of allocations made. The GIL is released meanwhile, so Python threads may
// install and uninstall the hook while these run.
py::object raw_churn(std::size_t nthreads, std::size_t iterations) {
    std::atomic<std::uint64_t> made{0};
    run_threads(nthreads, [&made, iterations](std::size_t t) {
        std::minstd_rand rng(static_cast<unsigned>(t + 1));
        void* held[8] = {};
        for (std::size_t i = 0; i < iterations; ++i) {
            const std::size_t slot = i % 8;
            if (held[slot] != nullptr) {
                if (rng() % 3 == 0) {
                    void* grown = PyMem_RawRealloc(held[slot], 1 + rng() % 3000);
                    if (grown != nullptr) held[slot] = grown;
                }
                PyMem_RawFree(held[slot]);
            }
            held[slot] = PyMem_RawMalloc(1 + rng() % 2000);
            if (held[slot] != nullptr) {
                static_cast<unsigned char*>(held[slot])[0] = 1;  // touch it
                made.fetch_add(1, std::memory_order_relaxed);
            }
        }
        for (void* p : held) PyMem_RawFree(p);
    });
    return int_result(made.load());
}

// One OS thread per entry of `sizes`, all started together, each making `iterations`
// raw-domain requests of that many bytes without the GIL and freeing each block at once.
// Returns how many requests each thread had refused, in order: with a threads="all"
// limit() running, the exact check that requests that fit are never refused while others
// that do not are (tests/test_regressions.py).
py::list raw_requests(py::handle sizes_in, std::size_t iterations) {
    auto seq = steal_or_throw(PySequence_Fast(sizes_in.ptr(), "sizes must be a sequence of ints"));
    std::vector<std::size_t> sizes;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.ptr()); ++i) {
        sizes.push_back(to_size(PySequence_Fast_GET_ITEM(seq.ptr(), i), "size"));
    }
    std::vector<std::uint64_t> refused(sizes.size(), 0);
    run_threads(sizes.size(), [&sizes, &refused, iterations](std::size_t t) {
        for (std::size_t i = 0; i < iterations; ++i) {
            void* p = PyMem_RawMalloc(sizes[t]);
            if (p == nullptr) {
                ++refused[t];
                continue;
            }
            static_cast<unsigned char*>(p)[0] = 1;  // touch it
            PyMem_RawFree(p);
        }
    });
    auto out = steal_or_throw<py::list>(PyList_New(static_cast<Py_ssize_t>(refused.size())));
    for (std::size_t t = 0; t < refused.size(); ++t) {
        PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(t), int_result(refused[t]).release().ptr());
    }
    return out;
}

// `iterations` object-domain allocations and frees of small random sizes, holding up to
// `live` blocks at a time (replaced at random, so frees come in no particular order):
// the hook's per-call cost without the interpreter around it. Returns the nanoseconds.
py::object object_churn(std::size_t iterations, std::size_t live) {
    if (live == 0 || live > (std::size_t{1} << 24)) raise(PyExc_ValueError, "live must be in 1..2**24");
    std::vector<void*> held(live, nullptr);
    std::minstd_rand rng(42);
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < iterations; ++i) {
        void*& slot = held[rng() % live];
        PyObject_Free(slot);
        slot = PyObject_Malloc(16 + rng() % 200);
        if (slot == nullptr) break;
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    for (void* p : held) PyObject_Free(p);
    return int_result(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
}

// A tracker/budget owned by Python: the hook charges it between begin() and end().
struct ScopeHandle {
    hook::Scope* scope = new hook::Scope();
    bool begun = false;
    bool ended = false;
    unsigned long thread = 0;  // who began a current-thread scope

    ScopeHandle() = default;
    ScopeHandle(const ScopeHandle&) = delete;
    ScopeHandle& operator=(const ScopeHandle&) = delete;
    ~ScopeHandle() {
        if (begun && !ended) {
            // Entered and never exited (an abandoned generator, say). The hook still
            // points at it: end it if this is its thread, else leak it rather than leave
            // the hook a dangling pointer.
            if (scope->all_threads || PyThread_get_thread_ident() == thread) {
                hook::end_scope(scope);
            } else {
                return;  // leaked on purpose
            }
        }
        delete scope;
    }
};

PyObject* scope_begin(ScopeHandle& h) {
    if (h.begun) raise(PyExc_RuntimeError, "a tracker or limit can be entered once");
    if (!hook::begin_scope(h.scope)) throw py::error_already_set();
    h.begun = true;
    h.thread = PyThread_get_thread_ident();
    Py_RETURN_NONE;
}

PyObject* scope_end(ScopeHandle& h) {
    if (!h.begun || h.ended) Py_RETURN_NONE;
    if (!h.scope->all_threads && PyThread_get_thread_ident() != h.thread) {
        raise(PyExc_RuntimeError, "a threads='current' tracker must be exited by the thread that entered it");
    }
    hook::end_scope(h.scope);
    h.ended = true;
    Py_RETURN_NONE;
}

// Plain CPython methods, not pybind11's dispatcher: that allocates before the body runs,
// and an end() refused by the very budget it ends would leave the budget charging.
// The counters, as plain getters too: pybind11 reports an int it cannot allocate as a
// TypeError ("Unable to convert function return value"), these as the MemoryError it is.
template <class T, std::atomic<T> hook::Scope::*Field>
PyObject* scope_counter(ScopeHandle& h) {
    const T value = (h.scope->*Field).load();
    if constexpr (std::is_signed_v<T>) {
        return PyLong_FromLongLong(static_cast<long long>(value));
    } else {
        return PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(value));
    }
}

PyGetSetDef scope_getters[] = {
    fastcall::getter<scope_counter<std::uint64_t, &hook::Scope::allocations>>("allocations", "Blocks allocated."),
    fastcall::getter<scope_counter<std::uint64_t, &hook::Scope::frees>>("frees", "Counted blocks freed."),
    fastcall::getter<scope_counter<std::int64_t, &hook::Scope::allocated_bytes>>("allocated_bytes", "Bytes allocated."),
    fastcall::getter<scope_counter<std::int64_t, &hook::Scope::freed_bytes>>("freed_bytes", "Bytes freed."),
    fastcall::getter<scope_counter<std::int64_t, &hook::Scope::net>>("net_bytes", "allocated_bytes - freed_bytes."),
    fastcall::getter<scope_counter<std::int64_t, &hook::Scope::peak>>("peak_bytes", "The high-water mark of net_bytes."),
    fastcall::getter<scope_counter<std::int64_t, &hook::Scope::refused>>("refused", "The first refused request, or -1."),
    fastcall::end_getters(),
};

PyMethodDef scope_methods[] = {
    fastcall::noargs<scope_begin>("begin", "begin($self, /)\n--\n\nStart charging this scope."),
    fastcall::noargs<scope_end>("end", "end($self, /)\n--\n\nStop charging it (the counts stay readable)."),
    fastcall::end(),
};

}  // namespace

void register_alloc(py::module_& m) {
    py::class_<ScopeHandle> scope_cls(m, "_Scope", "Private: the hook's tracker/budget record (memkit.alloc.track/limit).");
    scope_cls
        .def(py::init([](long long limit, bool all_threads) {
                 auto h = std::make_unique<ScopeHandle>();
                 h->scope->set_limit(limit);
                 h->scope->all_threads = all_threads;
                 return h;
             }),
             py::arg("limit"), py::arg("all_threads"));
    fastcall::add_methods(scope_cls, scope_methods);
    fastcall::add_getters(scope_cls, scope_getters);
    fastcall::set_checked_new(scope_cls);  // track() and limit() must not crash when memory runs out

    m.def(
        "install",
        [] {
            if (!hook::install()) throw py::error_already_set();
        },
        "Start counting allocations in every domain (idempotent).");
    m.def(
        "uninstall",
        [] {
            if (!hook::uninstall()) throw py::error_already_set();
        },
        "Stop counting (RuntimeError if another hook sits on top of memkit's).");
    m.def("installed", &hook::installed, "Whether memkit is counting allocations.");
    m.def("reset_peak", &hook::reset_peak, "Set every peak to the current live bytes.");
    m.def(
        "stats",
        [] {
            // Read every counter before making any Python object: building the dicts
            // allocates, and those allocations must not land between the readings.
            const hook::Counters total = hook::totals();
            const hook::Counters raw = hook::domain_totals(hook::kRaw);
            const hook::Counters mem = hook::domain_totals(hook::kMem);
            const hook::Counters obj = hook::domain_totals(hook::kObj);
            py::dict out = as_dict(total);
            auto by_domain = steal_or_throw<py::dict>(PyDict_New());
            by_domain["raw"] = as_dict(raw);
            by_domain["mem"] = as_dict(mem);
            by_domain["object"] = as_dict(obj);
            out["by_domain"] = by_domain;
            return out;
        },
        "The counters since install, as a dict (memkit.alloc.stats() wraps it in AllocStats).");
    m.def("_allocate", &test_allocate, py::arg("domain"), py::arg("nbytes"),
          "Private (tests): allocate exactly nbytes in a domain; returns the address. MemoryError if\n"
          "the allocation is refused (a limit()) or fails: then nothing was allocated. The address\n"
          "is built uncounted, so a budget never refuses it; should even that fail, the block is\n"
          "freed before MemoryError is raised.");
    m.def("_realloc", &test_realloc, py::arg("domain"), py::arg("address"), py::arg("nbytes"),
          "Private (tests): resize a block from _allocate; returns its new address. MemoryError if\n"
          "the resize is refused or fails: the block is untouched and still the caller's. Should\n"
          "the (uncounted) address int itself fail, the resized block is freed and MemoryError\n"
          "raised: the old address is gone then.");
    m.def("_free", &test_free, py::arg("domain"), py::arg("address"), "Private (tests): free a block from _allocate.");
    m.def(
        "_bookkeeping",
        [] {
            const hook::Bookkeeping b = hook::bookkeeping();
            py::dict d;
            d["layers"] = py::make_tuple(b.layers[hook::kRaw], b.layers[hook::kMem], b.layers[hook::kObj]);
            d["leaves"] = b.leaves;
            return d;
        },
        "Private (tests): what the hook keeps for itself - layers made per domain (raw, mem, object) "
        "and shadow-map leaves mapped.");
    m.def("_object_churn", &object_churn, py::arg("iterations"), py::arg("live"),
          "Private (benchmarks): object-domain allocations and frees in a tight loop; returns nanoseconds.");
    m.def("_raw_churn", &raw_churn, py::arg("nthreads"), py::arg("iterations"),
          "Private (tests): OS threads (at most 64) allocating and freeing raw-domain blocks without the GIL.");
    m.def("_raw_requests", &raw_requests, py::arg("sizes"), py::arg("iterations"),
          "Private (tests): one OS thread per size (at most 64), started together, each making `iterations`\n"
          "raw-domain requests of that size without the GIL (freeing each block at once); returns\n"
          "how many requests each thread had refused.");
}

}  // namespace memkit::bindings
