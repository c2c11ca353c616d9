// Log: the log layer's front door. Opens a store directory: takes the writer lock, reads the epoch,
// runs recovery, persists epoch + 1 and opens the SegmentWriter (writable), or recovers in memory
// (read-only). The store layer builds on this.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "keel/result.h"
#include "log/log_end.h"
#include "log/poisoned_logs.h"
#include "log/recovery.h"
#include "log/retention_floor.h"
#include "log/segment_writer.h"
#include "platform/file_system.h"

namespace keel::log {

struct LogOptions {
  bool create_if_missing = false;
  bool read_only = false;
  // Read-only, with a checkpoint at the end of the last load: RecoveryOptions::follow.
  bool follow = false;
  SegmentWriterOptions writer;
  // Recovery resumes at this checkpoint (log/recovery.h) when the log matches it.
  std::optional<Checkpoint> checkpoint;
  std::function<void(const std::string& reason)> checkpoint_rejected;
  // Points persisted beside the log (an index image, the idempotency keys) that the recovered log
  // must reach; END's point (log/log_end.h) is added by open itself.
  std::vector<LogReference> references;
  // When the log does not reach a reference: fail closed (DurableDataLost) unless this is set.
  // Then a writable open calls `before_loss_recorded` (the caller drops its references above the
  // recovered end), records the loss in END, and continues the log from its recovered end in the
  // new epoch; a read-only open shows the log as it is.
  bool accept_data_loss = false;
  std::function<Status(const DataLoss&)> before_loss_recorded;
};

class Log {
 public:
  // Errors: NotFound (no store directory and !create_if_missing), StoreLocked (another writable
  // open holds the lock), CorruptSidecar (EPOCH, END), recovery's errors (DurableDataLost
  // included), Io, NoSpace.
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

  // Retention (log/retention_floor.h), writable only: checks `floor` against the log (its
  // segment exists, is not above the active segment, and starts at floor.first_sequence; a floor
  // is never lowered), writes RETAIN, removes the segment files below it, and drops them from
  // recovered() (segments, first_sequence, retention_floor). `removed` (may be null) receives the
  // paths removed. Call from the writer's owner, under the lock that guards writer() (it reads the
  // active segment id), once nothing reads the segments below the floor any more; appends may be
  // in flight (the active segment is never touched).
  // Errors: InvalidArgument (the floor does not fit the log; nothing written), ReadOnlyStore,
  // WriterPoisoned, Io (before RETAIN was written: nothing changed), OperationInDoubt
  // (Indeterminate: RETAIN was written and a removal or the directory sync after it failed, so
  // the floor moved and some files below it may be gone; the next writable open deletes the rest).
  Status retain_from(const RetentionFloor& floor, std::vector<std::string>* removed = nullptr);

  // END as read at open (or written by it, after an accepted loss): the losses accepted so far.
  const std::optional<LogEnd>& log_end() const { return log_end_; }
  // Why a damaged END was set aside (accept_data_loss only); empty otherwise.
  const std::string& end_set_aside() const { return end_set_aside_; }

  // Syncs and trims the active segment, then records its end in END (a later open that finds the
  // log shorter fails closed). The writer is unusable after.
  Status close();

 private:
  Log() = default;
  Status open_writable(platform::FileSystem& fs, const LogOptions& options,
                       const RecordVisitor& visit);
  Status cancel_open_fence();
  Status read_end(uint64_t epoch, bool accept_data_loss);
  RecoveryOptions recovery_options(RecoveryMode mode, uint64_t epoch, const LogOptions& options);
  Status record_loss(const LogOptions& options, uint64_t new_epoch);
  Status truncate_to_synced_end(platform::FileSystem& fs, const SyncedEnd& end);

  platform::FileSystem* fs_ = nullptr;
  std::string directory_;
  std::unique_ptr<platform::FileLock> lock_;
  RecoveredLog recovered_;
  uint64_t epoch_ = 0;
  std::unique_ptr<SegmentWriter> writer_;
  std::vector<std::string> poison_truncations_;
  std::optional<LogEnd> log_end_;
  std::string end_set_aside_;
};

}  // namespace keel::log
