// Aligned allocation and the owning block behind memkit.AlignedBuffer.
//
// Pure C++17, no Python.h: unit-tested alone (tests/cpp/test_aligned.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

namespace memkit::core {

// The largest alignment memkit accepts. API.md promises "up to at least 1 GiB"; beyond it a
// request only burns address space (the over-allocation is `align` bytes of it).
constexpr std::size_t kMaxAlign = std::size_t{1} << 30;

// The largest size any memkit buffer may have: Python's buffer protocol stores lengths in
// Py_ssize_t, which is ptrdiff_t on every supported platform.
constexpr std::size_t kMaxSize = static_cast<std::size_t>(PTRDIFF_MAX);

constexpr bool is_power_of_two(std::size_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

// Throws std::invalid_argument naming the value unless `align` is a power of two <= kMaxAlign.
void check_align(std::size_t align);

// A non-null, `align`-aligned address that must never be dereferenced: what a zero-byte
// buffer points at, as Rust's `NonNull::dangling()` does for an empty allocation.
inline std::byte* dangling(std::size_t align) noexcept {
    return reinterpret_cast<std::byte*>(static_cast<std::uintptr_t>(align));
}

// One aligned allocation as the allocator made it. `nbytes == 0` never allocates.
struct Allocation {
    std::byte* data = nullptr;
    std::size_t nbytes = 0;
    std::size_t align = 1;
    // Bytes mapped with mmap (0 when the block came from the C heap). Large or
    // over-page-aligned blocks are mapped: the kernel hands out zeroed pages, so zeroing is
    // free, and alignments above the page size cost address space, not memory.
    std::size_t mapped = 0;
};

// Allocates `nbytes` at a multiple of `align` (checked). Throws std::bad_alloc on failure,
// std::invalid_argument for a bad alignment, std::length_error above kMaxSize.
// With `zero`, the bytes read as zero.
Allocation allocate_aligned(std::size_t nbytes, std::size_t align, bool zero);

// Fault injection, for tests that check every allocation failure is handled: while a gate
// is set, allocate_aligned asks it before each allocation of one byte or more and throws
// std::bad_alloc - as if the OS had refused - when it returns false. The gate may be called
// from any thread at once. nullptr (the default) removes it; an unset gate costs one
// relaxed load per allocation. memkit._core._testing.FaultScope is its only user.
using AllocationGate = bool (*)() noexcept;
void set_allocation_gate(AllocationGate gate) noexcept;

// Frees what allocate_aligned returned. A default or zero-byte Allocation is a no-op.
void deallocate_aligned(const Allocation& a) noexcept;

// Move-only owner of one Allocation.
class AlignedBlock {
public:
    AlignedBlock() noexcept = default;
    AlignedBlock(std::size_t nbytes, std::size_t align, bool zero);
    ~AlignedBlock() { deallocate_aligned(alloc_); }
    AlignedBlock(AlignedBlock&& other) noexcept;
    AlignedBlock& operator=(AlignedBlock&& other) noexcept;
    AlignedBlock(const AlignedBlock&) = delete;
    AlignedBlock& operator=(const AlignedBlock&) = delete;

    // Never null: a zero-byte block points at dangling(align).
    std::byte* data() const noexcept {
        return alloc_.nbytes != 0 ? alloc_.data : dangling(alloc_.align);
    }
    std::size_t size() const noexcept { return alloc_.nbytes; }
    std::size_t align() const noexcept { return alloc_.align; }

    // Keeps the first min(old, new) bytes and the alignment; grown bytes read as zero, like
    // Vec::resize(n, 0). Strong guarantee: on std::bad_alloc the block is unchanged.
    void resize(std::size_t nbytes);

    // Frees the memory now; the block becomes zero bytes long (alignment kept).
    void reset() noexcept;

private:
    Allocation alloc_;
};

// An AlignedBlock that outside views (Python buffer exports) can pin. Invariant: while
// exports() > 0 the memory is neither freed nor moved, so a pointer handed out by pin()
// stays valid until the matching unpin(). Every member is safe to call from several
// threads at once.
class PinnableBlock {
public:
    enum class Status {
        ok,
        released,  // the memory was freed by release(); nothing else may be done
        exported,  // refused: views still point into the memory
    };
    struct View {
        std::byte* data;
        std::size_t size;
        std::size_t align;
    };

    PinnableBlock(std::size_t nbytes, std::size_t align, bool zero) : block_(nbytes, align, zero) {}

    // On ok, `out` describes the memory and it stays put until unpin().
    Status pin(View& out);
    // Ends one pin(). Precondition: a pin() returned ok and has not been unpinned.
    void unpin() noexcept;
    // A snapshot of the memory (for properties); does not pin.
    Status view(View& out) const;
    // Frees the memory unless pinned. Releasing twice is ok (a no-op).
    Status release() noexcept;
    // Resizes unless pinned or released. Throws std::bad_alloc (unchanged) on failure.
    Status resize(std::size_t nbytes);

    bool released() const;
    std::size_t exports() const;

private:
    mutable std::mutex mutex_;
    AlignedBlock block_;     // guarded by mutex_
    std::size_t exports_ = 0;  // guarded by mutex_; > 0 means block_ must not move or free
    bool released_ = false;    // guarded by mutex_; true means block_ is empty for good
};

}  // namespace memkit::core
