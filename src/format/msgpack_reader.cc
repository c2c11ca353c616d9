#include "format/msgpack_reader.h"

namespace keel::format {

std::optional<uint64_t> MsgpackReader::big_endian(size_t width) {
  if (remaining() < width) return std::nullopt;
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<uint8_t>(bytes_[position_ + i]);
  position_ += width;
  return v;
}

std::optional<std::string_view> MsgpackReader::take(uint64_t n) {
  if (remaining() < n) return std::nullopt;
  std::string_view s(reinterpret_cast<const char*>(bytes_.data()) + position_, n);
  position_ += n;
  return s;
}

bool MsgpackReader::nil() {
  if (!next_is_nil()) return false;
  ++position_;
  return true;
}

std::optional<uint64_t> MsgpackReader::uint() {
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

std::optional<uint32_t> MsgpackReader::array_header() {
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

std::optional<std::string_view> MsgpackReader::str() {
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

std::optional<std::string_view> MsgpackReader::bin() {
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

bool MsgpackReader::bin128(uint64_t& high, uint64_t& low) {
  auto b = bin();
  if (!b || b->size() != 16) return false;
  high = 0;
  low = 0;
  for (int i = 0; i < 8; ++i) high = (high << 8) | static_cast<uint8_t>((*b)[i]);
  for (int i = 8; i < 16; ++i) low = (low << 8) | static_cast<uint8_t>((*b)[i]);
  return true;
}

}  // namespace keel::format
