// memkit's allocator hook: the one place that talks to CPython's PyMem_* allocators.
//
// install() puts a layer over the raw, mem and object domains (PyMem_SetAllocator) that
// wraps whatever allocator was there and counts every block with its true size. The size
// is not stored in the block (a header would push every small object into the next
// pymalloc size class and cost more than the counting): it goes into a shadow map, 16 bits
// for each 16-byte granule of address space that starts a counted block (blocks are at
// least 16-byte aligned, so no two share a granule). Frees read the size back, so they are
// exact; blocks without an entry (allocated before install, or while not counting) pass
// through uncounted. Entries also name the allocating domain and install session, so a
// block freed through another domain or after a reinstall is charged correctly.
//
// uninstall() puts the previous allocators back: with nothing stored in the blocks, the
// allocator below frees them as its own. Entries of blocks freed after that go stale; the
// session in every entry keeps a stale entry from being mistaken for a live one, and the
// map is wiped when the 4-bit session number wraps.
//
// Rules for the intercepts (they run inside every allocation of the interpreter): never
// call Python, never allocate through PyMem, never block; re-entrancy is guarded with a
// thread-local flag; all shared state is atomic, because the raw domain is called without
// the GIL from any thread.
//
// Speed: counting must be cheap enough to leave on. Each domain has its own counters. The
// mem and object domains are only ever called with the GIL held (CPython's rule for them),
// so on GIL builds their counters are updated with plain loads and stores - still
// std::atomic, so readers on other threads see whole values, but no lock-prefixed
// read-modify-write. The raw domain (called from any thread without the GIL), scopes that
// count every thread, and the all-domain peak use real atomic read-modify-writes; so does
// everything on free-threaded builds. Totals are sums of the domains.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>

namespace memkit::hook {

enum Domain : int { kRaw = 0, kMem = 1, kObj = 2, kDomains = 3 };

// Allocation sizes are histogrammed in power-of-two buckets: bucket b counts allocations of
// more than 2**(b-1) and at most 2**b bytes (bucket 0: 0 or 1 byte).
constexpr int kBuckets = 49;  // sizes are below 2**48

struct Counters {
    std::uint64_t allocations = 0;  // mallocs and callocs (and reallocs of NULL)
    std::uint64_t frees = 0;
    std::uint64_t reallocs = 0;
    std::uint64_t total_bytes = 0;    // bytes handed out: allocations plus realloc growth
    std::int64_t current_bytes = 0;   // live bytes allocated since install
    std::int64_t peak_bytes = 0;      // high-water mark of current_bytes
    std::uint64_t histogram[kBuckets] = {};  // allocations by size (see kBuckets)
};

// Turns counting on (installing the layer over the current allocators if memkit's layer
// is not the active one). Returns false with a Python exception set on failure.
// Precondition: the GIL is held.
bool install();

// Turns counting off and restores the allocators memkit's layer wrapped. RuntimeError
// (false) if another hook sits on top of memkit's layer.
// Precondition: the GIL is held.
bool uninstall();

bool installed() noexcept;

// A tracker or a budget: what one thread (or every thread) allocates and frees between
// begin and end. `limit` >= 0 makes it a budget: an allocation that would take `net` past
// it fails (returns NULL) before it is made, and `refused` remembers its size.
//
// A threads="current" scope is written only by its own thread (plain stores); an
// all-threads scope takes atomic read-modify-writes.
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
    // What `net` may reach: limit, then limit + kGrace once tripped; INT64_MAX for a tracker
    // (so that checking a scope is one compare, budget or not). Set with set_limit().
    std::atomic<std::int64_t> ceiling{INT64_MAX};
    std::int64_t limit = -1;
    bool all_threads = false;

    // Makes this scope a budget of `max_bytes` (>= 0), or a tracker (-1), keeping the grace
    // of a tripped budget. Before begin_scope, or on the thread charging the scope.
    void set_limit(std::int64_t max_bytes) noexcept;
};

constexpr std::int64_t kGrace = std::int64_t{1} << 20;

inline void Scope::set_limit(std::int64_t max_bytes) noexcept {
    limit = max_bytes;
    const std::int64_t grace = tripped.load(std::memory_order_relaxed) ? kGrace : 0;
    ceiling.store(max_bytes >= 0 ? max_bytes + grace : INT64_MAX, std::memory_order_relaxed);
}

// Starts charging `scope` with the calling thread's allocations (or every thread's).
// Returns false with a Python exception set (too many nested scopes).
bool begin_scope(Scope* scope);
// Stops charging it. For a current-thread scope, precondition: called by the thread that
// began it, innermost first. Waits for intercepts that may still be charging it, so the
// caller may free it afterwards.
void end_scope(Scope* scope) noexcept;

// While one lives, the calling thread's allocations pass through uncounted, as the layer
// below's own do (the intercepts' re-entrancy flag): no tracker is charged and no budget
// can refuse them. For objects memkit's test helpers must build after a budget has granted
// the allocation they report (the int holding its address): a tripped budget refusing
// those too would lose the block. Keep only allocations of objects outside the garbage
// collector inside (ints, strings): a counted block freed meanwhile leaves the map but not
// the counts, and on CPython 3.11 allocating a GC-tracked object may run a collection,
// which frees. Nests.
class Uncounted {
public:
    Uncounted() noexcept;
    ~Uncounted();
    Uncounted(const Uncounted&) = delete;
    Uncounted& operator=(const Uncounted&) = delete;

private:
    bool was_;
};

// A snapshot of the counters since install: all domains, and each domain.
Counters totals() noexcept;
Counters domain_totals(Domain d) noexcept;
void reset_peak() noexcept;

// What the hook keeps for itself, for leak checks: the layers it has made in each domain
// (one per distinct allocator installed over, reused by every later install over it) and
// the shadow-map leaves it has mapped (one per 256 MiB of heap addresses ever counted).
struct Bookkeeping {
    int layers[kDomains];
    int leaves;
};
Bookkeeping bookkeeping() noexcept;

}  // namespace memkit::hook
