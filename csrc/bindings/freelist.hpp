// Recently freed objects of one type, reused by the next allocation of that type.
//
// Guards and buffer handles are created and dropped in tight loops (a borrow, a lock, an
// arena allocation per call); taking their memory from here skips the allocator, a fifth
// or more of their cost. Only with the GIL, which serialises every access to the list;
// free-threaded builds always allocate.
#pragma once

#include "pybind11.hpp"

namespace memkit::bindings {

// `Tag` separates lists of the same C++ type used for different Python types.
template <class T, int Tag = 0, int Capacity = 64>
struct FreeList {
#if defined(Py_GIL_DISABLED)
    static T* pop() noexcept { return nullptr; }
    static bool push(T*) noexcept { return false; }
#else
    static inline T* items[Capacity];
    static inline int size = 0;
    static T* pop() noexcept { return size > 0 ? items[--size] : nullptr; }
    static bool push(T* obj) noexcept {
        if (size == Capacity) return false;
        items[size++] = obj;
        return true;
    }
#endif
};

}  // namespace memkit::bindings
