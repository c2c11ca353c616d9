// The checksums of the format: XXH3-64 for frames, headers and sidecars; XXH3-128 for the hash chain
// and fingerprints. Test vectors pinned in tests/checksum_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "keel/ids.h"

namespace keel::format {

uint64_t checksum64(std::span<const std::byte> bytes, uint64_t seed = 0);
Hash128 hash128(std::span<const std::byte> bytes, uint64_t seed = 0);

// hash128 of bytes that arrive in pieces (seed 0): the same value as hash128 of their
// concatenation.
class Hasher128 {
 public:
  Hasher128();
  ~Hasher128();
  Hasher128(const Hasher128&) = delete;
  Hasher128& operator=(const Hasher128&) = delete;
  void update(std::span<const std::byte> bytes);
  Hash128 digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace keel::format
