// libFuzzer target: the two files that name a durable end of the log, END (src/log/log_end.cc,
// segments/FORMAT.md 8.8) and SYNCED (src/log/synced_point.cc, 8.10). Each input is decoded as an
// END payload alone (decode_log_end) and as a whole END file (decode_sidecar, which mostly stops at
// the checksum, then decode_log_end); the payload is also wrapped in a valid envelope, which must
// change nothing. Each input is also decoded as a whole SYNCED file, and its first 24 bytes as a
// SYNCED payload in a valid envelope.
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - a refused payload has a reason; the payload alone and under an envelope give the same outcome;
// - an accepted payload holds what FORMAT.md 8.8 allows (non-zero epoch, segment id and sequence,
//   an offset past the segment header, every loss from an epoch no later than the file's and
//   losing at least one sequence) and re-encodes to exactly the input: every byte is a field;
// - a SYNCED point is accepted only whole (exactly 56 bytes) with a non-zero epoch and segment id
//   and an offset past the segment header, and re-encodes to exactly the file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "format/format_constants.h"
#include "format/sidecar.h"
#include "fuzz_support.h"
#include "log/log_end.h"
#include "log/synced_point.h"

namespace keel::fuzz {
namespace {

void check_payload(std::span<const std::byte> payload) {
  log::LogEnd end;
  const char* problem = log::decode_log_end(payload, end);
  std::vector<std::byte> wrapped =
      format::encode_sidecar(format::SidecarKind::LogEnd, log::kLogEndVersion, payload);
  auto unwrapped = format::decode_sidecar(wrapped, format::SidecarKind::LogEnd, log::kLogEndVersion,
                                          "/fuzz/END");
  check(unwrapped.ok(), "a valid envelope decodes");
  log::LogEnd again;
  const char* problem_again = log::decode_log_end(*unwrapped, again);
  check((problem == nullptr) == (problem_again == nullptr), "the envelope changes the outcome");
  if (problem != nullptr) return;
  check(end == again, "the envelope changes the content");
  check(end.epoch != 0 && end.segment_id != 0 && end.next_sequence != 0 &&
            end.offset >= format::kSegmentHeaderSize,
        "accepted a zero field or an offset inside the header");
  for (const log::AcceptedLoss& loss : end.losses) {
    check(loss.epoch != 0 && loss.epoch <= end.epoch, "accepted a loss from a later epoch");
    check(loss.referenced_next_sequence > loss.recovered_next_sequence,
          "accepted a loss of no sequence");
  }
  std::vector<std::byte> encoded = log::encode_log_end(end);
  check(std::span<const std::byte>(encoded).size() == payload.size() &&
            std::equal(encoded.begin(), encoded.end(), payload.begin()),
        "an accepted payload does not re-encode to itself");
}

void check_synced_point(std::span<const std::byte> file) {
  std::optional<log::SyncedPoint> point = log::decode_synced_point(file);
  if (!point) return;
  check(point->epoch != 0 && point->segment_id != 0 &&
            point->offset >= format::kSegmentHeaderSize,
        "accepted a SYNCED point with a zero field or an offset inside the header");
  std::vector<std::byte> encoded = log::encode_synced_point(*point);
  check(encoded.size() == file.size() && std::equal(encoded.begin(), encoded.end(), file.begin()),
        "an accepted SYNCED point does not re-encode to itself");
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  keel::fuzz::check_payload(bytes);
  auto payload = keel::format::decode_sidecar(bytes, keel::format::SidecarKind::LogEnd,
                                              keel::log::kLogEndVersion, "/fuzz/END");
  if (payload.ok()) keel::fuzz::check_payload(*payload);
  keel::fuzz::check_synced_point(bytes);
  if (size >= keel::log::kSyncedPointPayloadBytes) {
    keel::fuzz::check_synced_point(keel::format::encode_sidecar(
        keel::format::SidecarKind::SyncedPoint, keel::log::kSyncedPointVersion,
        bytes.first(keel::log::kSyncedPointPayloadBytes)));
  }
  return 0;
}
