// Unit tests of csrc/core/platform.hpp: page size, cache line size, padding unit.
#include "core/platform.hpp"

#include <gtest/gtest.h>

#include <cstddef>

#include "core/aligned.hpp"

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace {

using memkit::core::cache_line_size;
using memkit::core::is_power_of_two;
using memkit::core::kCachePad;
using memkit::core::page_size;

static_assert(is_power_of_two(1) && is_power_of_two(64) && is_power_of_two(std::size_t{1} << 63));
static_assert(!is_power_of_two(0) && !is_power_of_two(3) && !is_power_of_two(96));

TEST(Platform, PageSize) {
    const std::size_t page = page_size();
    EXPECT_TRUE(is_power_of_two(page)) << page;
#if defined(__linux__)
    EXPECT_GE(page, 4096u);
    EXPECT_EQ(page, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
#endif
    EXPECT_EQ(page_size(), page);  // cached, stable
}

TEST(Platform, CacheLineSize) {
    const std::size_t line = cache_line_size();
    EXPECT_TRUE(line == 0 || is_power_of_two(line)) << line;
    // The padding unit exists to keep values off each other's lines.
    if (line != 0) {
        EXPECT_GE(kCachePad, line);
    }
}

TEST(Platform, CachePad) {
    EXPECT_TRUE(is_power_of_two(kCachePad));
    EXPECT_GE(kCachePad, 64u);
#if defined(__x86_64__) || defined(_M_X64)
    static_assert(kCachePad == 128);
    EXPECT_EQ(kCachePad, 128u);
#endif
}

}  // namespace
