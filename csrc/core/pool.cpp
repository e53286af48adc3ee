#include "pool.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace memkit::core {

BlockPool::BlockPool(std::vector<std::size_t> size_classes, std::size_t max_cached_bytes, std::size_t align)
    : classes_(std::move(size_classes)), max_cached_bytes_(max_cached_bytes), align_(align) {
    check_align(align);
    if (classes_.empty()) throw std::invalid_argument("size_classes must not be empty");
    for (const std::size_t size : classes_) {
        if (size == 0 || size > kMaxSize) {
            throw std::invalid_argument("size_classes must be between 1 and " + std::to_string(kMaxSize) +
                                        ", got " + std::to_string(size));
        }
    }
    std::sort(classes_.begin(), classes_.end());
    classes_.erase(std::unique(classes_.begin(), classes_.end()), classes_.end());
    cache_.resize(classes_.size());
}

BlockPool::~BlockPool() { clear(); }

BlockPool::Block BlockPool::take(std::size_t nbytes) {
    const auto it = std::lower_bound(classes_.begin(), classes_.end(), nbytes);
    Block block;
    if (it == classes_.end()) {
        block.memory = allocate_aligned(nbytes, align_, /*zero=*/false);
        block.size_class = kExact;
        block.zeroed = block.memory.mapped != 0;
        ++stats_.misses;
        ++stats_.outstanding;
        return block;
    }
    block.size_class = static_cast<std::size_t>(it - classes_.begin());
    std::vector<Allocation>& idle = cache_[block.size_class];
    if (!idle.empty()) {
        block.memory = idle.back();
        idle.pop_back();
        stats_.cached_bytes -= block.memory.nbytes;
        ++stats_.hits;
    } else {
        block.memory = allocate_aligned(*it, align_, /*zero=*/false);
        block.zeroed = block.memory.mapped != 0;
        ++stats_.misses;
    }
    ++stats_.outstanding;
    return block;
}

void BlockPool::give(Block block) noexcept {
    if (stats_.outstanding > 0) --stats_.outstanding;
    const std::size_t capacity = block.capacity();
    // Invariant: cached_bytes <= max_cached_bytes_, so the subtraction cannot wrap.
    if (block.size_class != kExact && capacity <= max_cached_bytes_ - stats_.cached_bytes) {
        try {
            cache_[block.size_class].push_back(block.memory);
            stats_.cached_bytes += capacity;
            return;
        } catch (...) {
            // No room to remember the block: free it instead.
        }
    }
    deallocate_aligned(block.memory);
}

void BlockPool::clear() noexcept {
    for (std::vector<Allocation>& idle : cache_) {
        for (const Allocation& a : idle) deallocate_aligned(a);
        idle.clear();
    }
    stats_.cached_bytes = 0;
}

}  // namespace memkit::core
