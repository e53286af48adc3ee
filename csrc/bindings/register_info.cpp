// memkit._core.info: build facts and machine facts for `python -m memkit info`.
#include "pybind11.hpp"

#include <string>

#include "../core/aligned.hpp"
#include "../core/platform.hpp"

// setup.py and CMakeLists.txt pass the flags they compile with; a build by other means
// reports that it does not know them.
#ifndef MEMKIT_BUILD_FLAGS
#define MEMKIT_BUILD_FLAGS "unknown"
#endif
#ifndef MEMKIT_BUILD_SYSTEM
#define MEMKIT_BUILD_SYSTEM "unknown"
#endif

namespace memkit::bindings {

namespace {

std::string compiler() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
    return "msvc " + std::to_string(_MSC_FULL_VER);
#else
    return "unknown";
#endif
}

// What the build asked for (setup.py / CMake pass MEMKIT_SANITIZE, e.g. "address,undefined"),
// else what the compiler says is on.
std::string sanitizers() {
#if defined(MEMKIT_SANITIZE)
    return MEMKIT_SANITIZE;
#elif defined(__SANITIZE_ADDRESS__)
    return "address";
#elif defined(__SANITIZE_THREAD__)
    return "thread";
#else
    return "none";
#endif
}

}  // namespace

void register_info(py::module_& m) {
    py::dict build;
    build["compiler"] = compiler();
    build["cplusplus"] = static_cast<long>(__cplusplus);
    build["flags"] = MEMKIT_BUILD_FLAGS;
    build["build_system"] = MEMKIT_BUILD_SYSTEM;
    build["pybind11"] = std::to_string(PYBIND11_VERSION_MAJOR) + "." + std::to_string(PYBIND11_VERSION_MINOR) +
                        "." + std::to_string(PYBIND11_VERSION_PATCH);
#if defined(NDEBUG)
    build["assertions"] = false;
#else
    build["assertions"] = true;
#endif
    build["sanitizers"] = sanitizers();
    m.attr("BUILD") = build;
    m.attr("CACHE_PAD") = py::int_(core::kCachePad);
    m.attr("MAX_ALIGN") = py::int_(core::kMaxAlign);
    m.def("page_size", &core::page_size, "The virtual-memory page size in bytes.");
    m.def("cache_line_size", &core::cache_line_size,
          "The L1 data cache line size the OS reports, or 0 when it reports none.");
}

}  // namespace memkit::bindings
