// The idempotency keys the store keeps (docs/ARCHITECTURE.md §7), in memory, and the payload of
// their sidecar (segments/FORMAT.md 8.7, inside the sidecar envelope of 8.1: kind Idempotency,
// version kIdempotencyVersion).
//
// A key is a store-wide byte string (1 to kIdempotencyKeyBytesMax bytes) naming the event that
// carried it: the index maps it to that event's receipt and fingerprint (format
// `event_fingerprint`). Keys are added in increasing sequence order and forgotten oldest first once
// they are past both windows (events and time), or newest first when a fence is cancelled.
//
// Not thread-safe: the store calls it under its commit mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "keel/event.h"
#include "keel/ids.h"
#include "keel/result.h"
#include "platform/table_memory.h"

namespace keel::index {

// The version of the IDEMPOTENCY sidecar's payload (FORMAT.md 8.7).
inline constexpr uint32_t kIdempotencyVersion = 1;

// A key as errors show it: printable ASCII quoted, anything else in hex; long keys cut short.
std::string printable_key(std::string_view key);

// What a kept key maps to. receipt.sequence is the sequence of the event that carried the key.
struct KeyEntry {
  Hash128 fingerprint;
  Receipt receipt;
  friend bool operator==(const KeyEntry&, const KeyEntry&) = default;
};

class IdempotencyIndex {
 public:
  IdempotencyIndex() = default;
  // Tests only: another key hash (a poor one makes keys collide, which must not matter).
  using HashFunction = uint64_t (*)(std::string_view key);
  // Tests also pick the first position, to cross the 2^32 wrap of the positions slots keep.
  explicit IdempotencyIndex(HashFunction hash, uint64_t first_position = 0)
      : hash_(hash), base_(first_position) {}
  // Move only: a copy of a million keys should not happen by accident.
  IdempotencyIndex(IdempotencyIndex&&) = default;
  IdempotencyIndex& operator=(IdempotencyIndex&&) = default;
  IdempotencyIndex(const IdempotencyIndex&) = delete;
  IdempotencyIndex& operator=(const IdempotencyIndex&) = delete;

  // A key and its hash, computed once for an append's prefetch, lookup and add.
  struct HashedKey {
    std::string_view key;
    uint64_t hash = 0;
  };
  HashedKey hashed(std::string_view key) const { return HashedKey{key, hash_(key)}; }

  // The entry of `key`, or null when it is not kept. The pointer stays valid (through later adds
  // and moves of the index) until the key is forgotten.
  const KeyEntry* find(const HashedKey& key) const;
  const KeyEntry* find(std::string_view key) const { return find(hashed(key)); }

  // Adds `key` for the event receipt.sequence. Sequences must increase across adds, except that an
  // add of a key already present with the same sequence, fingerprint and receipt is a no-op
  // returning true (a log replay overlapping the sidecar). Returns false and changes nothing when
  // the key is present with another sequence (or the same sequence with another fingerprint or
  // receipt), when receipt.sequence is not above every sequence added (or decoded) before and not
  // removed since (remove_from), when the key's length is outside [1, kIdempotencyKeyBytesMax],
  // or when 2^32 - 1 keys are kept already (memory runs out long before): the caller treats that
  // as corruption.
  bool add(const HashedKey& key, const Hash128& fingerprint, const Receipt& receipt);
  bool add(std::string_view key, const Hash128& fingerprint, const Receipt& receipt) {
    return add(hashed(key), fingerprint, receipt);
  }

  // Forgets every key whose sequence is >= first_sequence (a cancelled fence's keys, or keys above
  // the log's end after a crash: always the newest ones). Returns how many. Later adds must be
  // above first_sequence - 1 and the keys still kept, so a sequence a crash reissues can be added.
  size_t remove_from(uint64_t first_sequence);

  // Forgets keys past both windows, oldest first: a key goes once next_sequence - sequence >
  // window_events and now_ms - hlc.wall_ms > window_ms. Stops at the first key inside either
  // window (wall time does not decrease with the sequence of the store's own events). Returns how
  // many were forgotten.
  size_t expire(uint64_t next_sequence, uint64_t now_ms, uint64_t window_events,
                uint64_t window_ms);

  // For an append that will look up and add `key` and may expire the oldest key: hashes the key
  // (once, for find and add) and starts loading its bucket, the oldest key's and the next oldest
  // entry, so those cache misses overlap the append's other work. Returns the hashed key because
  // GCC sees a void function of prefetches alone as pure and drops calls to it (it did: 0.15x more
  // paired cost at a million keys). Flattened because Abseil's raw_hash_set::prefetch is such a
  // function: GCC -O2 kept it out of line and dropped both calls (1.38-1.40x against 1.22-1.23x).
  // tests/codegen_test.cc checks the compiled append still prefetches.
  [[nodiscard, gnu::flatten]] HashedKey prefetch(std::string_view key) const {
    const HashedKey hashed_key = hashed(key);
    slots_.prefetch(probe_of(hashed_key));
    if (order_.empty()) return hashed_key;
    slots_.prefetch(slot_of(base_, order_.front().hash));  // the entry was hinted before
    if (order_.size() > 1) {
      __builtin_prefetch(&order_[1].entry.receipt.sequence);
      __builtin_prefetch(&order_[1].hash);
    }
    return hashed_key;
  }

  size_t size() const { return order_.size(); }
  // The sequence of the newest kept key; 0 when none is kept.
  uint64_t last_sequence() const { return order_.empty() ? 0 : order_.back().sequence(); }
  // An estimate of the heap bytes held (set slots, the ordered entries, long keys).
  uint64_t memory_bytes() const;

  // The sidecar payload (FORMAT.md 8.7): covered_through, then every key whose sequence is <=
  // covered_through, in sequence order. covered_through is the durable sequence the snapshot is
  // cut at: an open replays the log after it.
  std::vector<std::byte> encode(uint64_t covered_through) const;

  // Decodes a payload written by encode(): the index and its covered_through. The bytes are
  // untrusted (format::decode_sidecar checked the envelope's checksum, not the content): anything
  // encode() would not write is CorruptSidecar naming `path` and the reason, never a crash, and no
  // count is allocated for before it is checked against the bytes left.
  static Result<std::pair<IdempotencyIndex, uint64_t>> decode(std::span<const std::byte> payload,
                                                              const std::string& path);

 private:
  // One kept key, in sequence order. Position p (counted over every key ever added; a cancel
  // reuses the positions it pops) is order_[p - base_]: only the ends are pushed and popped.
  struct Kept {
    KeyEntry entry;  // entry.receipt has the sequence and the wall time expire() reads
    uint32_t hash;   // hash_(key)'s low 32 bits, as its slot has them
    std::string key;
    uint64_t sequence() const { return entry.receipt.sequence; }
  };
  static_assert(sizeof(Kept) <= 128, "four entries per 512-byte deque block");

  // The set holds 8-byte slots (a position's low 32 bits and the key hash's low 32 bits; no pointer
  // into a key): a million keys take ~18 MB of slots and control bytes, so a lookup of a new key
  // and the erase of the oldest mostly stay in cache, and expiring needs no string compare. Keys
  // whose hashes share the low 32 bits are told apart by comparing the keys themselves (their
  // entries), so collisions cost a little time, never a wrong answer. Positions are recovered from
  // their low 32 bits relative to base_ (fewer than 2^32 keys are ever kept).
  struct Slot {
    uint32_t position;
    uint32_t hash;
  };
  // At most this many keys are kept at once (add refuses more; ~150 B each, memory ends first).
  static constexpr uint64_t kKeptMax = (uint64_t{1} << 32) - 1;
  // A lookup by key: its hash's low 32 bits, the key, and the index to read entries from.
  struct Probe {
    uint32_t hash;
    std::string_view key;
    const IdempotencyIndex* index;
  };
  struct SlotHash {
    using is_transparent = void;
    size_t operator()(Slot slot) const { return mix(slot.hash); }
    size_t operator()(const Probe& probe) const { return mix(probe.hash); }
    static size_t mix(uint32_t hash) { return absl::Hash<uint32_t>{}(hash); }
  };
  struct SlotEq {
    using is_transparent = void;
    bool operator()(Slot a, Slot b) const { return a.position == b.position; }
    bool operator()(Slot slot, const Probe& probe) const { return probe.index->holds(slot, probe); }
    bool operator()(const Probe& probe, Slot slot) const { return probe.index->holds(slot, probe); }
  };
  bool holds(Slot slot, const Probe& probe) const {
    return slot.hash == probe.hash && kept_at(slot.position).key == probe.key;
  }
  const Kept& kept_at(uint32_t low_position) const {
    return order_[static_cast<uint32_t>(low_position - static_cast<uint32_t>(base_))];
  }
  static Slot slot_of(uint64_t position, uint64_t hash) {
    return Slot{static_cast<uint32_t>(position), static_cast<uint32_t>(hash)};
  }
  Probe probe_of(const HashedKey& key) const {
    return Probe{static_cast<uint32_t>(key.hash), key.key, this};
  }

  static uint64_t default_hash(std::string_view key);
  // Forgets `kept` (at `position`) from the set (the caller pops it from order_ afterwards).
  void erase_key(const Kept& kept, uint64_t position);
  // Rehashes the set smaller when at most an eighth of its capacity is used.
  void shrink_if_sparse();

  HashFunction hash_ = &default_hash;
  // In huge-page memory once large (platform/table_memory.h): each lookup of a new key and each
  // erase lands on a random bucket, and without it on a random 4 KiB page as well.
  absl::flat_hash_set<Slot, SlotHash, SlotEq, platform::TableAllocator<Slot>> slots_;
  std::deque<Kept> order_;       // by sequence, increasing: one key per sequence
  uint64_t base_ = 0;            // the position of order_.front()
  uint64_t last_added_ = 0;      // the highest sequence ever added or decoded
  uint64_t long_key_bytes_ = 0;  // bytes of kept keys too long for std::string's inline buffer
};

}  // namespace keel::index
