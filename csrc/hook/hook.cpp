#include "hook.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace memkit::hook {

namespace {

#if defined(Py_GIL_DISABLED)
constexpr bool kGilBuild = false;
#else
constexpr bool kGilBuild = true;
#endif

// Whether a domain's intercepts may run on several threads at once.
template <Domain D>
constexpr bool kShared = D == kRaw || !kGilBuild;

constexpr auto kRelaxed = std::memory_order_relaxed;

// Adds to a counter: an atomic read-modify-write when writers may race, else a plain load
// and store (writers serialised by the GIL, or a single writing thread).
template <bool Shared, class T>
inline void add(std::atomic<T>& a, T delta) noexcept {
    if constexpr (Shared) {
        a.fetch_add(delta, kRelaxed);
    } else {
        a.store(a.load(kRelaxed) + delta, kRelaxed);
    }
}

// The same for a plain counter that is only ever reached through __atomic builtins (an
// array that must also be cleared with one memset).
template <bool Shared>
inline void add_plain(std::uint64_t* a, std::uint64_t delta) noexcept {
    if constexpr (Shared) {
        __atomic_fetch_add(a, delta, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(a, __atomic_load_n(a, __ATOMIC_RELAXED) + delta, __ATOMIC_RELAXED);
    }
}

// Raises a high-water mark to `now` if it is higher.
template <bool Shared>
inline void raise_peak(std::atomic<std::int64_t>& peak, std::int64_t now) noexcept {
    std::int64_t seen = peak.load(kRelaxed);
    if (now <= seen) return;
    if constexpr (Shared) {
        while (now > seen && !peak.compare_exchange_weak(seen, now, kRelaxed)) {
        }
    } else {
        peak.store(now, kRelaxed);
    }
}

inline int bucket_of(std::size_t n) noexcept {
    return n <= 1 ? 0 : 64 - __builtin_clzll(static_cast<unsigned long long>(n - 1));
}

// ---- the shadow map: the size of every counted block --------------------------------------
//
// One 16-bit entry per 16-byte granule of a 48-bit address space, in lazily mapped leaves
// of 2**24 entries (a leaf covers 256 MiB of addresses and takes 32 MiB of address space
// itself, of which only the pages for granules in use are ever touched: at most 1/8 of the
// heap they describe). An entry is 0 (no counted block starts here) or
//   bits 12-15 install session (1..15), bits 10-11 domain, bit 9 "big", bits 0-8 size.
// A block of 512 bytes or more is "big": its size sits in the entries of its next four
// granules (12 bits each, low first), which lie inside the block, so no other block can
// own them while it lives; their session bits are 0, so they never pass for an entry. Entries are read and written with relaxed atomics: two threads
// only ever touch the same entry with the allocator's own synchronisation between them.

constexpr int kGranuleShift = 4;
constexpr int kAddressBits = 48;
constexpr int kLeafBits = 24;
constexpr int kTopBits = kAddressBits - kGranuleShift - kLeafBits;
constexpr std::size_t kLeafBytes = sizeof(std::uint16_t) << kLeafBits;
constexpr std::uint16_t kSmallMax = 511;
constexpr std::uint16_t kBig = 1u << 9;
constexpr int kDomainShift = 10;
constexpr int kSessionShift = 12;
constexpr std::uint16_t kSessions = 15;
constexpr int kWordBits = 12;  // size bits in each of a big block's four size words
constexpr std::uint16_t kWordMask = (1u << kWordBits) - 1;
constexpr std::uint64_t kMaxSize = (std::uint64_t{1} << (4 * kWordBits)) - 1;  // sessions 1..15; the map is wiped when they wrap

std::atomic<std::uint16_t*> shadow_top[std::size_t{1} << kTopBits];  // 8 MiB of .bss, touched sparsely
constexpr int kMaxLeaves = 4096;  // 1 TiB of heap addresses
std::atomic<std::uint16_t*> leaves[kMaxLeaves];  // every leaf mapped, for wiping
std::atomic<int> leaf_count{0};

// Maps the leaf for top-level index `top` (first use of 256 MiB of addresses); nullptr if
// mmap fails.
__attribute__((noinline)) std::uint16_t* map_leaf(std::uintptr_t top) noexcept {
    void* mapped =
        mmap(nullptr, kLeafBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapped == MAP_FAILED) return nullptr;
    auto* fresh = static_cast<std::uint16_t*>(mapped);
    std::uint16_t* leaf = nullptr;
    if (!shadow_top[top].compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel)) {
        munmap(mapped, kLeafBytes);  // another thread mapped it first
        return leaf;
    }
    const int i = leaf_count.fetch_add(1);
    if (i < kMaxLeaves) leaves[i].store(fresh, std::memory_order_release);
    return fresh;
}

// The entry for `block`; nullptr if the address is out of range, or if it has no leaf and
// `create` is false (or mapping one failed).
__attribute__((always_inline)) inline std::uint16_t* entry_of(const void* block, bool create) noexcept {
    const auto granule = reinterpret_cast<std::uintptr_t>(block) >> kGranuleShift;
    const std::uintptr_t top = granule >> kLeafBits;
    if (__builtin_expect(top >> kTopBits, 0)) return nullptr;
    std::uint16_t* leaf = shadow_top[top].load(std::memory_order_acquire);
    if (__builtin_expect(leaf == nullptr, 0)) {
        if (!create) return nullptr;
        leaf = map_leaf(top);
        if (leaf == nullptr) return nullptr;
    }
    return leaf + (granule & ((std::uintptr_t{1} << kLeafBits) - 1));
}

inline std::uint16_t load_entry(const std::uint16_t* e) noexcept { return __atomic_load_n(e, __ATOMIC_RELAXED); }
inline void store_entry(std::uint16_t* e, std::uint16_t v) noexcept { __atomic_store_n(e, v, __ATOMIC_RELAXED); }

// The entry `offset` granules after `block` (the size words of a big block).
inline std::uint16_t* next_entry(const void* block, int offset) noexcept {
    return entry_of(static_cast<const char*>(block) + (offset << kGranuleShift), false);
}

// The size of a big block, from the words in its next four granules; -1 if the map has
// lost them (wiped). Out of line: the intercepts' common path never needs it.
__attribute__((noinline)) std::int64_t big_size(const void* block) noexcept {
    std::uint64_t size = 0;
    for (int i = 1; i <= 4; ++i) {
        const std::uint16_t* w = next_entry(block, i);
        if (w == nullptr) return -1;
        size |= static_cast<std::uint64_t>(load_entry(w) & kWordMask) << (kWordBits * (i - 1));
    }
    return static_cast<std::int64_t>(size);
}

struct Record {
    std::uint16_t* entry;  // nullptr: not a counted block
    std::size_t size;
    std::uint16_t session;
    Domain domain;
};

// What the map knows of `block`.
__attribute__((always_inline)) inline Record lookup(const void* block) noexcept {
    Record r{nullptr, 0, 0, kRaw};
    std::uint16_t* e = entry_of(block, false);
    if (e == nullptr) return r;
    const std::uint16_t v = load_entry(e);
    if ((v >> kSessionShift) == 0) return r;
    r.entry = e;
    r.session = static_cast<std::uint16_t>(v >> kSessionShift);
    r.domain = static_cast<Domain>((v >> kDomainShift) & 3);
    if (__builtin_expect(!(v & kBig), 1)) {
        r.size = v & kSmallMax;
        return r;
    }
    const std::int64_t size = big_size(block);
    if (size < 0) return Record{nullptr, 0, 0, kRaw};  // a wiped map: not ours any more
    r.size = static_cast<std::size_t>(size);
    return r;
}

// Records a counted block; false if the map cannot describe its address.
__attribute__((always_inline)) inline bool record(void* block, std::size_t n, std::uint16_t sess, Domain d) noexcept {
    std::uint16_t* e = entry_of(block, true);
    if (e == nullptr) return false;
    const auto head = static_cast<std::uint16_t>((sess << kSessionShift) | (d << kDomainShift));
    if (n <= kSmallMax) {
        store_entry(e, static_cast<std::uint16_t>(head | n));
        return true;
    }
    for (int i = 1; i <= 4; ++i) {
        std::uint16_t* w = entry_of(static_cast<char*>(block) + (i << kGranuleShift), true);
        if (w == nullptr) return false;
        store_entry(w, static_cast<std::uint16_t>((static_cast<std::uint64_t>(n) >> (kWordBits * (i - 1))) & kWordMask));
    }
    store_entry(e, static_cast<std::uint16_t>(head | kBig));
    return true;
}

// Forgets a block (before it goes back to the allocator below). A big block's size words
// may stay behind: with session bits 0 they never pass for an entry, and the next block
// recorded at one of those granules overwrites it.
inline void forget(const Record& r) noexcept { store_entry(r.entry, 0); }

// Zeroes every leaf (the session numbers are about to be reused).
void wipe_shadow() noexcept {
    const int n = std::min(leaf_count.load(), kMaxLeaves);
    for (int i = 0; i < n; ++i) {
        if (std::uint16_t* leaf = leaves[i].load(std::memory_order_acquire)) madvise(leaf, kLeafBytes, MADV_DONTNEED);
    }
}

// ---- layers -----------------------------------------------------------------------------

struct Layer {
    PyMemAllocatorEx below;       // the allocator this layer wraps
    std::atomic<bool> counting;   // whether this layer counts (false: pass-through)
};

constexpr int kMaxLayers = 16;  // a new layer only when installing over a different allocator
Layer layers[kDomains][kMaxLayers];
int layer_count[kDomains] = {0, 0, 0};  // guarded by the GIL (install/uninstall only)

// ---- counters ------------------------------------------------------------------------------

struct alignas(64) DomainCounters {
    // No allocations counter: every allocation is counted once, by its exact size when it
    // is small (most are) and in its histogram bucket otherwise, and the totals are sums
    // taken when a snapshot is read. A small allocation thus costs one indexed add where
    // an allocations count, a byte total and a histogram bucket would cost three adds and
    // a bit scan.
    std::atomic<std::uint64_t> frees{0};
    std::atomic<std::uint64_t> reallocs{0};
    std::atomic<std::uint64_t> total_bytes{0};  // bytes of large allocations and realloc growth
    std::atomic<std::int64_t> current_bytes{0};
    std::atomic<std::int64_t> peak_bytes{0};
    std::atomic<std::uint64_t> histogram[kBuckets] = {};  // large allocations by size bucket
    // Small allocations by exact size. Plain words, read and written only through __atomic
    // builtins, so that install() can clear all 512 with one memset.
    std::uint64_t small[kSmallMax + 1] = {};

    // Relaxed stores and a memset: a sequentially consistent store per counter (an xchg
    // each, 560 of them) made install() cost microseconds. install() runs under the GIL,
    // so only raw-domain counting on other threads can race with it, as it always could.
    void reset() noexcept {
        frees.store(0, kRelaxed);
        reallocs.store(0, kRelaxed);
        total_bytes.store(0, kRelaxed);
        current_bytes.store(0, kRelaxed);
        peak_bytes.store(0, kRelaxed);
        for (auto& h : histogram) h.store(0, kRelaxed);
        std::memset(small, 0, sizeof small);
    }
    Counters snapshot() const noexcept {
        Counters c;
        c.frees = frees.load(kRelaxed);
        c.reallocs = reallocs.load(kRelaxed);
        c.total_bytes = total_bytes.load(kRelaxed);
        c.current_bytes = current_bytes.load(kRelaxed);
        c.peak_bytes = peak_bytes.load(kRelaxed);
        for (int b = 0; b < kBuckets; ++b) c.histogram[b] = histogram[b].load(kRelaxed);
        for (std::size_t n = 0; n <= kSmallMax; ++n) {
            const std::uint64_t count = __atomic_load_n(&small[n], __ATOMIC_RELAXED);
            c.histogram[bucket_of(n)] += count;
            c.total_bytes += count * n;
        }
        for (int b = 0; b < kBuckets; ++b) c.allocations += c.histogram[b];
        return c;
    }
};

DomainCounters domain_counters[kDomains];
// The high-water mark of all domains' current bytes, in two halves with one kind of writer
// each: the GIL domains raise their half with plain stores (the GIL orders them), threads
// in the raw domain raise theirs with compare-exchange. The peak is the larger half.
alignas(64) std::atomic<std::int64_t> all_peak_gil{0};
alignas(64) std::atomic<std::int64_t> all_peak_shared{0};

template <bool Shared>
inline std::atomic<std::int64_t>& all_peak_half() noexcept {
    if constexpr (Shared) {
        return all_peak_shared;
    } else {
        return all_peak_gil;
    }
}

// The install session whose blocks are counted; a block from an earlier session is freed
// correctly but not counted (its allocation was not counted either). Never 0.
std::atomic<std::uint64_t> session{0};

// ---- per-thread state --------------------------------------------------------------------

constexpr int kMaxScopes = 64;        // threads="all" scopes alive at once
constexpr int kMaxThreadScopes = 16;  // one thread's nested trackers and limits

// What every intercept reads: in the initial-exec TLS model, so reaching it is one
// instruction rather than a call into the dynamic linker, and small (136 bytes), because
// that model takes space from the static TLS block glibc reserves for dlopen'd modules.
// The scope pointers sit inline: one dependent load fewer on every counted allocation.
struct ThreadState {
    bool in_hook;                      // re-entrancy guard: an allocation made by the layer below
    int scope_count;                   // this thread's current-thread scopes
    Scope* scopes[kMaxThreadScopes];   // outermost first
};
#if defined(__GNUC__)
__attribute__((tls_model("initial-exec")))
#endif
thread_local ThreadState ts = {false, 0, {}};

std::atomic<Scope*> global_scopes[kMaxScopes];   // threads="all" scopes; nullptr = free slot
std::atomic<int> global_scope_count{0};
std::atomic<int> global_readers{0};  // intercepts reading global_scopes right now

inline bool have_scopes(const ThreadState& t) noexcept {
    return t.scope_count != 0 || global_scope_count.load(kRelaxed) != 0;
}

inline std::int64_t ceiling_of(const Scope* s) noexcept { return s->ceiling.load(kRelaxed); }

// The first refusal of a budget: remember the request, start the grace.
__attribute__((noinline)) void refuse(Scope* s, std::int64_t grow) noexcept {
    if (s->tripped.load(kRelaxed)) return;
    std::int64_t none = -1;
    s->refused.compare_exchange_strong(none, grow, kRelaxed);
    s->tripped.store(true, kRelaxed);
    s->ceiling.store(s->limit + kGrace, kRelaxed);
}

// Scopes counting every thread (rare): several threads charge them at once, so every
// update is a read-modify-write, and end_scope waits for readers of the table.
struct GlobalVisit {
    GlobalVisit() noexcept { global_readers.fetch_add(1, std::memory_order_acq_rel); }
    ~GlobalVisit() { global_readers.fetch_sub(1, std::memory_order_acq_rel); }
    GlobalVisit(const GlobalVisit&) = delete;
    GlobalVisit& operator=(const GlobalVisit&) = delete;
};

// Reserves `grow` bytes in every all-threads budget, or in none. Each budget takes them with
// a compare-exchange that succeeds only if its net stays within its ceiling, so a request
// that does not fit never shows in `net`, even for a moment: other threads never see a net
// inflated by a request that will be refused (and so are never refused, nor trip a budget,
// on its account). A refused request gives its bytes back to the budgets that took them
// (the earlier ones in this call, remembered: a slot may hold another scope by then).
__attribute__((noinline)) bool reserve_global(std::int64_t grow) noexcept {
    GlobalVisit visit;
    Scope* took[kMaxScopes];
    int taken = 0;
    for (std::atomic<Scope*>& slot : global_scopes) {
        Scope* s = slot.load(std::memory_order_acquire);
        if (s == nullptr || s->limit < 0) continue;
        std::int64_t net = s->net.load(kRelaxed);
        do {
            if (net + grow > ceiling_of(s)) {
                refuse(s, grow);
                for (int j = 0; j < taken; ++j) took[j]->net.fetch_sub(grow, kRelaxed);
                return false;
            }
        } while (!s->net.compare_exchange_weak(net, net + grow, kRelaxed));
        took[taken++] = s;
    }
    return true;
}

__attribute__((noinline)) void unreserve_global(std::int64_t grow) noexcept {
    GlobalVisit visit;
    for (std::atomic<Scope*>& slot : global_scopes) {
        Scope* s = slot.load(std::memory_order_acquire);
        if (s != nullptr && s->limit >= 0) s->net.fetch_sub(grow, kRelaxed);
    }
}

// A completed operation: `allocated` new bytes (already in budgets' net), `freed` bytes;
// `blocks` +1 for an allocation, -1 for a free, 0 for a realloc.
__attribute__((noinline)) void charge_global(std::int64_t allocated, std::int64_t freed, int blocks) noexcept {
    GlobalVisit visit;
    for (std::atomic<Scope*>& slot : global_scopes) {
        Scope* s = slot.load(std::memory_order_acquire);
        if (s == nullptr) continue;
        if (blocks > 0) s->allocations.fetch_add(1, kRelaxed);
        if (blocks < 0) s->frees.fetch_add(1, kRelaxed);
        if (allocated != 0) s->allocated_bytes.fetch_add(allocated, kRelaxed);
        if (freed != 0) s->freed_bytes.fetch_add(freed, kRelaxed);
        const std::int64_t delta = (s->limit >= 0 ? 0 : allocated) - freed;
        const std::int64_t now = s->net.fetch_add(delta, kRelaxed) + delta;
        if (allocated > 0) raise_peak<true>(s->peak, now);
    }
}

// Budgets, before an allocation (or realloc growth) of `grow` > 0 bytes is made: false if
// it would take one of them over, with nothing charged. This thread's own scopes are
// only checked here (they are written by this thread alone, and nothing can charge them
// between this check and charge() after the allocation); all-threads budgets reserve
// the bytes now, since other threads charge them meanwhile.
//
// A tracker's ceiling is INT64_MAX, so every scope takes the same one compare. The scope
// count is read once: stores into the scopes could otherwise be taken to change it.
inline bool admit(ThreadState& t, std::int64_t grow) noexcept {
    Scope* const* const end = t.scopes + t.scope_count;
    for (Scope* const* p = t.scopes; p != end; ++p) {
        Scope* s = *p;
        if (__builtin_expect(s->net.load(kRelaxed) + grow > ceiling_of(s), 0)) {
            refuse(s, grow);
            return false;
        }
    }
    return global_scope_count.load(kRelaxed) == 0 || reserve_global(grow);
}

// Undoes admit() when the allocation itself failed.
inline void unadmit(std::int64_t grow) noexcept {
    if (global_scope_count.load(kRelaxed) != 0) unreserve_global(grow);
}

// Charges every scope with a completed operation (see charge_global).
template <int Blocks>
inline void charge(ThreadState& t, std::int64_t allocated, std::int64_t freed) noexcept {
    Scope* const* const end = t.scopes + t.scope_count;
    for (Scope* const* p = t.scopes; p != end; ++p) {
        Scope* s = *p;
        if constexpr (Blocks > 0) add<false>(s->allocations, std::uint64_t{1});
        if constexpr (Blocks < 0) add<false>(s->frees, std::uint64_t{1});
        if (allocated != 0) add<false>(s->allocated_bytes, allocated);
        if (freed != 0) add<false>(s->freed_bytes, freed);
        const std::int64_t now = s->net.load(kRelaxed) + allocated - freed;
        s->net.store(now, kRelaxed);
        if (allocated > 0) raise_peak<false>(s->peak, now);
    }
    if (global_scope_count.load(kRelaxed) != 0) charge_global(allocated, freed, Blocks);
}

inline std::int64_t all_current() noexcept {
    return domain_counters[kRaw].current_bytes.load(kRelaxed) + domain_counters[kMem].current_bytes.load(kRelaxed) +
           domain_counters[kObj].current_bytes.load(kRelaxed);
}

// `delta` more live bytes in domain D: its current, its peak and the all-domain peak.
template <bool Shared>
__attribute__((always_inline)) inline void grow_current(DomainCounters& c, std::int64_t delta) noexcept {
    std::int64_t now;
    if constexpr (Shared) {
        now = c.current_bytes.fetch_add(delta, kRelaxed) + delta;
    } else {
        now = c.current_bytes.load(kRelaxed) + delta;
        c.current_bytes.store(now, kRelaxed);
    }
    raise_peak<Shared>(c.peak_bytes, now);
    raise_peak<Shared>(all_peak_half<Shared>(), all_current());
}

template <bool Shared>
__attribute__((always_inline)) inline void count_alloc(DomainCounters& c, std::size_t n) noexcept {
    if (n <= kSmallMax) {
        add_plain<Shared>(&c.small[n], 1);
    } else {
        add<Shared>(c.total_bytes, static_cast<std::uint64_t>(n));
        add<Shared>(c.histogram[bucket_of(n)], std::uint64_t{1});
    }
    grow_current<Shared>(c, static_cast<std::int64_t>(n));
}

template <bool Shared>
inline void count_free(DomainCounters& c, std::size_t n) noexcept {
    add<Shared>(c.frees, std::uint64_t{1});
    add<Shared>(c.current_bytes, -static_cast<std::int64_t>(n));
}

template <bool Shared>
inline void count_realloc(DomainCounters& c, std::size_t old_n, std::size_t new_n) noexcept {
    const auto delta = static_cast<std::int64_t>(new_n) - static_cast<std::int64_t>(old_n);
    add<Shared>(c.reallocs, std::uint64_t{1});
    if (delta > 0) {
        add<Shared>(c.total_bytes, static_cast<std::uint64_t>(delta));
        grow_current<Shared>(c, delta);
    } else {
        add<Shared>(c.current_bytes, delta);
    }
}

// ---- the intercepts -------------------------------------------------------------------------

inline std::uint16_t current_session() noexcept { return static_cast<std::uint16_t>(session.load(kRelaxed)); }

// Records and counts a block the allocator below just made; false if the map cannot
// describe it (it stays uncounted then).
template <Domain D>
inline bool count_new(void* block, std::size_t n) noexcept {
    if (!record(block, n, current_session(), D)) return false;
    count_alloc<kShared<D>>(domain_counters[D], n);
    return true;
}

// A new block of n bytes (zeroed if `zero`), counted.
// Blocks too big for an inline map entry (n > kSmallMax), with or without trackers and budgets.
template <Domain D>
__attribute__((noinline)) void* counted_alloc(Layer* layer, ThreadState& t, std::size_t n, bool zero) noexcept {
    if (n > kMaxSize) return nullptr;
    const bool scoped = have_scopes(t);
    const auto grow = static_cast<std::int64_t>(n);
    if (scoped && grow > 0 && !admit(t, grow)) return nullptr;  // over a budget: fail first
    t.in_hook = true;
    void* block = zero ? layer->below.calloc(layer->below.ctx, 1, n) : layer->below.malloc(layer->below.ctx, n);
    t.in_hook = false;
    if (block == nullptr || !count_new<D>(block, n)) {
        if (scoped && grow > 0) unadmit(grow);
        return block;
    }
    if (scoped) charge<1>(t, grow, 0);
    return block;
}

// The common case, kept small enough to inline into the intercept: a block whose size
// fits its map entry (n <= kSmallMax). Nothing but `n` lives across the call into the
// allocator below. `counted` says whether the block went into the map and the counts (not
// when the allocation failed, or the map cannot describe its address).
template <Domain D>
__attribute__((always_inline)) inline void* small_alloc(Layer* layer, ThreadState& t, std::size_t n, bool zero,
                                                        bool& counted) noexcept {
    t.in_hook = true;
    void* block = zero ? layer->below.calloc(layer->below.ctx, 1, n) : layer->below.malloc(layer->below.ctx, n);
    t.in_hook = false;
    counted = false;
    if (__builtin_expect(block != nullptr, 1)) {
        std::uint16_t* e = entry_of(block, true);
        if (__builtin_expect(e != nullptr, 1)) {
            store_entry(e, static_cast<std::uint16_t>((current_session() << kSessionShift) | (D << kDomainShift) | n));
            count_alloc<kShared<D>>(domain_counters[D], n);
            counted = true;
        }
    }
    return block;
}

// A small block while trackers or budgets run: checked against the budgets first, charged
// to every scope after.
template <Domain D>
__attribute__((noinline)) void* scoped_small_alloc(Layer* layer, ThreadState& t, std::size_t n, bool zero) noexcept {
    const auto grow = static_cast<std::int64_t>(n);
    if (__builtin_expect(t.scope_count == 1 && global_scope_count.load(kRelaxed) == 0, 1)) {
        // One track() or limit() on this thread and none for all threads: the common case,
        // with one scope to check and charge. Only this thread charges it.
        Scope* s = t.scopes[0];
        if (__builtin_expect(s->net.load(kRelaxed) + grow > ceiling_of(s), 0)) {
            refuse(s, grow);
            return nullptr;
        }
        bool counted;
        void* block = small_alloc<D>(layer, t, n, zero, counted);
        if (__builtin_expect(counted, 1)) {
            add<false>(s->allocations, std::uint64_t{1});
            add<false>(s->allocated_bytes, grow);
            const std::int64_t now = s->net.load(kRelaxed) + grow;
            s->net.store(now, kRelaxed);
            if (now > s->peak.load(kRelaxed)) s->peak.store(now, kRelaxed);
        }
        return block;
    }
    if (grow > 0 && !admit(t, grow)) return nullptr;  // over a budget: fail first
    bool counted;
    void* block = small_alloc<D>(layer, t, n, zero, counted);
    if (counted) {
        charge<1>(t, grow, 0);
    } else if (grow > 0) {
        unadmit(grow);
    }
    return block;
}

// Where an intercept sends a counted allocation of n bytes.
template <Domain D>
__attribute__((always_inline)) inline void* route_alloc(Layer* layer, ThreadState& t, std::size_t n, bool zero) noexcept {
    if (__builtin_expect(n > kSmallMax, 0)) return counted_alloc<D>(layer, t, n, zero);
    if (__builtin_expect(have_scopes(t), 0)) return scoped_small_alloc<D>(layer, t, n, zero);
    bool counted;
    return small_alloc<D>(layer, t, n, zero, counted);
}

template <Domain D>
void* layer_malloc(void* ctx, std::size_t n) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    ThreadState& t = ts;
    if (t.in_hook || !layer->counting.load(kRelaxed)) return layer->below.malloc(layer->below.ctx, n);
    return route_alloc<D>(layer, t, n, false);
}

template <Domain D>
void* layer_calloc(void* ctx, std::size_t nelem, std::size_t elsize) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    ThreadState& t = ts;
    std::size_t n;
    if (t.in_hook || !layer->counting.load(kRelaxed) || __builtin_mul_overflow(nelem, elsize, &n)) {
        return layer->below.calloc(layer->below.ctx, nelem, elsize);
    }
    return route_alloc<D>(layer, t, n, true);
}

// Takes a freed block off the counters of the domain that allocated it.
template <Domain D>
inline void count_gone(const Record& r) noexcept {
    if (r.domain == D) {
        count_free<kShared<D>>(domain_counters[D], r.size);
    } else {
        count_free<true>(domain_counters[r.domain], r.size);  // freed through another domain
    }
}

// Charges every scope with a free of `size` bytes (out of line: trackers are the rare case).
__attribute__((noinline)) void charge_free(ThreadState& t, std::int64_t size) noexcept { charge<-1>(t, 0, size); }

// A free of `size` bytes while this thread's scopes run: the one-scope case (a single
// track() or limit()) inline, anything else out of line.
__attribute__((always_inline)) inline void charge_small_free(ThreadState& t, std::int64_t size) noexcept {
    if (__builtin_expect(t.scope_count == 1 && global_scope_count.load(kRelaxed) == 0, 1)) {
        Scope* s = t.scopes[0];
        add<false>(s->frees, std::uint64_t{1});
        add<false>(s->freed_bytes, size);
        add<false>(s->net, -size);
        return;
    }
    charge_free(t, size);
}

// Counts a freed block the common path in layer_free() does not: a big one, one from
// another domain or an earlier session, or one freed while trackers or budgets run.
template <Domain D>
__attribute__((noinline)) void count_gone_slow(const void* block, std::uint16_t v, ThreadState& t) noexcept {
    Record r{nullptr, static_cast<std::size_t>(v & kSmallMax), static_cast<std::uint16_t>(v >> kSessionShift),
             static_cast<Domain>((v >> kDomainShift) & 3)};
    if (r.session != current_session()) return;  // an earlier session's block: never counted
    if (v & kBig) {
        const std::int64_t size = big_size(block);
        if (size < 0) return;  // a wiped map: not ours any more
        r.size = static_cast<std::size_t>(size);
    }
    count_gone<D>(r);
    if (have_scopes(t)) charge<-1>(t, 0, static_cast<std::int64_t>(r.size));
}

template <Domain D>
void layer_free(void* ctx, void* block) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    // Not counting: pass through. Entries of blocks freed now go stale, harmlessly: they
    // name a finished session.
    std::uint16_t* e = block != nullptr && layer->counting.load(kRelaxed) ? entry_of(block, false) : nullptr;
    const std::uint16_t v = e != nullptr ? load_entry(e) : 0;
    if ((v >> kSessionShift) == 0) return layer->below.free(layer->below.ctx, block);  // not a counted block
    // The entry goes before the block does: its address may be reused at once, by another
    // thread too.
    store_entry(e, 0);
    ThreadState& t = ts;
    // A nested free (made by the allocator below while one of ours runs) is not the
    // program's: the block leaves the map but not the counts.
    if (t.in_hook) return layer->below.free(layer->below.ctx, block);
    // The block is counted gone before it goes back, so that nothing but the re-entrancy
    // flag is touched after the call.
    if (__builtin_expect((v & kBig) || ((v >> kDomainShift) & 3) != D || (v >> kSessionShift) != current_session(),
                         0)) {
        count_gone_slow<D>(block, v, t);
    } else {
        count_free<kShared<D>>(domain_counters[D], v & kSmallMax);
        if (__builtin_expect(have_scopes(t), 0)) charge_small_free(t, v & kSmallMax);
    }
    t.in_hook = true;
    layer->below.free(layer->below.ctx, block);
    ts.in_hook = false;
}

template <Domain D>
void* layer_realloc(void* ctx, void* block, std::size_t n) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    if (block == nullptr) return layer_malloc<D>(ctx, n);
    if (!layer->counting.load(kRelaxed)) return layer->below.realloc(layer->below.ctx, block, n);
    ThreadState& t = ts;
    const Record r = lookup(block);
    if (r.entry == nullptr) {
        // A block the map does not know (allocated before install): its size is unknown,
        // so it stays uncounted.
        return layer->below.realloc(layer->below.ctx, block, n);
    }
    if (r.session != current_session()) {
        // An earlier session's block: allocated before this install, so it stays uncounted
        // (its entry, stale or not, goes).
        forget(r);
        return layer->below.realloc(layer->below.ctx, block, n);
    }
    const bool counting = !t.in_hook && n <= kMaxSize;
    const bool scoped = counting && have_scopes(t);
    const std::int64_t growth = static_cast<std::int64_t>(n) - static_cast<std::int64_t>(r.size);
    if (scoped && growth > 0 && !admit(t, growth)) return nullptr;  // a realloc is charged only its growth
    // Forget the block first: if it moves, the allocator frees the old place at once.
    forget(r);
    const bool nested = t.in_hook;
    t.in_hook = true;
    void* moved = layer->below.realloc(layer->below.ctx, block, n);
    t.in_hook = nested;
    if (moved == nullptr) {
        record(block, r.size, r.session, r.domain);  // the old block is untouched and still ours
        if (scoped && growth > 0) unadmit(growth);
        return nullptr;
    }
    if (!counting || !record(moved, n, r.session, r.domain)) {
        // Nested in the layer below, too big, or an address the map cannot describe: the
        // block leaves the counts.
        count_gone<D>(r);
        if (scoped && growth > 0) unadmit(growth);
        if (scoped) charge<-1>(t, 0, static_cast<std::int64_t>(r.size));
        return moved;
    }
    if (r.domain == D) {
        count_realloc<kShared<D>>(domain_counters[D], r.size, n);
    } else {
        count_realloc<true>(domain_counters[r.domain], r.size, n);  // resized through another domain
    }
    if (scoped) charge<0>(t, growth > 0 ? growth : 0, growth < 0 ? -growth : 0);
    return moved;
}

template <Domain D>
PyMemAllocatorEx intercepts(Layer* layer) noexcept {
    return PyMemAllocatorEx{layer, &layer_malloc<D>, &layer_calloc<D>, &layer_realloc<D>, &layer_free<D>};
}

bool is_ours(const PyMemAllocatorEx& a) noexcept {
    return a.malloc == &layer_malloc<kRaw> || a.malloc == &layer_malloc<kMem> || a.malloc == &layer_malloc<kObj>;
}

bool same_allocator(const PyMemAllocatorEx& a, const PyMemAllocatorEx& b) noexcept {
    return a.ctx == b.ctx && a.malloc == b.malloc && a.calloc == b.calloc && a.realloc == b.realloc &&
           a.free == b.free;
}

PyMemAllocatorDomain pymem_domain(int d) noexcept {
    return d == kRaw ? PYMEM_DOMAIN_RAW : d == kMem ? PYMEM_DOMAIN_MEM : PYMEM_DOMAIN_OBJ;
}

std::atomic<bool> active{false};
Layer* top_layer[kDomains] = {nullptr, nullptr, nullptr};  // the layers installed now (GIL)

}  // namespace

bool install() {
    if (active.load()) return true;  // idempotent
    Layer* chosen[kDomains] = {nullptr, nullptr, nullptr};
    for (int d = 0; d < kDomains; ++d) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(pymem_domain(d), &current);
        if (is_ours(current)) {
            chosen[d] = static_cast<Layer*>(current.ctx);  // our layer, passing through since uninstall
        } else if (layer_count[d] >= kMaxLayers) {
            PyErr_SetString(PyExc_RuntimeError, "memkit's allocator hook was layered over other hooks too many times");
            return false;
        }
    }
    // A new session: blocks of earlier sessions are no longer counted when freed. When the
    // session numbers wrap, the map is wiped so that no stale entry matches a reused one.
    std::uint64_t next = session.load() + 1;
    if (next > kSessions) {
        wipe_shadow();
        next = 1;
    }
    session.store(next);
    for (DomainCounters& c : domain_counters) c.reset();
    all_peak_gil.store(0);
    all_peak_shared.store(0);
    for (int d = 0; d < kDomains; ++d) {
        Layer* layer = chosen[d];
        if (layer == nullptr) {
            // The first install over this allocator: wrap it. The layer then stays in the
            // chain for good (uninstall makes it pass-through), because swapping the
            // allocator struct under threads that call the raw domain without the GIL
            // could hand one of them a mismatched function and context.
            layer = &layers[d][layer_count[d]++];
            PyMem_GetAllocator(pymem_domain(d), &layer->below);
            layer->counting.store(true);
            PyMemAllocatorEx ours = d == kRaw   ? intercepts<kRaw>(layer)
                                    : d == kMem ? intercepts<kMem>(layer)
                                                : intercepts<kObj>(layer);
            PyMem_SetAllocator(pymem_domain(d), &ours);
        } else {
            layer->counting.store(true);
        }
        top_layer[d] = layer;
    }
    active.store(true);
    return true;
}

bool uninstall() {
    if (!active.load()) return true;
    for (int d = 0; d < kDomains; ++d) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(pymem_domain(d), &current);
        // Our layer on top; or what it wrapped, when a hook installed before memkit's was
        // stopped and put back the allocator it had saved, taking memkit's layer out.
        const bool on_top = is_ours(current) && current.ctx == top_layer[d];
        if (!on_top && !same_allocator(current, top_layer[d]->below)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "another allocator hook was installed on top of memkit's (tracemalloc, memray?): "
                            "stop it first, then uninstall memkit");
            return false;
        }
    }
    for (Layer* layer : top_layer) layer->counting.store(false);  // pass-through from now on
    active.store(false);
    return true;
}

bool installed() noexcept { return active.load(); }

Uncounted::Uncounted() noexcept : was_(ts.in_hook) { ts.in_hook = true; }
Uncounted::~Uncounted() { ts.in_hook = was_; }

bool begin_scope(Scope* scope) {
    if (!scope->all_threads) {
        ThreadState& t = ts;
        if (t.scope_count >= kMaxThreadScopes) {
            PyErr_SetString(PyExc_RuntimeError, "too many nested memkit trackers/limits in this thread (at most 16)");
            return false;
        }
        t.scopes[t.scope_count] = scope;
        ++t.scope_count;
        return true;
    }
    for (std::atomic<Scope*>& slot : global_scopes) {
        Scope* expected = nullptr;
        if (slot.compare_exchange_strong(expected, scope)) {
            global_scope_count.fetch_add(1);
            return true;
        }
    }
    PyErr_SetString(PyExc_RuntimeError, "too many memkit trackers/limits with threads='all'");
    return false;
}

void end_scope(Scope* scope) noexcept {
    if (!scope->all_threads) {
        ThreadState& t = ts;
        for (int i = t.scope_count - 1; i >= 0; --i) {
            if (t.scopes[i] == scope) {
                for (int j = i; j + 1 < t.scope_count; ++j) t.scopes[j] = t.scopes[j + 1];
                --t.scope_count;
                return;
            }
        }
        return;
    }
    for (std::atomic<Scope*>& slot : global_scopes) {
        Scope* expected = scope;
        if (slot.compare_exchange_strong(expected, nullptr)) {
            global_scope_count.fetch_sub(1);
            break;
        }
    }
    // An intercept that loaded the pointer before it left the table may still be charging
    // it: wait for those (they take nanoseconds) before the caller frees the scope.
    while (global_readers.load(std::memory_order_acquire) != 0) {
    }
}

Counters totals() noexcept {
    Counters all;
    for (const DomainCounters& d : domain_counters) {
        const Counters c = d.snapshot();
        all.allocations += c.allocations;
        all.frees += c.frees;
        all.reallocs += c.reallocs;
        all.total_bytes += c.total_bytes;
        all.current_bytes += c.current_bytes;
        for (int b = 0; b < kBuckets; ++b) all.histogram[b] += c.histogram[b];
    }
    all.peak_bytes = std::max(all_peak_gil.load(kRelaxed), all_peak_shared.load(kRelaxed));
    if (all.peak_bytes < all.current_bytes) all.peak_bytes = all.current_bytes;
    return all;
}

Counters domain_totals(Domain d) noexcept { return domain_counters[d].snapshot(); }

void reset_peak() noexcept {
    for (DomainCounters& c : domain_counters) c.peak_bytes.store(c.current_bytes.load());
    all_peak_gil.store(all_current());
    all_peak_shared.store(all_current());
}

Bookkeeping bookkeeping() noexcept {
    Bookkeeping b{};
    for (int d = 0; d < kDomains; ++d) b.layers[d] = layer_count[d];
    b.leaves = leaf_count.load(kRelaxed);
    return b;
}

}  // namespace memkit::hook
