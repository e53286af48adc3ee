// Unit tests of csrc/core/arena.hpp: BumpArena, ArenaStats, ArenaLimitError.
//
// Run under ASan/UBSan too (CMakeLists.txt, MEMKIT_SANITIZE): every chunk the arena holds
// must be freed by rewind, reset or the destructor, so LeakSanitizer checks that as well.
#include "core/arena.hpp"

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
#include <type_traits>
#include <vector>

#include "core/aligned.hpp"
#include "run_concurrently.hpp"

namespace {

using memkit::core::ArenaLimitError;
using memkit::core::ArenaStats;
using memkit::core::BumpArena;
using memkit::core::dangling;
using memkit::core::kMaxAlign;
using memkit::core::kMaxSize;

constexpr std::size_t kKiB = std::size_t{1} << 10;
constexpr std::size_t kMiB = std::size_t{1} << 20;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

bool is_aligned(const void* p, std::size_t align) { return addr(p) % align == 0; }

bool all_zero(const std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != std::byte{0}) return false;
    }
    return true;
}

bool all_equal(const std::byte* p, std::size_t n, std::byte value) {
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != value) return false;
    }
    return true;
}

// Touches the first and last byte (ASan sees the oversized chunks' bounds).
void touch(std::byte* p, std::size_t n) {
    p[0] = std::byte{1};
    p[n - 1] = std::byte{2};
}

// ArenaStats with equality and printing for EXPECT_EQ, kept in this file's own namespace.
struct Stats {
    std::size_t bytes_used, bytes_reserved, chunk_count, allocation_count;
    bool operator==(const Stats& o) const {
        return bytes_used == o.bytes_used && bytes_reserved == o.bytes_reserved &&
               chunk_count == o.chunk_count && allocation_count == o.allocation_count;
    }
};

void PrintTo(const Stats& s, std::ostream* os) {
    *os << "{bytes_used=" << s.bytes_used << ", bytes_reserved=" << s.bytes_reserved
        << ", chunk_count=" << s.chunk_count << ", allocation_count=" << s.allocation_count << "}";
}

Stats snap(const BumpArena& arena) {
    const ArenaStats s = arena.stats();
    return Stats{s.bytes_used, s.bytes_reserved, s.chunk_count, s.allocation_count};
}

Stats stats_of(std::size_t used, std::size_t reserved, std::size_t chunks, std::size_t count) {
    return Stats{used, reserved, chunks, count};
}

// ---- construction -----------------------------------------------------------------------

TEST(BumpArena, RejectsZeroChunkSize) {
    EXPECT_THROW(BumpArena(0), std::invalid_argument);
    EXPECT_THROW(BumpArena(0, 4096), std::invalid_argument);
    EXPECT_THROW(BumpArena(kMaxSize + 1), std::invalid_argument);
    try {
        BumpArena arena(0);
        FAIL() << "BumpArena(0) did not throw";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("got 0"), std::string::npos) << e.what();
    }
}

TEST(BumpArena, FreshArenaIsEmpty) {
    BumpArena arena(4096);
    EXPECT_EQ(arena.chunk_size(), 4096u);
    EXPECT_EQ(arena.max_bytes(), BumpArena::kUnlimited);
    EXPECT_EQ(snap(arena), stats_of(0, 0, 0, 0));

    BumpArena limited(1, 1000);
    EXPECT_EQ(limited.chunk_size(), 1u);
    EXPECT_EQ(limited.max_bytes(), 1000u);
    EXPECT_EQ(snap(limited), stats_of(0, 0, 0, 0));
}

// ---- alignment --------------------------------------------------------------------------

TEST(BumpArena, AlignedForEveryAlignmentUpTo4096) {
    BumpArena arena(64 * kKiB);
    std::size_t count = 0;
    for (int round = 0; round < 3; ++round) {
        for (int shift = 0; shift <= 12; ++shift) {
            const std::size_t align = std::size_t{1} << shift;
            for (const std::size_t nbytes : {std::size_t{1}, std::size_t{3}, std::size_t{77}}) {
                SCOPED_TRACE("align=" + std::to_string(align) + " nbytes=" + std::to_string(nbytes));
                std::byte* p = arena.allocate(nbytes, align, round == 1);
                ++count;
                ASSERT_NE(p, nullptr);
                EXPECT_TRUE(is_aligned(p, align)) << p;
                if (round == 1) {
                    EXPECT_TRUE(all_zero(p, nbytes));
                }
                touch(p, nbytes);
            }
        }
    }
    const Stats s = snap(arena);
    EXPECT_EQ(s.allocation_count, count);
    EXPECT_LE(s.bytes_used, s.bytes_reserved);
    EXPECT_GE(s.chunk_count, 1u);
}

TEST(BumpArena, AlignmentAboveChunkAlignPadsInsideARegularChunk) {
    // 1 << 16 fits a 64 KiB chunk with its worst-case padding (align - kChunkAlign) when
    // the request is small, so it is bumped out of a regular chunk.
    constexpr std::size_t kAlign = std::size_t{1} << 16;
    BumpArena arena(64 * kKiB);
    std::byte* p = arena.allocate(16, kAlign, true);
    EXPECT_TRUE(is_aligned(p, kAlign)) << p;
    EXPECT_TRUE(all_zero(p, 16));
    touch(p, 16);
    Stats s = snap(arena);
    EXPECT_EQ(s.chunk_count, 1u);
    EXPECT_EQ(s.bytes_reserved, 64 * kKiB);
    EXPECT_EQ(s.allocation_count, 1u);
    // bytes_used is the padding from the chunk start plus the 16 bytes.
    EXPECT_GE(s.bytes_used, 16u);
    EXPECT_LE(s.bytes_used, 16u + kAlign - BumpArena::kChunkAlign);

    // Too big to fit a 64 KiB chunk with the worst-case padding: a chunk of its own.
    BumpArena other(64 * kKiB);
    const std::size_t nbytes = 64 * kKiB - (kAlign - BumpArena::kChunkAlign) + 1;
    std::byte* q = other.allocate(nbytes, kAlign, false);
    EXPECT_TRUE(is_aligned(q, kAlign)) << q;
    touch(q, nbytes);
    EXPECT_EQ(snap(other), stats_of(nbytes, nbytes, 1, 1));
}

TEST(BumpArena, HugeAlignmentGoesOversized) {
    // With 64 KiB chunks, 1 MiB alignment and above cannot be promised by a fresh chunk (its
    // worst-case padding alone is larger), so the request gets a chunk of its own.
    for (const std::size_t align : {std::size_t{1} << 20, std::size_t{1} << 24, kMaxAlign}) {
        SCOPED_TRACE("align=" + std::to_string(align));
        BumpArena arena(64 * kKiB);
        std::byte* p = arena.allocate(100, align, true);
        EXPECT_TRUE(is_aligned(p, align)) << p;
        EXPECT_TRUE(all_zero(p, 100));
        touch(p, 100);
        EXPECT_EQ(snap(arena), stats_of(100, 100, 1, 1));  // exactly the request
        // Small requests then open the first regular chunk, of chunk_size.
        std::byte* a = arena.allocate(8, 8, false);
        EXPECT_EQ(arena.allocate(8, 8, false), a + 8);
        EXPECT_EQ(snap(arena), stats_of(116, 100 + 64 * kKiB, 2, 3));
    }
}

TEST(BumpArena, BadAlignmentIsRejectedAndChangesNothing) {
    BumpArena arena(4096);
    std::byte* first = arena.allocate(10, 1, false);
    const Stats before = snap(arena);
    const std::size_t bad[] = {0, 3, 6, 100, kMaxAlign + 1, kMaxAlign * 2, SIZE_MAX};
    for (const std::size_t align : bad) {
        for (const std::size_t nbytes : {std::size_t{0}, std::size_t{1}, std::size_t{100}, 100 * kKiB}) {
            SCOPED_TRACE("align=" + std::to_string(align) + " nbytes=" + std::to_string(nbytes));
            EXPECT_THROW(arena.allocate(nbytes, align, false), std::invalid_argument);
            EXPECT_THROW(arena.allocate(nbytes, align, true), std::invalid_argument);
            EXPECT_EQ(snap(arena), before);
        }
    }
    // The bump pointer did not move either.
    EXPECT_EQ(arena.allocate(1, 1, false), first + 10);
}

// ---- contents ---------------------------------------------------------------------------

TEST(BumpArena, ZeroAfterRewindReusesDirtyMemory) {
    BumpArena arena(4096);
    const BumpArena::Checkpoint cp = arena.checkpoint();
    std::byte* p = arena.allocate(1000, 64, false);
    std::memset(p, 0xab, 1000);
    arena.rewind(cp);
    std::byte* q = arena.allocate(1000, 64, true);
    ASSERT_EQ(q, p) << "the rewound memory was not reused";
    EXPECT_TRUE(all_zero(q, 1000));

    // Without zero the old bytes are simply handed back (the memory is reused, not new).
    std::memset(q, 0xcd, 1000);
    arena.rewind(cp);
    std::byte* r = arena.allocate(1000, 64, false);
    ASSERT_EQ(r, p);
    EXPECT_TRUE(all_equal(r, 1000, std::byte{0xcd}));

    // A partial overlap: only the requested bytes are zeroed, at the rewound offset.
    std::memset(r, 0xab, 1000);
    arena.rewind(cp);
    std::byte* a = arena.allocate(10, 1, false);
    std::byte* b = arena.allocate(500, 1, true);
    EXPECT_EQ(a, p);
    EXPECT_EQ(b, p + 10);
    EXPECT_TRUE(all_equal(a, 10, std::byte{0xab}));
    EXPECT_TRUE(all_zero(b, 500));
    EXPECT_TRUE(all_equal(b + 500, 1000 - 510, std::byte{0xab}));
}

TEST(BumpArena, ZeroAfterResetReusesDirtyMemory) {
    BumpArena arena(4096);
    std::byte* p = arena.allocate(4096, 64, false);
    std::memset(p, 0xab, 4096);
    arena.reset();
    std::byte* q = arena.allocate(4096, 64, true);
    ASSERT_EQ(q, p) << "the kept chunk was not reused";
    EXPECT_TRUE(all_zero(q, 4096));
}

TEST(BumpArena, ZeroInAKeptLaterChunk) {
    BumpArena arena(1024);
    std::byte* a = arena.allocate(1024, 64, false);  // fills chunk 0
    const BumpArena::Checkpoint cp = arena.checkpoint();
    std::byte* b = arena.allocate(2048, 64, false);  // chunk 1 (2 KiB)
    std::memset(b, 0xab, 2048);
    EXPECT_EQ(arena.stats().chunk_count, 2u);
    arena.rewind(cp);
    std::byte* c = arena.allocate(2048, 64, true);
    EXPECT_EQ(c, b);
    EXPECT_TRUE(all_zero(c, 2048));
    EXPECT_EQ(arena.stats().chunk_count, 2u);
    (void)a;
}

TEST(BumpArena, ConsecutiveAllocationsAreContiguous) {
    BumpArena arena(4096);
    std::byte* first = arena.allocate(10, 1, false);
    for (std::size_t i = 1; i < 100; ++i) {
        EXPECT_EQ(arena.allocate(10, 1, false), first + 10 * i) << "i=" << i;
    }
    EXPECT_EQ(snap(arena), stats_of(1000, 4096, 1, 100));

    BumpArena aligned(4096);
    std::byte* base = aligned.allocate(16, 16, false);
    for (std::size_t i = 1; i < 50; ++i) {
        EXPECT_EQ(aligned.allocate(16, 16, false), base + 16 * i) << "i=" << i;
    }
    EXPECT_EQ(snap(aligned), stats_of(800, 4096, 1, 50));
}

// ---- statistics -------------------------------------------------------------------------

TEST(BumpArena, BytesUsedIncludesPadding) {
    BumpArena arena(4096);
    // Chunks are kChunkAlign-aligned, so the first request with align <= 64 starts the chunk.
    std::byte* a = arena.allocate(1, 1, false);
    EXPECT_TRUE(is_aligned(a, BumpArena::kChunkAlign));
    EXPECT_EQ(snap(arena), stats_of(1, 4096, 1, 1));

    std::byte* b = arena.allocate(8, 8, false);  // 7 bytes of padding
    EXPECT_EQ(b, a + 8);
    EXPECT_EQ(snap(arena), stats_of(16, 4096, 1, 2));

    std::byte* c = arena.allocate(1, 64, false);  // 48 bytes of padding
    EXPECT_EQ(c, a + 64);
    EXPECT_EQ(snap(arena), stats_of(65, 4096, 1, 3));

    std::byte* d = arena.allocate(3, 1, false);  // no padding
    EXPECT_EQ(d, a + 65);
    EXPECT_EQ(snap(arena), stats_of(68, 4096, 1, 4));

    std::byte* e = arena.allocate(100, 256, false);
    EXPECT_TRUE(is_aligned(e, 256));
    EXPECT_EQ(arena.stats().bytes_used, static_cast<std::size_t>(addr(e) + 100 - addr(a)));
    EXPECT_EQ(arena.stats().allocation_count, 5u);
}

TEST(BumpArena, BytesUsedAcrossChunksSkipsTheAbandonedTail) {
    BumpArena arena(1024);
    arena.allocate(1000, 1, false);
    // 100 bytes do not fit the 24 left: a new chunk, and the tail is not counted as used.
    std::byte* p = arena.allocate(100, 1, false);
    EXPECT_TRUE(is_aligned(p, BumpArena::kChunkAlign));
    EXPECT_EQ(snap(arena), stats_of(1100, 1024 + 2048, 2, 2));
}

TEST(BumpArena, ZeroByteAllocationsCountButAllocateNothing) {
    BumpArena arena(4096);
    for (const std::size_t align : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, kMaxAlign}) {
        for (const bool zero : {false, true}) {
            EXPECT_EQ(arena.allocate(0, align, zero), dangling(align));
        }
    }
    EXPECT_EQ(snap(arena), stats_of(0, 0, 0, 8));

    // Nor do they move the bump pointer of an existing chunk.
    std::byte* a = arena.allocate(5, 1, false);
    EXPECT_EQ(arena.allocate(0, 64, false), dangling(64));
    EXPECT_EQ(arena.allocate(5, 1, false), a + 5);
    EXPECT_EQ(snap(arena), stats_of(10, 4096, 1, 11));

    // A checkpoint restores the count of zero-byte allocations too.
    const BumpArena::Checkpoint cp = arena.checkpoint();
    arena.allocate(0, 8, false);
    arena.allocate(0, 8, true);
    EXPECT_EQ(arena.stats().allocation_count, 13u);
    arena.rewind(cp);
    EXPECT_EQ(snap(arena), stats_of(10, 4096, 1, 11));
}

// ---- growth and oversized chunks --------------------------------------------------------

TEST(BumpArena, ChunkSizesDoubleUpToTheGrowthCap) {
    constexpr std::size_t kChunk = 1024;
    BumpArena arena(kChunk);
    // 64-byte pieces tile every chunk exactly; record bytes_reserved at each new chunk.
    std::vector<std::size_t> chunk_sizes;
    std::size_t reserved = 0;
    std::size_t allocations = 0;
    while (chunk_sizes.size() < 8) {
        arena.allocate(64, 64, false);
        ++allocations;
        const Stats s = snap(arena);
        if (s.bytes_reserved != reserved) {
            chunk_sizes.push_back(s.bytes_reserved - reserved);
            reserved = s.bytes_reserved;
            EXPECT_EQ(s.chunk_count, chunk_sizes.size());
        }
        ASSERT_EQ(s.bytes_used, 64 * allocations);  // no padding, no abandoned tails
        ASSERT_EQ(s.allocation_count, allocations);
    }
    const std::size_t cap = BumpArena::kGrowthFactor * kChunk;
    static_assert(BumpArena::kGrowthFactor == 16);
    const std::vector<std::size_t> expected = {kChunk,     2 * kChunk, 4 * kChunk, 8 * kChunk,
                                               16 * kChunk, cap,        cap,        cap};
    EXPECT_EQ(chunk_sizes, expected);
    // The eighth chunk was just opened by the last allocation: the arena is full up to it.
    EXPECT_EQ(arena.stats().bytes_used, reserved - cap + 64);
}

TEST(BumpArena, GrowthCapForAnOddChunkSize) {
    // 100 -> 200 -> 400 -> 800 -> 1600 (= 16 x 100) -> 1600: a request of exactly the next
    // chunk size fills a fresh regular chunk.
    BumpArena arena(100);
    std::size_t reserved = 0;
    const std::size_t sizes[] = {100, 200, 400, 800, 1600, 1600, 1600};
    for (const std::size_t size : sizes) {
        SCOPED_TRACE("size=" + std::to_string(size));
        arena.allocate(size, 1, false);
        reserved += size;
        EXPECT_EQ(arena.stats().bytes_reserved, reserved);
    }
    EXPECT_EQ(arena.stats().chunk_count, 7u);
    // 1601 bytes exceed the capped next chunk size: a chunk of its own.
    arena.allocate(1601, 1, false);
    EXPECT_EQ(arena.stats().bytes_reserved, reserved + 1601);
    EXPECT_EQ(arena.stats().chunk_count, 8u);
}

TEST(BumpArena, OversizedAllocationGetsItsOwnChunk) {
    BumpArena arena(4096);
    std::byte* a = arena.allocate(100, 1, false);
    // After the first chunk the next would be 8 KiB; 10000 bytes do not fit one.
    std::byte* big = arena.allocate(10000, 8, true);
    EXPECT_TRUE(is_aligned(big, 8));
    EXPECT_TRUE(all_zero(big, 10000));
    touch(big, 10000);
    EXPECT_EQ(snap(arena), stats_of(10100, 4096 + 10000, 2, 2));
    // Small allocations carry on in the current regular chunk.
    EXPECT_EQ(arena.allocate(100, 1, false), a + 100);
    EXPECT_EQ(arena.allocate(100, 1, false), a + 200);
    EXPECT_EQ(snap(arena), stats_of(10300, 4096 + 10000, 2, 4));
    // The oversized chunk did not advance the growth: the next regular chunk is 8 KiB.
    arena.allocate(4000, 1, false);  // does not fit the 3796 left
    EXPECT_EQ(snap(arena), stats_of(14300, 4096 + 10000 + 8192, 3, 5));
}

TEST(BumpArena, RequestOfExactlyTheNextChunkSizeIsRegular) {
    BumpArena arena(4096);
    arena.allocate(100, 1, false);
    std::byte* p = arena.allocate(8192, 64, false);  // the next chunk size: a regular chunk
    touch(p, 8192);
    EXPECT_EQ(snap(arena), stats_of(8292, 4096 + 8192, 2, 2));
    // That chunk is full and is the current one: the next small request opens a 16 KiB one.
    arena.allocate(1, 1, false);
    EXPECT_EQ(snap(arena), stats_of(8293, 4096 + 8192 + 16384, 3, 3));
}

TEST(BumpArena, FirstAllocationLargerThanChunkSize) {
    BumpArena arena(4096);
    std::byte* big = arena.allocate(5000, 64, false);
    touch(big, 5000);
    EXPECT_EQ(snap(arena), stats_of(5000, 5000, 1, 1));
    // The first regular chunk is still chunk_size.
    std::byte* small = arena.allocate(100, 64, false);
    touch(small, 100);
    EXPECT_EQ(snap(arena), stats_of(5100, 5000 + 4096, 2, 2));
}

// ---- checkpoint / rewind ----------------------------------------------------------------

TEST(BumpArena, RewindOnAFreshArena) {
    BumpArena arena(4096);
    const BumpArena::Checkpoint cp = arena.checkpoint();
    std::byte* a = arena.allocate(100, 64, false);
    arena.allocate(100000, 64, false);  // oversized
    EXPECT_EQ(snap(arena), stats_of(100100, 4096 + 100000, 2, 2));
    arena.rewind(cp);
    // Nothing used, the regular chunk kept, the oversized one freed.
    EXPECT_EQ(snap(arena), stats_of(0, 4096, 1, 0));
    EXPECT_EQ(arena.allocate(100, 64, false), a);
    EXPECT_EQ(snap(arena), stats_of(100, 4096, 1, 1));
}

TEST(BumpArena, RewindRestoresStatsFreesOversizedKeepsRegular) {
    BumpArena arena(4096);
    arena.allocate(100, 1, false);
    arena.allocate(50000, 16, false);  // an oversized chunk before the checkpoint: kept
    const Stats at_cp = snap(arena);
    EXPECT_EQ(at_cp, stats_of(50100, 4096 + 50000, 2, 2));
    const BumpArena::Checkpoint cp = arena.checkpoint();

    std::byte* b = arena.allocate(200, 1, false);
    std::byte* big = arena.allocate(100000, 64, false);  // oversized: freed by rewind
    touch(big, 100000);
    std::byte* c = arena.allocate(5000, 64, false);  // a new 8 KiB regular chunk: kept
    std::byte* big2 = arena.allocate(3 * kMiB, 4096, true);  // oversized, mapped: freed
    touch(big2, 3 * kMiB);
    const Stats full = snap(arena);
    EXPECT_EQ(full.chunk_count, 5u);
    EXPECT_EQ(full.bytes_reserved, 4096 + 50000 + 100000 + 8192 + 3 * kMiB);
    EXPECT_EQ(full.allocation_count, 6u);

    arena.rewind(cp);
    Stats s = snap(arena);
    EXPECT_EQ(s.bytes_used, at_cp.bytes_used);
    EXPECT_EQ(s.allocation_count, at_cp.allocation_count);
    EXPECT_EQ(s.bytes_reserved, 4096 + 50000 + 8192);  // dropped by the two oversized chunks
    EXPECT_EQ(s.chunk_count, 3u);

    // The regular memory is handed out again, at the same addresses.
    EXPECT_EQ(arena.allocate(200, 1, false), b);
    EXPECT_EQ(arena.allocate(5000, 64, false), c);
    s = snap(arena);
    EXPECT_EQ(s.chunk_count, 3u);  // no new chunk: the kept 8 KiB chunk was reused
    EXPECT_EQ(s.bytes_reserved, 4096 + 50000 + 8192);
    EXPECT_EQ(s.allocation_count, 4u);
}

TEST(BumpArena, RewindToTheSameCheckpointRepeatedly) {
    BumpArena arena(1024);
    arena.allocate(10, 1, false);
    const BumpArena::Checkpoint cp = arena.checkpoint();
    const Stats at_cp = snap(arena);
    std::vector<std::byte*> first_pass;
    for (int i = 0; i < 20; ++i) first_pass.push_back(arena.allocate(300, 8, false));
    const Stats after_first = snap(arena);
    for (int round = 0; round < 5; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        arena.rewind(cp);
        EXPECT_EQ(arena.stats().bytes_used, at_cp.bytes_used);
        EXPECT_EQ(arena.stats().allocation_count, at_cp.allocation_count);
        for (int i = 0; i < 20; ++i) {
            EXPECT_EQ(arena.allocate(300, 8, false), first_pass[static_cast<std::size_t>(i)]) << "i=" << i;
        }
        // Same allocations, same memory: nothing new reserved.
        EXPECT_EQ(snap(arena), after_first);
    }
}

TEST(BumpArena, NestedCheckpointsRewindInnermostFirst) {
    BumpArena arena(1024);
    arena.allocate(100, 1, false);
    const BumpArena::Checkpoint outer = arena.checkpoint();
    const Stats at_outer = snap(arena);

    std::byte* a = arena.allocate(500, 1, false);
    arena.allocate(5000, 1, false);  // oversized (next chunk size is 2 KiB)
    const BumpArena::Checkpoint inner = arena.checkpoint();
    const Stats at_inner = snap(arena);

    std::byte* b = arena.allocate(900, 1, false);  // a new 2 KiB chunk
    arena.allocate(9000, 1, false);                // oversized
    EXPECT_EQ(arena.stats().chunk_count, 4u);

    arena.rewind(inner);
    Stats s = snap(arena);
    EXPECT_EQ(s.bytes_used, at_inner.bytes_used);
    EXPECT_EQ(s.allocation_count, at_inner.allocation_count);
    EXPECT_EQ(s.bytes_reserved, at_inner.bytes_reserved + 2048);  // the 2 KiB chunk is kept
    EXPECT_EQ(s.chunk_count, 3u);
    EXPECT_EQ(arena.allocate(900, 1, false), b);

    arena.rewind(inner);
    arena.rewind(outer);
    s = snap(arena);
    EXPECT_EQ(s.bytes_used, at_outer.bytes_used);
    EXPECT_EQ(s.allocation_count, at_outer.allocation_count);
    EXPECT_EQ(s.bytes_reserved, 1024u + 2048u);  // both regular chunks, no oversized one
    EXPECT_EQ(s.chunk_count, 2u);
    EXPECT_EQ(arena.allocate(500, 1, false), a);
}

TEST(BumpArena, RewindKeepsOversizedChunksFromBeforeTheCheckpoint) {
    BumpArena arena(1024);
    std::byte* big = arena.allocate(4000, 64, false);
    std::memset(big, 0x5a, 4000);
    const BumpArena::Checkpoint cp = arena.checkpoint();
    arena.allocate(8000, 64, false);
    arena.rewind(cp);
    EXPECT_EQ(snap(arena), stats_of(4000, 4000, 1, 1));
    EXPECT_TRUE(all_equal(big, 4000, std::byte{0x5a}));  // still live and intact
}

// ---- reset ------------------------------------------------------------------------------

TEST(BumpArena, ResetKeepsTheLargestRegularChunk) {
    BumpArena arena(1024);
    // Chunks of 1, 2 and 4 KiB, each filled by one request starting it, plus oversized ones.
    std::byte* c0 = arena.allocate(1024, 64, false);
    std::byte* c1 = arena.allocate(2048, 64, false);
    std::byte* c2 = arena.allocate(4096, 64, false);
    arena.allocate(100000, 64, false);
    arena.allocate(2 * kMiB, 64, false);
    EXPECT_EQ(arena.stats().chunk_count, 5u);
    (void)c0;
    (void)c1;

    arena.reset();
    EXPECT_EQ(snap(arena), stats_of(0, 4096, 1, 0));
    // The kept 4 KiB chunk is bumped from its start again.
    EXPECT_EQ(arena.allocate(64, 64, false), c2);
    EXPECT_EQ(arena.allocate(64, 64, false), c2 + 64);
    EXPECT_EQ(snap(arena), stats_of(128, 4096, 1, 2));
    std::byte* rest = arena.allocate(4096 - 128, 1, false);
    EXPECT_EQ(rest, c2 + 128);
    EXPECT_EQ(snap(arena), stats_of(4096, 4096, 1, 3));

    // Resetting again keeps that chunk again.
    arena.reset();
    EXPECT_EQ(snap(arena), stats_of(0, 4096, 1, 0));
    EXPECT_EQ(arena.allocate(10, 1, false), c2);
}

TEST(BumpArena, ResetKeepsLargestNotLast) {
    // max_bytes shrinks the third chunk (4 KiB) to 500 bytes: the largest is the second.
    BumpArena arena(1024, 1024 + 2048 + 500);
    arena.allocate(1024, 64, false);
    std::byte* c1 = arena.allocate(2048, 64, false);
    arena.allocate(400, 64, false);
    EXPECT_EQ(snap(arena), stats_of(1024 + 2048 + 400, 1024 + 2048 + 500, 3, 3));
    arena.reset();
    EXPECT_EQ(snap(arena), stats_of(0, 2048, 1, 0));
    EXPECT_EQ(arena.allocate(2048, 64, false), c1);
}

TEST(BumpArena, ResetOfEmptyAndOversizedOnlyArenas) {
    BumpArena empty(4096);
    empty.reset();
    EXPECT_EQ(snap(empty), stats_of(0, 0, 0, 0));
    EXPECT_EQ(empty.allocate(0, 8, false), dangling(8));
    empty.reset();
    EXPECT_EQ(snap(empty), stats_of(0, 0, 0, 0));

    BumpArena oversized_only(64);
    oversized_only.allocate(1000, 8, false);
    oversized_only.allocate(2000, 8, false);
    EXPECT_EQ(snap(oversized_only), stats_of(3000, 3000, 2, 2));
    oversized_only.reset();
    EXPECT_EQ(snap(oversized_only), stats_of(0, 0, 0, 0));
    oversized_only.allocate(10, 8, false);
    EXPECT_EQ(snap(oversized_only), stats_of(10, 64, 1, 1));
}

TEST(BumpArena, ResetThenCheckpointAndRewind) {
    BumpArena arena(1024);
    arena.allocate(1024, 64, false);
    std::byte* c1 = arena.allocate(2048, 64, false);
    arena.reset();
    const BumpArena::Checkpoint cp = arena.checkpoint();
    std::byte* p = arena.allocate(100, 64, false);
    EXPECT_EQ(p, c1);
    arena.allocate(5000, 64, false);  // oversized
    arena.rewind(cp);
    EXPECT_EQ(snap(arena), stats_of(0, 2048, 1, 0));
    EXPECT_EQ(arena.allocate(100, 64, false), c1);
}

// ---- max_bytes --------------------------------------------------------------------------

TEST(BumpArena, MaxBytesLimitsRegularChunks) {
    BumpArena arena(65536, 1024);
    std::byte* a = arena.allocate(400, 1, false);
    std::byte* b = arena.allocate(400, 1, false);
    EXPECT_EQ(b, a + 400);
    const Stats before = snap(arena);
    EXPECT_EQ(before, stats_of(800, 1024, 1, 2));  // the chunk shrank to max_bytes
    EXPECT_THROW(arena.allocate(400, 1, false), ArenaLimitError);
    EXPECT_THROW(arena.allocate(400, 1, true), ArenaLimitError);
    EXPECT_EQ(snap(arena), before);
    // What still fits is still served, from where the bump pointer was.
    EXPECT_EQ(arena.allocate(224, 1, false), a + 800);
    EXPECT_EQ(snap(arena), stats_of(1024, 1024, 1, 3));
    EXPECT_THROW(arena.allocate(1, 1, false), ArenaLimitError);
    EXPECT_EQ(snap(arena), stats_of(1024, 1024, 1, 3));
    // Zero bytes need no memory.
    EXPECT_EQ(arena.allocate(0, 1, false), dangling(1));
    EXPECT_EQ(snap(arena), stats_of(1024, 1024, 1, 4));
}

TEST(BumpArena, MaxBytesShrinksALaterChunk) {
    BumpArena arena(4096, 6000);
    arena.allocate(4096, 64, false);
    arena.allocate(100, 64, false);  // the next chunk would be 8 KiB: 1904 bytes left
    EXPECT_EQ(snap(arena), stats_of(4196, 6000, 2, 2));
    EXPECT_THROW(arena.allocate(2000, 64, false), ArenaLimitError);
    EXPECT_EQ(snap(arena), stats_of(4196, 6000, 2, 2));
    // Room in the shrunk chunk is still usable.
    arena.allocate(1804, 1, false);
    EXPECT_EQ(snap(arena), stats_of(6000, 6000, 2, 3));
}

TEST(BumpArena, MaxBytesSmallerThanARequest) {
    // Oversized (larger than the next chunk size) and past max_bytes.
    BumpArena oversized(64, 1024);
    EXPECT_THROW(oversized.allocate(2000, 8, false), ArenaLimitError);
    EXPECT_THROW(oversized.allocate(1025, 8, true), ArenaLimitError);
    EXPECT_EQ(snap(oversized), stats_of(0, 0, 0, 0));
    // Exactly max_bytes in an oversized chunk is fine; then nothing more fits.
    std::byte* p = oversized.allocate(1024, 8, false);
    touch(p, 1024);
    EXPECT_EQ(snap(oversized), stats_of(1024, 1024, 1, 1));
    EXPECT_THROW(oversized.allocate(1, 1, false), ArenaLimitError);
    EXPECT_THROW(oversized.allocate(100, 1, false), ArenaLimitError);
    EXPECT_EQ(snap(oversized), stats_of(1024, 1024, 1, 1));

    // A regular-sized request (<= chunk_size) larger than max_bytes.
    BumpArena regular(65536, 1024);
    EXPECT_THROW(regular.allocate(2000, 1, false), ArenaLimitError);
    EXPECT_EQ(snap(regular), stats_of(0, 0, 0, 0));

    // The worst-case padding of a large alignment counts against the limit too.
    BumpArena padded(65536, 1024);
    EXPECT_THROW(padded.allocate(1000, 128, false), ArenaLimitError);  // needs 1064
    EXPECT_EQ(snap(padded), stats_of(0, 0, 0, 0));
    std::byte* q = padded.allocate(960, 128, false);  // needs exactly 1024
    EXPECT_TRUE(is_aligned(q, 128));
    EXPECT_EQ(padded.stats().bytes_reserved, 1024u);
}

TEST(BumpArena, RewindAndResetGiveRoomUnderMaxBytes) {
    BumpArena arena(256, 2000);
    arena.allocate(100, 1, false);
    const BumpArena::Checkpoint cp = arena.checkpoint();
    arena.allocate(1500, 1, false);  // oversized
    EXPECT_EQ(arena.stats().bytes_reserved, 1756u);
    EXPECT_THROW(arena.allocate(1500, 1, false), ArenaLimitError);
    arena.rewind(cp);
    EXPECT_EQ(snap(arena), stats_of(100, 256, 1, 1));
    EXPECT_NO_THROW(arena.allocate(1500, 1, false));
    arena.reset();
    EXPECT_EQ(snap(arena), stats_of(0, 256, 1, 0));
    EXPECT_NO_THROW(arena.allocate(1744, 1, false));
    EXPECT_EQ(arena.stats().bytes_reserved, 2000u);
}

TEST(BumpArena, BytesReservedNeverExceedsMaxBytes) {
    constexpr std::size_t kMax = 10000;
    BumpArena arena(300, kMax);
    std::size_t served = 0;
    std::size_t refused = 0;
    for (std::size_t i = 0; i < 200; ++i) {
        const std::size_t nbytes = (i * 37) % 700 + 1;
        const std::size_t align = std::size_t{1} << (i % 8);
        const Stats before = snap(arena);
        try {
            std::byte* p = arena.allocate(nbytes, align, i % 2 == 0);
            EXPECT_TRUE(is_aligned(p, align));
            ++served;
        } catch (const ArenaLimitError&) {
            EXPECT_EQ(snap(arena), before);
            ++refused;
        }
        ASSERT_LE(arena.stats().bytes_reserved, kMax) << "i=" << i;
        ASSERT_LE(arena.stats().bytes_used, arena.stats().bytes_reserved) << "i=" << i;
    }
    EXPECT_GT(served, 0u);
    EXPECT_GT(refused, 0u);
}

TEST(ArenaLimitError, IsABadAlloc) {
    static_assert(std::is_base_of_v<std::bad_alloc, ArenaLimitError>);
    BumpArena arena(64, 100);
    try {
        arena.allocate(200, 1, false);
        FAIL() << "no exception";
    } catch (const std::bad_alloc& e) {
        EXPECT_NE(dynamic_cast<const ArenaLimitError*>(&e), nullptr);
        EXPECT_NE(std::string(e.what()).find("max_bytes"), std::string::npos) << e.what();
    }
}

// ---- failures ---------------------------------------------------------------------------

TEST(BumpArena, AbsurdSizeIsBadAllocAndChangesNothing) {
    BumpArena arena(64);
    std::byte* a = arena.allocate(10, 1, false);
    const Stats before = snap(arena);
    for (const bool zero : {false, true}) {
        try {
            arena.allocate(kMaxSize - 4096, 8, zero);
            FAIL() << "no exception";
        } catch (const ArenaLimitError&) {
            FAIL() << "an unlimited arena threw ArenaLimitError";
        } catch (const std::bad_alloc&) {
        }
        EXPECT_EQ(snap(arena), before);
    }
    EXPECT_THROW(arena.allocate(kMaxSize, 1, false), std::bad_alloc);
    EXPECT_THROW(arena.allocate(kMaxSize / 2, 4096, true), std::bad_alloc);
    EXPECT_EQ(snap(arena), before);
    EXPECT_EQ(arena.allocate(10, 1, false), a + 10);
}

TEST(BumpArena, AbsurdChunkSizeIsBadAllocAndChangesNothing) {
    // Every regular chunk would be kMaxSize / 2 bytes: the OS refuses the first one.
    BumpArena arena(kMaxSize / 2);
    EXPECT_THROW(arena.allocate(16, 8, false), std::bad_alloc);
    EXPECT_EQ(snap(arena), stats_of(0, 0, 0, 0));
    EXPECT_EQ(arena.allocate(0, 8, false), dangling(8));
    EXPECT_EQ(snap(arena), stats_of(0, 0, 0, 1));
}

TEST(BumpArena, SizeAboveMaxIsLengthError) {
    BumpArena arena(4096);
    arena.allocate(10, 1, false);
    const Stats before = snap(arena);
    for (const std::size_t nbytes : {kMaxSize + 1, SIZE_MAX}) {
        EXPECT_THROW(arena.allocate(nbytes, 8, false), std::length_error) << nbytes;
        EXPECT_THROW(arena.allocate(nbytes, 1, true), std::length_error) << nbytes;
        EXPECT_EQ(snap(arena), before);
    }
    BumpArena limited(64, 100);
    EXPECT_THROW(limited.allocate(kMaxSize + 1, 8, false), std::length_error);
    EXPECT_EQ(snap(limited), stats_of(0, 0, 0, 0));
}

// ---- threads ----------------------------------------------------------------------------
//
// BumpArena is not synchronised: its owner serialises calls (the GIL, or the binding's
// per-arena mutex on free-threaded builds). These run it that way from racing threads, so
// ThreadSanitizer checks that no state outside the arena object is shared unsynchronised.

// One arena per thread, no lock: allocation, nested checkpoints, rewinds and resets.
TEST(BumpArenaThreads, SeparateArenasShareNoState) {
    memkit_test::run_concurrently(4, [](int t) {
        BumpArena arena(4 * kKiB);
        for (int round = 0; round < 200; ++round) {
            const BumpArena::Checkpoint cp = arena.checkpoint();
            for (int i = 0; i < 20; ++i) {
                const std::size_t n = static_cast<std::size_t>((round * 31 + i * 17 + t) % 3000) + 1;
                std::byte* p = arena.allocate(n, std::size_t{1} << (i % 7), /*zero=*/true);
                ASSERT_TRUE(all_zero(p, n));
                std::memset(p, t + 1, n);
            }
            std::byte* big = arena.allocate(2 * kMiB, 64, /*zero=*/false);  // oversized: its own chunk
            touch(big, 2 * kMiB);
            arena.rewind(cp);
            if (round % 50 == 49) arena.reset();
        }
        EXPECT_EQ(arena.stats().allocation_count, 0u);
    });
}

// One arena shared under a mutex: each thread writes its own byte into what it allocated
// and checks it later, outside the lock; no allocation overlaps another thread's.
TEST(BumpArenaThreads, SharedArenaUnderTheOwnersMutex) {
    BumpArena arena(8 * kKiB);
    std::mutex m;
    std::atomic<bool> clobbered{false};
    constexpr int kThreads = 4;
    constexpr int kIters = 2000;
    memkit_test::run_concurrently(kThreads, [&](int t) {
        const auto mark = static_cast<std::byte>(0x20 + t);
        std::vector<std::pair<std::byte*, std::size_t>> mine;
        for (int i = 0; i < kIters; ++i) {
            const std::size_t n = static_cast<std::size_t>((i * 13 + t) % 200) + 1;
            std::byte* p = nullptr;
            {
                std::lock_guard<std::mutex> lock(m);
                p = arena.allocate(n, 8, /*zero=*/false);
            }
            std::memset(p, static_cast<int>(mark), n);
            mine.emplace_back(p, n);
        }
        for (const auto& [p, n] : mine) {
            if (!all_equal(p, n, mark)) clobbered = true;
        }
    });
    EXPECT_FALSE(clobbered.load());
    EXPECT_EQ(arena.stats().allocation_count, static_cast<std::size_t>(kThreads) * kIters);
}

}  // namespace
