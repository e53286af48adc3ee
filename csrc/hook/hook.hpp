// memkit's allocator hook: the one place that talks to CPython's PyMem_* allocators.
//
// install() puts a layer over the raw, mem and object domains (PyMem_SetAllocator) that
// wraps whatever allocator was there and counts every block with its true size, kept in a
// 16-byte header in front of the block. Frees read the size back from the header, so they
// are exact; blocks without memkit's header (allocated before install, or by another
// layer) are recognised by the header's tag and passed through uncounted.
//
// uninstall() cannot hand the domains back while blocks with headers are alive - the
// previous allocator would free the wrong address - so it switches the layer to
// pass-through: no counting, no new headers, old headers still stripped on free.
//
// Rules for the intercepts (they run inside every allocation of the interpreter): never
// call Python, never allocate through PyMem, never block; re-entrancy is guarded with a
// thread-local flag; all shared state is atomic, because the raw domain is called without
// the GIL from any thread.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>

namespace memkit::hook {

enum Domain : int { kRaw = 0, kMem = 1, kObj = 2, kDomains = 3 };

struct Counters {
    std::uint64_t allocations = 0;  // mallocs and callocs (and reallocs of NULL)
    std::uint64_t frees = 0;
    std::uint64_t reallocs = 0;
    std::uint64_t total_bytes = 0;    // bytes handed out: allocations plus realloc growth
    std::int64_t current_bytes = 0;   // live bytes allocated since install
    std::int64_t peak_bytes = 0;      // high-water mark of current_bytes
};

// Turns counting on (installing the layer over the current allocators if memkit's layer
// is not the active one). Returns false with a Python exception set on failure.
// Precondition: the GIL is held.
bool install();

// Turns counting off. RuntimeError (false) if another hook sits on top of memkit's layer.
// Precondition: the GIL is held.
bool uninstall();

bool installed() noexcept;

// A tracker or a budget: what one thread (or every thread) allocates and frees between
// begin and end. `limit` >= 0 makes it a budget: an allocation that would take `net` past
// it fails (returns NULL) before it is made, and `refused` remembers its size.
struct Scope {
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> frees{0};
    std::atomic<std::int64_t> allocated_bytes{0};
    std::atomic<std::int64_t> freed_bytes{0};
    std::atomic<std::int64_t> net{0};
    std::atomic<std::int64_t> peak{0};
    std::atomic<std::int64_t> refused{-1};  // the first refused request, or -1
    // Set by the first refusal. From then on the budget grows by kGrace: raising and
    // handling the MemoryError needs memory too (tracebacks, frames), and refusing those
    // allocations as well would leave the interpreter unable to unwind the block.
    std::atomic<bool> tripped{false};
    std::int64_t limit = -1;
    bool all_threads = false;
};

constexpr std::int64_t kGrace = std::int64_t{1} << 20;

// Starts charging `scope` with the calling thread's allocations (or every thread's).
// Returns false with a Python exception set (too many nested scopes).
bool begin_scope(Scope* scope);
// Stops charging it. For a current-thread scope, precondition: called by the thread that
// began it, innermost first. Waits for intercepts that may still be charging it, so the
// caller may free it afterwards.
void end_scope(Scope* scope) noexcept;

// A snapshot of the counters since install: all domains, and each domain.
Counters totals() noexcept;
Counters domain_totals(Domain d) noexcept;
void reset_peak() noexcept;

}  // namespace memkit::hook
