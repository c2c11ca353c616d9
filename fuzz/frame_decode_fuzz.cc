// libFuzzer target: every decoder of the format over arbitrary bytes (decode_frame,
// decode_record_events, record_event_count, decode_system_record, decode_segment_header,
// decode_sidecar). Each decoder runs twice: on the input as is, and on a copy whose checksum the
// harness recomputes, so mutations reach the checks behind the checksum instead of dying at it.
//
// Invariants checked beyond "no crash, no sanitizer report, no allocation above the limit":
// - a frame whose checksum was fixed never decodes as BadChecksum;
// - record_event_count agrees with the number of events decode_record_events delivers;
// - every event body our reader accepts re-encodes to the same fields and is standard msgpack.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/segment_header.h"
#include "format/sidecar.h"
#include "fuzz_support.h"

namespace keel::fuzz {
namespace {

using format::DecodedFrame;
using format::RecordType;

constexpr uint64_t kSegmentId = 1;

void check_events(const DecodedFrame& frame) {
  const char* count_error = nullptr;
  uint32_t declared = format::record_event_count(frame, &count_error);
  uint32_t delivered = 0;
  const char* error =
      format::decode_record_events(frame, [&](uint32_t index, const format::EventBody& event) {
        check(index == delivered, "events delivered out of order");
        ++delivered;
        check_reencode(event);
        check_body_form(event);
      });
  if (error == nullptr) {
    check(count_error == nullptr && declared == delivered,
          "record_event_count disagrees with decode_record_events");
  }
}

void check_decoded_frame(const DecodedFrame& frame) {
  if (format::is_system_record(frame.header.type)) {
    format::SystemRecord record;
    (void)format::decode_system_record(frame, record);
  } else {
    check_events(frame);
  }
}

// The body decoders straight on the input, as the body of every record type.
void decode_as_bodies(std::span<const std::byte> bytes) {
  for (uint8_t type = 1; type <= format::kRecordTypeMax; ++type) {
    DecodedFrame frame;
    frame.header.type = static_cast<RecordType>(type);
    frame.body = bytes;
    frame.size = bytes.size();
    check_decoded_frame(frame);
  }
}

void decode_frames(std::span<const std::byte> bytes) {
  DecodedFrame frame;
  if (format::decode_frame(bytes, kSegmentId, frame) == format::FrameDecode::Ok) {
    const bool padded = bytes[format::kFrameFlagsOffset] == std::byte{0};
    check(frame.size <= bytes.size() && (!padded || frame.size % format::kFrameAlignment == 0),
          "decoded frame size out of bounds or a padded frame unaligned");
    check(frame.body.data() >= bytes.data() + format::kCompactFrameFixedSize &&
              frame.body.data() + frame.body.size() <= bytes.data() + frame.size,
          "decoded body outside its frame");
    check_decoded_frame(frame);
  }
  // The same bytes with the checksum they should carry: the header and body checks get to run.
  auto sum = format::frame_checksum(bytes, kSegmentId);
  if (!sum) return;
  std::vector<std::byte> fixed(bytes.begin(), bytes.end());
  format::store_u64(fixed.data() + format::kFrameChecksumOffset, *sum);
  auto result = format::decode_frame(fixed, kSegmentId, frame);
  check(result != format::FrameDecode::BadChecksum, "fixed checksum still fails");
  if (result == format::FrameDecode::Ok) check_decoded_frame(frame);
}

void decode_headers(std::span<const std::byte> bytes) {
  format::SegmentHeader header;
  uint32_t version = 0;
  (void)format::decode_segment_header(bytes, header, &version);
  if (bytes.size() < format::kSegmentHeaderSize) return;
  std::vector<std::byte> fixed(bytes.begin(), bytes.end());
  format::store_u64(
      fixed.data() + format::kSegmentHeaderChecksumOffset,
      format::checksum64(std::span(fixed.data(), format::kSegmentHeaderChecksumOffset)));
  auto result = format::decode_segment_header(fixed, header, &version);
  check(result != format::HeaderDecode::BadChecksum, "fixed header checksum still fails");
}

void decode_sidecars(std::span<const std::byte> bytes) {
  std::vector<std::byte> fixed(bytes.begin(), bytes.end());
  if (fixed.size() >= format::kSidecarHeaderSize) {
    format::store_u64(fixed.data() + 8, format::checksum64(std::span(fixed).subspan(16)));
  }
  for (uint32_t kind = 1; kind <= 6; ++kind) {
    for (std::span<const std::byte> input : {bytes, std::span<const std::byte>(fixed)}) {
      auto payload =
          format::decode_sidecar(input, static_cast<format::SidecarKind>(kind), 1, "fuzz");
      if (payload.ok()) {
        check(payload->data() >= input.data() &&
                  payload->data() + payload->size() <= input.data() + input.size(),
              "sidecar payload outside the input");
      } else {
        (void)payload.error().to_string();  // the error message renders for any input
      }
    }
  }
}

}  // namespace

void decode_input(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  decode_frames(bytes);
  decode_as_bodies(bytes);
  decode_headers(bytes);
  decode_sidecars(bytes);
}

}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::fuzz::decode_input(data, size);
  return 0;
}
