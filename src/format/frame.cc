#include "format/frame.h"

#include <algorithm>
#include <cassert>

#include "format/byte_order.h"
#include "format/checksum.h"

namespace keel::format {

size_t begin_frame(std::vector<std::byte>& out) {
  assert(out.size() % kFrameAlignment == 0);
  size_t start = out.size();
  out.resize(start + kFrameHeaderSize);
  return start;
}

size_t finish_frame(std::vector<std::byte>& out, size_t start, const FrameHeader& header,
                    uint64_t segment_id) {
  // A body above kFrameBodyMax is encoded here (its length truncated to 32 bits) and refused by
  // the caller, which sees the frame's true size (SegmentWriter::append_record).
  size_t body_length = out.size() - start - kFrameHeaderSize;
  std::byte* h = out.data() + start;
  store_u32(h + kFrameBodyLengthOffset, static_cast<uint32_t>(body_length));
  h[kFrameRecordTypeOffset] = static_cast<std::byte>(header.type);
  h[kFrameFlagsOffset] = std::byte{0};
  store_u16(h + kFrameReservedOffset, 0);
  store_u64(h + kFrameSequenceOffset, header.sequence);
  store_u64(h + kFrameDurableThroughOffset, header.durable_through);
  store_u64(h + kFrameEpochOffset, header.epoch);
  uint64_t sum = checksum64(
      std::span<const std::byte>(h + kFrameChecksumCoverageStart,
                                 kFrameHeaderSize - kFrameChecksumCoverageStart + body_length),
      segment_id);
  store_u64(h + kFrameChecksumOffset, sum);
  out.resize(start + align_frame(kFrameHeaderSize + body_length));  // zero padding
  return out.size() - start;
}

const char* frame_decode_name(FrameDecode result) {
  switch (result) {
    case FrameDecode::Ok:
      return "ok";
    case FrameDecode::Truncated:
      return "short frame";
    case FrameDecode::ZeroHeader:
      return "zero header";
    case FrameDecode::BadHeader:
      return "bad frame header";
    case FrameDecode::BadChecksum:
      return "bad checksum";
    case FrameDecode::BadPadding:
      return "non-zero padding";
  }
  return "unknown";
}

FrameDecode decode_frame_header(std::span<const std::byte> bytes, FrameHeader& out,
                                uint64_t& size) {
  auto zero = [](std::byte b) { return b == std::byte{0}; };
  if (bytes.size() < kFrameHeaderSize) {
    return !bytes.empty() && std::all_of(bytes.begin(), bytes.end(), zero) ? FrameDecode::ZeroHeader
                                                                         : FrameDecode::Truncated;
  }
  const std::byte* h = bytes.data();
  uint32_t body_length = load_u32(h + kFrameBodyLengthOffset);
  uint8_t type = static_cast<uint8_t>(h[kFrameRecordTypeOffset]);
  // Only a header whose type is 0 can be all zeros: the common case skips the check.
  if (type == 0 && std::all_of(h, h + kFrameHeaderSize, zero)) return FrameDecode::ZeroHeader;
  if (type == 0 || type > kRecordTypeMax || h[kFrameFlagsOffset] != std::byte{0} ||
      load_u16(h + kFrameReservedOffset) != 0 || body_length > kFrameBodyMax) {
    return FrameDecode::BadHeader;
  }
  size = align_frame(kFrameHeaderSize + uint64_t{body_length});
  if (bytes.size() < size) return FrameDecode::Truncated;
  out.type = static_cast<RecordType>(type);
  out.sequence = load_u64(h + kFrameSequenceOffset);
  out.durable_through = load_u64(h + kFrameDurableThroughOffset);
  out.epoch = load_u64(h + kFrameEpochOffset);
  return FrameDecode::Ok;
}

FrameDecode decode_frame(std::span<const std::byte> bytes, uint64_t segment_id, DecodedFrame& out) {
  FrameHeader header;
  uint64_t total = 0;
  FrameDecode result = decode_frame_header(bytes, header, total);
  if (result != FrameDecode::Ok) return result;
  const std::byte* h = bytes.data();
  uint64_t body_length = load_u32(h + kFrameBodyLengthOffset);
  uint64_t sum = checksum64(
      bytes.subspan(kFrameChecksumCoverageStart,
                    kFrameHeaderSize - kFrameChecksumCoverageStart + body_length),
      segment_id);
  if (sum != load_u64(h + kFrameChecksumOffset)) return FrameDecode::BadChecksum;
  for (uint64_t i = kFrameHeaderSize + body_length; i < total; ++i) {
    if (h[i] != std::byte{0}) return FrameDecode::BadPadding;
  }
  out.header = header;
  out.body = bytes.subspan(kFrameHeaderSize, body_length);
  out.size = total;
  return FrameDecode::Ok;
}

}  // namespace keel::format
