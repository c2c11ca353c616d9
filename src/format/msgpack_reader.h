// A bounded, allocation-free MessagePack reader for keel's record bodies.
//
// Reads only the msgpack types keel's schema uses (nil, unsigned ints, arrays, str, bin) and
// refuses anything else. Every declared length is checked against the bytes that remain before it
// is used, so hostile input can neither read out of bounds nor make it allocate
// (docs/ARCHITECTURE.md §11.1: the cap is the frame length by construction). Returned string views
// point into the input buffer.
//
// Defined inline: this is the scan hot path (decode_event_body calls it ~20 times per event).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
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
  // The bytes not read yet, and a step past n of them (n <= remaining()): for the compact event
  // body, which shares the reader's position but not its msgpack types.
  std::span<const std::byte> rest() const { return bytes_.subspan(position_); }
  void skip(size_t n) { position_ += n; }
  std::optional<uint8_t> peek_byte() const {
    if (at_end()) return std::nullopt;
    return peek();
  }

  // Each returns nullopt (and leaves the position unspecified) on a type mismatch or short input.
  bool next_is_nil() const { return !at_end() && peek() == 0xc0; }
  bool nil() {
    if (!next_is_nil()) return false;
    ++position_;
    return true;
  }

  std::optional<uint64_t> uint() {
    if (at_end()) return std::nullopt;
    uint8_t tag = peek();
    ++position_;
    if (tag < 0x80) return tag;
    switch (tag) {
      case 0xcc:
        return big_endian(1);
      case 0xcd:
        return big_endian(2);
      case 0xce:
        return big_endian(4);
      case 0xcf:
        return big_endian(8);
      default:
        return std::nullopt;
    }
  }

  std::optional<uint32_t> array_header() {
    if (at_end()) return std::nullopt;
    uint8_t tag = peek();
    ++position_;
    std::optional<uint64_t> n;
    if ((tag & 0xf0) == 0x90) {
      n = tag & 0x0f;
    } else if (tag == 0xdc) {
      n = big_endian(2);
    } else if (tag == 0xdd) {
      n = big_endian(4);
    }
    // Each element takes at least one byte: a count above what remains is a lie (trap 1).
    if (!n || *n > remaining()) return std::nullopt;
    return static_cast<uint32_t>(*n);
  }

  std::optional<std::string_view> str() {
    if (at_end()) return std::nullopt;
    uint8_t tag = peek();
    ++position_;
    std::optional<uint64_t> n;
    if ((tag & 0xe0) == 0xa0) {
      n = tag & 0x1f;
    } else if (tag == 0xd9) {
      n = big_endian(1);
    } else if (tag == 0xda) {
      n = big_endian(2);
    } else if (tag == 0xdb) {
      n = big_endian(4);
    }
    if (!n) return std::nullopt;
    return take(*n);
  }

  std::optional<std::string_view> bin() {
    if (at_end()) return std::nullopt;
    uint8_t tag = peek();
    ++position_;
    std::optional<uint64_t> n;
    if (tag == 0xc4) {
      n = big_endian(1);
    } else if (tag == 0xc5) {
      n = big_endian(2);
    } else if (tag == 0xc6) {
      n = big_endian(4);
    }
    if (!n) return std::nullopt;
    return take(*n);
  }

  // A bin of exactly 16 bytes, as two big-endian u64.
  bool bin128(uint64_t& high, uint64_t& low) {
    if (remaining() < 18 || peek() != 0xc4 || static_cast<uint8_t>(bytes_[position_ + 1]) != 16) {
      return false;
    }
    std::memcpy(&high, bytes_.data() + position_ + 2, 8);
    std::memcpy(&low, bytes_.data() + position_ + 10, 8);
    high = __builtin_bswap64(high);
    low = __builtin_bswap64(low);
    position_ += 18;
    return true;
  }

 private:
  uint8_t peek() const { return static_cast<uint8_t>(bytes_[position_]); }

  std::optional<uint64_t> big_endian(size_t width) {
    if (remaining() < width) return std::nullopt;
    const std::byte* p = bytes_.data() + position_;
    position_ += width;
    switch (width) {
      case 1:
        return static_cast<uint8_t>(p[0]);
      case 2: {
        uint16_t v;
        std::memcpy(&v, p, 2);
        return __builtin_bswap16(v);
      }
      case 4: {
        uint32_t v;
        std::memcpy(&v, p, 4);
        return __builtin_bswap32(v);
      }
      default: {
        uint64_t v;
        std::memcpy(&v, p, 8);
        return __builtin_bswap64(v);
      }
    }
  }

  std::optional<std::string_view> take(uint64_t n) {
    if (remaining() < n) return std::nullopt;
    std::string_view s(reinterpret_cast<const char*>(bytes_.data()) + position_, n);
    position_ += n;
    return s;
  }

  std::span<const std::byte> bytes_;
  size_t position_ = 0;
};

}  // namespace keel::format
