// libFuzzer target: a durable consumer's cursor file (src/log/consumer_file.cc, segments/FORMAT.md
// 8.9). Each input is decoded as the payload alone (decode_consumer_cursor) and as a whole
// CONSUMER file (decode_sidecar, which mostly stops at the checksum, then the payload); the payload
// is also wrapped in a valid envelope, which must change nothing.
//
// Each payload is decoded as version 1 and as version 2 (the current one).
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - a refused payload has a reason; the payload alone and under an envelope give the same outcome;
// - an accepted payload holds what FORMAT.md 8.9 allows (a non-zero epoch, a valid consumer name,
//   state and filter within their limits, a recorded filter never empty) and, as version 2,
//   re-encodes to exactly the input: every byte is a field. A version 1 payload re-encoded reads
//   back as the same cursor.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "format/format_constants.h"
#include "format/sidecar.h"
#include "fuzz_support.h"
#include "log/consumer_file.h"

namespace keel::fuzz {
namespace {

void check_payload(std::span<const std::byte> payload, uint32_t version) {
  log::ConsumerCursor cursor;
  const char* problem = log::decode_consumer_cursor(payload, version, cursor);
  std::vector<std::byte> wrapped =
      format::encode_sidecar(format::SidecarKind::Cursor, version, payload);
  uint32_t unwrapped_version = 0;
  auto unwrapped =
      format::decode_sidecar(wrapped, format::SidecarKind::Cursor, log::kConsumerFileVersion,
                             "/fuzz/CONSUMER.x", &unwrapped_version);
  check(unwrapped.ok() && unwrapped_version == version, "a valid envelope decodes");
  log::ConsumerCursor again;
  const char* problem_again = log::decode_consumer_cursor(*unwrapped, version, again);
  check((problem == nullptr) == (problem_again == nullptr), "the envelope changes the outcome");
  if (problem != nullptr) return;
  check(cursor == again, "the envelope changes the content");
  check(cursor.epoch != 0, "accepted a zero epoch");
  check(log::check_consumer_name(cursor.name) == nullptr, "accepted a bad consumer name");
  check(cursor.state.size() <= log::kConsumerStateMax, "accepted state above the limit");
  check(!cursor.filter ||
            (!cursor.filter->empty() && cursor.filter->size() <= log::kConsumerFilterMax),
        "accepted a filter out of bounds");
  std::vector<std::byte> encoded = log::encode_consumer_cursor(cursor);
  if (version == log::kConsumerFileVersion) {
    check(encoded.size() == payload.size() &&
              std::equal(encoded.begin(), encoded.end(), payload.begin()),
          "an accepted payload does not re-encode to itself");
  } else {
    log::ConsumerCursor current;
    check(log::decode_consumer_cursor(encoded, log::kConsumerFileVersion, current) == nullptr &&
              current == cursor,
          "a version 1 cursor does not survive re-encoding");
  }
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  keel::fuzz::check_payload(bytes, 1);
  keel::fuzz::check_payload(bytes, keel::log::kConsumerFileVersion);
  uint32_t version = 0;
  auto payload =
      keel::format::decode_sidecar(bytes, keel::format::SidecarKind::Cursor,
                                   keel::log::kConsumerFileVersion, "/fuzz/CONSUMER.x", &version);
  if (payload.ok()) keel::fuzz::check_payload(*payload, version);
  return 0;
}
