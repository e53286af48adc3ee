// memkit._core: the compiled extension. This file only creates the submodules and hands
// each to its register_<area>() function.
#include "pybind11.hpp"

// Free-threaded builds (3.13t+): every type is correct without the GIL (a mutex or atomics
// inside), so the module declares it does not need one.
PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "memkit's C++ core. Import the public names from `memkit`, not from here.";
    auto buffers = m.def_submodule("buffers", "Aligned memory.");
    memkit::bindings::register_buffers(buffers);
    memkit::bindings::register_arena(buffers);
    memkit::bindings::register_pool(buffers);
    auto atomic = m.def_submodule("atomic", "Atomics and cache padding.");
    memkit::bindings::register_atomic(atomic);
    auto cell = m.def_submodule("cell", "Borrow-checked cells.");
    memkit::bindings::register_cell(cell);
    auto slotmap = m.def_submodule("slotmap", "Generational slot maps.");
    memkit::bindings::register_slotmap(slotmap);
    auto sync = m.def_submodule("sync", "Locks that own their data.");
    memkit::bindings::register_sync(sync);
    auto alloc = m.def_submodule("alloc", "The allocator hook.");
    memkit::bindings::register_alloc(alloc);
    auto layout = m.def_submodule("layout", "The hot path of struct views: records and field descriptors.");
    memkit::bindings::register_layout(layout);
    auto info = m.def_submodule("info", "How this extension was built and the machine it runs on.");
    memkit::bindings::register_info(info);
    auto testing = m.def_submodule("_testing", "Private helpers for memkit's own tests and benchmarks.");
    memkit::bindings::register_testing(testing);
}
