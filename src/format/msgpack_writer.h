// A minimal MessagePack writer for keel's record bodies: appends standard msgpack (smallest integer
// encoding, str8/16/32, bin8/16/32) to a byte vector. The output is ordinary msgpack that any
// msgpack library reads (tests/event_body_test.cc checks it with msgpack-c).
//
// Each value is written with direct stores into room grown for it (this is the encode hot path: a
// byte-at-a-time push_back cost half of the encode time). A caller that knows a bound of what it
// writes reserve()s it once, so the values do not each grow (and zero) the vector; such a writer
// trims the vector to the bytes written when it is destroyed. Without reserve() the vector's size
// is always the bytes written, and the vector is the caller's again (e.g. to pad it) while the
// writer lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace keel::format {

class MsgpackWriter {
 public:
  explicit MsgpackWriter(std::vector<std::byte>& out) : out_(out), end_(out.size()) {}
  ~MsgpackWriter() {
    if (reserved_) out_.resize(end_);
  }
  MsgpackWriter(const MsgpackWriter&) = delete;
  MsgpackWriter& operator=(const MsgpackWriter&) = delete;

  // Grows the vector once for `n` more bytes, which the following values fill.
  void reserve(size_t n) {
    if (end_ + n > out_.size()) out_.resize(end_ + n);
    reserved_ = true;
  }
  // The end of the bytes written, as an offset into the vector (its size may be larger until the
  // writer is destroyed).
  size_t end() const { return end_; }

  void nil() { grow(1)[0] = std::byte{0xc0}; }
  void boolean(bool v) { grow(1)[0] = std::byte{static_cast<uint8_t>(v ? 0xc3 : 0xc2)}; }
  void uint(uint64_t v) {
    if (v < 0x80) {
      grow(1)[0] = std::byte{static_cast<uint8_t>(v)};
    } else if (v <= 0xff) {
      tagged(0xcc, v, 1);
    } else if (v <= 0xffff) {
      tagged(0xcd, v, 2);
    } else if (v <= 0xffffffff) {
      tagged(0xce, v, 4);
    } else {
      tagged(0xcf, v, 8);
    }
  }
  void array_header(uint32_t n) {
    if (n < 16) {
      grow(1)[0] = std::byte{static_cast<uint8_t>(0x90 | n)};
    } else if (n <= 0xffff) {
      tagged(0xdc, n, 2);
    } else {
      tagged(0xdd, n, 4);
    }
  }
  void str(std::string_view s) {
    size_t n = s.size();
    std::byte* p;
    if (n < 32) {
      p = grow(1 + n);
      p[0] = std::byte{static_cast<uint8_t>(0xa0 | n)};
      p += 1;
    } else if (n <= 0xff) {
      p = tagged(0xd9, n, 1, n);
    } else if (n <= 0xffff) {
      p = tagged(0xda, n, 2, n);
    } else {
      p = tagged(0xdb, n, 4, n);
    }
    if (n != 0) std::memcpy(p, s.data(), n);
  }
  void bin(const void* data, size_t n) {
    std::byte* p;
    if (n <= 0xff) {
      p = tagged(0xc4, n, 1, n);
    } else if (n <= 0xffff) {
      p = tagged(0xc5, n, 2, n);
    } else {
      p = tagged(0xc6, n, 4, n);
    }
    if (n != 0) std::memcpy(p, data, n);
  }
  void bin(std::string_view s) { bin(s.data(), s.size()); }
  // Two u64 as 16 big-endian bytes (ids and hashes sort bytewise as they compare numerically).
  void bin128(uint64_t high, uint64_t low) {
    std::byte* p = grow(18);
    p[0] = std::byte{0xc4};
    p[1] = std::byte{16};
    uint64_t h = __builtin_bswap64(high);
    uint64_t l = __builtin_bswap64(low);
    std::memcpy(p + 2, &h, 8);
    std::memcpy(p + 10, &l, 8);
  }

 private:
  std::byte* grow(size_t n) {
    size_t at = end_;
    end_ += n;
    if (end_ > out_.size()) out_.resize(end_);
    return out_.data() + at;
  }
  // Writes tag + `width` big-endian bytes of v, growing by `extra` more bytes for what follows;
  // returns where those extra bytes go.
  std::byte* tagged(uint8_t tag, uint64_t v, int width, size_t extra = 0) {
    std::byte* p = grow(1 + static_cast<size_t>(width) + extra);
    p[0] = std::byte{tag};
    for (int i = 0; i < width; ++i) {
      p[1 + i] = std::byte{static_cast<uint8_t>(v >> (8 * (width - 1 - i)))};
    }
    return p + 1 + width;
  }

  std::vector<std::byte>& out_;
  size_t end_;  // out_[0, end_) is written; beyond it, room reserved
  bool reserved_ = false;
};

}  // namespace keel::format
