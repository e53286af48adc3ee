// Unit tests of csrc/core/borrow.hpp: Rust's borrow rules, and that racing threads never
// both win conflicting borrows.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/borrow.hpp"
#include "run_concurrently.hpp"

namespace {

using memkit::core::BorrowFlag;

TEST(BorrowFlag, SharedBorrowsStack) {
    BorrowFlag f;
    EXPECT_EQ(f.state(), BorrowFlag::State::unborrowed);
    EXPECT_TRUE(f.try_shared());
    EXPECT_TRUE(f.try_shared());
    EXPECT_EQ(f.state(), BorrowFlag::State::shared);
    EXPECT_EQ(f.count(), 2);
    EXPECT_FALSE(f.try_exclusive());
    f.end_shared();
    EXPECT_FALSE(f.try_exclusive());
    f.end_shared();
    EXPECT_TRUE(f.try_exclusive());
}

TEST(BorrowFlag, ExclusiveExcludesEverything) {
    BorrowFlag f;
    ASSERT_TRUE(f.try_exclusive());
    EXPECT_EQ(f.state(), BorrowFlag::State::exclusive);
    EXPECT_EQ(f.count(), 1);
    EXPECT_FALSE(f.try_shared());
    EXPECT_FALSE(f.try_exclusive());
    f.end_exclusive();
    EXPECT_EQ(f.state(), BorrowFlag::State::unborrowed);
    EXPECT_TRUE(f.try_shared());
}

TEST(BorrowFlag, UnsynchronisedFlagFollowsTheSameRules) {
    memkit::core::BasicBorrowFlag<false> f;  // what GIL builds use: same rules, no atomics
    EXPECT_TRUE(f.try_shared());
    EXPECT_FALSE(f.try_exclusive());
    f.end_shared();
    EXPECT_TRUE(f.try_exclusive());
    EXPECT_FALSE(f.try_shared());
    EXPECT_EQ(f.count(), 1);
    f.end_exclusive();
    EXPECT_EQ(f.state(), memkit::core::BasicBorrowFlag<false>::State::unborrowed);
}

TEST(BorrowFlag, RacingThreadsNeverHoldConflictingBorrows) {
    BorrowFlag f;
    std::atomic<int> writers{0};
    std::atomic<int> readers{0};
    std::atomic<bool> violated{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 20000; ++i) {
                if ((i + t) % 3 == 0) {
                    if (f.try_exclusive()) {
                        if (writers.fetch_add(1) != 0 || readers.load() != 0) violated = true;
                        writers.fetch_sub(1);
                        f.end_exclusive();
                    }
                } else if (f.try_shared()) {
                    readers.fetch_add(1);
                    if (writers.load() != 0) violated = true;
                    readers.fetch_sub(1);
                    f.end_shared();
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_FALSE(violated.load());
    EXPECT_EQ(f.state(), BorrowFlag::State::unborrowed);
}

// The borrow flag orders the data it guards: writes made under an exclusive borrow are
// visible to every later borrow (acquire on taking, release on ending). `value` is a plain
// integer, so ThreadSanitizer reports a race if the flag's orderings were too weak.
TEST(BorrowFlag, ExclusiveBorrowsOrderPlainData) {
    BorrowFlag f;
    long value = 0;  // written only under an exclusive borrow, read under a shared one
    std::atomic<long> writes{0};
    std::atomic<bool> went_back{false};
    memkit_test::run_concurrently(4, [&](int t) {
        long last_seen = 0;
        for (int i = 0; i < 20000; ++i) {
            if ((i + t) % 4 == 0) {
                if (f.try_exclusive()) {
                    ++value;
                    writes.fetch_add(1, std::memory_order_relaxed);
                    f.end_exclusive();
                }
            } else if (f.try_shared()) {
                const long now = value;
                if (now < last_seen) went_back = true;  // a later borrow saw an older value
                last_seen = now;
                f.end_shared();
            }
        }
    });
    EXPECT_FALSE(went_back.load());
    EXPECT_EQ(value, writes.load());
    EXPECT_EQ(f.state(), BorrowFlag::State::unborrowed);
}

}  // namespace
