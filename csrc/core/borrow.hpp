// RefCell's borrow flag: Rust's runtime borrow rules as one atomic word.
//
// Invariant on `flag_`: 0 = unborrowed, n > 0 = n shared borrows, kExclusive = one
// exclusive borrow. Transitions are compare-exchanges, so two threads racing for
// conflicting borrows cannot both win: exactly one gets the borrow, the other an error.
// Pure C++17; unit-tested in tests/cpp/test_borrow.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace memkit::core {

// std::atomic's interface over a plain integer, for owners that already serialise every
// access (CPython's GIL): the same code, without lock-prefixed instructions.
struct UnsyncedWord {
    std::int64_t v = 0;
    std::int64_t load(std::memory_order) const noexcept { return v; }
    void store(std::int64_t x, std::memory_order) noexcept { v = x; }
    std::int64_t fetch_sub(std::int64_t x, std::memory_order) noexcept {
        const std::int64_t old = v;
        v -= x;
        return old;
    }
    bool compare_exchange(std::int64_t& expected, std::int64_t desired) noexcept {
        if (v != expected) {
            expected = v;
            return false;
        }
        v = desired;
        return true;
    }
    bool compare_exchange_weak(std::int64_t& e, std::int64_t d, std::memory_order, std::memory_order) noexcept {
        return compare_exchange(e, d);
    }
    bool compare_exchange_strong(std::int64_t& e, std::int64_t d, std::memory_order, std::memory_order) noexcept {
        return compare_exchange(e, d);
    }
};

// Synchronised = false is only for callers that serialise every call themselves.
template <bool Synchronised>
class BasicBorrowFlag {
public:
    static constexpr std::int64_t kExclusive = -1;
    static constexpr std::int64_t kMaxShared = std::numeric_limits<std::int64_t>::max() - 1;

    enum class State { unborrowed, shared, exclusive };

    // A shared borrow, unless exclusively borrowed (or at kMaxShared, which Rust also refuses).
    bool try_shared() noexcept {
        std::int64_t current = flag_.load(std::memory_order_relaxed);
        while (current >= 0 && current < kMaxShared) {
            if (flag_.compare_exchange_weak(current, current + 1, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
                return true;
            }
        }
        return false;
    }
    // Precondition: a try_shared() that returned true has not been ended yet.
    void end_shared() noexcept { flag_.fetch_sub(1, std::memory_order_release); }

    // The exclusive borrow, only when unborrowed.
    bool try_exclusive() noexcept {
        std::int64_t expected = 0;
        return flag_.compare_exchange_strong(expected, kExclusive, std::memory_order_acquire,
                                             std::memory_order_relaxed);
    }
    // Precondition: a try_exclusive() that returned true has not been ended yet.
    void end_exclusive() noexcept { flag_.store(0, std::memory_order_release); }

    State state() const noexcept {
        const std::int64_t v = flag_.load(std::memory_order_acquire);
        return v == 0 ? State::unborrowed : v > 0 ? State::shared : State::exclusive;
    }
    // Shared borrows outstanding, or 1 when exclusively borrowed, or 0.
    std::int64_t count() const noexcept {
        const std::int64_t v = flag_.load(std::memory_order_acquire);
        return v == kExclusive ? 1 : v;
    }

private:
    std::conditional_t<Synchronised, std::atomic<std::int64_t>, UnsyncedWord> flag_{};
};

using BorrowFlag = BasicBorrowFlag<true>;

}  // namespace memkit::core
