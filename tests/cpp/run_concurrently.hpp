// run_concurrently(n, fn): starts n threads that call fn(t) for t in [0, n) together (each
// waits at a spin barrier until all have started, so they overlap even on 2 cores), and
// joins them. For the thread-racing tests, which CI also runs under ThreadSanitizer.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

namespace memkit_test {

template <class Fn>
void run_concurrently(int n, Fn&& fn) {
    std::atomic<int> arrived{0};
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(n));
    for (int t = 0; t < n; ++t) {
        threads.emplace_back([&, t] {
            arrived.fetch_add(1);
            while (arrived.load() < n) std::this_thread::yield();
            fn(t);
        });
    }
    for (std::thread& th : threads) th.join();
}

}  // namespace memkit_test
