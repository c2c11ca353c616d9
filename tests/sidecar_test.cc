// The sidecar envelope (src/format/sidecar.h) and its files on disk (src/log/sidecar_file.h): the
// layout, every corrupt case as CorruptSidecar naming the path and its reason, a newer version as
// UnsupportedVersion, and the atomic write/read through the POSIX file system.
#include "format/sidecar.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "format/checksum.h"
#include "format/format_constants.h"
#include "log/sidecar_file.h"
#include "platform/file_system.h"
#include "test_support.h"

using keel::ErrorClass;
using keel::ErrorCode;
using keel::StoreError;
using namespace keel::format;

namespace {

const std::string kPath = "/data/store/CURSOR-billing";
constexpr SidecarKind kKind = SidecarKind::Cursor;
constexpr uint32_t kVersion = 2;

std::vector<std::byte> bytes_of(std::string_view text) {
  std::vector<std::byte> out;
  for (char c : text) out.push_back(static_cast<std::byte>(c));
  return out;
}

const std::vector<std::byte> kPayload = bytes_of("cursor at sequence 4242");

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
  store_le(bytes, 8, 8, checksum64(std::span<const std::byte>(bytes).subspan(16)));
}

std::vector<std::byte> sample() { return encode_sidecar(kKind, kVersion, kPayload); }

// Decodes `bytes` and requires CorruptSidecar naming kPath; returns the reason.
std::string corrupt_reason(const std::vector<std::byte>& bytes) {
  auto result = decode_sidecar(bytes, kKind, kVersion, kPath);
  REQUIRE_FALSE(result.ok());
  const StoreError& error = result.error();
  INFO(error.to_string());
  CHECK(error.code() == ErrorCode::CorruptSidecar);
  CHECK(error.error_class() == ErrorClass::FailClosed);
  CHECK(error.field_string("path") == kPath);
  CHECK(error.message().find(kPath) != std::string::npos);
  return error.field_string("reason").value_or("(no reason)");
}

}  // namespace

TEST_CASE("encode_sidecar writes the documented envelope", "[format]") {
  auto bytes = sample();
  REQUIRE(bytes.size() == kSidecarHeaderSize + kPayload.size());
  CHECK(std::memcmp(bytes.data(), "KEELSIDE", 8) == 0);
  CHECK(load_le(bytes, 16, 4) == static_cast<uint32_t>(kKind));
  CHECK(load_le(bytes, 20, 4) == kVersion);
  CHECK(load_le(bytes, 24, 4) == kPayload.size());
  CHECK(load_le(bytes, 28, 4) == 0);
  CHECK(std::equal(kPayload.begin(), kPayload.end(), bytes.begin() + kSidecarHeaderSize));
  // XXH3-64, seed 0, over [16, end): kind, version, length, reserved and payload.
  CHECK(load_le(bytes, 8, 8) == checksum64(std::span<const std::byte>(bytes).subspan(16), 0));
}

TEST_CASE("decode_sidecar round-trips the payload", "[format]") {
  auto bytes = sample();
  auto payload = decode_sidecar(bytes, kKind, kVersion, kPath);
  REQUIRE(payload.ok());
  CHECK(std::vector<std::byte>(payload->begin(), payload->end()) == kPayload);
  CHECK(payload->data() == bytes.data() + kSidecarHeaderSize);  // a view into the input

  auto empty = encode_sidecar(kKind, 1, {});
  CHECK(empty.size() == kSidecarHeaderSize);
  auto empty_payload = decode_sidecar(empty, kKind, kVersion, kPath);
  REQUIRE(empty_payload.ok());
  CHECK(empty_payload->empty());
}

TEST_CASE("an older version than supported is read", "[format]") {
  auto old = encode_sidecar(kKind, 1, kPayload);
  CHECK(decode_sidecar(old, kKind, kVersion, kPath).ok());
}

TEST_CASE("each kind of damage is CorruptSidecar naming the path and the reason", "[format]") {
  const auto original = sample();
  SECTION("shorter than the envelope header") {
    CHECK(corrupt_reason({}) == "shorter than the envelope header");
    CHECK(corrupt_reason(std::vector<std::byte>(original.begin(),
                                                original.begin() + kSidecarHeaderSize - 1)) ==
          "shorter than the envelope header");
  }
  SECTION("bad magic, even with a matching checksum") {
    auto bytes = original;
    bytes[3] ^= std::byte{0x01};
    reseal(bytes);
    CHECK(corrupt_reason(bytes) == "bad magic");
    auto segment_magic = original;
    std::memcpy(segment_magic.data(), kSegmentMagic, 8);
    CHECK(corrupt_reason(segment_magic) == "bad magic");
  }
  SECTION("payload length does not match the file size") {
    const std::string reason = "payload length does not match the file size";
    auto longer = original;
    longer.push_back(std::byte{0});
    CHECK(corrupt_reason(longer) == reason);
    auto shorter = original;
    shorter.pop_back();
    CHECK(corrupt_reason(shorter) == reason);
    auto lying_length = original;
    store_le(lying_length, 24, 4, kPayload.size() + 1);
    reseal(lying_length);
    CHECK(corrupt_reason(lying_length) == reason);
    auto huge_length = original;
    store_le(huge_length, 24, 4, 0xffffffff);
    CHECK(corrupt_reason(huge_length) == reason);
  }
  SECTION("checksum mismatch anywhere in [8, end)") {
    for (size_t offset = 8; offset < original.size(); ++offset) {
      if (offset >= 24 && offset < 28) continue;  // the length: caught by the size rule first
      INFO("offset " << offset);
      auto bytes = original;
      bytes[offset] ^= std::byte{0x40};
      CHECK(corrupt_reason(bytes) == "checksum mismatch");
    }
  }
  SECTION("another kind of sidecar") {
    auto epoch = encode_sidecar(SidecarKind::Epoch, kVersion, kPayload);
    CHECK(corrupt_reason(epoch) == "wrong sidecar kind");
  }
  SECTION("reserved bytes are not zero") {
    for (size_t offset = 28; offset < 32; ++offset) {
      auto bytes = original;
      store_le(bytes, offset, 1, 0x01);
      reseal(bytes);
      CHECK(corrupt_reason(bytes) == "reserved bytes are not zero");
    }
  }
  SECTION("version 0") { CHECK(corrupt_reason(encode_sidecar(kKind, 0, kPayload)) == "version 0"); }
}

TEST_CASE("a newer version is UnsupportedVersion with found and supported", "[format]") {
  auto newer = encode_sidecar(kKind, kVersion + 1, kPayload);
  auto result = decode_sidecar(newer, kKind, kVersion, kPath);
  REQUIRE_FALSE(result.ok());
  const StoreError& error = result.error();
  CHECK(error.code() == ErrorCode::UnsupportedVersion);
  CHECK(error.error_class() == ErrorClass::FailClosed);
  CHECK(error.field_string("path") == kPath);
  CHECK(error.field_u64("found") == kVersion + 1);
  CHECK(error.field_u64("supported") == kVersion);
  CHECK(error.message().find(kPath) != std::string::npos);
}

TEST_CASE("write_sidecar and read_sidecar on disk", "[format]") {
  keel::test::TempDir dir;
  auto& fs = keel::platform::posix_file_system();
  const std::string name = "CURSOR";
  const std::string path = dir / name;

  SECTION("an absent file is nullopt, not an error") {
    auto absent = keel::log::read_sidecar(fs, dir.path(), name, kKind, kVersion);
    REQUIRE(absent.ok());
    CHECK_FALSE(absent->has_value());
  }
  SECTION("write, read back, replace, read back; no temp file left") {
    KEEL_REQUIRE_OK(keel::log::write_sidecar(fs, dir.path(), name, kKind, kVersion, kPayload));
    CHECK(keel::test::read_bytes(path) == sample());
    auto first = keel::log::read_sidecar(fs, dir.path(), name, kKind, kVersion);
    REQUIRE(first.ok());
    REQUIRE(first->has_value());
    CHECK(**first == kPayload);

    auto replacement = bytes_of("x");
    KEEL_REQUIRE_OK(keel::log::write_sidecar(fs, dir.path(), name, kKind, kVersion, replacement));
    auto second = keel::log::read_sidecar(fs, dir.path(), name, kKind, kVersion);
    REQUIRE(second.ok());
    REQUIRE(second->has_value());
    CHECK(**second == replacement);  // shorter content: the old tail is gone

    auto names = fs.list_directory(dir.path());
    REQUIRE(names.ok());
    CHECK(*names == std::vector<std::string>{name});
  }
  SECTION("a leftover temp file from a crash is replaced, and the target was never touched") {
    std::string temp = path + kTempSuffix;
    {
      auto file = fs.open(temp, keel::platform::OpenMode::CreateNew);
      REQUIRE(file.ok());
      KEEL_REQUIRE_OK((*file)->write_at(0, std::vector<std::byte>(200, std::byte{0x77})));
    }
    KEEL_REQUIRE_OK(keel::log::write_sidecar(fs, dir.path(), name, kKind, kVersion, kPayload));
    CHECK(keel::test::read_bytes(path) == sample());
    CHECK_FALSE(*fs.exists(temp));
  }
  SECTION("a damaged file is CorruptSidecar naming its path, never absent") {
    KEEL_REQUIRE_OK(keel::log::write_sidecar(fs, dir.path(), name, kKind, kVersion, kPayload));
    keel::test::flip_byte(path, kSidecarHeaderSize + 1);
    auto result = keel::log::read_sidecar(fs, dir.path(), name, kKind, kVersion);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == ErrorCode::CorruptSidecar);
    CHECK(result.error().field_string("path") == path);
  }
  SECTION("a file of a newer version is UnsupportedVersion") {
    KEEL_REQUIRE_OK(keel::log::write_sidecar(fs, dir.path(), name, kKind, kVersion + 1, kPayload));
    auto result = keel::log::read_sidecar(fs, dir.path(), name, kKind, kVersion);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code() == ErrorCode::UnsupportedVersion);
    CHECK(result.error().field_u64("found") == kVersion + 1);
  }
}
