// libFuzzer target: a durable consumer's cursor file (src/log/consumer_file.cc, segments/FORMAT.md
// 8.9). Each input is decoded as the payload alone (decode_consumer_cursor) and as a whole
// CONSUMER file (decode_sidecar, which mostly stops at the checksum, then the payload); the payload
// is also wrapped in a valid envelope, which must change nothing.
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - a refused payload has a reason; the payload alone and under an envelope give the same outcome;
// - an accepted payload holds what FORMAT.md 8.9 allows (a non-zero epoch, a valid consumer name,
//   state within the limit) and re-encodes to exactly the input: every byte is a field.
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

void check_payload(std::span<const std::byte> payload) {
  log::ConsumerCursor cursor;
  const char* problem = log::decode_consumer_cursor(payload, cursor);
  std::vector<std::byte> wrapped = format::encode_sidecar(format::SidecarKind::Cursor,
                                                          log::kConsumerFileVersion, payload);
  auto unwrapped = format::decode_sidecar(wrapped, format::SidecarKind::Cursor,
                                          log::kConsumerFileVersion, "/fuzz/CONSUMER.x");
  check(unwrapped.ok(), "a valid envelope decodes");
  log::ConsumerCursor again;
  const char* problem_again = log::decode_consumer_cursor(*unwrapped, again);
  check((problem == nullptr) == (problem_again == nullptr), "the envelope changes the outcome");
  if (problem != nullptr) return;
  check(cursor == again, "the envelope changes the content");
  check(cursor.epoch != 0, "accepted a zero epoch");
  check(log::check_consumer_name(cursor.name) == nullptr, "accepted a bad consumer name");
  check(cursor.state.size() <= log::kConsumerStateMax, "accepted state above the limit");
  std::vector<std::byte> encoded = log::encode_consumer_cursor(cursor);
  check(encoded.size() == payload.size() &&
            std::equal(encoded.begin(), encoded.end(), payload.begin()),
        "an accepted payload does not re-encode to itself");
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  keel::fuzz::check_payload(bytes);
  auto payload = keel::format::decode_sidecar(bytes, keel::format::SidecarKind::Cursor,
                                              keel::log::kConsumerFileVersion, "/fuzz/CONSUMER.x");
  if (payload.ok()) keel::fuzz::check_payload(*payload);
  return 0;
}
