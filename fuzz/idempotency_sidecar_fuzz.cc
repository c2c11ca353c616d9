// libFuzzer target: the IDEMPOTENCY sidecar (src/index/idempotency_index.cc, segments/FORMAT.md
// 8.7). Each input is decoded three ways: as the payload alone (IdempotencyIndex::decode), as the
// payload under a valid envelope (encode_sidecar, then decode_sidecar and decode: the envelope must
// change nothing), and as a whole IDEMPOTENCY file (decode_sidecar, which mostly stops at the
// checksum, then decode).
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - a failed decode is CorruptSidecar with the path and a reason; the payload alone and the payload
//   under an envelope give the same outcome and reason;
// - a decoded index re-encodes (at its covered_through) to the same bytes;
// - it holds exactly the payload's entries, read here independently of the decoder: each key finds
//   its entry, and adding it again is a no-op;
// - remove_from and expire forget what they say (oldest first, newest first) and leave an index
//   whose payload decodes again.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/byte_order.h"
#include "format/sidecar.h"
#include "fuzz_support.h"
#include "index/idempotency_index.h"

namespace keel::fuzz {
namespace {

using Bytes = std::vector<std::byte>;
using index::IdempotencyIndex;

const std::string kPath = "/fuzz/IDEMPOTENCY";

struct Entry {
  std::string_view key;
  index::KeyEntry value;
};

// The entries of a payload the decoder accepted, read by offsets (FORMAT.md 8.7).
std::vector<Entry> entries_of(std::span<const std::byte> payload) {
  std::vector<Entry> entries;
  const std::byte* p = payload.data();
  const uint64_t count = format::load_u64(p + 8);
  size_t at = 16;
  for (uint64_t i = 0; i < count; ++i) {
    Entry e;
    const uint32_t length = format::load_u32(p + at);
    e.key = std::string_view(reinterpret_cast<const char*>(p + at + 4), length);
    const std::byte* f = p + at + 4 + length;
    auto u64 = [&](size_t offset) { return format::load_u64(f + offset); };
    e.value.fingerprint = {u64(0), u64(8)};
    e.value.receipt.event_id = {u64(16), u64(24)};
    e.value.receipt.epoch = u64(32);
    e.value.receipt.sequence = u64(40);
    e.value.receipt.entity_clock = u64(48);
    e.value.receipt.hlc = {u64(56), format::load_u32(f + 64)};
    e.value.receipt.chained_hash = {u64(68), u64(76)};
    entries.push_back(e);
    at += 4 + length + 84;
  }
  check(at == payload.size(), "a decoded payload is not exactly its entries");
  return entries;
}

void check_reencodes(const IdempotencyIndex& index, uint64_t covered_through) {
  auto again = IdempotencyIndex::decode(index.encode(covered_through), kPath);
  check(again.ok(), "an index's own payload does not decode");
  check(again->first.size() == index.size(), "an index's own payload decodes to another size");
}

void check_decoded(IdempotencyIndex& index, uint64_t covered_through,
                   std::span<const std::byte> payload) {
  check(index.encode(covered_through) == Bytes(payload.begin(), payload.end()),
        "a decoded payload does not re-encode to the same bytes");
  std::vector<Entry> entries = entries_of(payload);
  check(index.size() == entries.size(), "the index does not hold every entry");
  check(index.last_sequence() == (entries.empty() ? 0 : entries.back().value.receipt.sequence),
        "last_sequence is not the newest entry's");
  for (const Entry& e : entries) {
    const index::KeyEntry* found = index.find(e.key);
    check(found != nullptr && *found == e.value, "a key does not find its entry");
    check(index.add(e.key, e.value.fingerprint, e.value.receipt), "a replayed key is refused");
  }
  check(index.size() == entries.size(), "a replayed key was added twice");
  (void)index.memory_bytes();
  if (entries.empty()) return;

  // Newest first: a cut in the middle keeps exactly the entries below it.
  const size_t keep = entries.size() / 2;
  const uint64_t cut = entries[keep].value.receipt.sequence;
  check(index.remove_from(cut) == entries.size() - keep, "remove_from forgot another number");
  for (size_t i = 0; i < entries.size(); ++i) {
    check((index.find(entries[i].key) != nullptr) == (i < keep), "remove_from forgot another key");
  }
  check_reencodes(index, covered_through);

  // Oldest first, at the first entry's wall time + 1 with no windows: at least that one goes, and
  // what goes is a prefix.
  const uint64_t now = entries.front().value.receipt.hlc.wall_ms + 1;
  if (keep == 0 || now == 0) return;
  const size_t expired = index.expire(UINT64_MAX, now, 0, 0);
  check(expired >= 1 && expired <= keep, "expire did not forget the oldest key past both windows");
  for (size_t i = 0; i < keep; ++i) {
    check((index.find(entries[i].key) != nullptr) == (i >= expired), "expire skipped a key");
  }
  check_reencodes(index, covered_through);
}

// Decodes `payload`; returns the error's reason, or "" when it decoded (then checked).
std::string decode_payload(std::span<const std::byte> payload) {
  auto decoded = IdempotencyIndex::decode(payload, kPath);
  if (!decoded.ok()) {
    const StoreError& error = decoded.error();
    check(error.code() == ErrorCode::CorruptSidecar, "a payload failed as other than corrupt");
    check(error.field_string("path") == kPath, "a corrupt payload does not name its path");
    std::string reason = error.field_string("reason").value_or("");
    check(!reason.empty(), "a corrupt payload without a reason");
    return reason;
  }
  check_decoded(decoded->first, decoded->second, payload);
  return "";
}

std::string decode_file(std::span<const std::byte> file) {
  auto payload = format::decode_sidecar(file, format::SidecarKind::Idempotency,
                                        index::kIdempotencyVersion, kPath);
  if (!payload.ok()) {
    check(payload.error().is(ErrorCode::CorruptSidecar) ||
              payload.error().is(ErrorCode::UnsupportedVersion),
          "a sidecar failed as other than corrupt or unsupported");
    return "(envelope) " + payload.error().field_string("reason").value_or("version");
  }
  return decode_payload(*payload);
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keel;
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  const std::string alone = fuzz::decode_payload(input);
  if (size <= format::kSidecarPayloadMax) {
    std::vector<std::byte> wrapped =
        format::encode_sidecar(format::SidecarKind::Idempotency, index::kIdempotencyVersion, input);
    fuzz::check(fuzz::decode_file(wrapped) == alone, "the envelope changed the payload's outcome");
  }
  (void)fuzz::decode_file(input);
  return 0;
}
