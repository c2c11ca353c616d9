// Log: the log layer's front door. Opens a store directory: takes the writer lock, reads the epoch,
// runs recovery, persists epoch + 1 and opens the SegmentWriter (writable), or recovers in memory
// (read-only). The store layer builds on this.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "keel/result.h"
#include "log/poisoned_logs.h"
#include "log/recovery.h"
#include "log/segment_writer.h"
#include "platform/file_system.h"

namespace keel::log {

struct LogOptions {
  bool create_if_missing = false;
  bool read_only = false;
  SegmentWriterOptions writer;
  // Recovery resumes at this checkpoint (log/recovery.h) when the log matches it.
  std::optional<Checkpoint> checkpoint;
  std::function<void(const std::string& reason)> checkpoint_rejected;
};

class Log {
 public:
  // Errors: NotFound (no store directory and !create_if_missing), StoreLocked (another writable
  // open holds the lock), CorruptSidecar (epoch file), recovery's errors, Io, NoSpace.
  // `visit` (may be empty) sees every recovered record in order.
  static Result<std::unique_ptr<Log>> open(platform::FileSystem& fs, const std::string& directory,
                                           const LogOptions& options,
                                           const RecordVisitor& visit = {});

  const RecoveredLog& recovered() const { return recovered_; }
  // The epoch of this open: the persisted epoch + 1 when writable, the persisted epoch otherwise.
  uint64_t epoch() const { return epoch_; }
  // Null when read-only.
  SegmentWriter* writer() { return writer_.get(); }
  const std::string& directory() const { return directory_; }

  // What the open cut because a writer of this process was poisoned (log/poisoned_logs.h).
  const std::vector<std::string>& poison_truncations() const { return poison_truncations_; }

  // Syncs and trims the active segment. The writer is unusable after.
  Status close();

 private:
  Log() = default;
  Status open_writable(platform::FileSystem& fs, const LogOptions& options,
                       const RecordVisitor& visit);
  Status cancel_open_fence();
  Status truncate_to_synced_end(platform::FileSystem& fs, const SyncedEnd& end);

  std::string directory_;
  std::unique_ptr<platform::FileLock> lock_;
  RecoveredLog recovered_;
  uint64_t epoch_ = 0;
  std::unique_ptr<SegmentWriter> writer_;
  std::vector<std::string> poison_truncations_;
};

}  // namespace keel::log
