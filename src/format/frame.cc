#include "format/frame.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "format/byte_order.h"
#include "format/checksum.h"

namespace keel::format {

namespace {

// The bytes a compact header stores `v` in: 1 to 8, the fewest that hold it.
size_t width_of(uint64_t v) {
  return v == 0 ? 1 : static_cast<size_t>(71 - __builtin_clzll(v)) / 8;
}
// The epoch's width class: 0..3 for 1, 2, 4 or 8 bytes.
size_t epoch_class_of(uint64_t epoch) {
  const size_t width = width_of(epoch);
  return width == 1 ? 0 : width == 2 ? 1 : width <= 4 ? 2 : 3;
}

// `width` bytes at `p`, little-endian. `wide`: 8 bytes from p may be read (one load, masked).
uint64_t load_width(const std::byte* p, size_t width, bool wide) {
  if (wide) {
    const uint64_t v = load_u64(p);
    return width == 8 ? v : v & ((uint64_t{1} << (8 * width)) - 1);
  }
  uint64_t v = 0;
  std::memcpy(&v, p, width);
  return v;
}

}  // namespace

FrameStart begin_frame(std::vector<std::byte>& out, const FrameHeader& header, FrameForm form) {
  const size_t start = out.size();
  if (form == FrameForm::Padded) {
    assert(start % kFrameAlignment == 0);
    out.resize(start + kFrameHeaderSize);
    std::byte* h = out.data() + start;
    store_u16(h + kFrameReservedOffset, 0);
    store_u64(h + kFrameSequenceOffset, header.sequence);
    store_u64(h + kFrameDurableThroughOffset, header.durable_through);
    store_u64(h + kFrameEpochOffset, header.epoch);
  } else {
    const size_t sequence_width = width_of(header.sequence);
    const size_t durable_width = width_of(header.durable_through);
    const size_t epoch_class = epoch_class_of(header.epoch);
    const size_t epoch_width = size_t{1} << epoch_class;
    out.resize(start + kCompactFrameFixedSize + sequence_width + durable_width + epoch_width);
    std::byte* p = out.data() + start;
    p[kCompactFrameWidthsOffset] = std::byte{
        static_cast<uint8_t>((sequence_width - 1) | (durable_width - 1) << 3 | epoch_class << 6)};
    p += kCompactFrameFixedSize;
    std::memcpy(p, &header.sequence, sequence_width);  // little-endian host (byte_order.h)
    std::memcpy(p + sequence_width, &header.durable_through, durable_width);
    std::memcpy(p + sequence_width + durable_width, &header.epoch, epoch_width);
  }
  std::byte* h = out.data() + start;
  h[kFrameRecordTypeOffset] = static_cast<std::byte>(header.type);
  h[kFrameFlagsOffset] = std::byte{form == FrameForm::Compact ? kFrameFlagCompact : uint8_t{0}};
  return FrameStart{start, out.size()};
}

size_t finish_frame(std::vector<std::byte>& out, FrameStart at, uint64_t segment_id) {
  // A body above kFrameBodyMax is encoded here (its length truncated to 32 bits) and refused by
  // the caller, which sees the frame's true size (SegmentWriter::append_record).
  const size_t body_length = out.size() - at.body;
  std::byte* h = out.data() + at.start;
  store_u32(h + kFrameBodyLengthOffset, static_cast<uint32_t>(body_length));
  const uint64_t sum =
      checksum64(std::span<const std::byte>(h + kFrameChecksumCoverageStart,
                                            out.size() - at.start - kFrameChecksumCoverageStart),
                 segment_id);
  store_u64(h + kFrameChecksumOffset, sum);
  if (h[kFrameFlagsOffset] == std::byte{0}) {
    out.resize(at.start + align_frame(out.size() - at.start));  // zero padding
  }
  return out.size() - at.start;
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

namespace {

// The compact header: its widths byte says how many bytes each of the three fields takes.
FrameDecode decode_compact_header(std::span<const std::byte> bytes, FrameHeader& out,
                                  uint64_t& size) {
  const std::byte* h = bytes.data();
  const uint8_t type = static_cast<uint8_t>(h[kFrameRecordTypeOffset]);
  const uint32_t body_length = load_u32(h + kFrameBodyLengthOffset);
  if (type > kRecordTypeMax || body_length > kFrameBodyMax) return FrameDecode::BadHeader;
  const auto widths = static_cast<uint8_t>(h[kCompactFrameWidthsOffset]);
  const size_t sequence_width = (widths & 7u) + 1;
  const size_t durable_width = ((widths >> 3) & 7u) + 1;
  const size_t epoch_width = size_t{1} << (widths >> 6);
  const size_t header_size = kCompactFrameFixedSize + sequence_width + durable_width + epoch_width;
  if (bytes.size() < header_size) return FrameDecode::Truncated;
  size = header_size + body_length;
  if (bytes.size() < size) return FrameDecode::Truncated;
  // Masked 8-byte loads where the bytes after the header allow them (a frame's body follows):
  // decoding varints here was 7% of a warm scan, with branches per byte.
  const bool wide = header_size + 8 <= bytes.size();
  const std::byte* p = h + kCompactFrameFixedSize;
  out.type = static_cast<RecordType>(type);
  out.sequence = load_width(p, sequence_width, wide);
  out.durable_through = load_width(p + sequence_width, durable_width, wide);
  out.epoch = load_width(p + sequence_width + durable_width, epoch_width, wide);
  return FrameDecode::Ok;
}

bool is_compact(std::span<const std::byte> bytes) {
  return bytes.size() >= kCompactFrameFixedSize &&
         bytes[kFrameFlagsOffset] == std::byte{kFrameFlagCompact} &&
         bytes[kFrameRecordTypeOffset] != std::byte{0};
}

}  // namespace

FrameDecode decode_frame_header(std::span<const std::byte> bytes, FrameHeader& out,
                                uint64_t& size) {
  size = 0;
  if (is_compact(bytes)) return decode_compact_header(bytes, out, size);
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

namespace {

// Where the body of a whole frame of `total` bytes ends: a padded frame's padding follows it, a
// compact frame's body ends the frame.
uint64_t body_end(const std::byte* h, uint64_t total) {
  return h[kFrameFlagsOffset] == std::byte{0}
             ? kFrameHeaderSize + load_u32(h + kFrameBodyLengthOffset)
             : total;
}

uint64_t checksum_of(std::span<const std::byte> bytes, uint64_t end, uint64_t segment_id) {
  return checksum64(bytes.subspan(kFrameChecksumCoverageStart, end - kFrameChecksumCoverageStart),
                    segment_id);
}

}  // namespace

FrameDecode decode_frame(std::span<const std::byte> bytes, uint64_t segment_id, DecodedFrame& out) {
  FrameHeader header;
  uint64_t total = 0;
  FrameDecode result = decode_frame_header(bytes, header, total);
  if (result != FrameDecode::Ok) return result;
  const std::byte* h = bytes.data();
  const uint64_t end = body_end(h, total);
  if (checksum_of(bytes, end, segment_id) != load_u64(h + kFrameChecksumOffset)) {
    return FrameDecode::BadChecksum;
  }
  for (uint64_t i = end; i < total; ++i) {
    if (h[i] != std::byte{0}) return FrameDecode::BadPadding;
  }
  const uint64_t body_length = load_u32(h + kFrameBodyLengthOffset);
  out.header = header;
  out.body = bytes.subspan(end - body_length, body_length);
  out.size = total;
  return FrameDecode::Ok;
}

std::optional<uint64_t> frame_checksum(std::span<const std::byte> bytes, uint64_t segment_id) {
  FrameHeader header;
  uint64_t total = 0;
  if (decode_frame_header(bytes, header, total) != FrameDecode::Ok) return std::nullopt;
  return checksum_of(bytes, body_end(bytes.data(), total), segment_id);
}

}  // namespace keel::format
