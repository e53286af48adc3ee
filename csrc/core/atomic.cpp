#include "atomic.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace memkit::core {

namespace {

// The CPUs this process may run on, in order (empty where the OS does not say).
std::vector<int> allowed_cpus() {
    std::vector<int> cpus;
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
        }
    }
#endif
    return cpus;
}

// Pins `thread` to one CPU, so the kernel's threads run in parallel on different cores
// (left to itself, the scheduler may run two of them on one core, one after the other,
// and hide the contention being measured). Best effort: failure leaves it unpinned.
void pin_to_cpu(std::thread& thread, int cpu) noexcept {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(thread.native_handle(), sizeof(set), &set);
#else
    (void)thread;
    (void)cpu;
#endif
}

}  // namespace

std::uint64_t contend(std::int64_t* base, std::size_t stride_bytes, std::size_t nthreads, std::uint64_t iterations) {
    std::atomic<std::size_t> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    threads.reserve(nthreads);
    const std::vector<int> cpus = allowed_cpus();
    try {
        for (std::size_t t = 0; t < nthreads; ++t) {
            // SAFETY: the caller guarantees base + t * stride_bytes is a valid aligned cell
            // for every t < nthreads, and the cells outlive this call (it joins every thread).
            auto* cell = reinterpret_cast<std::int64_t*>(reinterpret_cast<std::byte*>(base) + t * stride_bytes);
            threads.emplace_back([cell, iterations, &ready, &go] {
                ready.fetch_add(1, std::memory_order_acq_rel);
                while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
                for (std::uint64_t i = 0; i < iterations; ++i) atomic_rmw(cell, Rmw::add, 1, Order::relaxed);
            });
            if (!cpus.empty()) pin_to_cpu(threads.back(), cpus[t % cpus.size()]);
        }
    } catch (...) {
        // Could not start every thread: let the started ones finish before unwinding.
        go.store(true, std::memory_order_release);
        for (std::thread& t : threads) t.join();
        throw;
    }
    while (ready.load(std::memory_order_acquire) < nthreads) std::this_thread::yield();
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& t : threads) t.join();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
}

std::size_t thread_shard(std::size_t nshards) noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t number = next.fetch_add(1, std::memory_order_relaxed);
    return number & (nshards - 1);
}

}  // namespace memkit::core
