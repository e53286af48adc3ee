// Facts about the machine memkit runs on: page size, cache line, padding unit.
#pragma once

#include <cstddef>

namespace memkit::core {

// The padding that keeps two hot values off each other's cache lines, crossbeam-utils'
// CachePadded table. x86_64, aarch64 and powerpc64 use 128 bytes although their lines are
// 64 (aarch64's big cores and POWER have 128-byte lines): since Sandy Bridge the L2
// "spatial prefetcher" pulls in the adjacent line of each 128-byte-aligned pair, so two
// values 64 bytes apart still contend. s390x has 256-byte lines. Everything else: 64.
#if defined(__x86_64__) || defined(_M_X64) || defined(__aarch64__) || defined(_M_ARM64) || \
    defined(__powerpc64__)
constexpr std::size_t kCachePad = 128;
#elif defined(__s390x__)
constexpr std::size_t kCachePad = 256;
#else
constexpr std::size_t kCachePad = 64;
#endif

// The virtual-memory page size (sysconf), cached after the first call.
std::size_t page_size() noexcept;

// The L1 data cache line size the OS reports, or 0 when it reports none.
std::size_t cache_line_size() noexcept;

}  // namespace memkit::core
