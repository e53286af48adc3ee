// Unit tests of csrc/core/slotmap.hpp: keys, stale keys after remove/clear/reuse,
// retirement at the last generation, reservations, the size limit, and a randomised run
// against std::unordered_map.
#include "core/slotmap.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "run_concurrently.hpp"

namespace {

using memkit::core::make_slot_key;
using memkit::core::slot_key_generation;
using memkit::core::slot_key_index;
using memkit::core::SlotKey;
using Map = memkit::core::SlotMap<std::string>;

#define EXPECT_CONSISTENT(map) EXPECT_EQ((map).invariant_violation(), nullptr) << (map).invariant_violation()

TEST(SlotKey, PacksGenerationAboveIndex) {
    const SlotKey key = make_slot_key(7, 3);
    EXPECT_EQ(key, (SlotKey{3} << 32) | 7);
    EXPECT_EQ(slot_key_index(key), 7u);
    EXPECT_EQ(slot_key_generation(key), 3u);
    const SlotKey top = make_slot_key(0xFFFFFFFFu, 0xFFFFFFFFu);
    EXPECT_EQ(top, ~SlotKey{0});
    EXPECT_EQ(slot_key_index(top), 0xFFFFFFFFu);
    EXPECT_EQ(slot_key_generation(top), 0xFFFFFFFFu);
}

TEST(SlotMap, InsertGetRemove) {
    Map map;
    const SlotKey a = map.insert("a");
    const SlotKey b = map.insert("b");
    EXPECT_EQ(slot_key_index(a), 0u);
    EXPECT_EQ(slot_key_index(b), 1u);
    EXPECT_EQ(slot_key_generation(a), 1u);  // first occupant: generation 1 (odd = occupied)
    ASSERT_NE(map.get(a), nullptr);
    EXPECT_EQ(*map.get(a), "a");
    EXPECT_EQ(*map.get(b), "b");
    EXPECT_EQ(map.size(), 2u);
    std::string out = "untouched";
    EXPECT_TRUE(map.remove(a, out));
    EXPECT_EQ(out, "a");
    EXPECT_EQ(map.get(a), nullptr);
    EXPECT_FALSE(map.contains(a));
    out = "untouched";
    EXPECT_FALSE(map.remove(a, out));
    EXPECT_EQ(out, "untouched");
    EXPECT_EQ(map.size(), 1u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, ReusedSlotGetsANewGenerationAndOldKeysStayStale) {
    Map map;
    std::vector<SlotKey> old;
    std::string out;
    SlotKey key = map.insert("v");
    for (int i = 0; i < 100000; ++i) {
        old.push_back(key);
        ASSERT_TRUE(map.remove(key, out));
        key = map.insert("v" + std::to_string(i));
        ASSERT_EQ(slot_key_index(key), 0u);  // the freed slot is reused...
    }
    EXPECT_EQ(map.capacity(), 1u);
    for (SlotKey k : old) ASSERT_EQ(map.get(k), nullptr);  // ...and no earlier key names it
    EXPECT_EQ(slot_key_generation(key), 2u * 100000u + 1u);
    EXPECT_EQ(*map.get(key), "v99999");
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, ForgedKeysNeverMatch) {
    Map map;
    const SlotKey a = map.insert("a");
    EXPECT_EQ(map.get(make_slot_key(0, 0)), nullptr);  // even generation: never an entry
    EXPECT_EQ(map.get(make_slot_key(0, 2)), nullptr);
    EXPECT_EQ(map.get(make_slot_key(1, 1)), nullptr);  // past the slots
    EXPECT_EQ(map.get(~SlotKey{0}), nullptr);
    std::string out;
    ASSERT_TRUE(map.remove(a, out));
    // Slot 0 is vacant with generation 2: a forged key with that generation must not match.
    EXPECT_EQ(map.get(make_slot_key(0, 2)), nullptr);
    EXPECT_FALSE(map.remove(make_slot_key(0, 2), out));
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, FreeListIsLastInFirstOut) {
    Map map;
    const SlotKey a = map.insert("a");
    const SlotKey b = map.insert("b");
    map.insert("c");
    std::string out;
    map.remove(a, out);
    map.remove(b, out);
    EXPECT_EQ(slot_key_index(map.insert("d")), 1u);
    EXPECT_EQ(slot_key_index(map.insert("e")), 0u);
    EXPECT_EQ(slot_key_index(map.insert("f")), 3u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, SlotAtTheLastGenerationIsRetiredNotReused) {
    Map map;
    const SlotKey first = map.insert("a");
    map.insert("b");
    ASSERT_TRUE(map.force_generation(0, Map::kLastGeneration));
    EXPECT_EQ(map.get(first), nullptr);  // forcing the generation re-keys the entry
    const SlotKey last = make_slot_key(0, Map::kLastGeneration);
    ASSERT_NE(map.get(last), nullptr);
    std::string out;
    ASSERT_TRUE(map.remove(last, out));
    EXPECT_EQ(map.retired(), 1u);
    EXPECT_CONSISTENT(map);
    // Slot 0 is never handed out again: new entries go to new slots.
    for (int i = 0; i < 10; ++i) {
        const SlotKey k = map.insert("x");
        EXPECT_NE(slot_key_index(k), 0u);
        map.remove(k, out);
    }
    EXPECT_EQ(map.get(last), nullptr);
    EXPECT_EQ(map.get(make_slot_key(0, 0)), nullptr);
    EXPECT_EQ(map.next_occupied(0), 1u);  // iteration skips the retired slot
    EXPECT_FALSE(map.force_generation(0, 2));  // a retired slot cannot be revived
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, VacantSlotForcedToTheLastVacantGenerationRetiresAfterOneMoreUse) {
    Map map;
    const SlotKey a = map.insert("a");
    std::string out;
    map.remove(a, out);
    ASSERT_TRUE(map.force_generation(0, Map::kLastGeneration - 1));
    const SlotKey k = map.insert("b");
    EXPECT_EQ(k, make_slot_key(0, Map::kLastGeneration));
    map.remove(k, out);
    EXPECT_EQ(map.retired(), 1u);
    EXPECT_EQ(slot_key_index(map.insert("c")), 1u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, ForceGenerationRefusesWhatWouldBreakAnInvariant) {
    Map map;
    const SlotKey a = map.insert("a");
    EXPECT_FALSE(map.force_generation(0, 4));   // occupied needs odd
    EXPECT_FALSE(map.force_generation(1, 3));   // no such slot
    ASSERT_TRUE(map.force_generation(0, 9));
    EXPECT_FALSE(map.force_generation(0, 7));   // never lower: stale keys would come back
    std::string out;
    map.remove(make_slot_key(0, 9), out);
    EXPECT_FALSE(map.force_generation(0, 11));  // vacant needs even
    const SlotKey r = map.reserve();
    EXPECT_FALSE(map.force_generation(0, 20));  // reserved
    map.abort(r);
    EXPECT_EQ(map.get(a), nullptr);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, ClearInvalidatesEveryKeyAndKeepsCapacity) {
    Map map;
    std::vector<SlotKey> keys;
    for (int i = 0; i < 10; ++i) keys.push_back(map.insert(std::to_string(i)));
    std::vector<std::string> drained;
    map.clear([&](std::string&& v) { drained.push_back(std::move(v)); });
    EXPECT_EQ(drained.size(), 10u);
    EXPECT_EQ(drained.front(), "0");
    EXPECT_EQ(map.size(), 0u);
    EXPECT_EQ(map.capacity(), 10u);
    for (SlotKey k : keys) EXPECT_EQ(map.get(k), nullptr);
    for (int i = 0; i < 10; ++i) {
        const SlotKey k = map.insert("again");
        EXPECT_LT(slot_key_index(k), 10u);
        for (SlotKey old : keys) EXPECT_NE(k, old);
    }
    for (SlotKey k : keys) EXPECT_EQ(map.get(k), nullptr);
    EXPECT_EQ(map.capacity(), 10u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, ClearRetiresSlotsAtTheLastGeneration) {
    Map map;
    map.insert("a");
    map.insert("b");
    ASSERT_TRUE(map.force_generation(1, Map::kLastGeneration));
    map.clear([](std::string&&) {});
    EXPECT_EQ(map.retired(), 1u);
    EXPECT_EQ(slot_key_index(map.insert("c")), 0u);
    EXPECT_EQ(slot_key_index(map.insert("d")), 2u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, ReservationIsInvisibleUntilCommitted) {
    Map map;
    const SlotKey r = map.reserve();
    EXPECT_EQ(map.size(), 0u);
    EXPECT_EQ(map.get(r), nullptr);
    EXPECT_EQ(map.next_occupied(0), map.capacity());
    EXPECT_CONSISTENT(map);
    // Other inserts, removes and a clear while reserved leave the reserved slot alone.
    const SlotKey other = map.insert("other");
    EXPECT_NE(slot_key_index(other), slot_key_index(r));
    map.clear([](std::string&&) {});
    EXPECT_CONSISTENT(map);
    const std::uint64_t before = map.version();
    map.commit(r, "mine");
    EXPECT_GT(map.version(), before);
    ASSERT_NE(map.get(r), nullptr);
    EXPECT_EQ(*map.get(r), "mine");
    EXPECT_EQ(map.size(), 1u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, AbortedReservationsKeyIsNeverValid) {
    Map map;
    const SlotKey r = map.reserve();
    const std::uint64_t before = map.version();
    map.abort(r);
    EXPECT_EQ(map.version(), before);
    EXPECT_CONSISTENT(map);
    const SlotKey next = map.insert("x");
    EXPECT_EQ(slot_key_index(next), slot_key_index(r));  // the slot is reused...
    EXPECT_NE(next, r);                                   // ...under a later generation
    EXPECT_GT(slot_key_generation(next), slot_key_generation(r));
    EXPECT_EQ(map.get(r), nullptr);
}

TEST(SlotMap, AbortAtTheLastGenerationRetires) {
    Map map;
    const SlotKey a = map.insert("a");
    std::string out;
    map.remove(a, out);
    ASSERT_TRUE(map.force_generation(0, Map::kLastGeneration - 1));
    const SlotKey r = map.reserve();
    EXPECT_EQ(slot_key_generation(r), Map::kLastGeneration);
    map.abort(r);
    EXPECT_EQ(map.retired(), 1u);
    EXPECT_CONSISTENT(map);
}

TEST(SlotMap, VersionChangesOnEveryVisibleChange) {
    Map map;
    std::uint64_t v = map.version();
    const SlotKey a = map.insert("a");
    EXPECT_GT(map.version(), v);
    v = map.version();
    *map.get(a) = "replaced";  // replacing a value is not a structural change
    EXPECT_EQ(map.version(), v);
    std::string out;
    map.remove(a, out);
    EXPECT_GT(map.version(), v);
    v = map.version();
    map.clear([](std::string&&) {});  // empty: nothing changes
    EXPECT_EQ(map.version(), v);
    map.insert("b");
    v = map.version();
    map.clear([](std::string&&) {});
    EXPECT_GT(map.version(), v);
}

TEST(SlotMap, IterationVisitsOccupiedSlotsInIndexOrder) {
    Map map;
    std::vector<SlotKey> keys;
    for (int i = 0; i < 6; ++i) keys.push_back(map.insert(std::to_string(i)));
    std::string out;
    map.remove(keys[0], out);
    map.remove(keys[3], out);
    std::vector<SlotKey> seen;
    for (std::uint32_t i = map.next_occupied(0); i < map.capacity(); i = map.next_occupied(i + 1)) {
        seen.push_back(map.key_at(i));
        EXPECT_EQ(map.value_at(i), std::to_string(i));
    }
    EXPECT_EQ(seen, (std::vector<SlotKey>{keys[1], keys[2], keys[4], keys[5]}));
}

TEST(SlotMap, FullMapThrowsLengthErrorAndStaysUsable) {
    memkit::core::SlotMap<int, 3> map;
    const SlotKey a = map.insert(1);
    map.insert(2);
    map.insert(3);
    EXPECT_THROW(map.insert(4), std::length_error);
    EXPECT_THROW(map.reserve(), std::length_error);
    EXPECT_EQ(map.size(), 3u);
    int out = 0;
    map.remove(a, out);
    EXPECT_EQ(slot_key_index(map.insert(5)), 0u);
    EXPECT_EQ(map.invariant_violation(), nullptr);
}

TEST(SlotMap, AllSlotsRetiredMeansFull) {
    memkit::core::SlotMap<int, 1> map;
    const SlotKey a = map.insert(1);
    ASSERT_TRUE(map.force_generation(0, decltype(map)::kLastGeneration));
    int out = 0;
    ASSERT_TRUE(map.remove(make_slot_key(0, decltype(map)::kLastGeneration), out));
    EXPECT_THROW(map.insert(2), std::length_error);
    EXPECT_EQ(map.get(a), nullptr);
    EXPECT_EQ(map.invariant_violation(), nullptr);
}

TEST(SlotMap, MoveOnlyValuesAreMovedNotCopied) {
    memkit::core::SlotMap<std::unique_ptr<int>> map;
    const SlotKey k = map.insert(std::make_unique<int>(42));
    std::unique_ptr<int> out;
    ASSERT_TRUE(map.remove(k, out));
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(*out, 42);
}

// Random inserts, removes (of live and stale keys), reservations and clears, checked
// against a model after every step.
TEST(SlotMap, RandomisedAgainstUnorderedMap) {
    Map map;
    std::unordered_map<SlotKey, std::string> model;
    std::unordered_set<SlotKey> issued;
    std::vector<SlotKey> all;
    std::mt19937_64 rng(12345);
    for (int step = 0; step < 20000; ++step) {
        const auto op = rng() % 10;
        if (op < 4 || all.empty()) {
            const std::string v = std::to_string(step);
            const SlotKey k = map.insert(v);
            ASSERT_TRUE(issued.insert(k).second) << "key handed out twice";
            model[k] = v;
            all.push_back(k);
        } else if (op < 8) {
            const SlotKey k = all[rng() % all.size()];
            std::string out;
            const bool removed = map.remove(k, out);
            ASSERT_EQ(removed, model.count(k) == 1);
            if (removed) {
                ASSERT_EQ(out, model[k]);
                model.erase(k);
            }
        } else if (op == 8) {
            const SlotKey r = map.reserve();
            ASSERT_TRUE(issued.insert(r).second) << "reserved key handed out twice";
            if (rng() % 2 == 0) {
                map.commit(r, "r");
                model[r] = "r";
            } else {
                map.abort(r);
            }
            all.push_back(r);
        } else if (rng() % 50 == 0) {
            map.clear([](std::string&&) {});
            model.clear();
        }
        ASSERT_EQ(map.size(), model.size());
        if (step % 500 == 0) {
            ASSERT_EQ(map.invariant_violation(), nullptr) << map.invariant_violation();
            for (SlotKey k : all) {
                const std::string* v = map.get(k);
                auto it = model.find(k);
                ASSERT_EQ(v != nullptr, it != model.end());
                if (v != nullptr) {
                    ASSERT_EQ(*v, it->second);
                }
            }
        }
    }
    EXPECT_CONSISTENT(map);
}

// ---- threads ----------------------------------------------------------------------------
//
// SlotMap is not synchronised: its owner serialises calls (the GIL, or the binding's
// per-map lock on free-threaded builds). These run it that way from racing threads, so
// ThreadSanitizer checks that no state outside the map object is shared unsynchronised.

// One map per thread, no lock.
TEST(SlotMapThreads, SeparateMapsShareNoState) {
    memkit_test::run_concurrently(4, [](int t) {
        Map map;
        std::vector<SlotKey> keys;
        for (int i = 0; i < 5000; ++i) {
            if (i % 3 == 2 && !keys.empty()) {
                std::string out;
                ASSERT_TRUE(map.remove(keys.back(), out));
                keys.pop_back();
            } else {
                keys.push_back(map.insert(std::to_string(t * 100000 + i)));
            }
        }
        EXPECT_EQ(map.size(), keys.size());
        EXPECT_CONSISTENT(map);
    });
}

// One map shared under a mutex, as the free-threaded binding uses it: concurrent inserts
// never hand out the same key, each thread finds exactly its own entries, and a key a
// thread removed stays stale though other threads keep reusing its slot.
TEST(SlotMapThreads, SharedMapUnderTheOwnersLock) {
    Map map;
    std::mutex m;
    constexpr int kThreads = 4;
    constexpr int kIters = 3000;
    std::vector<std::vector<SlotKey>> live(kThreads), stale(kThreads);
    memkit_test::run_concurrently(kThreads, [&](int t) {
        auto& mine = live[static_cast<std::size_t>(t)];
        auto& dead = stale[static_cast<std::size_t>(t)];
        for (int i = 0; i < kIters; ++i) {
            std::lock_guard<std::mutex> lock(m);
            if (i % 2 == 1) {
                std::string out;
                ASSERT_TRUE(map.remove(mine.back(), out));
                ASSERT_EQ(out, std::to_string(t) + ":" + std::to_string(i - 1));
                dead.push_back(mine.back());
                mine.pop_back();
            } else {
                mine.push_back(map.insert(std::to_string(t) + ":" + std::to_string(i)));
            }
        }
    });
    std::unordered_set<SlotKey> all;
    for (int t = 0; t < kThreads; ++t) {
        for (SlotKey k : live[static_cast<std::size_t>(t)]) EXPECT_TRUE(all.insert(k).second);
        for (SlotKey k : stale[static_cast<std::size_t>(t)]) {
            EXPECT_TRUE(all.insert(k).second) << "key handed out twice";
            EXPECT_EQ(map.get(k), nullptr);
        }
    }
    EXPECT_EQ(map.size(), 0u);
    EXPECT_CONSISTENT(map);
}

}  // namespace
