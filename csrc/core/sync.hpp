// The lock cores behind memkit.Mutex, RwLock and Condvar. Pure C++17 (no Python.h):
// unit-tested in tests/cpp/test_sync.cpp, TSan included.
//
// Blocking calls wait at most one `slice` and return; the Python layer calls them in a
// loop with the GIL released, checking for signals (Ctrl-C) and the deadline between
// slices. So every wait here is bounded, and none needs to know about Python.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace memkit::core {

using Slice = std::chrono::nanoseconds;

// A mutual-exclusion lock whose uncontended acquire and release are one atomic
// instruction each. Invariant on state_: 0 free, 1 held. waiters_ counts threads inside
// lock_for(); unlock() wakes one of them.
class MutexCore {
public:
    bool try_lock() noexcept {
        int expected = 0;
        return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
    }
    // Waits up to `slice` for the lock; true when acquired.
    bool lock_for(Slice slice);
    // Precondition: held (by the caller's logic; the core does not track owners).
    void unlock() noexcept;
    bool locked() const noexcept { return state_.load(std::memory_order_acquire) != 0; }

private:
    std::atomic<int> state_{0};
    std::atomic<int> waiters_{0};
    std::mutex mutex_;  // only for sleeping: guards nothing but the condition wait
    std::condition_variable cv_;
};

// A readers-writer lock with writer preference: once a writer waits, new readers wait
// too, so a stream of readers cannot starve it. Threads are identified by the caller
// (`thread` ids), so re-entry that would deadlock can be refused instead of hanging.
class RwCore {
public:
    enum class Refusal {
        none,
        read_while_writing,      // this thread holds the write lock
        write_while_reading,     // this thread holds a read lock: waiting for itself
        write_while_writing,     // this thread holds the write lock
        read_while_writer_waits, // this thread reads already and a writer waits behind it
    };

    // Why `thread` must not take the lock now (none when it may try).
    Refusal check_read(std::uint64_t thread);
    Refusal check_write(std::uint64_t thread);

    bool try_read(std::uint64_t thread);
    bool try_write(std::uint64_t thread);

    // A blocking write announces itself first (writers waiting block new readers) and
    // withdraws when it gives up or succeeds.
    void begin_write_wait();
    void end_write_wait();
    bool read_for(std::uint64_t thread, Slice slice);
    bool write_for(std::uint64_t thread, Slice slice);  // between begin/end_write_wait

    void unlock_read(std::uint64_t thread) noexcept;
    void unlock_write() noexcept;

    std::int64_t readers() const;
    bool writing() const;

private:
    bool can_read_locked(std::uint64_t thread) const noexcept;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::int64_t readers_ = 0;            // guarded by mutex_
    std::uint64_t writer_ = 0;            // thread holding the write lock, 0 = none
    bool writing_ = false;
    std::int64_t writers_waiting_ = 0;
    std::unordered_map<std::uint64_t, std::int64_t> reads_by_thread_;
};

// A condition variable whose notify_one wakes the longest-waiting registered waiter:
// each begin_wait takes a ticket, and wake-ups go to tickets in order, so a thread that
// registers after a notify cannot take the wake-up meant for one already waiting. A waiter
// registers (begin_wait) before it releases its mutex, so a notify between the two is
// kept. Waiters are identified by their thread: one wait per thread at a time.
class CondvarCore {
public:
    void begin_wait();
    // Waits up to `slice`; true when this thread's ticket was woken (its wait is then over).
    bool wait_for(Slice slice);
    // Gives up waiting (timed out or interrupted). A wake-up that reached this ticket
    // meanwhile is passed on to the next waiter, so it is never lost.
    void cancel_wait();
    void notify_one();
    void notify_all();

private:
    void wake_oldest_locked();

    std::mutex mutex_;
    std::condition_variable cv_;
    std::uint64_t next_ticket_ = 0;
    std::unordered_map<std::thread::id, std::uint64_t> ticket_of_;  // current waiters
    std::set<std::uint64_t> waiting_;    // registered, not woken
    std::set<std::uint64_t> woken_;      // woken, not yet returned
};

}  // namespace memkit::core
