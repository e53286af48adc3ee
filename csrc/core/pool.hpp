// Size-classed cache of aligned blocks: the memory behind memkit.BufferPool.
//
// Not synchronised: the owner serialises calls (the bindings hold the GIL or, on
// free-threaded builds, a mutex). Unit-tested alone in tests/cpp/test_pool.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "aligned.hpp"

namespace memkit::core {

struct PoolStats {
    std::uint64_t hits = 0;        // take() served from the cache
    std::uint64_t misses = 0;      // take() had to allocate
    std::size_t cached_bytes = 0;  // capacity held in the cache; <= max_cached_bytes
    std::size_t outstanding = 0;   // blocks taken and not yet given back
};

class BlockPool {
public:
    // A block handed out by take(). `size_class` indexes size_classes(), or is kExact for a
    // request above the largest class (allocated exactly, never cached).
    struct Block {
        Allocation memory;
        std::size_t size_class = kExact;
        // True when take() just mapped the block from the OS, whose pages arrive zeroed:
        // the caller need not zero it (and writing zeros would touch every page).
        bool zeroed = false;
        std::size_t capacity() const noexcept { return memory.nbytes; }
    };
    static constexpr std::size_t kExact = static_cast<std::size_t>(-1);

    // `size_classes`: non-empty, every size in [1, kMaxSize] (std::invalid_argument
    // otherwise); sorted and de-duplicated here. `align` is checked as check_align does.
    BlockPool(std::vector<std::size_t> size_classes, std::size_t max_cached_bytes, std::size_t align);
    ~BlockPool();
    BlockPool(const BlockPool&) = delete;
    BlockPool& operator=(const BlockPool&) = delete;

    // A block of the smallest class >= nbytes (cached if one is, else new), or an exact
    // block above the largest class. Contents are unspecified unless `zeroed` says so: the
    // caller zeroes the rest. Throws
    // std::bad_alloc (nothing changes) when the OS refuses.
    Block take(std::size_t nbytes);
    // Returns a block from take(): cached when it is class-sized and the cache has room
    // under max_cached_bytes, freed otherwise.
    void give(Block block) noexcept;
    // Frees every cached block.
    void clear() noexcept;

    PoolStats stats() const noexcept { return stats_; }
    const std::vector<std::size_t>& size_classes() const noexcept { return classes_; }
    std::size_t max_cached_bytes() const noexcept { return max_cached_bytes_; }
    std::size_t align() const noexcept { return align_; }

private:
    std::vector<std::size_t> classes_;
    std::vector<std::vector<Allocation>> cache_;  // cache_[i]: idle blocks of classes_[i] bytes
    std::size_t max_cached_bytes_;
    std::size_t align_;
    PoolStats stats_;
};

}  // namespace memkit::core
