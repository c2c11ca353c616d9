// Frame encode and decode (segments/FORMAT.md "Frames"). A frame has one of two forms, told apart
// by its flags byte: the padded form of format versions 1 and 2, and the compact form of version 3.
// The compact form stores the same fields, each in the fewest bytes that hold it.
//
//   padded (flags 0)                          compact (flags 1)
//   offset size field                         offset size field
//   0      8    checksum                      0      8    checksum
//   8      4    body_length                   8      4    body_length
//   12     1    record_type 1..6              12     1    record_type 1..6
//   13     1    flags = 0                     13     1    flags = 1
//   14     2    reserved = 0                  14     1    widths: bits 0-2 sequence bytes - 1,
//   16     8    sequence                                   bits 3-5 durable_through bytes - 1,
//   24     8    durable_through                            bits 6-7 epoch bytes as 1, 2, 4, 8
//   32     8    epoch                         15     s    sequence         little-endian
//   40     n    body                          .      d    durable_through  little-endian
//   40+n   p    zero padding to 8             .      e    epoch            little-endian
//                                             .      n    body (no padding)
//
// The checksum is XXH3-64 with the segment id as seed over every byte after it up to the body's
// end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "format/format_constants.h"

namespace keel::format {

struct FrameHeader {
  RecordType type = RecordType::Event;
  uint64_t sequence = 0;
  uint64_t durable_through = 0;
  uint64_t epoch = 0;
};

// Which form a writer uses is the segment's: padded in segments of format versions 1 and 2,
// compact from version 3 on (frame_form_of).
enum class FrameForm : uint8_t { Padded, Compact };
inline constexpr FrameForm frame_form_of(uint32_t segment_format_version) {
  return segment_format_version >= kCompactFramesVersion ? FrameForm::Compact : FrameForm::Padded;
}

// Where a frame being encoded starts and where its body starts (begin_frame).
struct FrameStart {
  size_t start = 0;
  size_t body = 0;
};

// Appends the frame's header to `out` (its checksum and body length left for finish_frame) and
// returns where it and its body start; the caller then appends the body and calls finish_frame.
// A padded frame requires out.size() to be a multiple of 8.
FrameStart begin_frame(std::vector<std::byte>& out, const FrameHeader& header, FrameForm form);
// Fills in the body length of the frame begun at `at` (its body is everything appended since),
// computes the checksum and, for a padded frame, appends the zero padding. Returns the frame's
// total size.
size_t finish_frame(std::vector<std::byte>& out, FrameStart at, uint64_t segment_id);

enum class FrameDecode : uint8_t {
  Ok,
  Truncated,    // fewer bytes than the header or than header + body + padding
  ZeroHeader,   // the header is all zero bytes (preallocated, never-written space)
  BadHeader,    // record type 0 or unknown, unknown flags, reserved bytes non-zero, or a length
                // above the maximum
  BadChecksum,  // the checksum does not match (includes bytes of another segment)
  BadPadding,   // non-zero padding after the body
};
const char* frame_decode_name(FrameDecode result);

struct DecodedFrame {
  FrameHeader header;
  std::span<const std::byte> body;
  size_t size = 0;  // header + body + padding
};

// Decodes the frame at the start of `bytes` (which may extend past it), in either form. Never
// reads outside `bytes`; `out` is set only when the result is Ok.
FrameDecode decode_frame(std::span<const std::byte> bytes, uint64_t segment_id, DecodedFrame& out);

// The header checks of decode_frame without the checksum (cheap: recovery's search for valid
// frames after damage filters candidates with it before hashing). Ok means the header is
// plausible and header + body + padding (`size`) fit in `bytes`; `out` is then set. Truncated
// with a non-zero `size` means the header is whole and plausible but the frame needs `size` bytes.
FrameDecode decode_frame_header(std::span<const std::byte> bytes, FrameHeader& out, uint64_t& size);

// The checksum the frame at the start of `bytes` should carry (what decode_frame compares with its
// first 8 bytes), or nullopt when decode_frame_header does not find a whole frame there. For tools
// and tests that edit a frame's bytes and seal it again.
std::optional<uint64_t> frame_checksum(std::span<const std::byte> bytes, uint64_t segment_id);

}  // namespace keel::format
