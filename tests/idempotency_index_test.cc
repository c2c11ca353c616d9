// The idempotency key index (src/index/idempotency_index.h) and its sidecar payload
// (segments/FORMAT.md 8.7): adds in sequence order with replays as no-ops, the newest keys removed
// for a cancelled fence, expiry only past both windows and oldest first, the payload's layout and
// round trip, the covered_through cut, and every kind of damage as CorruptSidecar with its reason.
#include "index/idempotency_index.h"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "format/byte_order.h"
#include "format/sidecar.h"
#include "keel/error.h"

using keel::ErrorClass;
using keel::ErrorCode;
using keel::Hash128;
using keel::Receipt;
using keel::StoreError;
using keel::index::IdempotencyIndex;
using keel::index::KeyEntry;

namespace {

using Bytes = std::vector<std::byte>;

const std::string kPath = "/data/store/IDEMPOTENCY";

// Offsets inside one payload entry (FORMAT.md 8.7), from its key_length field; `n` = key length.
constexpr size_t kHeaderBytes = 16;
size_t fingerprint_at(size_t n) { return 4 + n; }
size_t sequence_at(size_t n) { return 4 + n + 40; }
size_t entry_bytes(size_t n) { return 4 + n + 84; }

Receipt receipt_at(uint64_t sequence, uint64_t wall_ms = 1'000) {
  Receipt r;
  r.event_id = {0x0000018000000000ull | sequence, 0xfeedull * sequence};
  r.epoch = 3;
  r.sequence = sequence;
  r.entity_clock = sequence + 7;
  r.hlc = {wall_ms, static_cast<uint32_t>(sequence * 3)};
  r.chained_hash = {sequence * 11, ~sequence};
  return r;
}

Hash128 fingerprint_of(uint64_t sequence) { return {sequence ^ 0xabcdefull, sequence * 5}; }

// Adds `key` for `sequence` with the receipt and fingerprint the helpers derive from it.
bool add(IdempotencyIndex& index, std::string_view key, uint64_t sequence,
         uint64_t wall_ms = 1'000) {
  return index.add(key, fingerprint_of(sequence), receipt_at(sequence, wall_ms));
}

// Decodes `payload` and requires CorruptSidecar naming kPath; returns the reason.
std::string corrupt_reason(const Bytes& payload) {
  auto decoded = IdempotencyIndex::decode(payload, kPath);
  REQUIRE_FALSE(decoded.ok());
  const StoreError& error = decoded.error();
  INFO(error.to_string());
  CHECK(error.code() == ErrorCode::CorruptSidecar);
  CHECK(error.error_class() == ErrorClass::FailClosed);
  CHECK(error.field_string("path") == kPath);
  return error.field_string("reason").value_or("(no reason)");
}

uint64_t u64_at(const Bytes& b, size_t at) { return keel::format::load_u64(b.data() + at); }
void set_u64(Bytes& b, size_t at, uint64_t v) { keel::format::store_u64(b.data() + at, v); }
void set_u32(Bytes& b, size_t at, uint32_t v) { keel::format::store_u32(b.data() + at, v); }

}  // namespace

TEST_CASE("keys are found after adds, a replayed add is a no-op, out-of-order adds are refused",
          "[idempotency]") {
  IdempotencyIndex index;
  CHECK(index.size() == 0);
  CHECK(index.last_sequence() == 0);
  CHECK(index.find("order-1") == nullptr);

  REQUIRE(add(index, "order-1", 4));
  REQUIRE(add(index, "order-2", 9));
  const KeyEntry* entry = index.find("order-1");
  REQUIRE(entry != nullptr);
  CHECK(entry->receipt == receipt_at(4));
  CHECK(entry->fingerprint == fingerprint_of(4));
  CHECK(index.find("order-2")->receipt.sequence == 9);
  CHECK(index.find("order-3") == nullptr);
  CHECK(index.find("order-") == nullptr);  // a prefix is another key
  CHECK(index.size() == 2);
  CHECK(index.last_sequence() == 9);

  SECTION("a replay of the same event (a log overlapping the sidecar) changes nothing") {
    CHECK(add(index, "order-1", 4));
    CHECK(add(index, "order-2", 9));
    CHECK(index.size() == 2);
    CHECK(index.last_sequence() == 9);
    CHECK(index.find("order-1") == entry);  // the same entry, not a new one
  }
  SECTION("the same key for another event is refused") {
    CHECK_FALSE(add(index, "order-1", 10));
    CHECK_FALSE(add(index, "order-2", 8));
    CHECK(index.find("order-1")->receipt.sequence == 4);
    CHECK(index.size() == 2);
    CHECK(index.last_sequence() == 9);
  }
  SECTION("the same key and sequence with another fingerprint or receipt is refused") {
    CHECK_FALSE(index.add("order-1", Hash128{1, 2}, receipt_at(4)));
    Receipt other = receipt_at(4);
    other.epoch = 4;
    CHECK_FALSE(index.add("order-1", fingerprint_of(4), other));
    CHECK(*index.find("order-1") == KeyEntry{fingerprint_of(4), receipt_at(4)});
  }
  SECTION("a new key at or below the last added sequence is refused and changes nothing") {
    CHECK_FALSE(add(index, "late", 9));
    CHECK_FALSE(add(index, "late", 5));
    CHECK_FALSE(add(index, "late", 0));
    CHECK(index.find("late") == nullptr);
    CHECK(index.size() == 2);
    CHECK(add(index, "late", 10));  // the negative control: above it, the same add is taken
    CHECK(index.last_sequence() == 10);
  }
  SECTION("keys of 1 and 1024 bytes are kept; 0 and 1025 bytes are refused") {
    CHECK_FALSE(add(index, "", 20));
    CHECK_FALSE(add(index, std::string(1025, 'k'), 21));
    CHECK(index.size() == 2);
    CHECK(add(index, std::string(1, '\0'), 22));
    CHECK(add(index, std::string(1024, '\xff'), 23));
    CHECK(index.find(std::string(1, '\0'))->receipt.sequence == 22);
    CHECK(index.find(std::string(1024, '\xff'))->receipt.sequence == 23);
    CHECK(index.find(std::string(1023, '\xff')) == nullptr);
  }
}

TEST_CASE("remove_from forgets the newest keys from a sequence on", "[idempotency]") {
  IdempotencyIndex index;
  for (uint64_t s = 1; s <= 5; ++s) REQUIRE(add(index, "key-" + std::to_string(s), s * 10));
  CHECK(index.remove_from(60) == 0);
  CHECK(index.remove_from(31) == 2);  // 40 and 50
  CHECK(index.size() == 3);
  CHECK(index.last_sequence() == 30);
  CHECK(index.find("key-4") == nullptr);
  CHECK(index.find("key-5") == nullptr);
  for (uint64_t s = 1; s <= 3; ++s) CHECK(index.find("key-" + std::to_string(s)) != nullptr);
  // Adds continue above the cut: a crash may reissue the sequences of a lost tail.
  CHECK_FALSE(add(index, "key-4", 30));
  CHECK(add(index, "key-4", 31));  // the released key names a new event
  CHECK(index.remove_from(0) == 4);
  CHECK(index.size() == 0);
  CHECK(index.last_sequence() == 0);
  CHECK(add(index, "key-1", 1));
  // Expired keys keep their sequences taken: only a removal lowers the bar.
  CHECK(index.expire(100, 100'000, 10, 10) == 1);
  CHECK_FALSE(add(index, "key-1", 1));
  CHECK(index.remove_from(5) == 0);
  CHECK_FALSE(add(index, "key-1", 1));
  CHECK(index.remove_from(1) == 0);
  CHECK(add(index, "key-1", 1));
}

TEST_CASE("expire forgets a key only once both windows have passed, oldest first",
          "[idempotency]") {
  constexpr uint64_t kEvents = 10;
  constexpr uint64_t kMs = 1'000;
  IdempotencyIndex index;
  REQUIRE(add(index, "a", 1, 1'000));
  REQUIRE(add(index, "b", 2, 1'500));
  REQUIRE(add(index, "c", 3, 5'000));

  // Only the event window has passed for "a" (12 - 1 = 11 > 10, 1900 - 1000 = 900): kept.
  CHECK(index.expire(12, 1'900, kEvents, kMs) == 0);
  // Only the time window has passed (5 - 1 = 4): kept.
  CHECK(index.expire(5, 100'000, kEvents, kMs) == 0);
  // Exactly at either window is still inside it.
  CHECK(index.expire(11, 100'000, kEvents, kMs) == 0);
  CHECK(index.expire(12, 2'000, kEvents, kMs) == 0);
  CHECK(index.size() == 3);
  // A clock behind the event's wall time, or a sequence behind the event's, is inside.
  CHECK(index.expire(0, 0, 0, 0) == 0);
  // Both passed for "a" only ("b": 12 - 2 = 10).
  CHECK(index.expire(12, 2'001, kEvents, kMs) == 1);
  CHECK(index.find("a") == nullptr);
  CHECK(index.find("b") != nullptr);
  // Both passed for "b" and "c".
  CHECK(index.expire(14, 6'001, kEvents, kMs) == 2);
  CHECK(index.size() == 0);
  CHECK(index.last_sequence() == 0);
  // An expired key is new again (above the last added sequence).
  CHECK(add(index, "a", 14, 6'001));
}

TEST_CASE("expire stops at the first key inside a window, even if a later one is past both",
          "[idempotency]") {
  IdempotencyIndex index;
  REQUIRE(add(index, "late-clock", 1, 5'000));  // not the store's own clock: a later wall time
  REQUIRE(add(index, "early-clock", 2, 1'000));
  CHECK(index.expire(100, 5'500, 10, 1'000) == 0);  // "late-clock" is inside the time window
  CHECK(index.find("early-clock") != nullptr);
  CHECK(index.expire(100, 6'001, 10, 1'000) == 2);
}

TEST_CASE("a moved index keeps its keys usable", "[idempotency]") {
  IdempotencyIndex index;
  for (uint64_t s = 1; s <= 100; ++s)
    REQUIRE(add(index, std::string(40, 'x') + std::to_string(s), s));
  IdempotencyIndex moved = std::move(index);
  CHECK(moved.size() == 100);
  CHECK(moved.find(std::string(40, 'x') + "50")->receipt.sequence == 50);
  // expire and remove_from erase the moved set's slots.
  CHECK(moved.expire(101, 1'002, 50, 1) == 50);  // sequences 1..50
  CHECK(moved.remove_from(91) == 10);
  CHECK(moved.size() == 40);
  CHECK(moved.find(std::string(40, 'x') + "51") != nullptr);
  CHECK(moved.find(std::string(40, 'x') + "50") == nullptr);
}

TEST_CASE("memory_bytes grows with the keys and falls when they are forgotten", "[idempotency]") {
  IdempotencyIndex index;
  const uint64_t empty = index.memory_bytes();
  for (uint64_t s = 1; s <= 1000; ++s)
    REQUIRE(add(index, std::string(100, 'k') + std::to_string(s), s));
  const uint64_t full = index.memory_bytes();
  CHECK(full > empty + 1000 * (100 + sizeof(KeyEntry)));
  index.remove_from(1);
  CHECK(index.memory_bytes() < full);
}

TEST_CASE("memory is given back when most keys are forgotten, and answers stay right",
          "[idempotency]") {
  IdempotencyIndex index;
  for (uint64_t s = 1; s <= 10'000; ++s) REQUIRE(add(index, "key-" + std::to_string(s), s));
  const uint64_t full = index.memory_bytes();
  CHECK(index.expire(10'001, 1'002, 10, 1) == 9'990);  // keeps sequences 9991..10000
  CHECK(index.memory_bytes() * 8 < full);
  for (uint64_t s = 1; s <= 10'000; ++s) {
    const KeyEntry* found = index.find("key-" + std::to_string(s));
    REQUIRE((found != nullptr) == (s > 9'990));
    if (found != nullptr) CHECK(found->receipt.sequence == s);
  }
  CHECK(index.remove_from(9'996) == 5);
  CHECK(index.last_sequence() == 9'995);
  CHECK(add(index, "key-10000", 9'996));  // the removed key names the reissued sequence
  CHECK(index.find("key-10000")->receipt.sequence == 9'996);
  CHECK(index.size() == 6);
}

TEST_CASE("encode writes the documented payload", "[idempotency]") {
  IdempotencyIndex index;
  REQUIRE(add(index, "ab", 7, 1'234));
  Bytes payload = index.encode(7);
  REQUIRE(payload.size() == kHeaderBytes + entry_bytes(2));
  CHECK(u64_at(payload, 0) == 7);  // covered_through
  CHECK(u64_at(payload, 8) == 1);  // count
  CHECK(keel::format::load_u32(payload.data() + 16) == 2);
  CHECK(payload[20] == std::byte{'a'});
  CHECK(payload[21] == std::byte{'b'});
  const Receipt r = receipt_at(7, 1'234);
  const uint64_t fields[] = {fingerprint_of(7).high,
                             fingerprint_of(7).low,
                             r.event_id.high,
                             r.event_id.low,
                             r.epoch,
                             r.sequence,
                             r.entity_clock,
                             r.hlc.wall_ms};
  for (size_t i = 0; i < 8; ++i) CHECK(u64_at(payload, 22 + 8 * i) == fields[i]);
  CHECK(keel::format::load_u32(payload.data() + 86) == r.hlc.logical);
  CHECK(u64_at(payload, 90) == r.chained_hash.high);
  CHECK(u64_at(payload, 98) == r.chained_hash.low);

  Bytes empty = IdempotencyIndex().encode(0);
  CHECK(empty == Bytes(16, std::byte{0}));
}

TEST_CASE("the worked example of FORMAT.md 8.7 is what the encoders write", "[idempotency]") {
  // The dump of FORMAT.md 8.7, 32 bytes a line.
  const std::string kHex =
      "4b45454c534944458fda27c1ef7ec77c03000000010000006a00000000000000"
      "070000000000000001000000000000000200000061620807060504030201100f"
      "0e0d0c0b0a092827262524232221302f2e2d2c2b2a2902000000000000000700"
      "00000000000003000000000000000068e5cf8b01000001000000383736353433"
      "3231403f3e3d3c3b3a39";
  IdempotencyIndex index;
  Receipt r{{0x2122232425262728ull, 0x292a2b2c2d2e2f30ull}, 2, 7, 3, {1'700'000'000'000ull, 1},
            {0x3132333435363738ull, 0x393a3b3c3d3e3f40ull}};
  REQUIRE(index.add("ab", {0x0102030405060708ull, 0x090a0b0c0d0e0f10ull}, r));
  Bytes file = keel::format::encode_sidecar(keel::format::SidecarKind::Idempotency,
                                            keel::index::kIdempotencyVersion, index.encode(7));
  std::string hex;
  for (std::byte b : file) {
    hex += "0123456789abcdef"[static_cast<uint8_t>(b) >> 4];
    hex += "0123456789abcdef"[static_cast<uint8_t>(b) & 15];
  }
  CHECK(hex == kHex);
}

TEST_CASE("encode keeps only the keys at or below covered_through", "[idempotency]") {
  IdempotencyIndex index;
  REQUIRE(add(index, "ten", 10));
  REQUIRE(add(index, "twenty", 20));
  REQUIRE(add(index, "thirty", 30));
  auto decoded = IdempotencyIndex::decode(index.encode(25), kPath);
  REQUIRE(decoded.ok());
  auto& [cut, covered_through] = *decoded;
  CHECK(covered_through == 25);
  CHECK(cut.size() == 2);
  CHECK(cut.find("ten") != nullptr);
  CHECK(cut.find("twenty") != nullptr);
  CHECK(cut.find("thirty") == nullptr);
  CHECK(cut.last_sequence() == 20);
  // The log after covered_through is replayed on open: its key is added again.
  CHECK(add(cut, "thirty", 30));
  CHECK(u64_at(index.encode(20), 8) == 2);  // covered_through itself is included
  CHECK(u64_at(index.encode(9), 8) == 0);
  CHECK(index.encode(9).size() == kHeaderBytes);
  CHECK(u64_at(index.encode(30), 8) == 3);
}

TEST_CASE("random keys, binary bytes included, round-trip through the payload and the envelope",
          "[idempotency]") {
  std::mt19937_64 random(20240607);
  IdempotencyIndex index;
  std::vector<std::pair<std::string, uint64_t>> kept;
  uint64_t sequence = 0;
  for (int i = 0; i < 300; ++i) {
    size_t length = i == 0 ? 1 : i == 1 ? 1024 : 1 + random() % (i % 10 == 0 ? 1024 : 40);
    std::string key(length, '\0');
    for (char& c : key) c = static_cast<char>(random());
    sequence += 1 + random() % 5;
    if (!add(index, key, sequence, 1'000 + sequence)) continue;  // a (rare) repeated key
    kept.emplace_back(key, sequence);
  }
  REQUIRE(kept.size() > 290);
  const Bytes payload = index.encode(sequence + 3);
  const Bytes sidecar = keel::format::encode_sidecar(keel::format::SidecarKind::Idempotency,
                                                     keel::index::kIdempotencyVersion, payload);
  auto unwrapped = keel::format::decode_sidecar(sidecar, keel::format::SidecarKind::Idempotency,
                                                keel::index::kIdempotencyVersion, kPath);
  REQUIRE(unwrapped.ok());
  auto decoded = IdempotencyIndex::decode(*unwrapped, kPath);
  if (!decoded.ok()) FAIL(decoded.error().to_string());
  auto& [again, covered_through] = *decoded;
  CHECK(covered_through == sequence + 3);
  CHECK(again.size() == kept.size());
  CHECK(again.last_sequence() == index.last_sequence());
  for (const auto& [key, s] : kept) {
    const KeyEntry* entry = again.find(key);
    REQUIRE(entry != nullptr);
    CHECK(*entry == *index.find(key));
  }
  CHECK(again.encode(covered_through) == payload);
  // The decoded index continues: adds above its last key, replays of its keys are no-ops.
  CHECK(add(again, kept.back().first, kept.back().second, 1'000 + kept.back().second));
  CHECK_FALSE(add(again, "new", kept.back().second));
  CHECK(add(again, "new", sequence + 1));
}

TEST_CASE("every kind of payload damage is CorruptSidecar naming the path and the reason",
          "[idempotency]") {
  IdempotencyIndex index;
  REQUIRE(add(index, "first", 5));   // entry 0 at 16, 93 bytes
  REQUIRE(add(index, "second", 8));  // entry 1 at 109, 94 bytes
  const Bytes original = index.encode(8);
  const size_t second = kHeaderBytes + entry_bytes(5);
  REQUIRE(original.size() == second + entry_bytes(6));
  REQUIRE(IdempotencyIndex::decode(original, kPath).ok());  // unedited, it decodes

  SECTION("truncated anywhere") {
    CHECK(corrupt_reason({}) == "shorter than covered_through and count");
    CHECK(corrupt_reason(Bytes(original.begin(), original.begin() + 15)) ==
          "shorter than covered_through and count");
    CHECK(corrupt_reason(Bytes(original.begin(), original.end() - 1)) == "truncated entry");
    CHECK(corrupt_reason(Bytes(original.begin(), original.begin() + second + 2)) ==
          "count larger than the payload can hold");
    for (size_t n = 0; n < original.size(); ++n) {
      INFO("cut at " << n);
      CHECK_FALSE(IdempotencyIndex::decode(std::span(original).first(n), kPath).ok());
    }
  }
  SECTION("a count the bytes cannot hold, however large") {
    Bytes bytes = original;
    set_u64(bytes, 8, 3);
    CHECK(corrupt_reason(bytes) == "count larger than the payload can hold");
    set_u64(bytes, 8, UINT64_MAX);
    CHECK(corrupt_reason(bytes) == "count larger than the payload can hold");
  }
  SECTION("an entry cut inside its key_length once the count passed") {
    IdempotencyIndex two;
    REQUIRE(add(two, std::string(100, 'k'), 1));
    REQUIRE(add(two, "k", 2));
    Bytes bytes = two.encode(2);
    bytes.resize(kHeaderBytes + entry_bytes(100) + 2);  // 190 bytes left: room for 2 by count
    CHECK(corrupt_reason(bytes) == "truncated entry");
  }
  SECTION("a key length past the end") {
    Bytes bytes = original;
    set_u32(bytes, second, 6 + 85);
    CHECK(corrupt_reason(bytes) == "key length past the end");
  }
  SECTION("a zero-length key") {
    Bytes bytes = original;
    set_u32(bytes, kHeaderBytes, 0);
    CHECK(corrupt_reason(bytes) == "zero-length key");
  }
  SECTION("a key longer than 1024 bytes") {
    IdempotencyIndex big;
    REQUIRE(add(big, std::string(1024, 'k'), 1));
    Bytes bytes = big.encode(1);
    REQUIRE(IdempotencyIndex::decode(bytes, kPath).ok());
    set_u32(bytes, kHeaderBytes, 1025);
    bytes.insert(bytes.begin() + kHeaderBytes + 4, std::byte{'k'});
    CHECK(corrupt_reason(bytes) == "key longer than 1024 bytes");
  }
  SECTION("sequences not strictly increasing") {
    Bytes bytes = original;
    set_u64(bytes, second + sequence_at(6), 5);
    CHECK(corrupt_reason(bytes) == "sequences not strictly increasing");
    set_u64(bytes, second + sequence_at(6), 4);
    CHECK(corrupt_reason(bytes) == "sequences not strictly increasing");
    Bytes zero = original;
    set_u64(zero, kHeaderBytes + sequence_at(5), 0);
    CHECK(corrupt_reason(zero) == "sequences not strictly increasing");
  }
  SECTION("an entry above covered_through") {
    Bytes bytes = original;
    set_u64(bytes, 0, 7);
    CHECK(corrupt_reason(bytes) == "an entry above covered_through");
    set_u64(bytes, 0, 8);
    CHECK(IdempotencyIndex::decode(bytes, kPath).ok());
  }
  SECTION("a duplicate key") {
    IdempotencyIndex twins;
    REQUIRE(add(twins, "same-a", 1));
    REQUIRE(add(twins, "same-b", 2));
    Bytes bytes = twins.encode(2);
    bytes[kHeaderBytes + entry_bytes(6) + 4 + 5] = std::byte{'a'};  // "same-b" -> "same-a"
    CHECK(corrupt_reason(bytes) == "duplicate key");
  }
  SECTION("trailing bytes") {
    Bytes bytes = original;
    bytes.push_back(std::byte{0});
    CHECK(corrupt_reason(bytes) == "trailing bytes after the last entry");
    Bytes empty = IdempotencyIndex().encode(0);
    empty.resize(kHeaderBytes + 88, std::byte{0});  // zeros where no entry was counted
    CHECK(corrupt_reason(empty) == "trailing bytes after the last entry");
  }
  SECTION("a fingerprint edit is not detectable here (the envelope's checksum catches it)") {
    Bytes bytes = original;
    bytes[kHeaderBytes + fingerprint_at(5)] ^= std::byte{1};
    auto decoded = IdempotencyIndex::decode(bytes, kPath);
    REQUIRE(decoded.ok());
    CHECK(decoded->first.find("first")->fingerprint != fingerprint_of(5));
    Bytes sidecar = keel::format::encode_sidecar(keel::format::SidecarKind::Idempotency,
                                                 keel::index::kIdempotencyVersion, original);
    sidecar[keel::format::kSidecarHeaderSize + kHeaderBytes + fingerprint_at(5)] ^= std::byte{1};
    auto unwrapped = keel::format::decode_sidecar(sidecar, keel::format::SidecarKind::Idempotency,
                                                  keel::index::kIdempotencyVersion, kPath);
    REQUIRE_FALSE(unwrapped.ok());
    CHECK(unwrapped.error().field_string("reason") == "checksum mismatch");
  }
}

// Keys whose hashes collide (a deliberately poor hash: three values) behave exactly like keys that
// do not: random adds, finds, cancels and expiry against a plain map, default hash as the control.
TEST_CASE("colliding key hashes and the wrap of 32-bit positions change no answer",
          "[idempotency]") {
  IdempotencyIndex::HashFunction poor = [](std::string_view key) -> uint64_t {
    return key.size() % 3;
  };
  IdempotencyIndex::HashFunction good = [](std::string_view key) -> uint64_t {
    return std::hash<std::string_view>{}(key);
  };
  const uint64_t wrap = uint64_t{1} << 32;
  for (auto [hash, first_position] : {std::pair{poor, uint64_t{0}}, std::pair{good, uint64_t{0}},
                                      std::pair{poor, wrap - 700}, std::pair{good, wrap - 700}}) {
    INFO("first position " << first_position);
    IdempotencyIndex index(hash, first_position);
    std::vector<std::pair<uint64_t, std::string>> model;  // kept (sequence, key), in order
    std::mt19937_64 rng(11);
    uint64_t sequence = 0;
    auto model_find = [&](const std::string& key) -> const std::pair<uint64_t, std::string>* {
      for (const auto& kept : model) {
        if (kept.second == key) return &kept;
      }
      return nullptr;
    };
    for (int step = 0; step < 4000; ++step) {
      std::string key = "k" + std::to_string(rng() % 60) + std::string(rng() % 4, 'x');
      switch (rng() % 8) {
        case 0:  // cancel the newest few
          if (!model.empty()) {
            size_t back = rng() % std::min<size_t>(model.size(), 3);
            uint64_t from = model[model.size() - 1 - back].first;
            size_t removed = index.remove_from(from);
            size_t expected = 0;
            while (!model.empty() && model.back().first >= from) model.pop_back(), ++expected;
            REQUIRE(removed == expected);
            sequence = from - 1;
          }
          break;
        case 1: {  // expire by events (time window already past)
          size_t expired = index.expire(sequence + 1, 10'000, 20, 0);
          size_t expected = 0;
          while (!model.empty() && sequence + 1 - model.front().first > 20) {
            model.erase(model.begin());
            ++expected;
          }
          REQUIRE(expired == expected);
          break;
        }
        default: {
          ++sequence;
          bool added = index.add(key, fingerprint_of(sequence), receipt_at(sequence));
          INFO("step " << step << " key " << key << " poor hash " << (hash == poor));
          REQUIRE(added == (model_find(key) == nullptr));
          if (added) {
            model.emplace_back(sequence, key);
          } else {
            --sequence;  // not used
          }
        }
      }
      REQUIRE(index.size() == model.size());
      std::string probe = "k" + std::to_string(rng() % 60) + std::string(rng() % 4, 'x');
      const KeyEntry* found = index.find(probe);
      const auto* expected = model_find(probe);
      REQUIRE((found != nullptr) == (expected != nullptr));
      if (found != nullptr) CHECK(found->receipt.sequence == expected->first);
    }
    for (const auto& [kept_sequence, key] : model) {
      const KeyEntry* found = index.find(key);
      REQUIRE(found != nullptr);
      CHECK(found->receipt.sequence == kept_sequence);
    }
  }
}

TEST_CASE("errors show printable keys quoted, others in hex, long ones cut", "[idempotency]") {
  using keel::index::printable_key;
  CHECK(printable_key("pay-7") == "\"pay-7\"");
  CHECK(printable_key(std::string("\x00\xff", 2)) == "0x00ff");
  std::string long_key(100, 'k');
  CHECK(printable_key(long_key) == "\"" + std::string(64, 'k') + "\"...");
}
