#include "platform.hpp"

#include <cstdio>

#if defined(_WIN32)
#include <windows.h>
#else
#include <unistd.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace memkit::core {

namespace {
std::size_t query_page_size() noexcept {
#if defined(_WIN32)
    SYSTEM_INFO info;
    GetSystemInfo(&info);
    return static_cast<std::size_t>(info.dwPageSize);
#else
    const long n = sysconf(_SC_PAGESIZE);
    return n > 0 ? static_cast<std::size_t>(n) : 4096;
#endif
}
}  // namespace

std::size_t page_size() noexcept {
    static const std::size_t size = query_page_size();
    return size;
}

std::size_t cache_line_size() noexcept {
#if defined(__APPLE__)
    std::size_t line = 0;
    std::size_t len = sizeof(line);
    if (sysctlbyname("hw.cachelinesize", &line, &len, nullptr, 0) == 0) return line;
    return 0;
#elif defined(_WIN32)
    return 0;
#else
#if defined(_SC_LEVEL1_DCACHE_LINESIZE)
    const long n = sysconf(_SC_LEVEL1_DCACHE_LINESIZE);
    if (n > 0) return static_cast<std::size_t>(n);
#endif
    // Some kernels/libcs answer 0 above; sysfs has the same fact.
    std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size", "r");
    if (f == nullptr) return 0;
    unsigned long line = 0;
    const int got = std::fscanf(f, "%lu", &line);
    std::fclose(f);
    return got == 1 ? static_cast<std::size_t>(line) : 0;
#endif
}

}  // namespace memkit::core
