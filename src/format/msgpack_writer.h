// A minimal MessagePack writer for keel's record bodies: appends standard msgpack (smallest integer
// encoding, str8/16/32, bin8/16/32) to a byte vector. The output is ordinary msgpack that any
// msgpack library reads (tests/event_body_test.cc checks it with msgpack-c).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace keel::format {

class MsgpackWriter {
 public:
  explicit MsgpackWriter(std::vector<std::byte>& out) : out_(out) {}

  void nil() { byte(0xc0); }
  void boolean(bool v) { byte(v ? 0xc3 : 0xc2); }
  void uint(uint64_t v) {
    if (v < 0x80) {
      byte(static_cast<uint8_t>(v));
    } else if (v <= 0xff) {
      byte(0xcc);
      byte(static_cast<uint8_t>(v));
    } else if (v <= 0xffff) {
      byte(0xcd);
      big_endian(v, 2);
    } else if (v <= 0xffffffff) {
      byte(0xce);
      big_endian(v, 4);
    } else {
      byte(0xcf);
      big_endian(v, 8);
    }
  }
  void array_header(uint32_t n) {
    if (n < 16) {
      byte(static_cast<uint8_t>(0x90 | n));
    } else if (n <= 0xffff) {
      byte(0xdc);
      big_endian(n, 2);
    } else {
      byte(0xdd);
      big_endian(n, 4);
    }
  }
  void str(std::string_view s) {
    size_t n = s.size();
    if (n < 32) {
      byte(static_cast<uint8_t>(0xa0 | n));
    } else if (n <= 0xff) {
      byte(0xd9);
      byte(static_cast<uint8_t>(n));
    } else if (n <= 0xffff) {
      byte(0xda);
      big_endian(n, 2);
    } else {
      byte(0xdb);
      big_endian(n, 4);
    }
    raw(s.data(), n);
  }
  void bin(const void* data, size_t n) {
    if (n <= 0xff) {
      byte(0xc4);
      byte(static_cast<uint8_t>(n));
    } else if (n <= 0xffff) {
      byte(0xc5);
      big_endian(n, 2);
    } else {
      byte(0xc6);
      big_endian(n, 4);
    }
    raw(data, n);
  }
  void bin(std::string_view s) { bin(s.data(), s.size()); }
  // Two u64 as 16 big-endian bytes (ids and hashes sort bytewise as they compare numerically).
  void bin128(uint64_t high, uint64_t low) {
    byte(0xc4);
    byte(16);
    big_endian(high, 8);
    big_endian(low, 8);
  }

 private:
  void byte(uint8_t b) { out_.push_back(static_cast<std::byte>(b)); }
  void big_endian(uint64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) byte(static_cast<uint8_t>(v >> (8 * i)));
  }
  void raw(const void* data, size_t n) {
    size_t at = out_.size();
    out_.resize(at + n);
    if (n != 0) std::memcpy(out_.data() + at, data, n);
  }

  std::vector<std::byte>& out_;
};

}  // namespace keel::format
