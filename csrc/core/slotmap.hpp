// Generational slot map: the storage behind memkit.SlotMap.
//
// The sharp edge: a key is an index and a generation, nothing more. It does not know which
// map made it, so a key from one map may name a live entry of another. Within one map a
// key is valid from the insert that returns it until that entry is removed or the map is
// cleared, and never again - even when its slot is reused.
//
// Keys are 64-bit: generation << 32 | index. Each slot's generation goes up by one on
// every insert and every remove, so a reused slot hands out a key that no earlier key
// equals; a slot whose generation would pass 2**32 - 1 (after 2**31 inserts) is retired -
// never put back on the free list - so generations never wrap and a stale key stays stale.
//
// Not synchronised: the owner serialises calls (the bindings hold the GIL or, on
// free-threaded builds, a mutex). Unit-tested alone in tests/cpp/test_slotmap.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace memkit::core {

using SlotKey = std::uint64_t;

constexpr SlotKey make_slot_key(std::uint32_t index, std::uint32_t generation) noexcept {
    return (static_cast<SlotKey>(generation) << 32) | index;
}
constexpr std::uint32_t slot_key_index(SlotKey key) noexcept { return static_cast<std::uint32_t>(key); }
constexpr std::uint32_t slot_key_generation(SlotKey key) noexcept { return static_cast<std::uint32_t>(key >> 32); }

// `V` is the stored value: default-constructible (the vacant state) and nothrow-movable.
// `MaxSlots` caps the slot count; only tests lower it (to reach the limit quickly).
template <class V, std::uint32_t MaxSlots = 0xFFFFFFFDu>
class SlotMap {
    static_assert(std::is_nothrow_move_constructible_v<V> && std::is_nothrow_move_assignable_v<V>,
                  "values move in and out of slots during removal and growth, which must not throw");

public:
    // Link values of a vacant slot that are not an index (so indices stay below them).
    static constexpr std::uint32_t kEndOfList = 0xFFFFFFFFu;  // the last slot on the free list
    static constexpr std::uint32_t kReserved = 0xFFFFFFFEu;   // taken by reserve(), not yet committed
    static constexpr std::uint32_t kRetired = 0xFFFFFFFDu;    // generation exhausted: never reused
    static_assert(MaxSlots <= kRetired, "indices must stay below the link sentinels");
    static constexpr std::uint32_t kMaxSlots = MaxSlots;
    // The last generation a key can carry (odd: keys only name occupied slots).
    static constexpr std::uint32_t kLastGeneration = 0xFFFFFFFFu;

    SlotMap() = default;
    SlotMap(const SlotMap&) = delete;
    SlotMap& operator=(const SlotMap&) = delete;

    // Stores `value` in a free slot (the most recently freed one first) or a new one and
    // returns its key. Throws std::length_error when every one of kMaxSlots slots is in use
    // or retired, std::bad_alloc when growing fails; the map is unchanged then.
    SlotKey insert(V value) {
        const std::uint32_t index = take_slot();
        Slot& slot = slots_[index];
        slot.generation += 1;  // even -> odd: cannot wrap, a vacant generation is at most 2**32 - 2
        slot.link = kEndOfList;
        slot.value = std::move(value);
        ++len_;
        ++version_;
        return make_slot_key(index, slot.generation);
    }

    // Takes a slot for an entry whose value needs its key first (insert_with_key): returns
    // the key the entry will have. Until commit() or abort() the slot is neither free nor
    // occupied - lookups of the key fail, iteration and clear() skip it. Throws as insert().
    SlotKey reserve() {
        const std::uint32_t index = take_slot();
        Slot& slot = slots_[index];
        slot.link = kReserved;
        return make_slot_key(index, slot.generation + 1);
    }

    // Stores `value` under a key from reserve(). Precondition: neither commit() nor abort()
    // has been called for that key.
    void commit(SlotKey key, V value) noexcept {
        Slot& slot = slots_[slot_key_index(key)];
        slot.generation = slot_key_generation(key);
        slot.link = kEndOfList;
        slot.value = std::move(value);
        ++len_;
        ++version_;
    }

    // Gives back a reserved slot. Its generation skips the reserved key's, so that key is
    // never valid. Precondition as commit().
    void abort(SlotKey key) noexcept {
        const std::uint32_t index = slot_key_index(key);
        // The reserved key's generation as if it had been inserted and removed at once.
        vacate(index, slot_key_generation(key));
    }

    // The value under `key`, or nullptr when the key is not (or no longer) valid.
    V* get(SlotKey key) noexcept {
        const std::uint32_t index = slot_key_index(key);
        if (index >= slots_.size()) return nullptr;
        Slot& slot = slots_[index];
        const std::uint32_t generation = slot_key_generation(key);
        // A vacant slot's generation is even and a key's odd, so equal means occupied - but
        // a forged key can carry an even generation, hence the parity test.
        if (slot.generation != generation || (generation & 1u) == 0) return nullptr;
        return &slot.value;
    }
    const V* get(SlotKey key) const noexcept { return const_cast<SlotMap*>(this)->get(key); }
    bool contains(SlotKey key) const noexcept { return get(key) != nullptr; }

    // Moves the value under `key` into `out` and frees its slot; false (and `out`
    // untouched) when the key is not valid.
    bool remove(SlotKey key, V& out) noexcept {
        V* value = get(key);
        if (value == nullptr) return false;
        out = std::move(*value);
        *value = V{};
        --len_;
        ++version_;
        vacate(slot_key_index(key), slot_key_generation(key));
        return true;
    }

    // Removes every entry, handing each value to `sink(V&&)` in index order. Every key
    // issued so far becomes invalid; capacity is kept. `sink` must not throw and must not
    // touch the map (the caller drops the values afterwards, with the map consistent).
    template <class Sink>
    void clear(Sink&& sink) noexcept {
        for (std::uint32_t index = 0; index < slots_.size(); ++index) {
            Slot& slot = slots_[index];
            if ((slot.generation & 1u) == 0) continue;
            const std::uint32_t generation = slot.generation;
            sink(std::move(slot.value));
            slot.value = V{};
            vacate(index, generation);
        }
        if (len_ != 0) ++version_;
        len_ = 0;
    }

    // Iteration by index: the first occupied slot at or after `from`, or capacity() if none.
    std::uint32_t next_occupied(std::uint32_t from) const noexcept {
        const auto n = static_cast<std::uint32_t>(slots_.size());
        while (from < n && (slots_[from].generation & 1u) == 0) ++from;
        return from;
    }
    // Precondition for both: `index` is occupied.
    SlotKey key_at(std::uint32_t index) const noexcept { return make_slot_key(index, slots_[index].generation); }
    V& value_at(std::uint32_t index) noexcept { return slots_[index].value; }

    std::size_t size() const noexcept { return len_; }
    std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(slots_.size()); }
    std::uint32_t retired() const noexcept { return retired_; }
    // Bumped by every insert, commit, remove and non-empty clear (not by reserve/abort,
    // which change nothing a reader can see): iterators compare it to detect changes.
    std::uint64_t version() const noexcept { return version_; }

    // Test hook: sets slot `index`'s generation, so a test reaches the wrap point without
    // 2**31 inserts. The slot must be occupied (then `generation` must be odd, and the
    // entry's old key becomes invalid) or on the free list (`generation` even), and
    // `generation` must not be below the slot's (lowering it could revive stale keys).
    // False, changing nothing, otherwise.
    bool force_generation(std::uint32_t index, std::uint32_t generation) noexcept {
        if (index >= slots_.size()) return false;
        Slot& slot = slots_[index];
        const bool occupied = (slot.generation & 1u) != 0;
        if (!occupied && (slot.link == kReserved || slot.link == kRetired)) return false;
        if (occupied != ((generation & 1u) != 0) || generation < slot.generation) return false;
        slot.generation = generation;
        if (occupied) ++version_;
        return true;
    }

    // nullptr when every invariant below holds, else a description of the first broken one.
    // Walks the whole map: for tests.
    const char* invariant_violation() const noexcept {
        std::size_t occupied = 0, linked = 0, retired = 0;
        for (const Slot& slot : slots_) {
            if ((slot.generation & 1u) != 0) {
                ++occupied;
            } else if (slot.link == kRetired) {
                ++retired;
                if (slot.generation != 0) return "a retired slot's generation is not 0";
            } else if (slot.link != kReserved) {
                ++linked;
            }
        }
        if (occupied != len_) return "size() differs from the number of occupied slots";
        if (retired != retired_) return "retired() differs from the number of retired slots";
        std::size_t walked = 0;
        for (std::uint32_t i = free_head_; i != kEndOfList; i = slots_[i].link) {
            if (i >= slots_.size()) return "the free list points past the slots";
            if ((slots_[i].generation & 1u) != 0) return "an occupied slot is on the free list";
            if (++walked > linked) return "the free list is longer than the free slots (a cycle?)";
        }
        if (walked != linked) return "a free slot is missing from the free list";
        return nullptr;
    }

private:
    struct Slot {
        // Odd = occupied (`value` is the entry), even = vacant. Rises by one per insert and
        // per remove (by two when a reservation is aborted); a slot that would pass
        // kLastGeneration is retired with generation 0 instead.
        std::uint32_t generation = 0;
        // Vacant slots: the next free slot's index, kEndOfList, kReserved or kRetired.
        // Occupied slots: kEndOfList.
        std::uint32_t link = kEndOfList;
        // V{} unless occupied.
        V value{};
    };

    // A vacant slot off the free list, or a new one at the end (generation 0).
    std::uint32_t take_slot() {
        if (free_head_ != kEndOfList) {
            const std::uint32_t index = free_head_;
            free_head_ = slots_[index].link;
            return index;
        }
        if (slots_.size() >= kMaxSlots) throw std::length_error("SlotMap is full");
        slots_.emplace_back();  // strong guarantee: unchanged if it throws
        return static_cast<std::uint32_t>(slots_.size() - 1);
    }

    // Marks slot `index` vacant after the entry with generation `last` (odd) left it: the
    // next generation if there is one (the slot goes on the free list), else retired.
    void vacate(std::uint32_t index, std::uint32_t last) noexcept {
        Slot& slot = slots_[index];
        if (last == kLastGeneration) {
            slot.generation = 0;
            slot.link = kRetired;
            ++retired_;
            return;
        }
        slot.generation = last + 1;
        slot.link = free_head_;
        free_head_ = index;
    }

    std::vector<Slot> slots_;
    std::uint32_t free_head_ = kEndOfList;  // the most recently freed slot, or kEndOfList
    std::uint32_t retired_ = 0;             // slots with link == kRetired
    std::size_t len_ = 0;                   // occupied slots
    std::uint64_t version_ = 0;
};

}  // namespace memkit::core
