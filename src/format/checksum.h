// The checksums of the format: XXH3-64 for frames, headers and sidecars; XXH3-128 for the hash chain
// and fingerprints. Test vectors pinned in tests/checksum_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "keel/ids.h"

namespace keel::format {

uint64_t checksum64(std::span<const std::byte> bytes, uint64_t seed = 0);
Hash128 hash128(std::span<const std::byte> bytes, uint64_t seed = 0);

}  // namespace keel::format
