#include "arena.hpp"

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace memkit::core {

BumpArena::BumpArena(std::size_t chunk_size, std::size_t max_bytes)
    : chunk_size_(chunk_size), max_bytes_(max_bytes), next_chunk_size_(chunk_size) {
    if (chunk_size == 0 || chunk_size > kMaxSize) {
        throw std::invalid_argument("chunk_size must be between 1 and " + std::to_string(kMaxSize) +
                                    ", got " + std::to_string(chunk_size));
    }
}

BumpArena::~BumpArena() {
    for (const Allocation& a : chunks_) deallocate_aligned(a);
    for (const Allocation& a : oversized_) deallocate_aligned(a);
}

std::byte* BumpArena::bump(std::size_t index, std::size_t nbytes, std::size_t align) noexcept {
    const Allocation& chunk = chunks_[index];
    const std::size_t start = index == current_ ? offset_ : 0;
    const auto cursor = reinterpret_cast<std::uintptr_t>(chunk.data) + start;
    // No overflow: cursor is inside a live allocation and align <= kMaxAlign.
    const std::uintptr_t aligned = (cursor + (align - 1)) & ~static_cast<std::uintptr_t>(align - 1);
    const std::size_t padding = aligned - cursor;
    const std::size_t room = chunk.nbytes - start;
    if (padding > room || nbytes > room - padding) return nullptr;
    current_ = index;
    offset_ = start + padding + nbytes;
    bytes_used_ += padding + nbytes;
    ++allocation_count_;
    return reinterpret_cast<std::byte*>(aligned);
}

std::byte* BumpArena::allocate_oversized(std::size_t nbytes, std::size_t align, bool zero) {
    if (nbytes > reserved_room()) throw ArenaLimitError();
    const Allocation a = allocate_aligned(nbytes, align, zero);
    try {
        oversized_.push_back(a);
    } catch (...) {
        deallocate_aligned(a);
        throw;
    }
    reserved_ += nbytes;
    bytes_used_ += nbytes;
    ++allocation_count_;
    return a.data;
}

std::byte* BumpArena::allocate(std::size_t nbytes, std::size_t align, bool zero) {
    check_align(align);
    if (nbytes > kMaxSize) {
        throw std::length_error("nbytes must be at most " + std::to_string(kMaxSize) + ", got " +
                                std::to_string(nbytes));
    }
    if (nbytes == 0) {
        ++allocation_count_;
        return dangling(align);
    }
    // The current chunk first, then chunks kept by an earlier rewind.
    for (std::size_t i = current_; i < chunks_.size(); ++i) {
        if (std::byte* p = bump(i, nbytes, align)) {
            if (zero) std::memset(p, 0, nbytes);
            return p;
        }
    }
    // Worst-case padding at the start of a fresh chunk, which is kChunkAlign-aligned.
    const std::size_t need = nbytes + (align > kChunkAlign ? align - kChunkAlign : 0);
    if (need > next_chunk_size_) return allocate_oversized(nbytes, align, zero);
    // max_bytes caps bytes_reserved: the new chunk shrinks to fit under it.
    const std::size_t size = next_chunk_size_ < reserved_room() ? next_chunk_size_ : reserved_room();
    if (size < need) throw ArenaLimitError();
    const Allocation chunk = allocate_aligned(size, kChunkAlign, /*zero=*/false);
    try {
        chunks_.push_back(chunk);
    } catch (...) {
        deallocate_aligned(chunk);
        throw;
    }
    reserved_ += size;
    const std::size_t cap = chunk_size_ > kMaxSize / kGrowthFactor ? chunk_size_ : chunk_size_ * kGrowthFactor;
    next_chunk_size_ = next_chunk_size_ > cap / 2 ? cap : next_chunk_size_ * 2;
    std::byte* p = bump(chunks_.size() - 1, nbytes, align);  // fits: size >= need
    if (zero) std::memset(p, 0, nbytes);
    return p;
}

BumpArena::Checkpoint BumpArena::checkpoint() const noexcept {
    return Checkpoint{current_, offset_, oversized_.size(), bytes_used_, allocation_count_};
}

void BumpArena::rewind(const Checkpoint& cp) noexcept {
    for (std::size_t i = cp.oversized; i < oversized_.size(); ++i) {
        reserved_ -= oversized_[i].nbytes;
        deallocate_aligned(oversized_[i]);
    }
    if (cp.oversized < oversized_.size()) oversized_.resize(cp.oversized);
    current_ = cp.chunk;
    offset_ = cp.offset;
    bytes_used_ = cp.bytes_used;
    allocation_count_ = cp.allocation_count;
}

void BumpArena::reset() noexcept {
    for (const Allocation& a : oversized_) deallocate_aligned(a);
    oversized_.clear();
    std::size_t largest = 0;
    for (std::size_t i = 1; i < chunks_.size(); ++i) {
        if (chunks_[i].nbytes > chunks_[largest].nbytes) largest = i;
    }
    for (std::size_t i = 0; i < chunks_.size(); ++i) {
        if (i != largest) deallocate_aligned(chunks_[i]);
    }
    if (!chunks_.empty()) {
        chunks_[0] = chunks_[largest];
        chunks_.resize(1);  // shrinking never allocates
    }
    reserved_ = chunks_.empty() ? 0 : chunks_[0].nbytes;
    current_ = 0;
    offset_ = 0;
    bytes_used_ = 0;
    allocation_count_ = 0;
    next_chunk_size_ = chunk_size_;
}

ArenaStats BumpArena::stats() const noexcept {
    return ArenaStats{bytes_used_, reserved_, chunks_.size() + oversized_.size(), allocation_count_};
}

}  // namespace memkit::core
