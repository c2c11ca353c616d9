// Little-endian loads and stores on byte buffers (keel's format is little-endian throughout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace keel::format {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "keel assumes a little-endian host");

inline uint16_t load_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint32_t load_u32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t load_u64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store_u16(std::byte* p, uint16_t v) { std::memcpy(p, &v, sizeof v); }
inline void store_u32(std::byte* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }
inline void store_u64(std::byte* p, uint64_t v) { std::memcpy(p, &v, sizeof v); }

}  // namespace keel::format
