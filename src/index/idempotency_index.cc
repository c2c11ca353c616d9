#include "index/idempotency_index.h"

#include <algorithm>
#include <cassert>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "format/byte_order.h"
#include "keel/error.h"
#include "keel/options.h"

namespace keel::index {
namespace {

// FORMAT.md 8.7: u64 covered_through, u64 count, then per entry u32 key_length, the key, and the
// fixed fields: fingerprint (16), event id (16), epoch, sequence, entity_clock, hlc_wall_ms (8
// each), hlc_logical (4), chained hash (16).
constexpr size_t kPayloadHeaderBytes = 16;
constexpr size_t kEntryFixedBytes = 16 + 16 + 8 + 8 + 8 + 8 + 4 + 16;
constexpr size_t kEntryBytesMin = 4 + 1 + kEntryFixedBytes;  // the shortest key is 1 byte
static_assert(kEntryFixedBytes == 84);

// Keys up to this many bytes live inside std::string itself (libstdc++'s inline buffer).
constexpr size_t kInlineKeyBytes = 15;

bool key_length_valid(size_t length) { return length >= 1 && length <= kIdempotencyKeyBytesMax; }

// Debian's Abseil has its own string_view type: heterogeneous lookups take it.
absl::string_view as_absl(std::string_view text) { return {text.data(), text.size()}; }

uint64_t heap_key_bytes(size_t length) { return length > kInlineKeyBytes ? length + 1 : 0; }

void put_u32(std::vector<std::byte>& out, uint32_t v) {
  size_t at = out.size();
  out.resize(at + sizeof v);
  format::store_u32(out.data() + at, v);
}

void put_u64(std::vector<std::byte>& out, uint64_t v) {
  size_t at = out.size();
  out.resize(at + sizeof v);
  format::store_u64(out.data() + at, v);
}

// Reads the payload front to back; every read is checked against the bytes left by the caller.
class Cursor {
 public:
  explicit Cursor(std::span<const std::byte> bytes) : bytes_(bytes) {}
  size_t left() const { return bytes_.size() - at_; }
  uint32_t u32() {
    uint32_t v = format::load_u32(bytes_.data() + at_);
    at_ += sizeof v;
    return v;
  }
  uint64_t u64() {
    uint64_t v = format::load_u64(bytes_.data() + at_);
    at_ += sizeof v;
    return v;
  }
  std::string_view text(size_t n) {
    std::string_view v(reinterpret_cast<const char*>(bytes_.data() + at_), n);
    at_ += n;
    return v;
  }

 private:
  std::span<const std::byte> bytes_;
  size_t at_ = 0;
};

}  // namespace

std::string printable_key(std::string_view key) {
  constexpr size_t kShown = 64;
  const std::string_view head = key.substr(0, kShown);
  const bool printable =
      std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  std::string shown = printable ? "\"" : "0x";
  for (unsigned char c : head) {
    if (printable) {
      shown.push_back(static_cast<char>(c));
    } else {
      shown.push_back("0123456789abcdef"[c >> 4]);
      shown.push_back("0123456789abcdef"[c & 15]);
    }
  }
  if (printable) shown.push_back('"');
  if (key.size() > kShown) shown += "...";
  return shown;
}

uint64_t IdempotencyIndex::default_hash(std::string_view key) {
  return absl::Hash<absl::string_view>{}(as_absl(key));
}

const KeyEntry* IdempotencyIndex::find(const HashedKey& key) const {
  auto it = slots_.find(probe_of(key));
  return it == slots_.end() ? nullptr : &kept_at(it->position).entry;
}

bool IdempotencyIndex::add(const HashedKey& hashed_key, const Hash128& fingerprint,
                           const Receipt& receipt) {
  const std::string_view key = hashed_key.key;
  const uint64_t hash = hashed_key.hash;
  if (!key_length_valid(key.size())) return false;
  const KeyEntry entry{fingerprint, receipt};
  const Probe probe = probe_of(hashed_key);
  if (receipt.sequence <= last_added_) {
    // Only a replay of the event that added it: same sequence, fingerprint, receipt.
    auto it = slots_.find(probe);
    return it != slots_.end() && kept_at(it->position).entry == entry;
  }
  if (order_.size() >= kKeptMax) return false;
  // One probe: the slot goes in unless the key is present (then it names an earlier event). The
  // probe reads only entries already kept, so the new one is pushed after.
  const uint64_t position = base_ + order_.size();
  bool inserted = false;
  slots_.lazy_emplace(probe, [&](const auto& construct) {
    construct(slot_of(position, hash));
    inserted = true;
  });
  if (!inserted) return false;
  order_.push_back(Kept{entry, static_cast<uint32_t>(hash), std::string(key)});
  last_added_ = receipt.sequence;
  long_key_bytes_ += heap_key_bytes(key.size());
  return true;
}

void IdempotencyIndex::erase_key(const Kept& kept, uint64_t position) {
  [[maybe_unused]] size_t erased = slots_.erase(slot_of(position, kept.hash));
  assert(erased == 1);
  long_key_bytes_ -= heap_key_bytes(kept.key.size());
}

void IdempotencyIndex::shrink_if_sparse() {
  // The set never shrinks by itself: after a burst of keys has expired, give the memory back.
  constexpr size_t kSmall = 1024;
  if (slots_.capacity() > kSmall && slots_.size() * 8 < slots_.capacity()) {
    slots_.rehash(0);  // the smallest capacity that holds the keys kept
  }
}

size_t IdempotencyIndex::remove_from(uint64_t first_sequence) {
  size_t removed = 0;
  while (!order_.empty() && order_.back().sequence() >= first_sequence) {
    erase_key(order_.back(), base_ + order_.size() - 1);
    order_.pop_back();
    ++removed;
  }
  last_added_ = std::min(last_added_, first_sequence == 0 ? 0 : first_sequence - 1);
  shrink_if_sparse();
  return removed;
}

size_t IdempotencyIndex::expire(uint64_t next_sequence, uint64_t now_ms, uint64_t window_events,
                                uint64_t window_ms) {
  size_t expired = 0;
  while (!order_.empty()) {
    const uint64_t sequence = order_.front().sequence();
    const uint64_t wall_ms = order_.front().entry.receipt.hlc.wall_ms;
    // Written so that a sequence or a wall time ahead of the arguments counts as inside the window.
    const bool past_events = next_sequence > sequence && next_sequence - sequence > window_events;
    const bool past_time = now_ms > wall_ms && now_ms - wall_ms > window_ms;
    if (!past_events || !past_time) break;
    erase_key(order_.front(), base_);
    order_.pop_front();
    ++base_;
    ++expired;
  }
  if (expired > 0) shrink_if_sparse();
  return expired;
}

uint64_t IdempotencyIndex::memory_bytes() const {
  // A slot and a control byte per bucket, the deque's entries, long keys.
  return slots_.capacity() * (sizeof(Slot) + 1) + order_.size() * sizeof(Kept) + long_key_bytes_;
}

std::vector<std::byte> IdempotencyIndex::encode(uint64_t covered_through) const {
  auto end = std::partition_point(order_.begin(), order_.end(),
                                  [&](const Kept& k) { return k.sequence() <= covered_through; });
  const uint64_t count = static_cast<uint64_t>(end - order_.begin());
  uint64_t size = kPayloadHeaderBytes;
  for (auto it = order_.begin(); it != end; ++it) size += 4 + it->key.size() + kEntryFixedBytes;
  std::vector<std::byte> out;
  out.reserve(size);
  put_u64(out, covered_through);
  put_u64(out, count);
  for (auto it = order_.begin(); it != end; ++it) {
    const KeyEntry& entry = it->entry;
    const Receipt& r = entry.receipt;
    put_u32(out, static_cast<uint32_t>(it->key.size()));
    const auto* key = reinterpret_cast<const std::byte*>(it->key.data());
    out.insert(out.end(), key, key + it->key.size());
    put_u64(out, entry.fingerprint.high);
    put_u64(out, entry.fingerprint.low);
    put_u64(out, r.event_id.high);
    put_u64(out, r.event_id.low);
    put_u64(out, r.epoch);
    put_u64(out, r.sequence);
    put_u64(out, r.entity_clock);
    put_u64(out, r.hlc.wall_ms);
    put_u32(out, r.hlc.logical);
    put_u64(out, r.chained_hash.high);
    put_u64(out, r.chained_hash.low);
  }
  assert(out.size() == size);
  return out;
}

Result<std::pair<IdempotencyIndex, uint64_t>> IdempotencyIndex::decode(
    std::span<const std::byte> payload, const std::string& path) {
  auto corrupt = [&](const char* reason) {
    return StoreError(ErrorCode::CorruptSidecar).with("path", path).with("reason", reason);
  };
  Cursor in(payload);
  if (in.left() < kPayloadHeaderBytes) return corrupt("shorter than covered_through and count");
  const uint64_t covered_through = in.u64();
  const uint64_t count = in.u64();
  if (count > in.left() / kEntryBytesMin) return corrupt("count larger than the payload can hold");
  IdempotencyIndex index;
  index.slots_.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (in.left() < 4) return corrupt("truncated entry");
    const uint32_t length = in.u32();
    if (length == 0) return corrupt("zero-length key");
    if (length > kIdempotencyKeyBytesMax) return corrupt("key longer than 1024 bytes");
    if (length > in.left()) return corrupt("key length past the end");
    const std::string_view key = in.text(length);
    if (in.left() < kEntryFixedBytes) return corrupt("truncated entry");
    KeyEntry entry;
    entry.fingerprint = {in.u64(), in.u64()};
    Receipt& r = entry.receipt;
    r.event_id = {in.u64(), in.u64()};
    r.epoch = in.u64();
    r.sequence = in.u64();
    r.entity_clock = in.u64();
    r.hlc.wall_ms = in.u64();
    r.hlc.logical = in.u32();
    r.chained_hash = {in.u64(), in.u64()};
    // last_added_ starts at 0: an entry of sequence 0 (no event has it) fails here too.
    if (r.sequence <= index.last_added_) return corrupt("sequences not strictly increasing");
    if (r.sequence > covered_through) return corrupt("an entry above covered_through");
    if (index.find(key) != nullptr) return corrupt("duplicate key");
    bool added = index.add(key, entry.fingerprint, r);
    assert(added);
    (void)added;
  }
  if (in.left() != 0) return corrupt("trailing bytes after the last entry");
  return std::pair<IdempotencyIndex, uint64_t>(std::move(index), covered_through);
}

}  // namespace keel::index
