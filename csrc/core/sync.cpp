#include "sync.hpp"

namespace memkit::core {

namespace {
using Clock = std::chrono::steady_clock;
}

bool MutexCore::lock_for(Slice slice) {
    if (try_lock()) return true;
    const auto deadline = Clock::now() + slice;
    std::unique_lock<std::mutex> lock(mutex_);
    // seq_cst on waiters_ and state_: unlock() stores 0 then reads waiters_; this thread
    // bumps waiters_ then tries state_. In the single total order either unlock() sees the
    // waiter (and notifies under mutex_, which this thread holds until it sleeps) or this
    // thread's compare-exchange sees 0. No wake-up is lost.
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    bool acquired = false;
    for (;;) {
        int expected = 0;
        if (state_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) {
            acquired = true;
            break;
        }
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
            expected = 0;
            acquired = state_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst);
            break;
        }
    }
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    return acquired;
}

void MutexCore::unlock() noexcept {
    state_.store(0, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        cv_.notify_one();
    }
}

bool RwCore::can_read_locked(std::uint64_t thread) const noexcept {
    if (writing_) return false;
    // Writer preference, except for a thread that already reads: making it wait for a
    // writer that waits for it would deadlock (check_read refuses that case up front).
    return writers_waiting_ == 0 || reads_by_thread_.count(thread) != 0;
}

RwCore::Refusal RwCore::check_read(std::uint64_t thread) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (writing_ && writer_ == thread) return Refusal::read_while_writing;
    if (writers_waiting_ > 0 && reads_by_thread_.count(thread) != 0) return Refusal::read_while_writer_waits;
    return Refusal::none;
}

RwCore::Refusal RwCore::check_write(std::uint64_t thread) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (writing_ && writer_ == thread) return Refusal::write_while_writing;
    if (reads_by_thread_.count(thread) != 0) return Refusal::write_while_reading;
    return Refusal::none;
}

bool RwCore::try_read(std::uint64_t thread) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!can_read_locked(thread)) return false;
    ++readers_;
    ++reads_by_thread_[thread];
    return true;
}

bool RwCore::try_write(std::uint64_t thread) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (writing_ || readers_ != 0) return false;
    writing_ = true;
    writer_ = thread;
    return true;
}

void RwCore::begin_write_wait() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++writers_waiting_;
}

void RwCore::end_write_wait() {
    std::lock_guard<std::mutex> lock(mutex_);
    --writers_waiting_;
    cv_.notify_all();  // readers held back by this writer may go
}

bool RwCore::read_for(std::uint64_t thread, Slice slice) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, slice, [&] { return can_read_locked(thread); })) return false;
    ++readers_;
    ++reads_by_thread_[thread];
    return true;
}

bool RwCore::write_for(std::uint64_t thread, Slice slice) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, slice, [&] { return !writing_ && readers_ == 0; })) return false;
    writing_ = true;
    writer_ = thread;
    return true;
}

void RwCore::unlock_read(std::uint64_t thread) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    --readers_;
    const auto it = reads_by_thread_.find(thread);
    if (it != reads_by_thread_.end() && --it->second == 0) reads_by_thread_.erase(it);
    if (readers_ == 0) cv_.notify_all();
}

void RwCore::unlock_write() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    writing_ = false;
    writer_ = 0;
    cv_.notify_all();
}

std::int64_t RwCore::readers() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return readers_;
}

bool RwCore::writing() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return writing_;
}

void CondvarCore::begin_wait() {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::uint64_t ticket = next_ticket_++;
    ticket_of_[std::this_thread::get_id()] = ticket;
    waiting_.insert(ticket);
}

bool CondvarCore::wait_for(Slice slice) {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto me = ticket_of_.find(std::this_thread::get_id());
    if (me == ticket_of_.end()) return false;  // not registered: nothing to wait for
    const std::uint64_t ticket = me->second;
    if (!cv_.wait_for(lock, slice, [&] { return woken_.count(ticket) != 0; })) return false;
    woken_.erase(ticket);
    ticket_of_.erase(std::this_thread::get_id());
    return true;
}

void CondvarCore::cancel_wait() {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto me = ticket_of_.find(std::this_thread::get_id());
    if (me == ticket_of_.end()) return;
    const std::uint64_t ticket = me->second;
    ticket_of_.erase(me);
    if (waiting_.erase(ticket) == 0 && woken_.erase(ticket) != 0) {
        wake_oldest_locked();  // woken just as it gave up: pass the wake-up on
    }
}

void CondvarCore::wake_oldest_locked() {
    if (waiting_.empty()) return;
    woken_.insert(*waiting_.begin());
    waiting_.erase(waiting_.begin());
    cv_.notify_all();  // the woken ticket's thread is among them; the others sleep again
}

void CondvarCore::notify_one() {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_oldest_locked();
}

void CondvarCore::notify_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_.insert(waiting_.begin(), waiting_.end());
    waiting_.clear();
    cv_.notify_all();
}

}  // namespace memkit::core
