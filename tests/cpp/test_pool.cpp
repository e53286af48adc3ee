// Unit tests of csrc/core/pool.hpp: BlockPool, PoolStats.
//
// Run under ASan/UBSan too (CMakeLists.txt, MEMKIT_SANITIZE): every test gives back all the
// blocks it takes, so LeakSanitizer checks that give(), clear() and the destructor free the
// rest.
#include "core/pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/aligned.hpp"
#include "run_concurrently.hpp"

namespace {

using memkit::core::BlockPool;
using memkit::core::kMaxAlign;
using memkit::core::kMaxSize;
using memkit::core::PoolStats;
using Block = BlockPool::Block;

constexpr std::size_t kExact = BlockPool::kExact;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

bool is_aligned(const void* p, std::size_t align) { return addr(p) % align == 0; }

// PoolStats with equality and printing for EXPECT_EQ, kept in this file's own namespace.
struct Stats {
    std::uint64_t hits, misses;
    std::size_t cached_bytes, outstanding;
    bool operator==(const Stats& o) const {
        return hits == o.hits && misses == o.misses && cached_bytes == o.cached_bytes &&
               outstanding == o.outstanding;
    }
};

void PrintTo(const Stats& s, std::ostream* os) {
    *os << "{hits=" << s.hits << ", misses=" << s.misses << ", cached_bytes=" << s.cached_bytes
        << ", outstanding=" << s.outstanding << "}";
}

Stats snap(const BlockPool& pool) {
    const PoolStats s = pool.stats();
    return Stats{s.hits, s.misses, s.cached_bytes, s.outstanding};
}

Stats stats_of(std::uint64_t hits, std::uint64_t misses, std::size_t cached, std::size_t outstanding) {
    return Stats{hits, misses, cached, outstanding};
}

// Writes the whole block (ASan checks its bounds: blocks are separate allocations).
void fill(const Block& b, unsigned char value) {
    if (b.capacity() != 0) std::memset(b.memory.data, value, b.capacity());
}

// ---- construction -----------------------------------------------------------------------

TEST(BlockPool, RejectsBadArguments) {
    EXPECT_THROW(BlockPool({}, 1024, 8), std::invalid_argument);
    EXPECT_THROW(BlockPool({0}, 1024, 8), std::invalid_argument);
    EXPECT_THROW(BlockPool({64, 0, 128}, 1024, 8), std::invalid_argument);
    EXPECT_THROW(BlockPool({64, kMaxSize + 1}, 1024, 8), std::invalid_argument);
    EXPECT_THROW(BlockPool({64, SIZE_MAX}, 1024, 8), std::invalid_argument);
    for (const std::size_t align : {std::size_t{0}, std::size_t{3}, std::size_t{48}, kMaxAlign * 2, SIZE_MAX}) {
        EXPECT_THROW(BlockPool({64}, 1024, align), std::invalid_argument) << "align=" << align;
    }
    try {
        BlockPool pool({64, 0}, 1024, 8);
        FAIL() << "a zero size class was accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("got 0"), std::string::npos) << e.what();
    }
}

TEST(BlockPool, ClassesAreSortedAndDeduplicated) {
    BlockPool pool({4096, 64, 256, 64, 1, 4096, 256}, 12345, 32);
    const std::vector<std::size_t> expected = {1, 64, 256, 4096};
    EXPECT_EQ(pool.size_classes(), expected);
    EXPECT_EQ(pool.max_cached_bytes(), 12345u);
    EXPECT_EQ(pool.align(), 32u);
    EXPECT_EQ(snap(pool), stats_of(0, 0, 0, 0));

    BlockPool single({100, 100, 100}, 0, 1);
    EXPECT_EQ(single.size_classes(), std::vector<std::size_t>{100});
    // The largest allowed class is accepted (never allocated here).
    BlockPool huge({kMaxSize, 1}, 0, 1);
    EXPECT_EQ(huge.size_classes(), (std::vector<std::size_t>{1, kMaxSize}));
}

// ---- take -------------------------------------------------------------------------------

TEST(BlockPool, TakePicksTheSmallestClassThatFits) {
    BlockPool pool({256, 64, 1024}, 1 << 20, 16);
    struct Case {
        std::size_t nbytes, capacity, size_class;
    };
    const Case cases[] = {{0, 64, 0},     {1, 64, 0},      {63, 64, 0},       {64, 64, 0},
                          {65, 256, 1},   {200, 256, 1},   {256, 256, 1},     {257, 1024, 2},
                          {1000, 1024, 2}, {1024, 1024, 2}, {1025, 1025, kExact}, {5000, 5000, kExact}};
    std::vector<Block> taken;
    for (const Case& c : cases) {
        SCOPED_TRACE("nbytes=" + std::to_string(c.nbytes));
        Block b = pool.take(c.nbytes);
        EXPECT_EQ(b.capacity(), c.capacity);
        EXPECT_EQ(b.memory.nbytes, c.capacity);
        EXPECT_EQ(b.size_class, c.size_class);
        EXPECT_EQ(b.memory.align, 16u);
        ASSERT_NE(b.memory.data, nullptr);
        EXPECT_TRUE(is_aligned(b.memory.data, 16));
        if (c.size_class != kExact) {
            EXPECT_EQ(pool.size_classes()[b.size_class], b.capacity());
        }
        fill(b, 0xab);
        taken.push_back(b);
    }
    // All distinct, all misses.
    for (std::size_t i = 0; i < taken.size(); ++i) {
        for (std::size_t j = i + 1; j < taken.size(); ++j) {
            EXPECT_NE(taken[i].memory.data, taken[j].memory.data) << i << " vs " << j;
        }
    }
    EXPECT_EQ(snap(pool), stats_of(0, taken.size(), 0, taken.size()));
    for (const Block& b : taken) pool.give(b);
}

TEST(BlockPool, TakeZeroGivesTheSmallestClass) {
    BlockPool pool({512, 32}, 4096, 8);
    Block b = pool.take(0);
    EXPECT_EQ(b.size_class, 0u);
    EXPECT_EQ(b.capacity(), 32u);
    ASSERT_NE(b.memory.data, nullptr);
    fill(b, 1);
    pool.give(b);
    EXPECT_EQ(snap(pool), stats_of(0, 1, 32, 0));
    Block again = pool.take(0);
    EXPECT_EQ(again.memory.data, b.memory.data);
    EXPECT_EQ(snap(pool), stats_of(1, 1, 0, 1));
    pool.give(again);
}

TEST(BlockPool, ExactBlocksAreFreedNotCached) {
    BlockPool pool({64, 128}, 1 << 20, 64);
    Block b = pool.take(10000);
    EXPECT_EQ(b.size_class, kExact);
    EXPECT_EQ(b.capacity(), 10000u);
    EXPECT_TRUE(is_aligned(b.memory.data, 64));
    fill(b, 0xcd);
    EXPECT_EQ(snap(pool), stats_of(0, 1, 0, 1));
    pool.give(b);
    EXPECT_EQ(snap(pool), stats_of(0, 1, 0, 0));  // freed: nothing cached
    // The same size again is another miss.
    Block c = pool.take(10000);
    EXPECT_EQ(c.size_class, kExact);
    EXPECT_EQ(snap(pool), stats_of(0, 2, 0, 1));
    pool.give(c);
    EXPECT_EQ(snap(pool), stats_of(0, 2, 0, 0));

    // A large, mapped exact block too.
    Block big = pool.take(3 << 20);
    EXPECT_EQ(big.capacity(), std::size_t{3} << 20);
    EXPECT_EQ(big.size_class, kExact);
    fill(big, 0x11);
    pool.give(big);
    EXPECT_EQ(snap(pool), stats_of(0, 3, 0, 0));
}

// Only a block just mapped from the OS says it is zeroed: the caller skips zeroing it
// (and touching every page of a large block). Heap blocks and reused blocks are dirty.
TEST(BlockPool, OnlyFreshlyMappedBlocksComeZeroed) {
    BlockPool pool({64, 2 << 20}, 8 << 20, 64);
    Block small = pool.take(10);  // a heap block
    EXPECT_FALSE(small.zeroed);
    Block exact = pool.take(3 << 20);  // above the largest class: mapped
    EXPECT_TRUE(exact.zeroed);
    Block mapped = pool.take(1 << 20);  // the 2 MiB class, new: mapped
    EXPECT_TRUE(mapped.zeroed);
    for (std::size_t i = 0; i < mapped.capacity(); i += 4096) EXPECT_EQ(mapped.memory.data[i], std::byte{0});
    fill(mapped, 0x5a);
    pool.give(mapped);
    Block reused = pool.take(1 << 20);  // a hit: the bytes the last user wrote
    EXPECT_FALSE(reused.zeroed);
    EXPECT_EQ(reused.memory.data[0], std::byte{0x5a});
    pool.give(reused);
    pool.give(exact);
    pool.give(small);
}

TEST(BlockPool, GiveThenTakeIsAHitWithTheSameAddress) {
    BlockPool pool({64, 256, 1024}, 1 << 20, 64);
    Block a = pool.take(100);
    std::byte* const p = a.memory.data;
    fill(a, 0x42);
    pool.give(a);
    EXPECT_EQ(snap(pool), stats_of(0, 1, 256, 0));
    // Any size of the same class gets the cached block back.
    Block b = pool.take(200);
    EXPECT_EQ(b.memory.data, p);
    EXPECT_EQ(b.size_class, 1u);
    EXPECT_EQ(b.capacity(), 256u);
    EXPECT_EQ(b.memory.align, 64u);
    EXPECT_EQ(snap(pool), stats_of(1, 1, 0, 1));
    // Another class does not get it.
    pool.give(b);
    Block c = pool.take(64);
    EXPECT_NE(c.memory.data, p);
    EXPECT_EQ(c.capacity(), 64u);
    EXPECT_EQ(snap(pool), stats_of(1, 2, 256, 1));
    pool.give(c);
    EXPECT_EQ(snap(pool), stats_of(1, 2, 256 + 64, 0));
}

TEST(BlockPool, StatsFollowExactly) {
    BlockPool pool({128, 1024}, 1 << 20, 16);
    EXPECT_EQ(snap(pool), stats_of(0, 0, 0, 0));
    Block a = pool.take(100);   // miss
    Block b = pool.take(128);   // miss
    Block c = pool.take(1000);  // miss
    EXPECT_EQ(snap(pool), stats_of(0, 3, 0, 3));
    pool.give(a);
    EXPECT_EQ(snap(pool), stats_of(0, 3, 128, 2));
    pool.give(c);
    EXPECT_EQ(snap(pool), stats_of(0, 3, 128 + 1024, 1));
    Block d = pool.take(1);  // hit: a's block
    EXPECT_EQ(d.memory.data, a.memory.data);
    EXPECT_EQ(snap(pool), stats_of(1, 3, 1024, 2));
    Block e = pool.take(1);  // miss: the 128 class is empty again
    EXPECT_EQ(snap(pool), stats_of(1, 4, 1024, 3));
    Block f = pool.take(129);  // hit: c's block
    EXPECT_EQ(f.memory.data, c.memory.data);
    EXPECT_EQ(snap(pool), stats_of(2, 4, 0, 4));
    Block g = pool.take(2000);  // exact: a miss
    EXPECT_EQ(snap(pool), stats_of(2, 5, 0, 5));
    pool.give(g);
    EXPECT_EQ(snap(pool), stats_of(2, 5, 0, 4));
    pool.give(b);
    pool.give(d);
    pool.give(e);
    pool.give(f);
    EXPECT_EQ(snap(pool), stats_of(2, 5, 3 * 128 + 1024, 0));
    // Three 128-byte blocks cached: three hits, all different, then a miss.
    std::vector<Block> again;
    for (int i = 0; i < 3; ++i) again.push_back(pool.take(128));
    EXPECT_EQ(snap(pool), stats_of(5, 5, 1024, 3));
    EXPECT_NE(again[0].memory.data, again[1].memory.data);
    EXPECT_NE(again[1].memory.data, again[2].memory.data);
    EXPECT_NE(again[0].memory.data, again[2].memory.data);
    again.push_back(pool.take(128));
    EXPECT_EQ(snap(pool), stats_of(5, 6, 1024, 4));
    for (const Block& blk : again) pool.give(blk);
    EXPECT_EQ(snap(pool), stats_of(5, 6, 4 * 128 + 1024, 0));
}

// ---- the cache bound --------------------------------------------------------------------

TEST(BlockPool, CacheNeverExceedsMaxCachedBytes) {
    // Room for one and a half blocks: giving back two caches only one.
    BlockPool pool({1024}, 1536, 64);
    Block a = pool.take(1024);
    Block b = pool.take(1024);
    pool.give(a);
    EXPECT_EQ(snap(pool), stats_of(0, 2, 1024, 1));
    pool.give(b);  // 2048 > 1536: freed
    EXPECT_EQ(snap(pool), stats_of(0, 2, 1024, 0));
    Block c = pool.take(1);  // hit
    Block d = pool.take(1);  // miss
    EXPECT_EQ(snap(pool), stats_of(1, 3, 0, 2));
    EXPECT_EQ(c.memory.data, a.memory.data);
    pool.give(c);
    pool.give(d);
    EXPECT_EQ(snap(pool), stats_of(1, 3, 1024, 0));
}

TEST(BlockPool, CacheBoundAcrossClasses) {
    BlockPool pool({64, 1024}, 1100, 8);
    Block big = pool.take(1024);
    Block s1 = pool.take(64);
    Block s2 = pool.take(64);
    pool.give(big);
    EXPECT_EQ(pool.stats().cached_bytes, 1024u);
    pool.give(s1);  // 1088 <= 1100
    EXPECT_EQ(pool.stats().cached_bytes, 1088u);
    pool.give(s2);  // 1152 > 1100: freed
    EXPECT_EQ(pool.stats().cached_bytes, 1088u);
    EXPECT_EQ(pool.stats().outstanding, 0u);
    // Exactly max_cached_bytes is allowed.
    BlockPool exact({100}, 200, 8);
    Block x = exact.take(100);
    Block y = exact.take(100);
    Block z = exact.take(100);
    exact.give(x);
    exact.give(y);
    exact.give(z);
    EXPECT_EQ(snap(exact), stats_of(0, 3, 200, 0));
}

TEST(BlockPool, CachedBytesInvariantUnderChurn) {
    constexpr std::size_t kMax = 5000;
    BlockPool pool({16, 100, 700, 2048}, kMax, 32);
    std::vector<Block> live;
    std::uint64_t takes = 0;
    for (std::size_t i = 0; i < 2000; ++i) {
        const std::size_t r = (i * 2654435761u) % 97;
        if (r < 55 || live.empty()) {
            const std::size_t nbytes = (i * 131) % 2500;  // sometimes above the largest class
            Block b = pool.take(nbytes);
            ++takes;
            ASSERT_GE(b.capacity(), nbytes);
            ASSERT_TRUE(is_aligned(b.memory.data, 32));
            fill(b, static_cast<unsigned char>(i));
            live.push_back(b);
        } else {
            const std::size_t k = r % live.size();
            pool.give(live[k]);
            live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
        }
        const PoolStats s = pool.stats();
        ASSERT_LE(s.cached_bytes, kMax) << "i=" << i;
        ASSERT_EQ(s.outstanding, live.size()) << "i=" << i;
        ASSERT_EQ(s.hits + s.misses, takes) << "i=" << i;
    }
    for (const Block& b : live) pool.give(b);
    EXPECT_EQ(pool.stats().outstanding, 0u);
    EXPECT_LE(pool.stats().cached_bytes, kMax);
    EXPECT_GT(pool.stats().hits, 0u);
}

TEST(BlockPool, ZeroMaxCachedBytesCachesNothing) {
    BlockPool pool({64, 256}, 0, 16);
    for (int i = 0; i < 5; ++i) {
        Block b = pool.take(64);
        fill(b, 7);
        pool.give(b);
        EXPECT_EQ(snap(pool), stats_of(0, static_cast<std::uint64_t>(i) + 1, 0, 0));
    }
    Block a = pool.take(200);
    Block b = pool.take(200);
    pool.give(a);
    pool.give(b);
    EXPECT_EQ(snap(pool), stats_of(0, 7, 0, 0));
}

// ---- alignment --------------------------------------------------------------------------

TEST(BlockPool, BlocksAreAlignedToThePoolAlignment) {
    for (const std::size_t align : {std::size_t{1}, std::size_t{8}, std::size_t{64}, std::size_t{4096},
                                    std::size_t{1} << 16}) {
        SCOPED_TRACE("align=" + std::to_string(align));
        BlockPool pool({1, 100, 5000, 4096 * 3}, 1 << 20, align);
        std::vector<Block> blocks;
        for (const std::size_t nbytes : {std::size_t{0}, std::size_t{1}, std::size_t{50}, std::size_t{4097},
                                         std::size_t{12288}, std::size_t{70000}}) {
            for (int copy = 0; copy < 2; ++copy) {
                Block b = pool.take(nbytes);
                EXPECT_TRUE(is_aligned(b.memory.data, align)) << "nbytes=" << nbytes;
                EXPECT_EQ(b.memory.align, align);
                fill(b, 0x5a);
                blocks.push_back(b);
            }
        }
        for (const Block& b : blocks) pool.give(b);
        // Cached blocks come back aligned too.
        for (std::size_t i = 0; i < blocks.size(); ++i) {
            Block b = pool.take(blocks[i].capacity());
            EXPECT_TRUE(is_aligned(b.memory.data, align));
            blocks[i] = b;
        }
        EXPECT_GT(pool.stats().hits, 0u);
        for (const Block& b : blocks) pool.give(b);
    }
}

// ---- clear ------------------------------------------------------------------------------

TEST(BlockPool, ClearEmptiesTheCache) {
    BlockPool pool({64, 256}, 1 << 20, 16);
    Block a = pool.take(64);
    Block b = pool.take(256);
    Block kept = pool.take(256);
    pool.give(a);
    pool.give(b);
    EXPECT_EQ(snap(pool), stats_of(0, 3, 320, 1));
    pool.clear();
    EXPECT_EQ(snap(pool), stats_of(0, 3, 0, 1));  // outstanding blocks are not affected
    Block c = pool.take(64);  // a miss now
    EXPECT_EQ(snap(pool), stats_of(0, 4, 0, 2));
    fill(kept, 3);  // still valid
    pool.give(kept);
    pool.give(c);
    EXPECT_EQ(snap(pool), stats_of(0, 4, 320, 0));
    pool.clear();
    pool.clear();  // idempotent
    EXPECT_EQ(snap(pool), stats_of(0, 4, 0, 0));
    // The cache works again after a clear.
    Block d = pool.take(64);
    pool.give(d);
    Block e = pool.take(64);
    EXPECT_EQ(e.memory.data, d.memory.data);
    EXPECT_EQ(snap(pool), stats_of(1, 5, 0, 1));
    pool.give(e);
}

TEST(BlockPool, DestructorFreesCachedBlocks) {
    // LeakSanitizer reports these if the destructor does not free them.
    BlockPool pool({64, 4096, 2 << 20}, std::size_t{8} << 20, 64);
    std::vector<Block> blocks;
    for (const std::size_t n : {std::size_t{1}, std::size_t{4000}, std::size_t{2} << 20}) {
        blocks.push_back(pool.take(n));
        blocks.push_back(pool.take(n));
    }
    for (const Block& b : blocks) pool.give(b);
    EXPECT_EQ(pool.stats().cached_bytes, 2 * (64 + 4096 + (std::size_t{2} << 20)));
}

// ---- failures ---------------------------------------------------------------------------

TEST(BlockPool, AbsurdTakeIsBadAllocAndChangesNothing) {
    BlockPool pool({64, kMaxSize - 4096}, 1 << 20, 64);
    Block a = pool.take(64);
    pool.give(a);
    const Stats before = snap(pool);
    // A class the OS cannot provide.
    EXPECT_THROW(pool.take(100), std::bad_alloc);
    EXPECT_EQ(snap(pool), before);
    // An exact block the OS cannot provide.
    BlockPool small({64}, 1 << 20, 8);
    EXPECT_THROW(small.take(kMaxSize - 4096), std::bad_alloc);
    EXPECT_EQ(snap(small), stats_of(0, 0, 0, 0));
    // Above kMaxSize: allocate_aligned's length_error, nothing changed either.
    EXPECT_THROW(small.take(kMaxSize + 1), std::length_error);
    EXPECT_EQ(snap(small), stats_of(0, 0, 0, 0));
    // The pool still works.
    Block b = pool.take(1);
    EXPECT_EQ(b.memory.data, a.memory.data);
    pool.give(b);
}

// ---- threads ----------------------------------------------------------------------------
//
// BlockPool is not synchronised: its owner serialises calls (the GIL, or the binding's
// per-pool mutex on free-threaded builds). These run it that way from racing threads, so
// ThreadSanitizer checks that nothing outside the pool object - no static state in the
// pool or the aligned allocator - is shared unsynchronised.

// One pool per thread, no lock at all: separate pools share nothing.
TEST(BlockPoolThreads, SeparatePoolsShareNoState) {
    memkit_test::run_concurrently(4, [](int t) {
        BlockPool pool({64, 4096, 2 << 20}, 8 << 20, 64);
        for (int i = 0; i < 2000; ++i) {
            const std::size_t n = (static_cast<std::size_t>(i) * 37 + static_cast<std::size_t>(t)) % 5000;
            Block b = pool.take(n);
            fill(b, static_cast<unsigned char>(t));
            pool.give(b);
        }
        Block big = pool.take(3 << 20);  // mapped, exact
        fill(big, 1);
        pool.give(big);
        EXPECT_EQ(pool.stats().outstanding, 0u);
        EXPECT_EQ(pool.stats().hits + pool.stats().misses, 2001u);
    });
}

// One pool shared under a mutex, as the free-threaded binding uses it: each thread holds
// its blocks outside the lock, writing its own byte; no block is ever handed to two
// threads at once, and the statistics add up exactly.
TEST(BlockPoolThreads, SharedPoolUnderTheOwnersMutex) {
    BlockPool pool({64, 256, 4096}, 1 << 20, 64);
    std::mutex m;
    std::atomic<bool> clobbered{false};
    constexpr int kThreads = 4;
    constexpr int kIters = 2000;
    memkit_test::run_concurrently(kThreads, [&](int t) {
        const auto mark = static_cast<unsigned char>(0x10 + t);
        for (int i = 0; i < kIters; ++i) {
            Block b;
            {
                std::lock_guard<std::mutex> lock(m);
                b = pool.take(static_cast<std::size_t>((i * 7 + t) % 4000));
            }
            fill(b, mark);  // outside the lock: the block is this thread's alone
            std::this_thread::yield();
            for (std::size_t k = 0; k < b.capacity(); k += 16) {  // every 16th byte: fast under TSan
                if (static_cast<unsigned char>(b.memory.data[k]) != mark) clobbered = true;
            }
            std::lock_guard<std::mutex> lock(m);
            pool.give(b);
        }
    });
    EXPECT_FALSE(clobbered.load());
    const PoolStats s = pool.stats();
    EXPECT_EQ(s.outstanding, 0u);
    EXPECT_EQ(s.hits + s.misses, static_cast<std::uint64_t>(kThreads) * kIters);
    EXPECT_LE(s.cached_bytes, pool.max_cached_bytes());
}

}  // namespace
