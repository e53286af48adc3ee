#include "hook.hpp"

#include <atomic>
#include <initializer_list>

namespace memkit::hook {

namespace {

// ---- the header in front of every counted block ----------------------------------------

constexpr std::size_t kHeader = 16;  // keeps CPython's 16-byte alignment of every block
constexpr int kSessionShift = 48;    // size in the low 48 bits, install session in the high 16
constexpr std::uint64_t kSizeMask = (std::uint64_t{1} << kSessionShift) - 1;
constexpr std::uint64_t kMagic = 0x9e3779b97f4a7c15ULL;

struct Header {
    std::uint64_t size_session;
    std::uint64_t tag;  // kMagic ^ block address ^ layer id: "this layer put me here"
};
static_assert(sizeof(Header) == kHeader, "the header must keep 16-byte alignment");

// ---- layers -----------------------------------------------------------------------------

struct Layer {
    PyMemAllocatorEx below;       // the allocator this layer wraps
    Domain domain;
    std::uint64_t id;             // mixed into header tags
    std::atomic<bool> counting;   // only the active layer counts
};

constexpr int kMaxLayers = 16;  // install() over a foreign hook adds a layer; bounded
Layer layers[kDomains][kMaxLayers];
int layer_count[kDomains] = {0, 0, 0};  // guarded by the GIL (install/uninstall only)

// ---- counters (atomic: the raw domain runs without the GIL) --------------------------------

struct AtomicCounters {
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> frees{0};
    std::atomic<std::uint64_t> reallocs{0};
    std::atomic<std::uint64_t> total_bytes{0};
    std::atomic<std::int64_t> current_bytes{0};
    std::atomic<std::int64_t> peak_bytes{0};

    void reset() noexcept {
        allocations = 0;
        frees = 0;
        reallocs = 0;
        total_bytes = 0;
        current_bytes = 0;
        peak_bytes = 0;
    }
    Counters snapshot() const noexcept {
        Counters c;
        c.allocations = allocations.load(std::memory_order_relaxed);
        c.frees = frees.load(std::memory_order_relaxed);
        c.reallocs = reallocs.load(std::memory_order_relaxed);
        c.total_bytes = total_bytes.load(std::memory_order_relaxed);
        c.current_bytes = current_bytes.load(std::memory_order_relaxed);
        c.peak_bytes = peak_bytes.load(std::memory_order_relaxed);
        return c;
    }
};

AtomicCounters all_counters;
AtomicCounters domain_counters[kDomains];

// The install session whose blocks are counted; a block from an earlier session is freed
// correctly but not counted (its allocation was not counted either). Never 0.
std::atomic<std::uint64_t> session{0};

thread_local bool in_hook = false;  // re-entrancy guard: an allocation made by the layer below

// ---- scopes: trackers and budgets ------------------------------------------------------------

constexpr int kMaxScopes = 64;
thread_local Scope* thread_scopes[kMaxScopes];  // this thread's scopes, outermost first
thread_local int thread_scope_count = 0;

std::atomic<Scope*> global_scopes[kMaxScopes];   // threads="all" scopes; nullptr = free slot
std::atomic<int> global_scope_count{0};
std::atomic<int> global_readers{0};  // intercepts reading global_scopes right now

void charge(Scope* s, std::int64_t allocated, std::int64_t freed, bool is_alloc, bool is_free) noexcept {
    if (is_alloc) s->allocations.fetch_add(1, std::memory_order_relaxed);
    if (is_free) s->frees.fetch_add(1, std::memory_order_relaxed);
    if (allocated != 0) s->allocated_bytes.fetch_add(allocated, std::memory_order_relaxed);
    if (freed != 0) s->freed_bytes.fetch_add(freed, std::memory_order_relaxed);
}

// Reserves `grow` bytes in every budget that applies; false (nothing reserved) if one
// would go over. Trackers are charged afterwards, by account().
template <class Visit>
void for_each_scope(Visit&& visit) noexcept {
    for (int i = 0; i < thread_scope_count; ++i) visit(thread_scopes[i]);
    if (global_scope_count.load(std::memory_order_acquire) == 0) return;
    global_readers.fetch_add(1, std::memory_order_acq_rel);
    for (std::atomic<Scope*>& slot : global_scopes) {
        if (Scope* s = slot.load(std::memory_order_acquire)) visit(s);
    }
    global_readers.fetch_sub(1, std::memory_order_acq_rel);
}

bool have_scopes() noexcept {
    return thread_scope_count != 0 || global_scope_count.load(std::memory_order_relaxed) != 0;
}

void raise_net(Scope* s, std::int64_t delta) noexcept {
    const std::int64_t now = s->net.fetch_add(delta, std::memory_order_relaxed) + delta;
    std::int64_t peak = s->peak.load(std::memory_order_relaxed);
    while (now > peak && !s->peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

// An allocation (or realloc growth) of `grow` bytes: reserve it in every scope, budgets
// first; undo and refuse if a budget would go over.
bool reserve(std::int64_t grow) noexcept {
    if (!have_scopes() || grow <= 0) return true;
    bool ok = true;
    Scope* over = nullptr;
    for_each_scope([&](Scope* s) {
        if (!ok || s->limit < 0) return;
        const std::int64_t now = s->net.fetch_add(grow, std::memory_order_relaxed) + grow;
        const bool tripped = s->tripped.load(std::memory_order_relaxed);
        if (now > s->limit + (tripped ? kGrace : 0)) {
            s->net.fetch_sub(grow, std::memory_order_relaxed);
            if (!tripped) {
                std::int64_t none = -1;
                s->refused.compare_exchange_strong(none, grow, std::memory_order_relaxed);
                s->tripped.store(true, std::memory_order_relaxed);
            }
            over = s;
            ok = false;
        }
    });
    if (ok) return true;
    // Give back what the budgets before the refusing one reserved.
    bool before = true;
    for_each_scope([&](Scope* s) {
        if (s == over) before = false;
        if (before && s->limit >= 0) s->net.fetch_sub(grow, std::memory_order_relaxed);
    });
    return false;
}

// Gives back a reservation whose allocation failed.
void unreserve(std::int64_t grow) noexcept {
    if (!have_scopes() || grow <= 0) return;
    for_each_scope([&](Scope* s) {
        if (s->limit >= 0) s->net.fetch_sub(grow, std::memory_order_relaxed);
    });
}

// Charges a completed operation to every scope: `allocated` new bytes (already reserved in
// budgets) and `freed` bytes.
void account(std::int64_t allocated, std::int64_t freed, bool is_alloc, bool is_free) noexcept {
    if (!have_scopes()) return;
    for_each_scope([&](Scope* s) {
        charge(s, allocated, freed, is_alloc, is_free);
        // Budgets already hold the allocated bytes (reserve()); trackers take them now.
        raise_net(s, (s->limit >= 0 ? 0 : allocated) - freed);
    });
}

void add_bytes(AtomicCounters& c, std::int64_t delta) noexcept {
    const std::int64_t now = c.current_bytes.fetch_add(delta, std::memory_order_relaxed) + delta;
    if (delta <= 0) return;
    std::int64_t peak = c.peak_bytes.load(std::memory_order_relaxed);
    while (now > peak && !c.peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

void count_alloc(Domain d, std::size_t n) noexcept {
    for (AtomicCounters* c : {&all_counters, &domain_counters[d]}) {
        c->allocations.fetch_add(1, std::memory_order_relaxed);
        c->total_bytes.fetch_add(n, std::memory_order_relaxed);
        add_bytes(*c, static_cast<std::int64_t>(n));
    }
}

void count_free(Domain d, std::size_t n) noexcept {
    for (AtomicCounters* c : {&all_counters, &domain_counters[d]}) {
        c->frees.fetch_add(1, std::memory_order_relaxed);
        add_bytes(*c, -static_cast<std::int64_t>(n));
    }
}

void count_realloc(Domain d, std::size_t old_n, std::size_t new_n) noexcept {
    const auto delta = static_cast<std::int64_t>(new_n) - static_cast<std::int64_t>(old_n);
    for (AtomicCounters* c : {&all_counters, &domain_counters[d]}) {
        c->reallocs.fetch_add(1, std::memory_order_relaxed);
        if (delta > 0) c->total_bytes.fetch_add(static_cast<std::uint64_t>(delta), std::memory_order_relaxed);
        add_bytes(*c, delta);
    }
}

std::uint64_t tag_for(const void* block, const Layer* layer) noexcept {
    return kMagic ^ reinterpret_cast<std::uintptr_t>(block) ^ (layer->id << 52);
}

// Whether `block` carries a header this layer wrote. For a block some other allocator
// made, this reads 16 bytes of that allocator's own bookkeeping just before the block
// (glibc's chunk header, pymalloc's pool): mapped memory, but inside what ASan calls a
// redzone, hence the attribute. A false match needs 64 bits of that memory to equal a
// value derived from the block's own address: never, in practice.
#if defined(__clang__) || defined(__GNUC__)
__attribute__((no_sanitize_address))
#endif
bool has_header(const void* block, const Layer* layer) noexcept {
    const auto* h = static_cast<const Header*>(block) - 1;
    return h->tag == tag_for(block, layer);  // a plain load: ASan's memcpy check would fire
}

void* stamp(void* raw, std::size_t n, std::uint64_t sess, const Layer* layer) noexcept {
    auto* h = static_cast<Header*>(raw);
    void* block = h + 1;
    h->size_session = static_cast<std::uint64_t>(n) | (sess << kSessionShift);
    h->tag = tag_for(block, layer);
    return block;
}

bool counting_now(const Layer* layer) noexcept {
    return !in_hook && layer->counting.load(std::memory_order_relaxed);
}

// ---- the intercepts -------------------------------------------------------------------------

void* layer_malloc(void* ctx, std::size_t n) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    if (!counting_now(layer)) return layer->below.malloc(layer->below.ctx, n);
    if (n > kSizeMask - kHeader) return nullptr;
    if (!reserve(static_cast<std::int64_t>(n))) return nullptr;  // over a budget: fail first
    in_hook = true;
    void* raw = layer->below.malloc(layer->below.ctx, n + kHeader);
    in_hook = false;
    if (raw == nullptr) {
        unreserve(static_cast<std::int64_t>(n));
        return nullptr;
    }
    const std::uint64_t sess = session.load(std::memory_order_relaxed);
    count_alloc(layer->domain, n);
    account(static_cast<std::int64_t>(n), 0, true, false);
    return stamp(raw, n, sess, layer);
}

void* layer_calloc(void* ctx, std::size_t nelem, std::size_t elsize) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    if (!counting_now(layer)) return layer->below.calloc(layer->below.ctx, nelem, elsize);
    if (elsize != 0 && nelem > (kSizeMask - kHeader) / elsize) return nullptr;
    const std::size_t n = nelem * elsize;
    if (!reserve(static_cast<std::int64_t>(n))) return nullptr;
    in_hook = true;
    void* raw = layer->below.calloc(layer->below.ctx, 1, n + kHeader);
    in_hook = false;
    if (raw == nullptr) {
        unreserve(static_cast<std::int64_t>(n));
        return nullptr;
    }
    const std::uint64_t sess = session.load(std::memory_order_relaxed);
    count_alloc(layer->domain, n);
    account(static_cast<std::int64_t>(n), 0, true, false);
    return stamp(raw, n, sess, layer);
}

void layer_free(void* ctx, void* block) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    if (block == nullptr || !has_header(block, layer)) {
        layer->below.free(layer->below.ctx, block);
        return;
    }
    auto* h = static_cast<Header*>(block) - 1;
    const std::uint64_t word = h->size_session;
    h->tag = 0;  // freed memory must never look like ours again
    const bool counted = layer->counting.load(std::memory_order_relaxed) &&
                         (word >> kSessionShift) == session.load(std::memory_order_relaxed);
    const bool nested = in_hook;
    in_hook = true;
    layer->below.free(layer->below.ctx, h);
    in_hook = nested;
    if (nested) return;
    const auto n = static_cast<std::size_t>(word & kSizeMask);
    if (counted) count_free(layer->domain, n);
    if (layer->counting.load(std::memory_order_relaxed)) account(0, static_cast<std::int64_t>(n), false, true);
}

void* layer_realloc(void* ctx, void* block, std::size_t n) noexcept {
    auto* layer = static_cast<Layer*>(ctx);
    if (block == nullptr) return layer_malloc(ctx, n);
    if (!has_header(block, layer)) {
        // A block this layer did not make: its size is unknown, so it stays uncounted.
        return layer->below.realloc(layer->below.ctx, block, n);
    }
    if (n > kSizeMask - kHeader) return nullptr;
    auto* h = static_cast<Header*>(block) - 1;
    const std::uint64_t word = h->size_session;
    const auto old_n = static_cast<std::size_t>(word & kSizeMask);
    const std::uint64_t old_sess = word >> kSessionShift;
    const std::uint64_t sess = session.load(std::memory_order_relaxed);
    const bool counting = counting_now(layer);
    const bool nested = in_hook;
    const auto growth = static_cast<std::int64_t>(n) - static_cast<std::int64_t>(old_n);
    if (counting && !reserve(growth)) return nullptr;  // a realloc is charged only its growth
    // Clear the tag first: if the block moves, the allocator frees the old place, and a
    // stale tag there could later make a foreign block at the same address look ours.
    const std::uint64_t tag = h->tag;
    h->tag = 0;
    in_hook = true;
    void* raw = layer->below.realloc(layer->below.ctx, h, n + kHeader);
    in_hook = nested;
    if (raw == nullptr) {
        h->tag = tag;  // the old block is untouched and still ours
        if (counting) unreserve(growth);
        return nullptr;
    }
    if (!counting) return stamp(raw, n, old_sess, layer);
    if (old_sess == sess) {
        count_realloc(layer->domain, old_n, n);
    } else {
        count_alloc(layer->domain, n);  // an earlier session's block joins this session
    }
    account(growth > 0 ? growth : 0, growth < 0 ? -growth : 0, false, false);
    return stamp(raw, n, sess, layer);
}

bool is_ours(const PyMemAllocatorEx& a) noexcept { return a.malloc == &layer_malloc; }

PyMemAllocatorDomain pymem_domain(int d) noexcept {
    return d == kRaw ? PYMEM_DOMAIN_RAW : d == kMem ? PYMEM_DOMAIN_MEM : PYMEM_DOMAIN_OBJ;
}

std::atomic<bool> active{false};

}  // namespace

bool install() {
    if (active.load()) return true;  // idempotent
    Layer* top[kDomains] = {nullptr, nullptr, nullptr};
    for (int d = 0; d < kDomains; ++d) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(pymem_domain(d), &current);
        if (is_ours(current)) {
            top[d] = static_cast<Layer*>(current.ctx);
        } else if (layer_count[d] >= kMaxLayers) {
            PyErr_SetString(PyExc_RuntimeError, "memkit's allocator hook was layered over other hooks too many times");
            return false;
        }
    }
    // A new session: blocks of earlier sessions are no longer counted when freed.
    std::uint64_t next = (session.load() + 1) & 0xffff;
    if (next == 0) next = 1;
    session.store(next);
    all_counters.reset();
    for (AtomicCounters& c : domain_counters) c.reset();
    for (int d = 0; d < kDomains; ++d) {
        if (top[d] == nullptr) {
            Layer& layer = layers[d][layer_count[d]];
            PyMem_GetAllocator(pymem_domain(d), &layer.below);
            layer.domain = static_cast<Domain>(d);
            layer.id = static_cast<std::uint64_t>(d * kMaxLayers + layer_count[d] + 1);
            layer.counting.store(true);
            ++layer_count[d];
            PyMemAllocatorEx ours{&layer, &layer_malloc, &layer_calloc, &layer_realloc, &layer_free};
            PyMem_SetAllocator(pymem_domain(d), &ours);
        } else {
            top[d]->counting.store(true);
        }
    }
    active.store(true);
    return true;
}

bool uninstall() {
    if (!active.load()) return true;
    Layer* top[kDomains];
    for (int d = 0; d < kDomains; ++d) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(pymem_domain(d), &current);
        if (!is_ours(current)) {
            PyErr_SetString(PyExc_RuntimeError,
                            "another allocator hook was installed on top of memkit's (tracemalloc, memray?): "
                            "stop it first, then uninstall memkit");
            return false;
        }
        top[d] = static_cast<Layer*>(current.ctx);
    }
    for (Layer* layer : top) layer->counting.store(false);  // pass-through from now on
    active.store(false);
    return true;
}

bool installed() noexcept { return active.load(); }

bool begin_scope(Scope* scope) {
    if (!scope->all_threads) {
        if (thread_scope_count >= kMaxScopes) {
            PyErr_SetString(PyExc_RuntimeError, "too many nested memkit trackers/limits in this thread");
            return false;
        }
        thread_scopes[thread_scope_count++] = scope;
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
        for (int i = thread_scope_count - 1; i >= 0; --i) {
            if (thread_scopes[i] == scope) {
                for (int j = i; j + 1 < thread_scope_count; ++j) thread_scopes[j] = thread_scopes[j + 1];
                --thread_scope_count;
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

Counters totals() noexcept { return all_counters.snapshot(); }

Counters domain_totals(Domain d) noexcept { return domain_counters[d].snapshot(); }

void reset_peak() noexcept {
    all_counters.peak_bytes.store(all_counters.current_bytes.load());
    for (AtomicCounters& c : domain_counters) c.peak_bytes.store(c.current_bytes.load());
}

}  // namespace memkit::hook
