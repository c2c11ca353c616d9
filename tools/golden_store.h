// The golden store: a tiny store written deterministically (fixed ids, clocks and payloads), so
// segments/golden/ can be regenerated and byte-compared by tests/golden_test.cc.
#pragma once

#include <string>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::tools {

// Writes the golden store into `directory` (which must not hold a store yet): events on two
// entities and two lanes, a batch, a fence begun and committed, a fence begun and cancelled, and
// enough events to rotate once (4 KiB segments).
Status write_golden_store(platform::FileSystem& fs, const std::string& directory);

}  // namespace keel::tools
