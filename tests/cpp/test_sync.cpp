// Unit tests of csrc/core/sync.hpp: MutexCore, RwCore and CondvarCore. Every blocking call
// waits at most one slice, so the tests loop over short slices where the Python layer
// would; timing bounds are generous (a lost wake-up costs a whole slice of a second or
// more, far above any bound checked here), so the tests do not flake on a loaded machine.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <thread>
#include <vector>

#include "core/sync.hpp"

namespace {

using memkit::core::CondvarCore;
using memkit::core::MutexCore;
using memkit::core::RwCore;
using Refusal = memkit::core::RwCore::Refusal;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Spins (yielding) until `pred` holds; fails the test instead of hanging past `limit`.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
    const auto deadline = Clock::now() + limit;
    while (!pred()) {
        if (Clock::now() > deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

void lock(MutexCore& m) {
    while (!m.lock_for(1ms)) {
    }
}

// ---------------------------------------------------------------------------------------
// MutexCore

TEST(MutexCore, TryLockUnlockAndLocked) {
    MutexCore m;
    EXPECT_FALSE(m.locked());
    ASSERT_TRUE(m.try_lock());
    EXPECT_TRUE(m.locked());
    EXPECT_FALSE(m.try_lock());
    EXPECT_TRUE(m.locked());
    m.unlock();
    EXPECT_FALSE(m.locked());
    EXPECT_TRUE(m.try_lock());
    m.unlock();
}

TEST(MutexCore, LockForAcquiresAFreeLockAtOnce) {
    MutexCore m;
    const auto start = Clock::now();
    ASSERT_TRUE(m.lock_for(10s));
    EXPECT_LT(Clock::now() - start, 1s);
    EXPECT_TRUE(m.locked());
    EXPECT_FALSE(m.lock_for(0ns));  // held: a zero slice gives up at once
    m.unlock();
    EXPECT_TRUE(m.lock_for(0ns));
    m.unlock();
}

TEST(MutexCore, LockForTimesOutWhileHeld) {
    MutexCore m;
    ASSERT_TRUE(m.try_lock());
    bool acquired = true;
    Clock::duration waited{};
    std::thread t([&] {
        const auto start = Clock::now();
        acquired = m.lock_for(50ms);
        waited = Clock::now() - start;
    });
    t.join();
    EXPECT_FALSE(acquired);
    EXPECT_GE(waited, 45ms);  // waits the slice (steady clock), not less
    EXPECT_LT(waited, 2s);    // and then gives up
    EXPECT_TRUE(m.locked());  // a timed-out waiter leaves the lock as it was
    m.unlock();
    EXPECT_FALSE(m.locked());
}

TEST(MutexCore, UnlockWakesAWaiterInLockFor) {
    MutexCore m;
    ASSERT_TRUE(m.try_lock());
    std::atomic<bool> started{false};
    bool acquired = false;
    Clock::duration waited{};
    std::thread t([&] {
        started = true;
        const auto start = Clock::now();
        acquired = m.lock_for(10s);
        waited = Clock::now() - start;
        if (acquired) m.unlock();
    });
    ASSERT_TRUE(eventually([&] { return started.load(); }));
    std::this_thread::sleep_for(20ms);  // let it block in lock_for
    m.unlock();
    t.join();
    EXPECT_TRUE(acquired);
    EXPECT_LT(waited, 5s);  // woken by unlock, not by the 10 s slice running out
    EXPECT_FALSE(m.locked());
}

TEST(MutexCore, EveryQueuedWaiterGetsTheLockInTurn) {
    MutexCore m;
    ASSERT_TRUE(m.try_lock());
    constexpr int kWaiters = 3;
    std::atomic<int> started{0};
    std::atomic<int> inside{0};
    std::atomic<int> done{0};
    std::atomic<bool> overlap{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < kWaiters; ++i) {
        threads.emplace_back([&] {
            ++started;
            // One 10 s slice each: only unlock() can wake them in time.
            if (!m.lock_for(10s)) return;
            if (inside.fetch_add(1) != 0) overlap = true;
            std::this_thread::sleep_for(1ms);
            inside.fetch_sub(1);
            ++done;
            m.unlock();
        });
    }
    ASSERT_TRUE(eventually([&] { return started.load() == kWaiters; }));
    std::this_thread::sleep_for(20ms);
    const auto start = Clock::now();
    m.unlock();
    for (auto& t : threads) t.join();
    EXPECT_EQ(done.load(), kWaiters);
    EXPECT_LT(Clock::now() - start, 5s);
    EXPECT_FALSE(overlap.load());
    EXPECT_FALSE(m.locked());
}

TEST(MutexCore, ContendedIncrementsAreExact) {
    MutexCore m;
    constexpr int kThreads = 4;
    constexpr int kIncrements = 20000;
    int counter = 0;  // plain int: only the lock orders the accesses
    std::atomic<int> inside{0};
    std::atomic<bool> overlap{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kIncrements; ++i) {
                while (!m.lock_for(100us)) {
                }
                if (inside.fetch_add(1, std::memory_order_relaxed) != 0) overlap = true;
                ++counter;
                inside.fetch_sub(1, std::memory_order_relaxed);
                m.unlock();
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(counter, kThreads * kIncrements);
    EXPECT_FALSE(overlap.load());
    EXPECT_FALSE(m.locked());
}

TEST(MutexCore, NoLostWakeUpAcrossSlices) {
    // A waiter looping over 1 s slices must get the lock promptly after unlock: a lost
    // wake-up would leave it asleep until its slice ran out. The unlock lands at varying
    // moments relative to the waiter entering lock_for, to probe the race window.
    MutexCore m;
    for (int round = 0; round < 40; ++round) {
        ASSERT_TRUE(m.try_lock());
        std::atomic<bool> started{false};
        Clock::time_point acquired_at{};
        std::thread t([&] {
            started = true;
            while (!m.lock_for(1s)) {
            }
            acquired_at = Clock::now();
            m.unlock();
        });
        ASSERT_TRUE(eventually([&] { return started.load(); }));
        if (round % 4 != 0) std::this_thread::sleep_for(std::chrono::microseconds(50 * (round % 8)));
        const auto released_at = Clock::now();
        m.unlock();
        t.join();
        EXPECT_LT(acquired_at - released_at, 500ms) << "round " << round;
    }
    EXPECT_FALSE(m.locked());
}

// ---------------------------------------------------------------------------------------
// RwCore (thread ids are the caller's; 0 is never used, as the core reserves it for "none")

TEST(RwCore, ManyConcurrentReaders) {
    RwCore rw;
    constexpr int kReaders = 6;
    std::atomic<int> holding{0};
    std::atomic<bool> release{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < kReaders; ++i) {
        threads.emplace_back([&, i] {
            const auto id = static_cast<std::uint64_t>(i + 1);
            const bool got = (i % 2 == 0) ? rw.try_read(id) : rw.read_for(id, 5s);
            if (!got) return;
            ++holding;
            eventually([&] { return release.load(); });
            rw.unlock_read(id);
        });
    }
    ASSERT_TRUE(eventually([&] { return holding.load() == kReaders; }));
    EXPECT_EQ(rw.readers(), kReaders);
    EXPECT_FALSE(rw.writing());
    EXPECT_FALSE(rw.try_write(100));
    rw.begin_write_wait();
    EXPECT_FALSE(rw.write_for(100, 10ms));
    rw.end_write_wait();
    release = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(holding.load(), kReaders);
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_TRUE(rw.try_write(100));
    rw.unlock_write();
}

TEST(RwCore, WriterExcludesReadersAndWriters) {
    RwCore rw;
    ASSERT_TRUE(rw.try_write(1));
    EXPECT_TRUE(rw.writing());
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_FALSE(rw.try_read(2));
    EXPECT_FALSE(rw.read_for(2, 10ms));
    EXPECT_FALSE(rw.try_write(3));
    rw.begin_write_wait();
    EXPECT_FALSE(rw.write_for(3, 10ms));
    rw.end_write_wait();
    EXPECT_EQ(rw.readers(), 0);

    // A waiting reader and a waiting writer both get in once the writer unlocks.
    std::atomic<bool> reader_in{false};
    std::thread reader([&] {
        if (rw.read_for(2, 10s)) {
            reader_in = true;
            rw.unlock_read(2);
        }
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(reader_in.load());
    rw.unlock_write();
    reader.join();
    EXPECT_TRUE(reader_in.load());
    EXPECT_FALSE(rw.writing());

    // A reader excludes writers, and unlocking it lets a blocked writer in.
    ASSERT_TRUE(rw.try_read(2));
    std::atomic<bool> writer_in{false};
    std::thread writer([&] {
        rw.begin_write_wait();
        const bool got = rw.write_for(3, 10s);
        rw.end_write_wait();
        if (got) {
            writer_in = true;
            rw.unlock_write();
        }
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(writer_in.load());
    rw.unlock_read(2);
    writer.join();
    EXPECT_TRUE(writer_in.load());
    EXPECT_FALSE(rw.writing());
    EXPECT_EQ(rw.readers(), 0);
}

TEST(RwCore, CheckReadAndCheckWriteRefusals) {
    RwCore rw;
    EXPECT_EQ(rw.check_read(1), Refusal::none);
    EXPECT_EQ(rw.check_write(1), Refusal::none);

    ASSERT_TRUE(rw.try_write(1));
    EXPECT_EQ(rw.check_read(1), Refusal::read_while_writing);
    EXPECT_EQ(rw.check_write(1), Refusal::write_while_writing);
    EXPECT_EQ(rw.check_read(2), Refusal::none);  // another thread may wait for the writer
    EXPECT_EQ(rw.check_write(2), Refusal::none);
    rw.unlock_write();
    EXPECT_EQ(rw.check_read(1), Refusal::none);
    EXPECT_EQ(rw.check_write(1), Refusal::none);

    ASSERT_TRUE(rw.try_read(1));
    EXPECT_EQ(rw.check_write(1), Refusal::write_while_reading);
    EXPECT_EQ(rw.check_read(1), Refusal::none);  // recursive read, no writer waiting
    EXPECT_EQ(rw.check_write(2), Refusal::none);
    EXPECT_EQ(rw.check_read(2), Refusal::none);

    rw.begin_write_wait();
    EXPECT_EQ(rw.check_read(1), Refusal::read_while_writer_waits);
    EXPECT_EQ(rw.check_write(1), Refusal::write_while_reading);
    EXPECT_EQ(rw.check_read(2), Refusal::none);  // a new reader just waits behind the writer
    rw.end_write_wait();
    EXPECT_EQ(rw.check_read(1), Refusal::none);

    rw.unlock_read(1);
    EXPECT_EQ(rw.check_read(1), Refusal::none);
    EXPECT_EQ(rw.check_write(1), Refusal::none);
}

TEST(RwCore, RecursiveReadProceedsWhenAWriterStartsWaitingAfterTheCheck) {
    RwCore rw;
    ASSERT_TRUE(rw.try_read(1));
    ASSERT_EQ(rw.check_read(1), Refusal::none);

    // A real writer starts waiting between the check and the recursive acquire.
    std::atomic<bool> writer_waiting{false};
    std::atomic<bool> writer_in{false};
    std::thread writer([&] {
        rw.begin_write_wait();
        writer_waiting = true;
        const bool got = rw.write_for(2, 10s);
        rw.end_write_wait();
        if (got) {
            writer_in = true;
            rw.unlock_write();
        }
    });
    ASSERT_TRUE(eventually([&] { return writer_waiting.load(); }));

    // Thread 1 already reads: waiting for the writer that waits for it would deadlock.
    EXPECT_TRUE(rw.try_read(1));
    EXPECT_TRUE(rw.read_for(1, 1s));
    EXPECT_EQ(rw.readers(), 3);
    // A new reader is still held back by the waiting writer.
    EXPECT_FALSE(rw.try_read(3));
    EXPECT_FALSE(writer_in.load());

    rw.unlock_read(1);
    rw.unlock_read(1);
    EXPECT_FALSE(writer_in.load());
    rw.unlock_read(1);
    writer.join();
    EXPECT_TRUE(writer_in.load());
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_FALSE(rw.writing());
}

TEST(RwCore, WaitingWriterGoesBeforeNewReaders) {
    RwCore rw;
    ASSERT_TRUE(rw.try_read(1));

    std::atomic<int> order{0};
    std::atomic<int> writer_turn{-1};
    std::atomic<int> reader_turn{-1};
    std::atomic<bool> writer_waiting{false};
    std::atomic<bool> writer_holding{false};
    std::atomic<bool> reader_started{false};
    std::atomic<bool> reader_saw_writer{false};

    std::thread writer([&] {
        rw.begin_write_wait();
        writer_waiting = true;
        bool got = false;
        const auto deadline = Clock::now() + 10s;
        while (!got && Clock::now() < deadline) got = rw.write_for(2, 100ms);
        rw.end_write_wait();
        if (!got) return;
        writer_turn = order.fetch_add(1);
        writer_holding = true;
        std::this_thread::sleep_for(20ms);  // the new reader must stay out meanwhile
        writer_holding = false;
        rw.unlock_write();
    });
    ASSERT_TRUE(eventually([&] { return writer_waiting.load(); }));

    // Writer preference: with a writer waiting, a new thread cannot start reading.
    EXPECT_EQ(rw.check_read(3), Refusal::none);
    EXPECT_FALSE(rw.try_read(3));
    const auto start = Clock::now();
    EXPECT_FALSE(rw.read_for(3, 30ms));
    EXPECT_GE(Clock::now() - start, 25ms);
    EXPECT_EQ(rw.readers(), 1);

    std::thread reader([&] {
        reader_started = true;
        bool got = false;
        const auto deadline = Clock::now() + 10s;
        while (!got && Clock::now() < deadline) got = rw.read_for(3, 100ms);
        if (!got) return;
        if (writer_holding.load() || rw.writing()) reader_saw_writer = true;
        reader_turn = order.fetch_add(1);
        rw.unlock_read(3);
    });
    ASSERT_TRUE(eventually([&] { return reader_started.load(); }));
    std::this_thread::sleep_for(20ms);  // let the new reader block in read_for
    EXPECT_EQ(reader_turn.load(), -1);

    rw.unlock_read(1);
    writer.join();
    reader.join();
    EXPECT_EQ(writer_turn.load(), 0);
    EXPECT_EQ(reader_turn.load(), 1);
    EXPECT_FALSE(reader_saw_writer.load());
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_FALSE(rw.writing());
}

TEST(RwCore, StressReadersAndWritersKeepTheInvariant) {
    RwCore rw;
    constexpr int kReaders = 3;
    constexpr int kWriters = 2;
    constexpr int kReads = 3000;
    constexpr int kWrites = 1500;
    std::atomic<int> active_readers{0};
    std::atomic<int> active_writers{0};
    std::atomic<bool> violated{false};
    std::atomic<int> reads_done{0};
    long long shared_value = 0;  // plain: written only under the write lock
    std::vector<std::thread> threads;
    for (int r = 0; r < kReaders; ++r) {
        threads.emplace_back([&, r] {
            const auto id = static_cast<std::uint64_t>(10 + r);
            long long last_seen = 0;
            for (int i = 0; i < kReads; ++i) {
                if (!rw.try_read(id)) {
                    while (!rw.read_for(id, 1ms)) {
                    }
                }
                active_readers.fetch_add(1);
                if (active_writers.load() != 0 || rw.writing()) violated = true;
                const long long seen = shared_value;
                if (seen < last_seen) violated = true;  // writes only ever increase it
                last_seen = seen;
                active_readers.fetch_sub(1);
                reads_done.fetch_add(1, std::memory_order_relaxed);
                rw.unlock_read(id);
            }
        });
    }
    for (int w = 0; w < kWriters; ++w) {
        threads.emplace_back([&, w] {
            const auto id = static_cast<std::uint64_t>(100 + w);
            for (int i = 0; i < kWrites; ++i) {
                if (rw.check_write(id) != Refusal::none) violated = true;
                if (!rw.try_write(id)) {
                    rw.begin_write_wait();
                    while (!rw.write_for(id, 1ms)) {
                    }
                    rw.end_write_wait();
                }
                if (active_writers.fetch_add(1) != 0 || active_readers.load() != 0) violated = true;
                if (rw.readers() != 0 || !rw.writing()) violated = true;
                ++shared_value;
                active_writers.fetch_sub(1);
                rw.unlock_write();
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_FALSE(violated.load());
    EXPECT_EQ(reads_done.load(), kReaders * kReads);
    EXPECT_EQ(shared_value, static_cast<long long>(kWriters) * kWrites);
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_FALSE(rw.writing());
    for (int r = 0; r < kReaders; ++r) EXPECT_EQ(rw.check_write(static_cast<std::uint64_t>(10 + r)), Refusal::none);
}

TEST(RwCore, UnlockReadByRecordedIdCleansUpPerThreadCounts) {
    RwCore rw;
    ASSERT_TRUE(rw.try_read(7));
    ASSERT_TRUE(rw.try_read(7));
    EXPECT_EQ(rw.readers(), 2);
    EXPECT_EQ(rw.check_write(7), Refusal::write_while_reading);
    rw.unlock_read(7);
    EXPECT_EQ(rw.check_write(7), Refusal::write_while_reading);  // still one read held
    rw.unlock_read(7);
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_EQ(rw.check_write(7), Refusal::none);
    EXPECT_TRUE(rw.try_write(7));
    rw.unlock_write();

    // The read is taken on one OS thread and released from another with the id recorded at
    // acquire time (as a guard released elsewhere would): the per-thread count goes too.
    std::thread acquirer([&] { EXPECT_TRUE(rw.try_read(11)); });
    acquirer.join();
    EXPECT_EQ(rw.check_write(11), Refusal::write_while_reading);
    rw.begin_write_wait();
    EXPECT_EQ(rw.check_read(11), Refusal::read_while_writer_waits);
    rw.end_write_wait();
    std::thread releaser([&] { rw.unlock_read(11); });
    releaser.join();
    EXPECT_EQ(rw.readers(), 0);
    EXPECT_EQ(rw.check_write(11), Refusal::none);
    rw.begin_write_wait();
    EXPECT_EQ(rw.check_read(11), Refusal::none);
    EXPECT_FALSE(rw.try_read(11));  // no longer a reader: writer preference applies to it
    EXPECT_TRUE(rw.write_for(11, 1s));
    rw.end_write_wait();
    rw.unlock_write();
}

// ---------------------------------------------------------------------------------------
// CondvarCore

TEST(CondvarCore, NotifyWithoutWaitersIsNotRemembered) {
    CondvarCore cv;
    cv.notify_one();
    cv.notify_all();
    cv.begin_wait();
    const auto start = Clock::now();
    EXPECT_FALSE(cv.wait_for(30ms));
    EXPECT_GE(Clock::now() - start, 25ms);
    cv.cancel_wait();
}

TEST(CondvarCore, RegisteredWaiterGetsANotifySentBeforeItWaits) {
    CondvarCore cv;
    // Same thread: registered, notified, then waits; the wake-up is there already.
    cv.begin_wait();
    cv.notify_one();
    const auto start = Clock::now();
    EXPECT_TRUE(cv.wait_for(10s));
    EXPECT_LT(Clock::now() - start, 5s);

    // Another thread: registers (as under its mutex), then the notify comes before wait_for.
    std::atomic<bool> registered{false};
    std::atomic<bool> notified{false};
    bool woken = false;
    Clock::duration waited{};
    std::thread waiter([&] {
        cv.begin_wait();
        registered = true;
        eventually([&] { return notified.load(); });
        const auto t0 = Clock::now();
        woken = cv.wait_for(10s);
        waited = Clock::now() - t0;
        if (!woken) cv.cancel_wait();
    });
    ASSERT_TRUE(eventually([&] { return registered.load(); }));
    cv.notify_one();
    notified = true;
    waiter.join();
    EXPECT_TRUE(woken);
    EXPECT_LT(waited, 5s);

    // The wake-up was taken: nothing is left for the next waiter.
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(10ms));
    cv.cancel_wait();
}

TEST(CondvarCore, NotifyOneWakesExactlyOneOfTwoWaiters) {
    CondvarCore cv;
    std::atomic<int> registered{0};
    std::atomic<int> woken{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&] {
            cv.begin_wait();
            ++registered;
            while (!cv.wait_for(5ms)) {
                if (stop.load()) {
                    cv.cancel_wait();
                    return;
                }
            }
            ++woken;
        });
    }
    ASSERT_TRUE(eventually([&] { return registered.load() == 2; }));
    cv.notify_one();
    ASSERT_TRUE(eventually([&] { return woken.load() == 1; }));
    std::this_thread::sleep_for(50ms);  // the other keeps timing out: one notify, one waiter
    EXPECT_EQ(woken.load(), 1);
    cv.notify_one();  // the other needs its own notify
    ASSERT_TRUE(eventually([&] { return woken.load() == 2; }));
    stop = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(woken.load(), 2);
}

TEST(CondvarCore, NotifyOneWithTwoWaitersSingleSlice) {
    // Each waiter waits one slice: one returns true, the other times out and cancels.
    CondvarCore cv;
    std::atomic<int> registered{0};
    std::atomic<int> woken{0};
    std::atomic<int> timed_out{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&] {
            cv.begin_wait();
            ++registered;
            if (cv.wait_for(300ms)) {
                ++woken;
            } else {
                ++timed_out;
                cv.cancel_wait();
            }
        });
    }
    ASSERT_TRUE(eventually([&] { return registered.load() == 2; }));
    cv.notify_one();
    for (auto& t : threads) t.join();
    EXPECT_EQ(woken.load(), 1);
    EXPECT_EQ(timed_out.load(), 1);
    // Nothing lingers.
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(10ms));
    cv.cancel_wait();
}

TEST(CondvarCore, NotifyAllWakesAllWaiters) {
    CondvarCore cv;
    constexpr int kWaiters = 4;
    std::atomic<int> registered{0};
    std::atomic<int> woken{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kWaiters; ++i) {
        threads.emplace_back([&] {
            cv.begin_wait();
            ++registered;
            if (cv.wait_for(10s)) {
                ++woken;
            } else {
                cv.cancel_wait();
            }
        });
    }
    ASSERT_TRUE(eventually([&] { return registered.load() == kWaiters; }));
    const auto start = Clock::now();
    cv.notify_all();
    for (auto& t : threads) t.join();
    EXPECT_EQ(woken.load(), kWaiters);
    EXPECT_LT(Clock::now() - start, 5s);
    // The wake-ups were for those waiters only: a later one waits.
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(10ms));
    cv.cancel_wait();
}

TEST(CondvarCore, CancelAfterTimeoutLeavesNoWakeUp) {
    CondvarCore cv;
    // Times out, then a notify_one arrives before it cancels: the wake-up lapses with it.
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(5ms));
    cv.notify_one();
    cv.cancel_wait();
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(20ms));
    cv.cancel_wait();

    // Same with notify_all.
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(5ms));
    cv.notify_all();
    cv.cancel_wait();
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(20ms));
    cv.cancel_wait();

    // A waiter that cancels does not take the wake-up meant for one that stays (waiters are
    // threads: one wait per thread at a time).
    std::atomic<bool> registered{false};
    bool stayed_woken = false;
    std::thread stays([&] {
        cv.begin_wait();
        registered = true;
        stayed_woken = cv.wait_for(5s);
    });
    while (!registered) std::this_thread::yield();
    cv.begin_wait();  // gives up
    cv.notify_one();  // goes to the older ticket: the thread that stays
    cv.cancel_wait();
    stays.join();
    EXPECT_TRUE(stayed_woken);
    cv.begin_wait();
    EXPECT_FALSE(cv.wait_for(10ms));
    cv.cancel_wait();
}

TEST(CondvarCore, NotifyOneGoesToTheWaiterThatWasAlreadyWaiting) {
    // Regression: a thread registering after notify_one must not take that wake-up.
    for (int round = 0; round < 20; ++round) {
        CondvarCore cv;
        std::atomic<bool> a_registered{false};
        bool a_woken = false;
        std::thread a([&] {
            cv.begin_wait();
            a_registered = true;
            a_woken = cv.wait_for(5s);
        });
        while (!a_registered) std::this_thread::yield();
        cv.notify_one();
        bool b_woken = true;
        std::thread b([&] {
            cv.begin_wait();
            b_woken = cv.wait_for(20ms);
            if (!b_woken) cv.cancel_wait();
        });
        a.join();
        b.join();
        EXPECT_TRUE(a_woken);
        EXPECT_FALSE(b_woken);
    }
}

TEST(CondvarCore, ProducerConsumerWithMutexCore) {
    constexpr int kProducers = 2;
    constexpr int kConsumers = 2;
    constexpr int kPerProducer = 5000;
    constexpr int kTotal = kProducers * kPerProducer;
    constexpr std::size_t kCapacity = 16;

    MutexCore m;
    CondvarCore not_empty;
    CondvarCore not_full;
    std::deque<int> queue;      // guarded by m
    int consumed = 0;           // guarded by m
    long long consumed_sum = 0; // guarded by m
    std::atomic<int> timeouts{0};
    std::vector<int> per_consumer(kConsumers, 0);

    // The Python layer's wait: register under the mutex, release it, wait in slices up to
    // a deadline (cancelling on timeout), re-acquire. Producers and consumers keep each
    // other busy, so a 2 s timeout can only mean a lost wake-up.
    auto wait = [&](CondvarCore& cv) {
        cv.begin_wait();
        m.unlock();
        const auto deadline = Clock::now() + 2s;
        bool woken = false;
        while (!woken && Clock::now() < deadline) woken = cv.wait_for(5ms);
        if (!woken) {
            cv.cancel_wait();
            ++timeouts;
        }
        lock(m);
    };

    std::vector<std::thread> threads;
    for (int p = 0; p < kProducers; ++p) {
        threads.emplace_back([&, p] {
            for (int i = 0; i < kPerProducer; ++i) {
                lock(m);
                while (queue.size() >= kCapacity) wait(not_full);
                queue.push_back(p * kPerProducer + i + 1);
                not_empty.notify_one();
                m.unlock();
            }
        });
    }
    for (int c = 0; c < kConsumers; ++c) {
        threads.emplace_back([&, c] {
            for (;;) {
                lock(m);
                while (queue.empty() && consumed < kTotal) wait(not_empty);
                if (queue.empty()) {  // all consumed
                    m.unlock();
                    return;
                }
                consumed_sum += queue.front();
                queue.pop_front();
                ++per_consumer[static_cast<std::size_t>(c)];
                if (++consumed == kTotal) not_empty.notify_all();  // release idle consumers
                not_full.notify_one();
                m.unlock();
            }
        });
    }
    for (auto& t : threads) t.join();

    EXPECT_EQ(consumed, kTotal);
    EXPECT_EQ(consumed_sum, static_cast<long long>(kTotal) * (kTotal + 1) / 2);
    EXPECT_EQ(per_consumer[0] + per_consumer[1], kTotal);
    EXPECT_TRUE(queue.empty());
    EXPECT_EQ(timeouts.load(), 0);
    EXPECT_FALSE(m.locked());
}

}  // namespace
