// Unit tests of csrc/core/aligned.hpp: allocate_aligned, AlignedBlock, PinnableBlock.
//
// Run under ASan/UBSan and TSan too (CMakeLists.txt, MEMKIT_SANITIZE): the threaded tests
// are meant to be race-free, so any TSan report is a bug in the core.
#include "core/aligned.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/platform.hpp"

namespace memkit::core {
// Readable statuses in gtest failure messages (found by ADL).
void PrintTo(PinnableBlock::Status s, std::ostream* os) {
    switch (s) {
        case PinnableBlock::Status::ok: *os << "ok"; return;
        case PinnableBlock::Status::released: *os << "released"; return;
        case PinnableBlock::Status::exported: *os << "exported"; return;
    }
    *os << "Status(" << static_cast<int>(s) << ")";
}
}  // namespace memkit::core

namespace {

using memkit::core::AlignedBlock;
using memkit::core::Allocation;
using memkit::core::allocate_aligned;
using memkit::core::check_align;
using memkit::core::dangling;
using memkit::core::deallocate_aligned;
using memkit::core::kMaxAlign;
using memkit::core::kMaxSize;
using memkit::core::page_size;
using memkit::core::PinnableBlock;
using Status = PinnableBlock::Status;

// aligned.cpp's heap/mmap boundary (kMapThreshold, not exported).
constexpr std::size_t kMiB = std::size_t{1} << 20;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

bool all_zero(const std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != std::byte{0}) return false;
    }
    return true;
}

std::byte pattern(std::size_t i) { return static_cast<std::byte>((i * 131 + 7) & 0xff); }

void fill_pattern(std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) p[i] = pattern(i);
}

// Index of the first byte that differs from pattern(), or n.
std::size_t pattern_mismatch(const std::byte* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != pattern(i)) return i;
    }
    return n;
}

// Leaves freed, non-zero heap chunks of `nbytes` behind, so a following heap allocation of
// that size likely reuses dirty memory (under ASan, fresh heap memory is 0xbe anyway).
void dirty_heap(std::size_t nbytes, std::size_t align) {
    for (int i = 0; i < 4; ++i) {
        Allocation a = allocate_aligned(nbytes, align, /*zero=*/false);
        std::memset(a.data, 0xab, nbytes);
        deallocate_aligned(a);
    }
}

bool expect_mapped(std::size_t nbytes, std::size_t align) {
    return nbytes >= kMiB || align > page_size();
}

// ---- allocate_aligned -------------------------------------------------------------------

TEST(AllocateAligned, EveryPowerOfTwoAlignment) {
    const std::size_t sizes[] = {1, 3000, kMiB, kMiB + 123};
    for (int shift = 0; shift <= 30; ++shift) {
        const std::size_t align = std::size_t{1} << shift;
        for (const std::size_t nbytes : sizes) {
            for (const bool zero : {false, true}) {
                SCOPED_TRACE("align=" + std::to_string(align) + " nbytes=" + std::to_string(nbytes) +
                             " zero=" + std::to_string(zero));
                const Allocation a = allocate_aligned(nbytes, align, zero);
                ASSERT_NE(a.data, nullptr);
                EXPECT_EQ(addr(a.data) % align, 0u);
                EXPECT_EQ(a.nbytes, nbytes);
                EXPECT_EQ(a.align, align);
                if (expect_mapped(nbytes, align)) {
                    EXPECT_EQ(a.mapped, round_up(nbytes, page_size()));
                } else {
                    EXPECT_EQ(a.mapped, 0u);
                }
                if (zero) {
                    EXPECT_TRUE(all_zero(a.data, nbytes));
                }
                // The whole range is usable (ASan checks the heap path's bounds).
                a.data[nbytes - 1] = std::byte{2};
                a.data[0] = std::byte{1};
                EXPECT_EQ(a.data[0], std::byte{1});
                if (nbytes > 1) {
                    EXPECT_EQ(a.data[nbytes - 1], std::byte{2});
                }
                deallocate_aligned(a);
            }
        }
    }
}

TEST(AllocateAligned, ZeroOnHeapPath) {
    for (const std::size_t align : {std::size_t{1}, std::size_t{8}, std::size_t{64}, page_size()}) {
        for (const std::size_t nbytes : {std::size_t{1}, std::size_t{100}, std::size_t{4096}, kMiB - 1}) {
            SCOPED_TRACE("align=" + std::to_string(align) + " nbytes=" + std::to_string(nbytes));
            dirty_heap(nbytes, align);
            const Allocation a = allocate_aligned(nbytes, align, /*zero=*/true);
            EXPECT_EQ(a.mapped, 0u) << "expected the heap path";
            EXPECT_TRUE(all_zero(a.data, nbytes));
            deallocate_aligned(a);
        }
    }
}

TEST(AllocateAligned, ZeroOnMappedPath) {
    struct Case {
        std::size_t nbytes, align;
    };
    const Case cases[] = {{kMiB, 64}, {3 * kMiB + 5, 1}, {1, page_size() * 2}, {5000, std::size_t{1} << 21}};
    for (const Case& c : cases) {
        SCOPED_TRACE("align=" + std::to_string(c.align) + " nbytes=" + std::to_string(c.nbytes));
        // Dirty a mapping first: a new one must not hand the old bytes back.
        Allocation dirty = allocate_aligned(c.nbytes, c.align, false);
        std::memset(dirty.data, 0xab, c.nbytes);
        deallocate_aligned(dirty);
        const Allocation a = allocate_aligned(c.nbytes, c.align, /*zero=*/true);
        EXPECT_NE(a.mapped, 0u) << "expected the mmap path";
        EXPECT_TRUE(all_zero(a.data, c.nbytes));
        deallocate_aligned(a);
    }
}

TEST(AllocateAligned, ZeroSizeAllocatesNothing) {
    for (const std::size_t align : {std::size_t{1}, std::size_t{64}, page_size() * 4, kMaxAlign}) {
        for (const bool zero : {false, true}) {
            const Allocation a = allocate_aligned(0, align, zero);
            EXPECT_EQ(a.data, nullptr);
            EXPECT_EQ(a.nbytes, 0u);
            EXPECT_EQ(a.align, align);
            EXPECT_EQ(a.mapped, 0u);
            deallocate_aligned(a);  // a no-op
        }
    }
    deallocate_aligned(Allocation{});  // a no-op too
}

TEST(CheckAlign, AcceptsEveryPowerOfTwoUpToMax) {
    for (int shift = 0; shift <= 30; ++shift) {
        EXPECT_NO_THROW(check_align(std::size_t{1} << shift)) << "shift=" << shift;
    }
    static_assert(kMaxAlign == std::size_t{1} << 30);
}

TEST(CheckAlign, RejectsOthers) {
    const std::size_t bad[] = {0, 3, 6, 12, 100, kMaxAlign + 1, std::size_t{1} << 31, kMaxAlign * 4 - 1,
                               SIZE_MAX};
    for (const std::size_t align : bad) {
        EXPECT_THROW(check_align(align), std::invalid_argument) << "align=" << align;
        EXPECT_THROW(allocate_aligned(16, align, false), std::invalid_argument) << "align=" << align;
        EXPECT_THROW(AlignedBlock(16, align, false), std::invalid_argument) << "align=" << align;
        EXPECT_THROW(PinnableBlock(16, align, false), std::invalid_argument) << "align=" << align;
    }
    // The message names the value received.
    try {
        check_align(6);
        FAIL() << "check_align(6) did not throw";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("got 6"), std::string::npos) << e.what();
    }
}

TEST(AllocateAligned, RejectsSizeAboveMax) {
    for (const std::size_t nbytes : {kMaxSize + 1, SIZE_MAX}) {
        EXPECT_THROW(allocate_aligned(nbytes, 8, false), std::length_error) << nbytes;
        EXPECT_THROW(AlignedBlock(nbytes, 64, true), std::length_error) << nbytes;
    }
}

TEST(AllocateAligned, AbsurdSizeIsBadAlloc) {
    // Sizes past the address space: mmap refuses them before touching anything.
    EXPECT_THROW(allocate_aligned(kMaxSize - 4096, 8, false), std::bad_alloc);
    EXPECT_THROW(allocate_aligned(kMaxSize - 4096, 64, true), std::bad_alloc);
    EXPECT_THROW(allocate_aligned(kMaxSize, 1, false), std::bad_alloc);
    // The slack for a huge alignment cannot be added either.
    EXPECT_THROW(allocate_aligned(kMaxSize - 4096, kMaxAlign, false), std::bad_alloc);
    EXPECT_THROW(allocate_aligned(kMaxSize / 2, 4096, true), std::bad_alloc);
    EXPECT_THROW(AlignedBlock(kMaxSize - 4096, 64, true), std::bad_alloc);
}

namespace gate_test {
int calls = 0;
int refuse_call = -1;  // the call (0-based) the gate refuses
bool gate() noexcept { return calls++ != refuse_call; }
}  // namespace gate_test

TEST(AllocateAligned, GateRefusesTheChosenAllocationOnly) {
    gate_test::calls = 0;
    gate_test::refuse_call = 1;
    memkit::core::set_allocation_gate(&gate_test::gate);
    const Allocation first = allocate_aligned(64, 64, true);
    EXPECT_THROW(allocate_aligned(64, 64, true), std::bad_alloc);
    const Allocation empty = allocate_aligned(0, 64, true);  // allocates nothing: not asked
    const Allocation third = allocate_aligned(2 * kMiB, 64, true);  // the mapped path asks too
    AlignedBlock block(16, 16, true);
    gate_test::refuse_call = gate_test::calls;
    EXPECT_THROW(block.resize(32), std::bad_alloc);  // strong guarantee: unchanged
    EXPECT_EQ(block.size(), 16u);
    memkit::core::set_allocation_gate(nullptr);
    EXPECT_EQ(gate_test::calls, 5);  // first, refused, mapped, block, resize
    block.resize(32);
    EXPECT_EQ(block.size(), 32u);
    deallocate_aligned(first);
    deallocate_aligned(empty);
    deallocate_aligned(third);
}

// ---- AlignedBlock -----------------------------------------------------------------------

TEST(AlignedBlock, Basics) {
    AlignedBlock b(1000, 256, true);
    EXPECT_EQ(b.size(), 1000u);
    EXPECT_EQ(b.align(), 256u);
    EXPECT_EQ(addr(b.data()) % 256, 0u);
    EXPECT_TRUE(all_zero(b.data(), b.size()));
}

TEST(AlignedBlock, ZeroSizeDataIsDangling) {
    for (const std::size_t align : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, kMaxAlign}) {
        AlignedBlock b(0, align, true);
        EXPECT_EQ(b.size(), 0u);
        EXPECT_EQ(b.align(), align);
        EXPECT_EQ(addr(b.data()), align);
        EXPECT_EQ(b.data(), dangling(align));
    }
    const AlignedBlock empty;
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_EQ(empty.align(), 1u);
    EXPECT_EQ(addr(empty.data()), 1u);
}

TEST(AlignedBlock, MoveConstructLeavesSourceEmpty) {
    for (const std::size_t nbytes : {std::size_t{100}, 2 * kMiB}) {
        AlignedBlock a(nbytes, 128, false);
        fill_pattern(a.data(), nbytes);
        std::byte* const p = a.data();
        AlignedBlock b(std::move(a));
        EXPECT_EQ(b.data(), p);
        EXPECT_EQ(b.size(), nbytes);
        EXPECT_EQ(b.align(), 128u);
        EXPECT_EQ(pattern_mismatch(b.data(), nbytes), nbytes);
        EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the point of the test
        EXPECT_EQ(a.data(), dangling(a.align()));
        a.reset();  // still usable: a no-op
        a.resize(10);
        EXPECT_EQ(a.size(), 10u);
        EXPECT_TRUE(all_zero(a.data(), 10));
    }
}

TEST(AlignedBlock, MoveAssignLeavesSourceEmpty) {
    AlignedBlock a(300, 64, false);
    fill_pattern(a.data(), 300);
    std::byte* const p = a.data();
    AlignedBlock b(5000, 32, true);  // freed by the assignment (LSan would see a leak)
    b = std::move(a);
    EXPECT_EQ(b.data(), p);
    EXPECT_EQ(b.size(), 300u);
    EXPECT_EQ(b.align(), 64u);
    EXPECT_EQ(pattern_mismatch(b.data(), 300), 300u);
    EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(a.data(), dangling(a.align()));

    // Self-move-assignment keeps the block.
    AlignedBlock& alias = b;
    b = std::move(alias);
    EXPECT_EQ(b.data(), p);
    EXPECT_EQ(b.size(), 300u);
    EXPECT_EQ(pattern_mismatch(b.data(), 300), 300u);

    // Assigning an empty block frees the memory.
    b = AlignedBlock();
    EXPECT_EQ(b.size(), 0u);
    EXPECT_EQ(b.data(), dangling(b.align()));
}

// Resizes `b` to `to` and checks it kept min(old, new) pattern bytes, zeroed the rest, kept
// its alignment; then refills the pattern.
void resize_and_check(AlignedBlock& b, std::size_t to) {
    SCOPED_TRACE("resize " + std::to_string(b.size()) + " -> " + std::to_string(to));
    const std::size_t from = b.size();
    const std::size_t align = b.align();
    if (to > from && to < kMiB && align <= page_size()) dirty_heap(to, align);
    b.resize(to);
    ASSERT_EQ(b.size(), to);
    EXPECT_EQ(b.align(), align);
    if (to == 0) {
        EXPECT_EQ(b.data(), dangling(align));
        return;
    }
    EXPECT_EQ(addr(b.data()) % align, 0u);
    const std::size_t kept = from < to ? from : to;
    EXPECT_EQ(pattern_mismatch(b.data(), kept), kept);
    EXPECT_TRUE(all_zero(b.data() + kept, to - kept));
    fill_pattern(b.data(), to);
}

TEST(AlignedBlock, ResizeGrowShrinkAndZero) {
    for (const std::size_t align : {std::size_t{1}, std::size_t{64}, std::size_t{4096}, std::size_t{1} << 16}) {
        SCOPED_TRACE("align=" + std::to_string(align));
        AlignedBlock b(100, align, false);
        fill_pattern(b.data(), 100);
        resize_and_check(b, 1000);  // grow (mapped when align > page)
        resize_and_check(b, 10);    // shrink
        resize_and_check(b, 0);     // to nothing
        resize_and_check(b, 0);     // same size: a no-op
        resize_and_check(b, 50);    // from nothing: all zero
        resize_and_check(b, 4097);  // past a page
    }
}

TEST(AlignedBlock, ResizeAcrossTheMapThreshold) {
    for (const std::size_t align : {std::size_t{8}, std::size_t{256}, page_size()}) {
        SCOPED_TRACE("align=" + std::to_string(align));
        AlignedBlock b(kMiB - 1, align, false);  // heap
        fill_pattern(b.data(), b.size());
        resize_and_check(b, kMiB);                 // heap -> mmap
        resize_and_check(b, 3 * kMiB + 4096 + 7);  // mmap -> mmap, grow
        resize_and_check(b, kMiB + 1);             // mmap -> mmap, shrink
        resize_and_check(b, kMiB - 1);             // mmap -> heap
        resize_and_check(b, 1000);                 // heap -> heap
        resize_and_check(b, 2 * kMiB);             // heap -> mmap
        resize_and_check(b, 0);                    // mmap -> nothing
        resize_and_check(b, 2 * kMiB);             // nothing -> mmap
    }
}

TEST(AlignedBlock, ResizeToSameSizeKeepsAddress) {
    AlignedBlock b(777, 64, false);
    std::byte* const p = b.data();
    b.resize(777);
    EXPECT_EQ(b.data(), p);
}

TEST(AlignedBlock, FailedResizeLeavesBlockUnchanged) {
    AlignedBlock b(4000, 128, false);
    fill_pattern(b.data(), 4000);
    std::byte* const p = b.data();
    EXPECT_THROW(b.resize(kMaxSize - 4096), std::bad_alloc);
    EXPECT_THROW(b.resize(kMaxSize + 1), std::length_error);
    EXPECT_EQ(b.data(), p);
    EXPECT_EQ(b.size(), 4000u);
    EXPECT_EQ(b.align(), 128u);
    EXPECT_EQ(pattern_mismatch(b.data(), 4000), 4000u);
}

TEST(AlignedBlock, Reset) {
    for (const std::size_t nbytes : {std::size_t{0}, std::size_t{64}, 2 * kMiB}) {
        AlignedBlock b(nbytes, 512, true);
        b.reset();
        EXPECT_EQ(b.size(), 0u);
        EXPECT_EQ(b.align(), 512u);
        EXPECT_EQ(b.data(), dangling(512));
        b.reset();  // twice: a no-op
        EXPECT_EQ(b.size(), 0u);
        b.resize(100);  // usable again, alignment kept
        EXPECT_EQ(addr(b.data()) % 512, 0u);
        EXPECT_TRUE(all_zero(b.data(), 100));
    }
}

// ---- PinnableBlock ----------------------------------------------------------------------

TEST(PinnableBlock, PinCountsExports) {
    PinnableBlock pb(256, 64, true);
    EXPECT_EQ(pb.exports(), 0u);
    PinnableBlock::View v1{}, v2{};
    ASSERT_EQ(pb.pin(v1), Status::ok);
    EXPECT_EQ(pb.exports(), 1u);
    ASSERT_EQ(pb.pin(v2), Status::ok);
    EXPECT_EQ(pb.exports(), 2u);
    EXPECT_EQ(v1.data, v2.data);
    EXPECT_EQ(v1.size, 256u);
    EXPECT_EQ(v1.align, 64u);
    EXPECT_EQ(addr(v1.data) % 64, 0u);
    EXPECT_TRUE(all_zero(v1.data, v1.size));
    pb.unpin();
    EXPECT_EQ(pb.exports(), 1u);
    pb.unpin();
    EXPECT_EQ(pb.exports(), 0u);
}

TEST(PinnableBlock, ViewDoesNotPin) {
    PinnableBlock pb(10, 16, true);
    PinnableBlock::View v{};
    ASSERT_EQ(pb.view(v), Status::ok);
    EXPECT_EQ(v.size, 10u);
    EXPECT_EQ(v.align, 16u);
    EXPECT_EQ(pb.exports(), 0u);
}

TEST(PinnableBlock, ZeroSizePinsDangling) {
    PinnableBlock pb(0, 4096, true);
    PinnableBlock::View v{};
    ASSERT_EQ(pb.pin(v), Status::ok);
    EXPECT_EQ(v.data, dangling(4096));
    EXPECT_EQ(v.size, 0u);
    pb.unpin();
    EXPECT_EQ(pb.release(), Status::ok);
}

TEST(PinnableBlock, ReleaseAndResizeRefusedWhilePinned) {
    PinnableBlock pb(1000, 64, false);
    PinnableBlock::View pinned{};
    ASSERT_EQ(pb.pin(pinned), Status::ok);
    fill_pattern(pinned.data, pinned.size);

    EXPECT_EQ(pb.release(), Status::exported);
    EXPECT_EQ(pb.resize(5000), Status::exported);
    EXPECT_EQ(pb.resize(0), Status::exported);
    EXPECT_FALSE(pb.released());
    EXPECT_EQ(pb.exports(), 1u);
    // Nothing moved or changed.
    PinnableBlock::View now{};
    ASSERT_EQ(pb.view(now), Status::ok);
    EXPECT_EQ(now.data, pinned.data);
    EXPECT_EQ(now.size, 1000u);
    EXPECT_EQ(pattern_mismatch(pinned.data, 1000), 1000u);

    pb.unpin();
    ASSERT_EQ(pb.resize(2 * kMiB), Status::ok);
    ASSERT_EQ(pb.view(now), Status::ok);
    EXPECT_EQ(now.size, 2 * kMiB);
    EXPECT_EQ(addr(now.data) % 64, 0u);
    EXPECT_EQ(pattern_mismatch(now.data, 1000), 1000u);
    EXPECT_TRUE(all_zero(now.data + 1000, now.size - 1000));

    EXPECT_EQ(pb.release(), Status::ok);
    EXPECT_TRUE(pb.released());
    EXPECT_EQ(pb.release(), Status::ok);  // twice: a no-op
    EXPECT_TRUE(pb.released());
}

TEST(PinnableBlock, EverythingAfterReleaseSaysReleased) {
    PinnableBlock pb(4096, 64, true);
    ASSERT_EQ(pb.release(), Status::ok);
    PinnableBlock::View v{};
    EXPECT_EQ(pb.pin(v), Status::released);
    EXPECT_EQ(pb.exports(), 0u);  // a refused pin does not count
    EXPECT_EQ(pb.view(v), Status::released);
    EXPECT_EQ(pb.resize(10), Status::released);
    EXPECT_EQ(pb.resize(0), Status::released);
    EXPECT_EQ(pb.release(), Status::ok);
    EXPECT_TRUE(pb.released());
}

TEST(PinnableBlock, ReleasedIsConsistent) {
    PinnableBlock pb(100, 8, true);
    PinnableBlock::View v{};
    EXPECT_FALSE(pb.released());
    EXPECT_EQ(pb.view(v), Status::ok);

    ASSERT_EQ(pb.pin(v), Status::ok);
    EXPECT_EQ(pb.release(), Status::exported);
    EXPECT_FALSE(pb.released());  // a refused release changes nothing
    EXPECT_EQ(pb.view(v), Status::ok);
    pb.unpin();

    ASSERT_EQ(pb.resize(0), Status::ok);
    EXPECT_FALSE(pb.released());  // zero bytes is not released
    EXPECT_EQ(pb.view(v), Status::ok);
    EXPECT_EQ(v.size, 0u);

    ASSERT_EQ(pb.release(), Status::ok);
    EXPECT_TRUE(pb.released());
    // released() is true exactly when every other member reports Status::released.
    EXPECT_EQ(pb.view(v), Status::released);
    EXPECT_EQ(pb.pin(v), Status::released);
}

// Spins until `count` threads have arrived, so they start together.
void arrive_and_wait(std::atomic<int>& arrived, int count) {
    arrived.fetch_add(1);
    while (arrived.load() < count) std::this_thread::yield();
}

// 4 threads pin, write their own byte, check it, unpin, while one more thread keeps trying
// to release. A pin that succeeds must see valid memory until its unpin; once release
// succeeds every pin must say released.
TEST(PinnableBlockThreads, PinUnpinAgainstRelease) {
    constexpr int kRounds = 20;
    constexpr int kPinners = 4;
    constexpr int kIters = 2000;
    constexpr std::size_t kSize = 4096;
    int released_mid_run = 0;
    int refused = 0;
    for (int round = 0; round < kRounds; ++round) {
        SCOPED_TRACE("round " + std::to_string(round));
        PinnableBlock pb(kSize, 64, true);
        std::atomic<int> arrived{0};
        std::atomic<int> failures{0};
        std::atomic<int> pins{0};
        std::atomic<int> pins_after_release{0};
        std::atomic<int> pinners_left{kPinners};
        std::atomic<bool> release_done{false};

        std::vector<std::thread> threads;
        for (int t = 0; t < kPinners; ++t) {
            threads.emplace_back([&, t] {
                arrive_and_wait(arrived, kPinners + 1);
                const auto index = static_cast<std::size_t>(t);
                for (int i = 0; i < kIters; ++i) {
                    PinnableBlock::View v{};
                    const bool done_before = release_done.load();
                    const Status s = pb.pin(v);
                    if (s == Status::released) {
                        if (!pb.released()) failures.fetch_add(1);
                        break;
                    }
                    if (s != Status::ok) {
                        failures.fetch_add(1);
                        break;
                    }
                    pins.fetch_add(1);
                    if (done_before) pins_after_release.fetch_add(1);
                    if (v.size != kSize || addr(v.data) % 64 != 0) failures.fetch_add(1);
                    const auto mark = static_cast<std::byte>(i & 0xff);
                    v.data[index] = mark;
                    if ((i & 7) == 0) std::this_thread::yield();  // hold the pin a while
                    if (v.data[index] != mark) failures.fetch_add(1);
                    pb.unpin();
                }
                pinners_left.fetch_sub(1);
            });
        }
        std::atomic<int> refused_this_round{0};
        threads.emplace_back([&] {
            arrive_and_wait(arrived, kPinners + 1);
            // Later rounds start releasing later, into a busier block.
            while (pins.load() < round * 300 && pinners_left.load() > 0) std::this_thread::yield();
            for (int i = 0; i < 4 * kIters; ++i) {
                const Status s = pb.release();
                if (s == Status::ok) {
                    if (!pb.released()) failures.fetch_add(1);
                    release_done.store(true);
                    break;
                }
                if (s != Status::exported) failures.fetch_add(1);
                refused_this_round.fetch_add(1);
                std::this_thread::yield();
            }
        });
        for (std::thread& th : threads) th.join();
        refused += refused_this_round.load();

        EXPECT_EQ(failures.load(), 0);
        EXPECT_EQ(pins_after_release.load(), 0);
        EXPECT_EQ(pb.exports(), 0u);
        PinnableBlock::View v{};
        if (pb.released()) {
            ++released_mid_run;
            EXPECT_EQ(pb.view(v), Status::released);
            EXPECT_EQ(pb.pin(v), Status::released);
        } else {
            EXPECT_EQ(pb.view(v), Status::ok);
            EXPECT_EQ(pb.release(), Status::ok);  // nothing pins it any more
        }
        EXPECT_TRUE(pb.released());
        EXPECT_EQ(pb.exports(), 0u);
    }
    RecordProperty("released_mid_run", released_mid_run);
    RecordProperty("release_refused", refused);
}

// Same, with a thread that resizes between two sizes: each pinner's byte must survive
// every move of the memory (a resize only happens while nothing is pinned).
TEST(PinnableBlockThreads, PinUnpinAgainstResize) {
    constexpr int kPinners = 4;
    constexpr int kIters = 3000;
    constexpr std::size_t kSmall = 64;
    constexpr std::size_t kLarge = kMiB + 64;  // alternates between heap and mmap
    PinnableBlock pb(kSmall, 64, true);
    std::atomic<int> arrived{0};
    std::atomic<int> failures{0};
    std::atomic<bool> pinners_done{false};

    std::vector<std::thread> threads;
    for (int t = 0; t < kPinners; ++t) {
        threads.emplace_back([&, t] {
            arrive_and_wait(arrived, kPinners + 1);
            const auto index = static_cast<std::size_t>(t);
            std::byte last{0};  // zero=true: the byte starts at 0
            for (int i = 0; i < kIters; ++i) {
                PinnableBlock::View v{};
                if (pb.pin(v) != Status::ok) {
                    failures.fetch_add(1);
                    break;
                }
                if ((v.size != kSmall && v.size != kLarge) || addr(v.data) % 64 != 0) failures.fetch_add(1);
                if (v.data[index] != last) failures.fetch_add(1);
                last = static_cast<std::byte>((i + 1) & 0xff);
                v.data[index] = last;
                pb.unpin();
                if ((i & 3) == 0) std::this_thread::yield();  // let the resizer in
            }
        });
    }
    std::atomic<int> resizes{0};
    threads.emplace_back([&] {
        arrive_and_wait(arrived, kPinners + 1);
        bool large = false;
        while (!pinners_done.load()) {
            const Status s = pb.resize(large ? kSmall : kLarge);
            if (s == Status::ok) {
                large = !large;
                resizes.fetch_add(1);
            } else if (s != Status::exported) {
                failures.fetch_add(1);
            }
            std::this_thread::yield();
        }
    });
    for (int t = 0; t < kPinners; ++t) threads[static_cast<std::size_t>(t)].join();
    pinners_done.store(true);
    threads.back().join();

    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(pb.exports(), 0u);
    EXPECT_FALSE(pb.released());
    EXPECT_EQ(pb.release(), Status::ok);
    RecordProperty("resizes", resizes.load());
}

}  // namespace
