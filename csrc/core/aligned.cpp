#include "aligned.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "platform.hpp"

#if defined(_WIN32)
#include <malloc.h>
#else
#include <sys/mman.h>
#endif

namespace memkit::core {

namespace {

// From this size on, blocks are mapped rather than taken from the C heap: glibc does the
// same for malloc (its default M_MMAP_THRESHOLD is 128 KiB, adaptive up to 32 MiB), and a
// mapping arrives zeroed, which makes aligned_zeros of a large array as cheap as calloc.
constexpr std::size_t kMapThreshold = std::size_t{1} << 20;

std::uintptr_t round_up(std::uintptr_t n, std::size_t to) noexcept {
    // Precondition: `to` is a power of two and n + to - 1 does not overflow.
    return (n + (to - 1)) & ~static_cast<std::uintptr_t>(to - 1);
}

#if !defined(_WIN32)
Allocation map_aligned(std::size_t nbytes, std::size_t align) {
    const std::size_t page = page_size();
    // nbytes <= kMaxSize (half the address space), so rounding up to a page cannot wrap.
    const std::size_t len = round_up(nbytes, page);
    // mmap returns page-aligned addresses; a larger alignment needs align - page bytes of
    // slack to slide into, which is unmapped again below.
    const std::size_t slack = align > page ? align - page : 0;
    if (len > kMaxSize - slack) throw std::bad_alloc();
    void* p = mmap(nullptr, len + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    const auto base = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t start = round_up(base, align);
    const std::size_t head = start - base;
    const std::size_t tail = slack - head;
    // SAFETY: [base, start) and [start + len, start + len + tail) lie inside the mapping just
    // made and are page-aligned (start and len are multiples of the page), so unmapping them
    // leaves exactly [start, start + len) mapped.
    if (head != 0) munmap(p, head);
    if (tail != 0) munmap(reinterpret_cast<void*>(start + len), tail);
    Allocation a;
    a.data = reinterpret_cast<std::byte*>(start);
    a.nbytes = nbytes;
    a.align = align;
    a.mapped = len;
    return a;
}
#endif

std::atomic<AllocationGate> allocation_gate{nullptr};

}  // namespace

void set_allocation_gate(AllocationGate gate) noexcept { allocation_gate.store(gate, std::memory_order_release); }

void check_align(std::size_t align) {
    if (!is_power_of_two(align) || align > kMaxAlign) {
        throw std::invalid_argument("align must be a power of two between 1 and " +
                                    std::to_string(kMaxAlign) + ", got " + std::to_string(align));
    }
}

Allocation allocate_aligned(std::size_t nbytes, std::size_t align, bool zero) {
    check_align(align);
    if (nbytes > kMaxSize) {
        throw std::length_error("nbytes must be at most " + std::to_string(kMaxSize) + ", got " +
                                std::to_string(nbytes));
    }
    Allocation a;
    a.nbytes = nbytes;
    a.align = align;
    if (nbytes == 0) return a;
    if (const AllocationGate gate = allocation_gate.load(std::memory_order_acquire); gate != nullptr && !gate()) {
        throw std::bad_alloc();
    }
#if defined(_WIN32)
    void* p = _aligned_malloc(nbytes, align);
    if (p == nullptr) throw std::bad_alloc();
    if (zero) std::memset(p, 0, nbytes);
    a.data = static_cast<std::byte*>(p);
    return a;
#else
    if (nbytes >= kMapThreshold || align > page_size()) return map_aligned(nbytes, align);
    void* p = nullptr;
    // posix_memalign wants a multiple of sizeof(void*); a stricter alignment is still a
    // multiple of the smaller power of two that was asked for.
    const std::size_t effective = align < sizeof(void*) ? sizeof(void*) : align;
    if (posix_memalign(&p, effective, nbytes) != 0) throw std::bad_alloc();
    if (zero) std::memset(p, 0, nbytes);
    a.data = static_cast<std::byte*>(p);
    return a;
#endif
}

void deallocate_aligned(const Allocation& a) noexcept {
    if (a.data == nullptr) return;
#if defined(_WIN32)
    _aligned_free(a.data);
#else
    if (a.mapped != 0) {
        munmap(a.data, a.mapped);
    } else {
        std::free(a.data);
    }
#endif
}

AlignedBlock::AlignedBlock(std::size_t nbytes, std::size_t align, bool zero)
    : alloc_(allocate_aligned(nbytes, align, zero)) {}

AlignedBlock::AlignedBlock(AlignedBlock&& other) noexcept
    : alloc_(std::exchange(other.alloc_, Allocation{nullptr, 0, other.alloc_.align, 0})) {}

AlignedBlock& AlignedBlock::operator=(AlignedBlock&& other) noexcept {
    if (this != &other) {
        deallocate_aligned(alloc_);
        alloc_ = std::exchange(other.alloc_, Allocation{nullptr, 0, other.alloc_.align, 0});
    }
    return *this;
}

void AlignedBlock::resize(std::size_t nbytes) {
    if (nbytes == alloc_.nbytes) return;
    // Allocate first: if it throws, *this is untouched.
    Allocation fresh = allocate_aligned(nbytes, alloc_.align, /*zero=*/false);
    const std::size_t kept = nbytes < alloc_.nbytes ? nbytes : alloc_.nbytes;
    if (kept != 0) std::memcpy(fresh.data, alloc_.data, kept);
    // A mapping is already zero; heap memory past the kept bytes is not.
    if (nbytes > kept && fresh.mapped == 0) std::memset(fresh.data + kept, 0, nbytes - kept);
    deallocate_aligned(alloc_);
    alloc_ = fresh;
}

void AlignedBlock::reset() noexcept {
    deallocate_aligned(alloc_);
    alloc_ = Allocation{nullptr, 0, alloc_.align, 0};
}

PinnableBlock::Status PinnableBlock::pin(View& out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_) return Status::released;
    ++exports_;
    out = View{block_.data(), block_.size(), block_.align()};
    return Status::ok;
}

void PinnableBlock::unpin() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (exports_ > 0) --exports_;
}

PinnableBlock::Status PinnableBlock::view(View& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_) return Status::released;
    out = View{block_.data(), block_.size(), block_.align()};
    return Status::ok;
}

PinnableBlock::Status PinnableBlock::release() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_) return Status::ok;
    if (exports_ > 0) return Status::exported;
    block_.reset();
    released_ = true;
    return Status::ok;
}

PinnableBlock::Status PinnableBlock::resize(std::size_t nbytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (released_) return Status::released;
    if (exports_ > 0) return Status::exported;
    block_.resize(nbytes);
    return Status::ok;
}

bool PinnableBlock::released() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return released_;
}

std::size_t PinnableBlock::exports() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return exports_;
}

}  // namespace memkit::core
