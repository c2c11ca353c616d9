// The seam between the Store and the layers above it (src/consumers/): what they need that the
// public API does not give. Nothing else includes this.
#pragma once

#include "keel/store.h"
#include "platform/file_system.h"

namespace keel {

struct StoreInternals {
  // The file system the store runs on (StoreOptions::file_system, or POSIX).
  static platform::FileSystem& file_system(Store& store);
  static bool read_only(const Store& store);
};

}  // namespace keel
