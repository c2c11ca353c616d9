// Frame encode/decode (src/format/frame.h, segments/FORMAT.md "Frames"): for each form (padded,
// format versions 1 and 2; compact, version 3) the header layout byte by byte, the round trip, and
// every FrameDecode result reached by editing bytes of a real frame.
#include "format/frame.h"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "format/checksum.h"
#include "format/format_constants.h"

using namespace keel::format;

namespace {

constexpr uint64_t kSegmentId = 0x0000000000000003;
// Distinct, multi-byte values so a field written at the wrong offset or width is caught.
constexpr uint64_t kSequence = 0x1122334455667788;
constexpr uint64_t kDurableThrough = 0x0102030405060708;
constexpr uint64_t kEpoch = 0x00000000deadbeef;
// 13 bytes: 40 + 13 = 53, so the frame carries 3 bytes of padding.
constexpr char kBody[] = "hello, frames";
constexpr size_t kBodySize = sizeof kBody - 1;

uint64_t load_le(const std::vector<std::byte>& bytes, size_t offset, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i)
    v |= uint64_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return v;
}

void store_le(std::vector<std::byte>& bytes, size_t offset, size_t width, uint64_t v) {
  for (size_t i = 0; i < width; ++i) bytes[offset + i] = static_cast<std::byte>(v >> (8 * i));
}

std::vector<std::byte> encode_frame(RecordType type, std::span<const std::byte> body,
                                    uint64_t segment_id = kSegmentId,
                                    FrameForm form = FrameForm::Padded) {
  std::vector<std::byte> out;
  FrameStart start = begin_frame(out, FrameHeader{type, kSequence, kDurableThrough, kEpoch}, form);
  out.insert(out.end(), body.begin(), body.end());
  finish_frame(out, start, segment_id);
  return out;
}

std::span<const std::byte> body_bytes() {
  return std::as_bytes(std::span<const char>(kBody, kBodySize));
}

std::vector<std::byte> sample_frame() { return encode_frame(RecordType::Event, body_bytes()); }

// Recomputes the checksum after a header edit, so the edit is the only thing wrong.
void reseal(std::vector<std::byte>& frame, uint64_t segment_id = kSegmentId) {
  size_t body_length = load_le(frame, kFrameBodyLengthOffset, 4);
  uint64_t sum = checksum64(std::span<const std::byte>(frame).subspan(
                                kFrameChecksumCoverageStart,
                                kFrameHeaderSize - kFrameChecksumCoverageStart + body_length),
                            segment_id);
  store_le(frame, kFrameChecksumOffset, 8, sum);
}

FrameDecode decode(std::span<const std::byte> bytes, uint64_t segment_id = kSegmentId) {
  DecodedFrame ignored;
  return decode_frame(bytes, segment_id, ignored);
}

// Every proper prefix of `frame` is Truncated, the whole frame Ok.
void check_prefixes_truncated(const std::vector<std::byte>& frame) {
  // An all-zero prefix would be a zero region instead; a sample's checksum starts non-zero.
  REQUIRE(frame[0] != std::byte{0});
  for (size_t length = 0; length < frame.size(); ++length) {
    INFO("prefix length " << length);
    CHECK(decode(std::span<const std::byte>(frame).first(length)) == FrameDecode::Truncated);
  }
  CHECK(decode(frame) == FrameDecode::Ok);
}

}  // namespace

TEST_CASE("finish_frame writes every header field at its documented offset", "[format]") {
  std::vector<std::byte> frame = sample_frame();
  REQUIRE(frame.size() == 56);  // align_frame(40 + 13)
  CHECK(load_le(frame, kFrameBodyLengthOffset, 4) == kBodySize);
  CHECK(load_le(frame, kFrameRecordTypeOffset, 1) == 1);
  CHECK(load_le(frame, kFrameFlagsOffset, 1) == 0);
  CHECK(load_le(frame, kFrameReservedOffset, 2) == 0);
  CHECK(load_le(frame, kFrameSequenceOffset, 8) == kSequence);
  CHECK(load_le(frame, kFrameDurableThroughOffset, 8) == kDurableThrough);
  CHECK(load_le(frame, kFrameEpochOffset, 8) == kEpoch);
  CHECK(std::memcmp(frame.data() + kFrameHeaderSize, kBody, kBodySize) == 0);
  for (size_t i = kFrameHeaderSize + kBodySize; i < frame.size(); ++i) {
    CHECK(frame[i] == std::byte{0});
  }
  // The checksum: XXH3-64 seeded with the segment id over [8, 40 + body_length).
  uint64_t expected =
      checksum64(std::span<const std::byte>(frame).subspan(8, 32 + kBodySize), kSegmentId);
  CHECK(load_le(frame, kFrameChecksumOffset, 8) == expected);
}

TEST_CASE("begin_frame and finish_frame append after existing frames", "[format]") {
  std::vector<std::byte> out = sample_frame();
  size_t first_size = out.size();
  FrameStart start = begin_frame(out, FrameHeader{RecordType::Seal, 9, 0, 1}, FrameForm::Padded);
  CHECK(start.start == first_size);
  CHECK(start.body == first_size + kFrameHeaderSize);
  size_t second_size = finish_frame(out, start, kSegmentId);
  CHECK(second_size == kFrameHeaderSize);  // empty body: no padding
  CHECK(out.size() == first_size + second_size);
  CHECK(out.size() % kFrameAlignment == 0);
}

TEST_CASE("decode_frame round-trips the header and body", "[format]") {
  std::vector<std::byte> frame = sample_frame();
  frame.resize(frame.size() + 24, std::byte{0x5a});  // bytes after the frame are not its business
  DecodedFrame decoded;
  REQUIRE(decode_frame(frame, kSegmentId, decoded) == FrameDecode::Ok);
  CHECK(decoded.header.type == RecordType::Event);
  CHECK(decoded.header.sequence == kSequence);
  CHECK(decoded.header.durable_through == kDurableThrough);
  CHECK(decoded.header.epoch == kEpoch);
  CHECK(decoded.size == 56);
  REQUIRE(decoded.body.size() == kBodySize);
  CHECK(decoded.body.data() == frame.data() + kFrameHeaderSize);  // a view, not a copy
  CHECK(std::memcmp(decoded.body.data(), kBody, kBodySize) == 0);
}

TEST_CASE("every record type 1..6 decodes, with empty and aligned bodies", "[format]") {
  for (uint8_t type = 1; type <= kRecordTypeMax; ++type) {
    for (size_t body_size : {size_t{0}, size_t{8}, size_t{13}}) {
      INFO("type " << int{type} << ", body " << body_size);
      std::vector<std::byte> body(body_size, std::byte{0x7e});
      auto frame = encode_frame(static_cast<RecordType>(type), body);
      CHECK(frame.size() == align_frame(kFrameHeaderSize + body_size));
      DecodedFrame decoded;
      REQUIRE(decode_frame(frame, kSegmentId, decoded) == FrameDecode::Ok);
      CHECK(decoded.header.type == static_cast<RecordType>(type));
      CHECK(decoded.body.size() == body_size);
    }
  }
}

TEST_CASE("consecutive frames decode one after another", "[format]") {
  std::vector<std::byte> out = sample_frame();
  FrameStart start = begin_frame(out, FrameHeader{RecordType::Event, kSequence + 1, 56, kEpoch},
                                 FrameForm::Padded);
  out.push_back(std::byte{0x42});
  finish_frame(out, start, kSegmentId);
  DecodedFrame first;
  DecodedFrame second;
  REQUIRE(decode_frame(out, kSegmentId, first) == FrameDecode::Ok);
  REQUIRE(decode_frame(std::span<const std::byte>(out).subspan(first.size), kSegmentId, second) ==
          FrameDecode::Ok);
  CHECK(second.header.sequence == kSequence + 1);
  CHECK(second.header.durable_through == 56);
  CHECK(first.size + second.size == out.size());
}

TEST_CASE("every proper prefix of a frame is Truncated", "[format]") {
  check_prefixes_truncated(sample_frame());
}

TEST_CASE("a zero-filled region is ZeroHeader and never a frame", "[format]") {
  for (size_t size : {size_t{1}, size_t{8}, size_t{39}, size_t{40}, size_t{41}, size_t{4096}}) {
    INFO("zero region of " << size << " bytes");
    std::vector<std::byte> zeros(size, std::byte{0});
    DecodedFrame decoded;
    decoded.size = 12345;
    CHECK(decode_frame(zeros, kSegmentId, decoded) == FrameDecode::ZeroHeader);
    CHECK(decoded.size == 12345);  // untouched when not Ok
  }
  // With any segment id as seed, zero bytes never pass: record type 0 is no record.
  std::vector<std::byte> zeros(64, std::byte{0});
  for (uint64_t segment_id : {uint64_t{0}, uint64_t{1}, kSegmentId, ~uint64_t{0}}) {
    CHECK(decode(zeros, segment_id) != FrameDecode::Ok);
  }
  CHECK(decode(std::span<const std::byte>()) == FrameDecode::Truncated);
}

TEST_CASE("a header that is zero except its checksum is not a zero region", "[format]") {
  // Only a fully zero header means "never written"; a checksum alone makes it a bad header.
  std::vector<std::byte> frame(kFrameHeaderSize, std::byte{0});
  reseal(frame);
  REQUIRE(frame[0] != std::byte{0});
  CHECK(decode(frame) == FrameDecode::BadHeader);
}

TEST_CASE("BadHeader: record type 0 or 7, flags, reserved, length above the maximum", "[format]") {
  // Each edit is resealed, so the checksum matches and only the header rule can refuse it.
  auto edited = [](size_t offset, size_t width, uint64_t value) {
    std::vector<std::byte> frame = sample_frame();
    store_le(frame, offset, width, value);
    reseal(frame);
    return frame;
  };
  CHECK(decode(edited(kFrameRecordTypeOffset, 1, 0)) == FrameDecode::BadHeader);
  CHECK(decode(edited(kFrameRecordTypeOffset, 1, kRecordTypeMax + 1)) == FrameDecode::BadHeader);
  CHECK(decode(edited(kFrameRecordTypeOffset, 1, 0xff)) == FrameDecode::BadHeader);
  CHECK(decode(edited(kFrameFlagsOffset, 1, 0x02)) == FrameDecode::BadHeader);
  CHECK(decode(edited(kFrameFlagsOffset, 1, 0x80)) == FrameDecode::BadHeader);
  // Flag 1 makes the bytes after it the compact form's varints: these do not end the frame here.
  CHECK(decode(edited(kFrameFlagsOffset, 1, 0x01)) != FrameDecode::Ok);
  CHECK(decode(edited(kFrameReservedOffset, 2, 0x0001)) == FrameDecode::BadHeader);
  CHECK(decode(edited(kFrameReservedOffset, 2, 0x0100)) == FrameDecode::BadHeader);

  // A length above the maximum is refused from the header alone, before any body is read.
  std::vector<std::byte> too_long = sample_frame();
  store_le(too_long, kFrameBodyLengthOffset, 4, uint64_t{kFrameBodyMax} + 1);
  CHECK(decode(too_long) == FrameDecode::BadHeader);
  store_le(too_long, kFrameBodyLengthOffset, 4, 0xffffffff);
  CHECK(decode(too_long) == FrameDecode::BadHeader);
  // Exactly the maximum is a legal length: with the bytes missing it is Truncated, not BadHeader.
  store_le(too_long, kFrameBodyLengthOffset, 4, kFrameBodyMax);
  CHECK(decode(too_long) == FrameDecode::Truncated);
}

TEST_CASE("BadChecksum: any change under the checksum is caught", "[format]") {
  const std::vector<std::byte> original = sample_frame();
  const size_t covered_end = kFrameHeaderSize + kBodySize;
  // The checksum itself, and every byte from the sequence to the end of the body.
  for (size_t offset = 0; offset < covered_end; ++offset) {
    if (offset >= kFrameBodyLengthOffset && offset < kFrameSequenceOffset) continue;  // below
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      INFO("offset " << offset << " mask " << int{mask});
      std::vector<std::byte> frame = original;
      frame[offset] ^= std::byte{mask};
      CHECK(decode(frame) == FrameDecode::BadChecksum);
    }
  }
  // The length, type, flags and reserved bytes [8, 16) are covered too; a change there that keeps
  // the header plausible (another length that fits, another valid type) is a bad checksum.
  std::vector<std::byte> shorter = original;
  store_le(shorter, kFrameBodyLengthOffset, 4, kBodySize - 1);
  CHECK(decode(shorter) == FrameDecode::BadChecksum);
  std::vector<std::byte> longer = original;
  store_le(longer, kFrameBodyLengthOffset, 4, kBodySize + 1);
  CHECK(decode(longer) == FrameDecode::BadChecksum);
  for (uint8_t type = 2; type <= kRecordTypeMax; ++type) {
    std::vector<std::byte> retyped = original;
    retyped[kFrameRecordTypeOffset] = static_cast<std::byte>(type);
    CHECK(decode(retyped) == FrameDecode::BadChecksum);
  }
}

TEST_CASE("every single-byte change of a frame is refused", "[format]") {
  const std::vector<std::byte> original = sample_frame();
  for (size_t offset = 0; offset < original.size(); ++offset) {
    std::vector<std::byte> frame = original;
    frame[offset] ^= std::byte{0x10};
    INFO("offset " << offset);
    CHECK(decode(frame) != FrameDecode::Ok);
  }
}

TEST_CASE("BadChecksum: a frame decoded as part of another segment", "[format]") {
  std::vector<std::byte> frame = sample_frame();
  CHECK(decode(frame, kSegmentId + 1) == FrameDecode::BadChecksum);
  CHECK(decode(frame, 0) == FrameDecode::BadChecksum);
  CHECK(decode(frame, kSegmentId | (uint64_t{1} << 63)) == FrameDecode::BadChecksum);
  // And the same bytes encoded for the other segment are fine there.
  auto other = encode_frame(RecordType::Event, body_bytes(), kSegmentId + 1);
  CHECK(decode(other, kSegmentId + 1) == FrameDecode::Ok);
  CHECK(other != frame);
}

TEST_CASE("BadPadding: a non-zero byte in the padding", "[format]") {
  const std::vector<std::byte> original = sample_frame();
  REQUIRE(original.size() - (kFrameHeaderSize + kBodySize) == 3);
  for (size_t offset = kFrameHeaderSize + kBodySize; offset < original.size(); ++offset) {
    INFO("offset " << offset);
    std::vector<std::byte> frame = original;
    frame[offset] = std::byte{0x01};
    CHECK(decode(frame) == FrameDecode::BadPadding);
  }
}

TEST_CASE("frame_decode_name gives each result its own name", "[format]") {
  std::set<std::string> names;
  for (FrameDecode result :
       {FrameDecode::Ok, FrameDecode::Truncated, FrameDecode::ZeroHeader, FrameDecode::BadHeader,
        FrameDecode::BadChecksum, FrameDecode::BadPadding}) {
    names.insert(frame_decode_name(result));
  }
  CHECK(names.size() == 6);
  CHECK(std::string(frame_decode_name(FrameDecode::BadChecksum)) == "bad checksum");
}

// ---- The compact form (format version 3) ----

namespace {

// The sample's header: 15 fixed bytes, then the sequence (8 bytes), durable_through (8) and epoch
// (4: a width of 1, 2, 4 or 8); no padding.
constexpr size_t kCompactHeaderSize = 15 + 8 + 8 + 4;

std::vector<std::byte> compact_sample() {
  return encode_frame(RecordType::Event, body_bytes(), kSegmentId, FrameForm::Compact);
}

std::vector<std::byte> compact_frame(const FrameHeader& header, size_t body_size) {
  std::vector<std::byte> out;
  FrameStart start = begin_frame(out, header, FrameForm::Compact);
  out.resize(out.size() + body_size, std::byte{0x7e});
  finish_frame(out, start, kSegmentId);
  return out;
}

}  // namespace

TEST_CASE("A compact frame: flag 1 then the widths then the fields and the body and no padding",
          "[format]") {
  std::vector<std::byte> frame = compact_sample();
  REQUIRE(frame.size() == kCompactHeaderSize + kBodySize);
  CHECK(load_le(frame, kFrameBodyLengthOffset, 4) == kBodySize);
  CHECK(load_le(frame, kFrameRecordTypeOffset, 1) == 1);
  CHECK(load_le(frame, kFrameFlagsOffset, 1) == kFrameFlagCompact);
  // Widths: sequence 8 bytes (7), durable_through 8 (7 << 3), epoch 4 (class 2 << 6).
  CHECK(load_le(frame, kCompactFrameWidthsOffset, 1) == (7u | 7u << 3 | 2u << 6));
  CHECK(load_le(frame, 15, 8) == kSequence);
  CHECK(load_le(frame, 23, 8) == kDurableThrough);
  CHECK(load_le(frame, 31, 4) == kEpoch);
  CHECK(std::memcmp(frame.data() + kCompactHeaderSize, kBody, kBodySize) == 0);
  // The checksum: XXH3-64 seeded with the segment id over every byte from 8 to the body's end.
  CHECK(load_le(frame, kFrameChecksumOffset, 8) ==
        checksum64(std::span<const std::byte>(frame).subspan(8), kSegmentId));

  DecodedFrame decoded;
  frame.resize(frame.size() + 5, std::byte{0x5a});  // bytes after the frame are not its business
  REQUIRE(decode_frame(frame, kSegmentId, decoded) == FrameDecode::Ok);
  CHECK(decoded.header.type == RecordType::Event);
  CHECK(decoded.header.sequence == kSequence);
  CHECK(decoded.header.durable_through == kDurableThrough);
  CHECK(decoded.header.epoch == kEpoch);
  CHECK(decoded.size == kCompactHeaderSize + kBodySize);
  CHECK(decoded.body.data() == frame.data() + kCompactHeaderSize);
  CHECK(decoded.body.size() == kBodySize);
}

TEST_CASE("A compact header stores each field in the fewest bytes and reads it back", "[format]") {
  // Every width of each field, at both ends of it: 0, 0xff, 0x100, ..., 2^64 - 1.
  std::vector<uint64_t> values = {0};
  for (unsigned bytes = 1; bytes <= 8; ++bytes) {
    values.push_back(bytes == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * bytes)) - 1);
    if (bytes < 8) values.push_back(uint64_t{1} << (8 * bytes));
  }
  auto width = [](uint64_t v) {
    size_t n = 1;
    while (n < 8 && (v >> (8 * n)) != 0) ++n;
    return n;
  };
  auto epoch_width = [&](uint64_t v) {
    const size_t n = width(v);
    return n == 1 ? 1 : n == 2 ? 2 : n <= 4 ? 4 : 8;
  };
  for (uint64_t v : values) {
    for (size_t field = 0; field < 3; ++field) {
      FrameHeader header{RecordType::Batch, 5, 6, 7};
      (field == 0 ? header.sequence : field == 1 ? header.durable_through : header.epoch) = v;
      INFO("field " << field << " value " << v);
      // Body sizes 0 and 20: the header's fields are read byte by byte, or with 8-byte loads.
      for (size_t body_size : {size_t{0}, size_t{20}}) {
        std::vector<std::byte> frame = compact_frame(header, body_size);
        const size_t expected = 15 + (field == 0 ? width(v) : 1) + (field == 1 ? width(v) : 1) +
                                (field == 2 ? epoch_width(v) : 1);
        CHECK(frame.size() == expected + body_size);
        DecodedFrame decoded;
        REQUIRE(decode_frame(frame, kSegmentId, decoded) == FrameDecode::Ok);
        CHECK(decoded.header.sequence == header.sequence);
        CHECK(decoded.header.durable_through == header.durable_through);
        CHECK(decoded.header.epoch == header.epoch);
        CHECK(decoded.body.size() == body_size);
      }
    }
  }
}

TEST_CASE("Compact frames of every type and size follow one another without alignment",
          "[format]") {
  std::vector<std::byte> out;
  std::vector<FrameHeader> headers;
  std::vector<size_t> sizes;
  uint64_t sequence = 1;
  for (uint8_t type = 1; type <= kRecordTypeMax; ++type) {
    for (size_t body_size : {size_t{0}, size_t{1}, size_t{13}, size_t{200}}) {
      FrameHeader header{static_cast<RecordType>(type), sequence, out.size() / 2, type * 1000u};
      FrameStart start = begin_frame(out, header, FrameForm::Compact);
      out.resize(out.size() + body_size, std::byte{0x7e});
      sizes.push_back(finish_frame(out, start, kSegmentId));
      CHECK(sizes.back() == start.body - start.start + body_size);
      headers.push_back(header);
      sequence = sequence * 300 + 1;
    }
  }
  size_t at = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    INFO("frame " << i);
    DecodedFrame decoded;
    REQUIRE(decode_frame(std::span<const std::byte>(out).subspan(at), kSegmentId, decoded) ==
            FrameDecode::Ok);
    CHECK(decoded.header.type == headers[i].type);
    CHECK(decoded.header.sequence == headers[i].sequence);
    CHECK(decoded.header.durable_through == headers[i].durable_through);
    CHECK(decoded.header.epoch == headers[i].epoch);
    CHECK(decoded.size == sizes[i]);
    at += decoded.size;
  }
  CHECK(at == out.size());
}

TEST_CASE("The widest compact header is no larger than a padded one", "[format]") {
  std::vector<std::byte> out;
  FrameStart start =
      begin_frame(out, FrameHeader{RecordType::Seal, ~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}},
                  FrameForm::Compact);
  CHECK(start.body == kCompactFrameFixedSize + 24);
  CHECK(start.body <= kFrameHeaderMax);
  CHECK(kFrameHeaderMax == kFrameHeaderSize);
}

TEST_CASE("Every proper prefix of a compact frame is Truncated", "[format]") {
  std::vector<std::byte> frame = compact_sample();
  check_prefixes_truncated(frame);
  // Once the header is whole, decode_frame_header knows the size the frame needs.
  FrameHeader header;
  uint64_t size = 0;
  CHECK(decode_frame_header(std::span<const std::byte>(frame).first(kCompactHeaderSize), header,
                            size) == FrameDecode::Truncated);
  CHECK(size == frame.size());
  CHECK(decode_frame_header(std::span<const std::byte>(frame).first(kCompactHeaderSize - 1), header,
                            size) == FrameDecode::Truncated);
  CHECK(size == 0);
}

TEST_CASE("Compact BadHeader: an unknown type or a length above the maximum", "[format]") {
  std::vector<std::byte> retyped = compact_sample();
  retyped[kFrameRecordTypeOffset] = std::byte{kRecordTypeMax + 1};
  CHECK(decode(retyped) == FrameDecode::BadHeader);
  std::vector<std::byte> too_long = compact_sample();
  store_le(too_long, kFrameBodyLengthOffset, 4, uint64_t{kFrameBodyMax} + 1);
  CHECK(decode(too_long) == FrameDecode::BadHeader);
  // Flags other than 0 and 1 are no frame of either form.
  std::vector<std::byte> flagged = compact_sample();
  flagged[kFrameFlagsOffset] = std::byte{2};
  CHECK(decode(flagged) == FrameDecode::BadHeader);
}

TEST_CASE("Every single-byte change of a compact frame is refused", "[format]") {
  const std::vector<std::byte> original = compact_sample();
  for (size_t offset = 0; offset < original.size(); ++offset) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x10}, uint8_t{0x80}}) {
      std::vector<std::byte> frame = original;
      frame[offset] ^= std::byte{mask};
      INFO("offset " << offset << " mask " << int{mask});
      CHECK(decode(frame) != FrameDecode::Ok);
    }
  }
  CHECK(decode(original, kSegmentId + 1) == FrameDecode::BadChecksum);
}

TEST_CASE("Padded and compact frames decode side by side", "[format]") {
  // An older version's segment sealed by this build holds padded frames only, but the decoder
  // tells the forms apart frame by frame.
  std::vector<std::byte> out = sample_frame();
  const std::vector<std::byte> compact = compact_sample();
  out.insert(out.end(), compact.begin(), compact.end());
  DecodedFrame first;
  DecodedFrame second;
  REQUIRE(decode_frame(out, kSegmentId, first) == FrameDecode::Ok);
  REQUIRE(decode_frame(std::span<const std::byte>(out).subspan(first.size), kSegmentId, second) ==
          FrameDecode::Ok);
  CHECK(first.size == 56);
  CHECK(second.size == compact.size());
  CHECK(frame_form_of(2) == FrameForm::Padded);
  CHECK(frame_form_of(3) == FrameForm::Compact);
}
