// Atomic operations on 64-bit cells with Rust's orderings and rules, the contention kernel
// that shows false sharing, and the shard index of ShardedCounter.
//
// The cells may live in memory memkit does not own (a SharedMemory segment, an mmap), so
// operations take an `std::int64_t*` and use the compiler's __atomic builtins, which work
// on any suitably aligned object (what C++20's std::atomic_ref does). Pure C++17.
#pragma once

#include <cstddef>
#include <cstdint>

namespace memkit::core {

// Rust's std::sync::atomic::Ordering, in Python's numbering (memkit.atomic.Ordering).
enum class Order : int { relaxed = 0, acquire = 1, release = 2, acq_rel = 3, seq_cst = 4 };

constexpr bool is_order(long long value) noexcept { return value >= 0 && value <= 4; }

// Rust panics on these; memkit raises ValueError with the same words. nullptr = valid.
inline const char* invalid_load_order(Order o) noexcept {
    if (o == Order::release) return "there is no such thing as a release load";
    if (o == Order::acq_rel) return "there is no such thing as an acquire-release load";
    return nullptr;
}
inline const char* invalid_store_order(Order o) noexcept {
    if (o == Order::acquire) return "there is no such thing as an acquire store";
    if (o == Order::acq_rel) return "there is no such thing as an acquire-release store";
    return nullptr;
}
inline const char* invalid_failure_order(Order o) noexcept {
    if (o == Order::release) return "there is no such thing as a release failure ordering";
    if (o == Order::acq_rel) return "there is no such thing as an acquire-release failure ordering";
    return nullptr;
}
// The strongest ordering valid for a failed compare-exchange, given the success ordering:
// the success ordering without its release part (C++'s default for the one-order form).
constexpr Order default_failure(Order success) noexcept {
    return success == Order::acq_rel ? Order::acquire
                                     : success == Order::release ? Order::relaxed : success;
}

constexpr int gcc_order(Order o) noexcept {
    switch (o) {
        case Order::relaxed: return __ATOMIC_RELAXED;
        case Order::acquire: return __ATOMIC_ACQUIRE;
        case Order::release: return __ATOMIC_RELEASE;
        case Order::acq_rel: return __ATOMIC_ACQ_REL;
        default: return __ATOMIC_SEQ_CST;
    }
}

// Read-modify-write operations; each returns the previous value.
enum class Rmw { add, sub, bit_and, bit_or, bit_xor, max, min, swap };

// Precondition for every function below: `cell` is 8-byte aligned and valid for the call;
// the ordering was validated for the operation (invalid_*_order returned nullptr).
inline std::int64_t atomic_load(const std::int64_t* cell, Order o) noexcept {
    return __atomic_load_n(cell, gcc_order(o));
}
inline void atomic_store(std::int64_t* cell, std::int64_t v, Order o) noexcept {
    __atomic_store_n(cell, v, gcc_order(o));
}

inline std::int64_t atomic_rmw(std::int64_t* cell, Rmw op, std::int64_t v, Order o) noexcept {
    const int m = gcc_order(o);
    // Arithmetic goes through uint64: wrapping, as Rust's and C++'s atomics define it.
    auto* u = reinterpret_cast<std::uint64_t*>(cell);
    const auto uv = static_cast<std::uint64_t>(v);
    switch (op) {
        case Rmw::add: return static_cast<std::int64_t>(__atomic_fetch_add(u, uv, m));
        case Rmw::sub: return static_cast<std::int64_t>(__atomic_fetch_sub(u, uv, m));
        case Rmw::bit_and: return static_cast<std::int64_t>(__atomic_fetch_and(u, uv, m));
        case Rmw::bit_or: return static_cast<std::int64_t>(__atomic_fetch_or(u, uv, m));
        case Rmw::bit_xor: return static_cast<std::int64_t>(__atomic_fetch_xor(u, uv, m));
        case Rmw::swap: return __atomic_exchange_n(cell, v, m);
        case Rmw::max:
        case Rmw::min: {
            // No fetch_max builtin before C++26: a compare-exchange loop. The failure
            // ordering must not carry a release part.
            const int fail = gcc_order(default_failure(o));
            std::int64_t current = __atomic_load_n(cell, fail);
            for (;;) {
                const bool keep = op == Rmw::max ? current >= v : current <= v;
                if (keep) return current;
                if (__atomic_compare_exchange_n(cell, &current, v, /*weak=*/true, m, fail)) return current;
            }
        }
    }
    return 0;  // unreachable: every Rmw is handled
}

// Returns true and leaves `expected` alone on success; on failure stores the current
// value in `expected`. `weak` may fail spuriously (for loops).
inline bool atomic_compare_exchange(std::int64_t* cell, std::int64_t& expected, std::int64_t desired, bool weak,
                                    Order success, Order failure) noexcept {
    return __atomic_compare_exchange_n(cell, &expected, desired, weak, gcc_order(success), gcc_order(failure));
}

// The same for a one-byte boolean cell (AtomicBool).
inline bool bool_load(const std::uint8_t* cell, Order o) noexcept { return __atomic_load_n(cell, gcc_order(o)) != 0; }
inline void bool_store(std::uint8_t* cell, bool v, Order o) noexcept {
    __atomic_store_n(cell, static_cast<std::uint8_t>(v), gcc_order(o));
}
inline bool bool_rmw(std::uint8_t* cell, Rmw op, bool v, Order o) noexcept {
    const int m = gcc_order(o);
    const auto b = static_cast<std::uint8_t>(v);
    switch (op) {
        case Rmw::bit_and: return __atomic_fetch_and(cell, b, m) != 0;
        case Rmw::bit_or: return __atomic_fetch_or(cell, b, m) != 0;
        case Rmw::bit_xor: return __atomic_fetch_xor(cell, b, m) != 0;
        default: return __atomic_exchange_n(cell, b, m) != 0;  // swap
    }
}
inline bool bool_compare_exchange(std::uint8_t* cell, bool& expected, bool desired, bool weak, Order success,
                                  Order failure) noexcept {
    auto e = static_cast<std::uint8_t>(expected);
    const bool ok = __atomic_compare_exchange_n(cell, &e, static_cast<std::uint8_t>(desired), weak,
                                                gcc_order(success), gcc_order(failure));
    expected = e != 0;
    return ok;
}

// Runs `nthreads` OS threads at once (released together), thread t adding 1 to the cell at
// base + t * stride_bytes `iterations` times with a relaxed fetch_add. Returns the
// wall-clock nanoseconds from the release to the last thread's finish. Neighbouring cells
// (stride 8) share a cache line and so contend; cells a CACHE_PAD apart do not. Thread t
// is pinned to the t-th CPU the process may use (modulo their number), on Linux.
// Precondition: every cell is valid and 8-byte aligned; nthreads >= 1.
std::uint64_t contend(std::int64_t* base, std::size_t stride_bytes, std::size_t nthreads, std::uint64_t iterations);

// The calling thread's shard among `nshards` (a power of two): threads are numbered in the
// order they first ask, so up to `nshards` threads get a shard each.
std::size_t thread_shard(std::size_t nshards) noexcept;

}  // namespace memkit::core
