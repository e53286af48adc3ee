// Unit tests of csrc/core/atomic: Rust's ordering rules, wrapping arithmetic, max/min,
// compare-exchange, the contention kernel and the shard index.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/atomic.hpp"
#include "run_concurrently.hpp"

namespace {

using memkit::core::Order;
using memkit::core::Rmw;
using memkit_test::run_concurrently;

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

TEST(AtomicOrders, RustRules) {
    using namespace memkit::core;
    EXPECT_EQ(invalid_load_order(Order::relaxed), nullptr);
    EXPECT_EQ(invalid_load_order(Order::acquire), nullptr);
    EXPECT_EQ(invalid_load_order(Order::seq_cst), nullptr);
    EXPECT_NE(invalid_load_order(Order::release), nullptr);
    EXPECT_NE(invalid_load_order(Order::acq_rel), nullptr);
    EXPECT_EQ(invalid_store_order(Order::release), nullptr);
    EXPECT_NE(invalid_store_order(Order::acquire), nullptr);
    EXPECT_NE(invalid_store_order(Order::acq_rel), nullptr);
    EXPECT_NE(invalid_failure_order(Order::release), nullptr);
    EXPECT_NE(invalid_failure_order(Order::acq_rel), nullptr);
    EXPECT_EQ(invalid_failure_order(Order::acquire), nullptr);
    EXPECT_EQ(default_failure(Order::acq_rel), Order::acquire);
    EXPECT_EQ(default_failure(Order::release), Order::relaxed);
    EXPECT_EQ(default_failure(Order::seq_cst), Order::seq_cst);
    EXPECT_TRUE(is_order(0) && is_order(4));
    EXPECT_FALSE(is_order(-1) || is_order(5));
}

TEST(AtomicRmw, EveryOperationReturnsThePreviousValue) {
    using memkit::core::atomic_rmw;
    alignas(8) std::int64_t cell = 12;
    EXPECT_EQ(atomic_rmw(&cell, Rmw::add, 3, Order::seq_cst), 12);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::sub, 5, Order::relaxed), 15);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::bit_and, 6, Order::acquire), 10);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::bit_or, 9, Order::release), 2);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::bit_xor, 1, Order::acq_rel), 11);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::max, 4, Order::seq_cst), 10);
    EXPECT_EQ(cell, 10);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::max, 40, Order::release), 10);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::min, -4, Order::acq_rel), 40);
    EXPECT_EQ(atomic_rmw(&cell, Rmw::swap, 7, Order::seq_cst), -4);
    EXPECT_EQ(cell, 7);
}

TEST(AtomicRmw, ArithmeticWraps) {
    using memkit::core::atomic_rmw;
    alignas(8) std::int64_t cell = kMax;
    atomic_rmw(&cell, Rmw::add, 1, Order::seq_cst);
    EXPECT_EQ(cell, kMin);
    atomic_rmw(&cell, Rmw::sub, 1, Order::seq_cst);
    EXPECT_EQ(cell, kMax);
}

TEST(AtomicCas, StrongAndWeak) {
    alignas(8) std::int64_t cell = 1;
    std::int64_t expected = 5;
    EXPECT_FALSE(memkit::core::atomic_compare_exchange(&cell, expected, 9, false, Order::seq_cst, Order::seq_cst));
    EXPECT_EQ(expected, 1);
    EXPECT_TRUE(memkit::core::atomic_compare_exchange(&cell, expected, 9, false, Order::acq_rel, Order::acquire));
    EXPECT_EQ(cell, 9);
    expected = 9;
    while (!memkit::core::atomic_compare_exchange(&cell, expected, 10, true, Order::relaxed, Order::relaxed)) {
    }
    EXPECT_EQ(cell, 10);
}

TEST(AtomicBool, Operations) {
    using namespace memkit::core;
    std::uint8_t cell = 0;
    EXPECT_FALSE(bool_rmw(&cell, Rmw::swap, true, Order::seq_cst));
    EXPECT_TRUE(bool_load(&cell, Order::acquire));
    EXPECT_TRUE(bool_rmw(&cell, Rmw::bit_xor, true, Order::seq_cst));
    EXPECT_FALSE(bool_load(&cell, Order::seq_cst));
    bool expected = false;
    EXPECT_TRUE(bool_compare_exchange(&cell, expected, true, false, Order::seq_cst, Order::seq_cst));
    expected = false;
    EXPECT_FALSE(bool_compare_exchange(&cell, expected, true, false, Order::seq_cst, Order::seq_cst));
    EXPECT_TRUE(expected);
}

TEST(AtomicThreads, ExactTotalsUnderContention) {
    alignas(8) std::int64_t cell = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&cell] {
            for (int i = 0; i < 100000; ++i) memkit::core::atomic_rmw(&cell, Rmw::add, 1, Order::relaxed);
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(memkit::core::atomic_load(&cell, Order::seq_cst), 400000);
}

// Every thread increments through its own compare-exchange loop (weak and strong, with the
// orderings a Rust user would pick): no increment is lost.
TEST(AtomicThreads, CompareExchangeLoopsLoseNoUpdate) {
    alignas(8) std::int64_t cell = 0;
    constexpr int kThreads = 4;
    constexpr int kIters = 20000;
    run_concurrently(kThreads, [&](int t) {
        const bool weak = t % 2 == 0;
        for (int i = 0; i < kIters; ++i) {
            std::int64_t seen = memkit::core::atomic_load(&cell, Order::relaxed);
            while (!memkit::core::atomic_compare_exchange(&cell, seen, seen + 1, weak, Order::acq_rel, Order::relaxed)) {
            }
        }
    });
    EXPECT_EQ(memkit::core::atomic_load(&cell, Order::seq_cst), kThreads * kIters);
}

// fetch_max and fetch_min are compare-exchange loops inside the core: racing threads end
// at the extreme of every value offered, and no call ever sees a value past it.
TEST(AtomicThreads, FetchMaxAndMinRaceToTheExtremes) {
    alignas(8) std::int64_t hi = kMin;
    alignas(8) std::int64_t lo = kMax;
    constexpr int kThreads = 4;
    constexpr int kIters = 20000;
    std::atomic<bool> overshot{false};
    run_concurrently(kThreads, [&](int t) {
        for (int i = 0; i < kIters; ++i) {
            // Interleaved ranges, so every thread keeps raising the maximum for a while.
            const std::int64_t v = static_cast<std::int64_t>(i) * kThreads + t;
            const Order o = i % 3 == 0 ? Order::relaxed : i % 3 == 1 ? Order::acq_rel : Order::seq_cst;
            if (memkit::core::atomic_rmw(&hi, Rmw::max, v, o) > kIters * kThreads - 1) overshot = true;
            if (memkit::core::atomic_rmw(&lo, Rmw::min, -v, o) < -(kIters * kThreads - 1)) overshot = true;
        }
    });
    EXPECT_FALSE(overshot.load());
    EXPECT_EQ(memkit::core::atomic_load(&hi, Order::seq_cst), kIters * kThreads - 1);
    EXPECT_EQ(memkit::core::atomic_load(&lo, Order::seq_cst), -(kIters * kThreads - 1));
}

// swap hands each token to exactly one thread: the values swapped out, plus the one left
// in the cell, are every token exactly once.
TEST(AtomicThreads, SwapHandsEveryTokenToExactlyOneThread) {
    alignas(8) std::int64_t cell = 0;  // token 0 starts in the cell
    constexpr int kThreads = 4;
    constexpr int kIters = 10000;
    std::vector<std::vector<std::int64_t>> got(kThreads);
    run_concurrently(kThreads, [&](int t) {
        auto& mine = got[static_cast<std::size_t>(t)];
        mine.reserve(kIters);
        for (int i = 0; i < kIters; ++i) {
            const std::int64_t token = 1 + static_cast<std::int64_t>(t) * kIters + i;
            mine.push_back(memkit::core::atomic_rmw(&cell, Rmw::swap, token, Order::acq_rel));
        }
    });
    std::vector<int> seen(static_cast<std::size_t>(kThreads) * kIters + 1, 0);
    for (const auto& mine : got) {
        for (std::int64_t token : mine) ++seen[static_cast<std::size_t>(token)];
    }
    ++seen[static_cast<std::size_t>(memkit::core::atomic_load(&cell, Order::seq_cst))];
    for (std::size_t token = 0; token < seen.size(); ++token) ASSERT_EQ(seen[token], 1) << "token " << token;
}

// A release store publishes plain writes made before it to a thread that sees the store
// with an acquire load (message passing). ThreadSanitizer reports a data race on `data`
// if the orderings did not create that happens-before edge.
TEST(AtomicThreads, ReleaseStorePublishesPlainData) {
    for (int round = 0; round < 50; ++round) {
        alignas(8) std::int64_t ready = 0;
        std::int64_t data[16] = {};
        run_concurrently(3, [&](int t) {
            if (t == 0) {
                for (std::int64_t i = 0; i < 16; ++i) data[i] = round * 100 + i;
                memkit::core::atomic_store(&ready, 1, Order::release);
            } else {
                while (memkit::core::atomic_load(&ready, Order::acquire) == 0) std::this_thread::yield();
                for (std::int64_t i = 0; i < 16; ++i) EXPECT_EQ(data[i], round * 100 + i);
            }
        });
    }
}

// A spin lock made of AtomicBool operations (compare-exchange with ACQUIRE to take it, a
// RELEASE store to drop it) protects a plain counter: exact count, and no race for TSan.
TEST(AtomicThreads, BoolSpinLockProtectsPlainData) {
    alignas(8) std::uint8_t lock = 0;
    long counter = 0;  // plain: only the lock orders it
    constexpr int kThreads = 4;
    constexpr int kIters = 5000;
    run_concurrently(kThreads, [&](int t) {
        for (int i = 0; i < kIters; ++i) {
            if ((i + t) % 2 == 0) {
                bool expected = false;
                while (!memkit::core::bool_compare_exchange(&lock, expected, true, /*weak=*/true, Order::acquire,
                                                            Order::relaxed)) {
                    expected = false;
                    std::this_thread::yield();
                }
            } else {
                // Test-and-set: fetch_or returns the previous value.
                while (memkit::core::bool_rmw(&lock, Rmw::bit_or, true, Order::acquire)) std::this_thread::yield();
            }
            ++counter;
            memkit::core::bool_store(&lock, false, Order::release);
        }
    });
    EXPECT_EQ(counter, static_cast<long>(kThreads) * kIters);
    EXPECT_FALSE(memkit::core::bool_load(&lock, Order::seq_cst));
}

// fetch_xor from racing threads: an even number of toggles leaves the flag as it was.
TEST(AtomicThreads, BoolXorTogglesAreNeverLost) {
    alignas(8) std::uint8_t flag = 0;
    run_concurrently(4, [&](int) {
        for (int i = 0; i < 10001; ++i) memkit::core::bool_rmw(&flag, Rmw::bit_xor, true, Order::acq_rel);
    });
    // 4 x 10001 toggles: even.
    EXPECT_FALSE(memkit::core::bool_load(&flag, Order::seq_cst));
}

TEST(Contend, CountsExactlyPaddedAndNot) {
    for (std::size_t stride : {std::size_t{8}, std::size_t{128}}) {
        std::vector<std::int64_t> cells(4 * 128 / 8, 0);
        const std::uint64_t ns = memkit::core::contend(cells.data(), stride, 3, 20000);
        EXPECT_GT(ns, 0u);
        for (std::size_t t = 0; t < 3; ++t) EXPECT_EQ(cells[t * stride / 8], 20000) << "stride " << stride;
    }
}

TEST(ThreadShard, StablePerThreadAndSpread) {
    const std::size_t mine = memkit::core::thread_shard(8);
    EXPECT_EQ(memkit::core::thread_shard(8), mine);
    std::set<std::size_t> seen;
    std::mutex m;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            const std::size_t s = memkit::core::thread_shard(8);
            std::lock_guard<std::mutex> lock(m);
            seen.insert(s);
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(seen.size(), 8u);  // eight new threads take eight consecutive numbers
}

}  // namespace
