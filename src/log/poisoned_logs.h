// Poisoned logs: for each store directory whose writer was poisoned in this process, the end of the
// bytes its last successful fdatasync covered. After a failed fdatasync the page cache may still
// serve bytes the disk lost, so a reopen in the same process must not believe them: Log::open
// truncates to this end before recovery reads anything (docs/ARCHITECTURE.md §4, fsync poisoning).
//
// Keyed by (file system, directory string as given to open): a reopen through another spelling of
// the same path is not recognized (recorded in docs/DECISIONS.md).
//
// Threads: safe to call from any thread (one process-wide mutex).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "platform/file_system.h"

namespace keel::log {

struct SyncedEnd {
  uint64_t segment_id = 0;
  uint64_t offset = 0;  // bytes of segment_id an fdatasync covered; later segments hold none
};

// Remembers the first poisoning of `directory` (a later one for the same directory keeps the first
// until take_synced_end()).
void remember_synced_end(const platform::FileSystem& fs, const std::string& directory,
                         SyncedEnd end);
// Returns and forgets what was remembered for `directory`.
std::optional<SyncedEnd> take_synced_end(const platform::FileSystem& fs,
                                         const std::string& directory);

}  // namespace keel::log
