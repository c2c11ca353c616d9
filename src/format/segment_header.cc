#include "format/segment_header.h"

#include <algorithm>
#include <cstring>

#include "format/byte_order.h"
#include "format/checksum.h"

namespace keel::format {

std::array<std::byte, kSegmentHeaderSize> encode_segment_header(const SegmentHeader& header) {
  std::array<std::byte, kSegmentHeaderSize> bytes{};
  std::memcpy(bytes.data(), kSegmentMagic, sizeof kSegmentMagic);
  store_u32(bytes.data() + 8, header.format_version);
  store_u32(bytes.data() + 12, kSegmentHeaderSize);
  store_u64(bytes.data() + 16, header.segment_id);
  store_u64(bytes.data() + 24, header.epoch);
  store_u64(bytes.data() + 32, header.first_sequence);
  store_u64(bytes.data() + kSegmentHeaderChecksumOffset,
            checksum64(std::span(bytes.data(), kSegmentHeaderChecksumOffset)));
  return bytes;
}

const char* header_decode_name(HeaderDecode result) {
  switch (result) {
    case HeaderDecode::Ok:
      return "ok";
    case HeaderDecode::Missing:
      return "missing or zero header";
    case HeaderDecode::BadMagic:
      return "bad magic";
    case HeaderDecode::BadChecksum:
      return "bad header checksum";
    case HeaderDecode::UnsupportedVersion:
      return "unsupported format version";
    case HeaderDecode::BadField:
      return "bad header field";
  }
  return "unknown";
}

HeaderDecode decode_segment_header(std::span<const std::byte> bytes, SegmentHeader& out,
                                   uint32_t* found_version) {
  auto zero = [](std::byte b) { return b == std::byte{0}; };
  if (bytes.size() < kSegmentHeaderSize) {
    return std::all_of(bytes.begin(), bytes.end(), zero) ? HeaderDecode::Missing
                                                         : HeaderDecode::BadMagic;
  }
  const std::byte* h = bytes.data();
  if (std::all_of(h, h + kSegmentHeaderSize, zero)) return HeaderDecode::Missing;
  if (std::memcmp(h, kSegmentMagic, sizeof kSegmentMagic) != 0) return HeaderDecode::BadMagic;
  if (checksum64(std::span(h, kSegmentHeaderChecksumOffset)) !=
      load_u64(h + kSegmentHeaderChecksumOffset)) {
    return HeaderDecode::BadChecksum;
  }
  uint32_t version = load_u32(h + 8);
  if (version == 0 || version > kFormatVersion) {
    if (found_version != nullptr) *found_version = version;
    return version > kFormatVersion ? HeaderDecode::UnsupportedVersion : HeaderDecode::BadField;
  }
  if (load_u32(h + 12) != kSegmentHeaderSize || load_u64(h + 40) != 0 || load_u64(h + 48) != 0 ||
      load_u64(h + 16) == 0) {
    return HeaderDecode::BadField;
  }
  out.format_version = version;
  out.segment_id = load_u64(h + 16);
  out.epoch = load_u64(h + 24);
  out.first_sequence = load_u64(h + 32);
  return HeaderDecode::Ok;
}

}  // namespace keel::format
