// keel: the library's version and the on-disk format version it writes. CMakeLists.txt reads the
// version from here, so the package, keel.pc and `keel --version` agree with the headers.
#pragma once

#include <cstdint>

#define KEEL_VERSION_MAJOR 0
#define KEEL_VERSION_MINOR 1
#define KEEL_VERSION_PATCH 0
#define KEEL_VERSION_STRING "0.1.0"

namespace keel {

inline constexpr const char* kVersion = KEEL_VERSION_STRING;
// The segment format this build writes and the newest it reads (segments/FORMAT.md); it reads
// every version from 1 on.
inline constexpr uint32_t kFormatVersion = 3;

}  // namespace keel
