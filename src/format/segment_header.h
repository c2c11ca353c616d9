// Segment header encode/decode (segments/FORMAT.md "Segment header"): 64 bytes at offset 0.
//
//   0  8  magic "KEELSEG\0"      32  8  first_sequence
//   8  4  format_version (1-3)   40 16  reserved, zero
//  12  4  header_size (64)       56  8  checksum: XXH3-64 of bytes [0, 56)
//  16  8  segment_id
//  24  8  epoch (of the writer that created the segment)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "format/format_constants.h"

namespace keel::format {

struct SegmentHeader {
  uint64_t segment_id = 0;
  uint64_t epoch = 0;
  uint64_t first_sequence = 0;
  // 2 for every segment this build creates; 1 for a segment an older build created, which holds
  // only msgpack event bodies (FORMAT.md 3).
  uint32_t format_version = kFormatVersion;
};

std::array<std::byte, kSegmentHeaderSize> encode_segment_header(const SegmentHeader& header);

enum class HeaderDecode : uint8_t {
  Ok,
  Missing,  // shorter than a header, or all zero: a segment created and never written
  BadMagic,
  BadChecksum,
  UnsupportedVersion,  // a version this build does not know (newer)
  BadField,            // version 0, header size, reserved bytes or segment id 0
};
const char* header_decode_name(HeaderDecode result);

// `found_version` receives the stored version when the result is UnsupportedVersion.
HeaderDecode decode_segment_header(std::span<const std::byte> bytes, SegmentHeader& out,
                                   uint32_t* found_version);

}  // namespace keel::format
