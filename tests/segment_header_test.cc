// Segment header encode/decode (src/format/segment_header.h, segments/FORMAT.md "Segment header"):
// the layout byte by byte and every HeaderDecode result reached by editing a real header.
#include "format/segment_header.h"

#include <array>
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

constexpr SegmentHeader kHeader{/*segment_id=*/0x0000000000000007, /*epoch=*/0x1122334455667788,
                                /*first_sequence=*/0x0102030405060708};

std::vector<std::byte> encoded() {
  auto bytes = encode_segment_header(kHeader);
  return std::vector<std::byte>(bytes.begin(), bytes.end());
}

uint64_t load_le(const std::vector<std::byte>& bytes, size_t offset, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i)
    v |= uint64_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return v;
}

void store_le(std::vector<std::byte>& bytes, size_t offset, size_t width, uint64_t v) {
  for (size_t i = 0; i < width; ++i) bytes[offset + i] = static_cast<std::byte>(v >> (8 * i));
}

// Recomputes the checksum after an edit, so the edit is the only thing wrong.
void reseal(std::vector<std::byte>& bytes) {
  store_le(bytes, kSegmentHeaderChecksumOffset, 8,
           checksum64(std::span<const std::byte>(bytes).first(kSegmentHeaderChecksumOffset)));
}

std::vector<std::byte> edited(size_t offset, size_t width, uint64_t value) {
  auto bytes = encoded();
  store_le(bytes, offset, width, value);
  reseal(bytes);
  return bytes;
}

HeaderDecode decode(std::span<const std::byte> bytes, uint32_t* found_version = nullptr) {
  SegmentHeader ignored;
  return decode_segment_header(bytes, ignored, found_version);
}

}  // namespace

TEST_CASE("encode_segment_header writes the documented layout", "[format]") {
  auto bytes = encoded();
  REQUIRE(bytes.size() == kSegmentHeaderSize);
  CHECK(std::memcmp(bytes.data(), "KEELSEG\0", 8) == 0);
  CHECK(load_le(bytes, 8, 4) == kFormatVersion);
  CHECK(load_le(bytes, 12, 4) == kSegmentHeaderSize);
  CHECK(load_le(bytes, 16, 8) == kHeader.segment_id);
  CHECK(load_le(bytes, 24, 8) == kHeader.epoch);
  CHECK(load_le(bytes, 32, 8) == kHeader.first_sequence);
  CHECK(load_le(bytes, 40, 8) == 0);
  CHECK(load_le(bytes, 48, 8) == 0);
  // The checksum is XXH3-64 with seed 0 over [0, 56).
  CHECK(load_le(bytes, 56, 8) == checksum64(std::span<const std::byte>(bytes).first(56), 0));
}

TEST_CASE("Ok: a header round-trips, also with bytes after it", "[format]") {
  auto bytes = encoded();
  bytes.resize(4096, std::byte{0x33});  // the first frame follows the header
  SegmentHeader out;
  uint32_t found_version = 12345;
  REQUIRE(decode_segment_header(bytes, out, &found_version) == HeaderDecode::Ok);
  CHECK(out.segment_id == kHeader.segment_id);
  CHECK(out.epoch == kHeader.epoch);
  CHECK(out.first_sequence == kHeader.first_sequence);
  CHECK(found_version == 12345);  // only written for UnsupportedVersion
}

TEST_CASE("Ok: every version from 1 to this build's decodes and reports its version", "[format]") {
  CHECK(kFormatVersion == 3);
  for (uint32_t version = 1; version <= kFormatVersion; ++version) {
    INFO("version " << version);
    SegmentHeader header = kHeader;
    header.format_version = version;
    auto bytes = encode_segment_header(header);
    CHECK(load_le(std::vector<std::byte>(bytes.begin(), bytes.end()), 8, 4) == version);
    SegmentHeader out;
    out.format_version = 0;
    REQUIRE(decode_segment_header(bytes, out, nullptr) == HeaderDecode::Ok);
    CHECK(out.format_version == version);
    CHECK(out.segment_id == kHeader.segment_id);
  }
}

TEST_CASE("Missing: no bytes, a short zero file, or a zero header", "[format]") {
  for (size_t size : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{4096}}) {
    INFO("zero bytes: " << size);
    std::vector<std::byte> zeros(size, std::byte{0});
    SegmentHeader out{99, 99, 99};
    CHECK(decode_segment_header(zeros, out, nullptr) == HeaderDecode::Missing);
    CHECK(out.segment_id == 99);  // untouched when not Ok
  }
}

TEST_CASE("BadMagic: any change of the magic, even with a matching checksum", "[format]") {
  for (size_t offset = 0; offset < sizeof kSegmentMagic; ++offset) {
    INFO("offset " << offset);
    auto bytes = encoded();
    bytes[offset] ^= std::byte{0x20};
    reseal(bytes);
    CHECK(decode(bytes) == HeaderDecode::BadMagic);
  }
  // A frame-format or sidecar file is not a segment.
  auto sidecar_magic = encoded();
  std::memcpy(sidecar_magic.data(), kSidecarMagic, 8);
  reseal(sidecar_magic);
  CHECK(decode(sidecar_magic) == HeaderDecode::BadMagic);
}

TEST_CASE("BadChecksum: every byte after the magic is covered", "[format]") {
  const auto original = encoded();
  for (size_t offset = sizeof kSegmentMagic; offset < kSegmentHeaderSize; ++offset) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      INFO("offset " << offset << " mask " << int{mask});
      auto bytes = original;
      bytes[offset] ^= std::byte{mask};
      CHECK(decode(bytes) == HeaderDecode::BadChecksum);
    }
  }
}

TEST_CASE("UnsupportedVersion: a newer format version names the version found", "[format]") {
  for (uint32_t version : {kFormatVersion + 1, uint32_t{0xffffffff}}) {
    INFO("version " << version);
    uint32_t found_version = 0;
    CHECK(decode(edited(8, 4, version), &found_version) == HeaderDecode::UnsupportedVersion);
    CHECK(found_version == version);
  }
  CHECK(decode(edited(8, 4, kFormatVersion + 1), nullptr) == HeaderDecode::UnsupportedVersion);
}

TEST_CASE("BadField: version 0, header size, reserved bytes, segment id 0", "[format]") {
  uint32_t found_version = 12345;
  CHECK(decode(edited(8, 4, 0), &found_version) == HeaderDecode::BadField);
  CHECK(found_version == 0);
  CHECK(decode(edited(12, 4, kSegmentHeaderSize - 1)) == HeaderDecode::BadField);
  CHECK(decode(edited(12, 4, 128)) == HeaderDecode::BadField);
  for (size_t offset = 40; offset < 56; ++offset) {
    INFO("reserved offset " << offset);
    CHECK(decode(edited(offset, 1, 0x01)) == HeaderDecode::BadField);
  }
  CHECK(decode(edited(16, 8, 0)) == HeaderDecode::BadField);
  auto zero_id = encode_segment_header(SegmentHeader{0, 1, 1});
  CHECK(decode(zero_id) == HeaderDecode::BadField);
}

TEST_CASE("BadMagic: a short header that is not all zero", "[format]") {
  // FORMAT.md "Segment header" rule 1: fewer than 64 bytes, not all zero, is bad magic (a torn
  // header is damage, not a never-written segment).
  const auto original = encoded();
  for (size_t length = 1; length < kSegmentHeaderSize; ++length) {
    INFO("prefix length " << length);
    CHECK(decode(std::span<const std::byte>(original).first(length)) == HeaderDecode::BadMagic);
  }
  std::vector<std::byte> mostly_zero(kSegmentHeaderSize - 1, std::byte{0});
  mostly_zero[40] = std::byte{1};
  CHECK(decode(mostly_zero) == HeaderDecode::BadMagic);
}

TEST_CASE("header_decode_name gives each result its own name", "[format]") {
  std::set<std::string> names;
  for (HeaderDecode result :
       {HeaderDecode::Ok, HeaderDecode::Missing, HeaderDecode::BadMagic, HeaderDecode::BadChecksum,
        HeaderDecode::UnsupportedVersion, HeaderDecode::BadField}) {
    names.insert(header_decode_name(result));
  }
  CHECK(names.size() == 6);
}
