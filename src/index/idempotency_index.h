// The idempotency keys the store keeps (DESIGN.md §7), in memory, and the payload of their sidecar
// (segments/FORMAT.md 8.7, inside the sidecar envelope of 8.1: kind Idempotency, version
// kIdempotencyVersion).
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

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "keel/event.h"
#include "keel/ids.h"
#include "keel/result.h"

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
  explicit IdempotencyIndex(HashFunction hash) : hash_(hash) {}
  // Move only: the map views the keys inside the deque's elements, which a move keeps in place and
  // a copy would not.
  IdempotencyIndex(IdempotencyIndex&&) = default;
  IdempotencyIndex& operator=(IdempotencyIndex&&) = default;
  IdempotencyIndex(const IdempotencyIndex&) = delete;
  IdempotencyIndex& operator=(const IdempotencyIndex&) = delete;

  // The entry of `key`, or null when it is not kept. The pointer stays valid (through later adds
  // and moves of the index) until the key is forgotten.
  const KeyEntry* find(std::string_view key) const;

  // Adds `key` for the event receipt.sequence. Sequences must increase across adds, except that an
  // add of a key already present with the same sequence, fingerprint and receipt is a no-op
  // returning true (a log replay overlapping the sidecar). Returns false and changes nothing when
  // the key is present with another sequence (or the same sequence with another fingerprint or
  // receipt), when receipt.sequence is not above every sequence added (or decoded) before and not
  // removed since (remove_from), or when the key's length is outside [1, kIdempotencyKeyBytesMax]:
  // the caller treats that as corruption.
  bool add(std::string_view key, const Hash128& fingerprint, const Receipt& receipt);

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

  // Hints for an append that will look up and add `key` and may expire the oldest key: starts
  // loading their buckets and the next oldest entry, so those cache misses overlap.
  void prefetch(std::string_view key) const {
    by_hash_.prefetch(hash_(key));
    if (order_.empty()) return;
    by_hash_.prefetch(order_.front().hash);  // the entry was loaded by the previous append's hint
    if (order_.size() > 1) __builtin_prefetch(&order_[1]);
  }

  size_t size() const { return order_.size(); }
  // The sequence of the newest kept key; 0 when none is kept.
  uint64_t last_sequence() const { return order_.empty() ? 0 : order_.back().sequence; }
  // An estimate of the heap bytes held (map slots, the ordered entries, long keys).
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
    uint64_t sequence;
    uint64_t wall_ms;  // the event's HLC wall time (expire() reads it here)
    uint64_t hash;     // hash_(key)
    std::string key;
    KeyEntry entry;
  };

  static uint64_t default_hash(std::string_view key);
  // The kept entry at `position` when it holds `key`.
  const Kept* kept_at(uint64_t position, std::string_view key) const;
  // Forgets `kept` (at `position`) from the maps (the caller pops it from order_ afterwards).
  void erase_key(const Kept& kept, uint64_t position);

  // The map holds only hashes and positions (16-byte slots, no pointer into a key): a lookup of a
  // new key touches one bucket, and expiring the oldest key needs no string. Two kept keys with
  // the same 64-bit hash (not expected in practice, handled all the same): the later one is in
  // collided_.
  HashFunction hash_ = &default_hash;
  absl::flat_hash_map<uint64_t, uint64_t> by_hash_;
  absl::flat_hash_map<std::string, uint64_t> collided_;
  std::deque<Kept> order_;       // by sequence, increasing: one key per sequence
  uint64_t base_ = 0;            // the position of order_.front()
  uint64_t last_added_ = 0;      // the highest sequence ever added or decoded
  uint64_t long_key_bytes_ = 0;  // bytes of kept keys too long for std::string's inline buffer
};

}  // namespace keel::index
