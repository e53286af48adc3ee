// A bump allocator: allocation is a pointer increment, and everything allocated after a
// checkpoint is freed at once by rewinding to it. The memory behind memkit.Arena.
//
// Not synchronised: the owner serialises calls (the bindings hold the GIL or, on
// free-threaded builds, a mutex). Unit-tested alone in tests/cpp/test_arena.cpp.
#pragma once

#include <cstddef>
#include <limits>
#include <new>
#include <vector>

#include "aligned.hpp"

namespace memkit::core {

// Thrown when an allocation would take the arena past its max_bytes. A std::bad_alloc, so
// code that only knows "allocation failed" still treats it as such.
class ArenaLimitError : public std::bad_alloc {
public:
    const char* what() const noexcept override { return "memkit arena: max_bytes reached"; }
};

struct ArenaStats {
    std::size_t bytes_used = 0;        // handed out, alignment padding included
    std::size_t bytes_reserved = 0;    // held in chunks
    std::size_t chunk_count = 0;       // regular and oversized chunks
    std::size_t allocation_count = 0;  // allocations live since creation / reset / the checkpoint
};

class BumpArena {
public:
    static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();
    // Chunks start at this alignment, so requests up to it need no padding at a chunk start.
    static constexpr std::size_t kChunkAlign = 64;
    // Chunk sizes double as the arena grows, up to kGrowthFactor x chunk_size: an arena
    // that needs more than that takes more chunks of the capped size (no runaway doubling).
    static constexpr std::size_t kGrowthFactor = 16;

    // Everything needed to rewind: where the bump pointer was and the live statistics.
    struct Checkpoint {
        std::size_t chunk = 0;      // index into chunks_ of the chunk being bumped
        std::size_t offset = 0;     // bytes used in that chunk
        std::size_t oversized = 0;  // oversized_.size()
        std::size_t bytes_used = 0;
        std::size_t allocation_count = 0;
    };

    // chunk_size > 0 (std::invalid_argument otherwise); max_bytes caps bytes_reserved.
    explicit BumpArena(std::size_t chunk_size, std::size_t max_bytes = kUnlimited);
    ~BumpArena();
    BumpArena(const BumpArena&) = delete;
    BumpArena& operator=(const BumpArena&) = delete;

    // `nbytes` at a multiple of `align` (a power of two <= kMaxAlign, else
    // std::invalid_argument). Zeroed when `zero`. A request that does not fit in a chunk of
    // the current growth size gets a chunk of its own. Throws ArenaLimitError past
    // max_bytes, std::bad_alloc when the OS refuses; either way nothing changes.
    // nbytes == 0 returns dangling(align) and allocates nothing.
    std::byte* allocate(std::size_t nbytes, std::size_t align, bool zero);

    Checkpoint checkpoint() const noexcept;
    // Frees everything allocated after `cp` (a checkpoint of this arena, not older than the
    // last reset). Regular chunks are kept for reuse; oversized chunks are freed.
    void rewind(const Checkpoint& cp) noexcept;
    // Frees everything, keeping the largest regular chunk for reuse.
    void reset() noexcept;

    ArenaStats stats() const noexcept;
    std::size_t chunk_size() const noexcept { return chunk_size_; }
    std::size_t max_bytes() const noexcept { return max_bytes_; }

private:
    std::byte* bump(std::size_t index, std::size_t nbytes, std::size_t align) noexcept;
    std::byte* allocate_oversized(std::size_t nbytes, std::size_t align, bool zero);
    std::size_t reserved_room() const noexcept { return max_bytes_ - reserved_; }

    std::size_t chunk_size_;
    std::size_t max_bytes_;
    std::size_t next_chunk_size_;       // size of the next regular chunk, before max_bytes
    std::vector<Allocation> chunks_;    // regular chunks, bumped in order
    std::vector<Allocation> oversized_; // one allocation each, in allocation order
    std::size_t current_ = 0;           // chunks_[current_] is bumped (when chunks_ is not empty)
    std::size_t offset_ = 0;            // bytes of chunks_[current_] in use
    std::size_t bytes_used_ = 0;
    std::size_t allocation_count_ = 0;
    std::size_t reserved_ = 0;          // sum of every chunk's nbytes; <= max_bytes_
};

}  // namespace memkit::core
