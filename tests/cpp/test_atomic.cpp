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

namespace {

using memkit::core::Order;
using memkit::core::Rmw;

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
