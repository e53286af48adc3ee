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

// A snapshot of the counters since install: all domains, and each domain.
Counters totals() noexcept;
Counters domain_totals(Domain d) noexcept;
void reset_peak() noexcept;

}  // namespace memkit::hook
