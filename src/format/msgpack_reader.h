// A bounded, allocation-free MessagePack reader for keel's record bodies.
//
// Reads only the msgpack types keel's schema uses (nil, unsigned ints, arrays, str, bin) and refuses
// anything else. Every declared length is checked against the bytes that remain before it is used,
// so hostile input can neither read out of bounds nor make it allocate (STACK.md trap 1: the cap is
// the frame length by construction). Returned string views point into the input buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace keel::format {

class MsgpackReader {
 public:
  explicit MsgpackReader(std::span<const std::byte> bytes) : bytes_(bytes) {}

  size_t position() const { return position_; }
  size_t remaining() const { return bytes_.size() - position_; }
  bool at_end() const { return position_ == bytes_.size(); }
  // The input bytes [from, to); requires from <= to <= position().
  std::span<const std::byte> consumed(size_t from, size_t to) const {
    return bytes_.subspan(from, to - from);
  }

  // Each returns nullopt (and leaves the position unspecified) on a type mismatch or short input.
  bool next_is_nil() const { return !at_end() && peek() == 0xc0; }
  bool nil();
  std::optional<uint64_t> uint();
  std::optional<uint32_t> array_header();
  std::optional<std::string_view> str();
  std::optional<std::string_view> bin();
  // A bin of exactly 16 bytes, as two big-endian u64.
  bool bin128(uint64_t& high, uint64_t& low);

 private:
  uint8_t peek() const { return static_cast<uint8_t>(bytes_[position_]); }
  std::optional<uint64_t> big_endian(size_t width);
  std::optional<std::string_view> take(uint64_t n);

  std::span<const std::byte> bytes_;
  size_t position_ = 0;
};

}  // namespace keel::format
