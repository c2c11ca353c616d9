// Frame encode and decode (segments/FORMAT.md "Frames").
//
//   offset size field
//   0      8    checksum        XXH3-64, seed = segment id, over bytes [8, 40 + body_length)
//   8      4    body_length
//   12     1    record_type     1..6, never 0
//   13     1    flags           0
//   14     2    reserved        0
//   16     8    sequence
//   24     8    durable_through
//   32     8    epoch
//   40     n    body
//   40+n   p    zero padding to a multiple of 8
#pragma once

#include <cstddef>
#include <cstdint>
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

// Appends the frame's header placeholder to `out` and returns the frame's start offset; the caller
// then appends the body and calls finish_frame. Requires out.size() to be a multiple of 8.
size_t begin_frame(std::vector<std::byte>& out);
// Fills in the header of the frame that starts at `start` (its body is everything appended since),
// computes the checksum and appends the zero padding. Returns the frame's total size.
size_t finish_frame(std::vector<std::byte>& out, size_t start, const FrameHeader& header,
                    uint64_t segment_id);

enum class FrameDecode : uint8_t {
  Ok,
  Truncated,    // fewer bytes than the header or than header + body + padding
  ZeroHeader,   // the header is all zero bytes (preallocated, never-written space)
  BadHeader,    // record type 0 or unknown, flags or reserved non-zero, length above the maximum
  BadChecksum,  // the checksum does not match (includes bytes of another segment)
  BadPadding,   // non-zero padding after the body
};
const char* frame_decode_name(FrameDecode result);

struct DecodedFrame {
  FrameHeader header;
  std::span<const std::byte> body;
  size_t size = 0;  // header + body + padding
};

// Decodes the frame at the start of `bytes` (which may extend past it). Never reads outside
// `bytes`; `out` is set only when the result is Ok.
FrameDecode decode_frame(std::span<const std::byte> bytes, uint64_t segment_id, DecodedFrame& out);

// The header checks of decode_frame without the checksum (cheap: recovery's search for valid
// frames after damage filters candidates with it before hashing). Ok means the header is
// plausible and header + body + padding (`size`) fit in `bytes`; `out` is then set.
FrameDecode decode_frame_header(std::span<const std::byte> bytes, FrameHeader& out, uint64_t& size);

}  // namespace keel::format
