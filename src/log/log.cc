#include "log/log.h"

#include "format/format_constants.h"
#include "log/epoch_file.h"
#include "log/poisoned_logs.h"
#include "log/segment_files.h"

namespace keel::log {
namespace {

Result<uint64_t> stored_epoch(platform::FileSystem& fs, const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(auto epoch, read_epoch(fs, directory));
  if (epoch) return *epoch;
  KEEL_ASSIGN_OR_RETURN(auto segments, list_segment_files(fs, directory));
  if (!segments.empty()) {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", platform::join_path(directory, format::kEpochFileName))
        .with("reason", "the epoch file is missing but segments exist");
  }
  return uint64_t{0};  // a new store
}

}  // namespace

Result<std::unique_ptr<Log>> Log::open(platform::FileSystem& fs, const std::string& directory,
                                       const LogOptions& options, const RecordVisitor& visit) {
  // Refuse bad options before creating the directory, taking the lock or bumping the epoch.
  if (!options.read_only) KEEL_TRY(check_segment_writer_options(options.writer));
  std::unique_ptr<Log> log(new Log());
  log->fs_ = &fs;
  log->directory_ = directory;
  KEEL_ASSIGN_OR_RETURN(bool present, fs.exists(directory));
  if (!present) {
    if (!options.create_if_missing || options.read_only) {
      return StoreError(ErrorCode::NotFound).with("what", "store directory").with("key", directory);
    }
    KEEL_TRY(fs.create_directory(directory));
  }
  // A directory without an epoch file or a segment holds no store: only a writable open asked to
  // create one makes it a store (a mistyped path must not become an empty store, or read as one).
  KEEL_ASSIGN_OR_RETURN(uint64_t epoch, stored_epoch(fs, directory));
  if (epoch == 0 && (options.read_only || !options.create_if_missing)) {
    return StoreError(ErrorCode::NotFound)
        .with("what", "keel store (an EPOCH or a segment file)")
        .with("key", directory);
  }
  if (options.read_only) {
    log->epoch_ = epoch;
    KEEL_TRY(log->read_end(log->epoch_, options.accept_data_loss));
    KEEL_ASSIGN_OR_RETURN(
        log->recovered_,
        recover_log(fs, directory,
                    log->recovery_options(RecoveryMode::ReadOnly, log->epoch_, options), visit));
    return log;
  }
  KEEL_TRY(log->open_writable(fs, options, visit));
  return log;
}

// Reads END, which must not be later than the epoch file, and adds its point to the references.
RecoveryOptions Log::recovery_options(RecoveryMode mode, uint64_t epoch, const LogOptions& options) {
  RecoveryOptions recovery{mode,
                           epoch,
                           options.checkpoint,
                           options.checkpoint_rejected,
                           options.references,
                           options.accept_data_loss,
                           mode == RecoveryMode::ReadOnly && options.follow};
  if (log_end_) {  // first: among references to the same sequence, the error names END's point
    recovery.references.insert(
        recovery.references.begin(),
        LogReference{platform::join_path(directory_, format::kLogEndFileName),
                     log_end_->next_sequence, log_end_->segment_id, log_end_->offset});
  }
  return recovery;
}

// A damaged END fails closed, unless the caller accepts data loss: END is evidence, not data, so
// it is then set aside (its point and its record of earlier losses with it) and written anew at
// the next clean close.
Status Log::read_end(uint64_t epoch, bool accept_data_loss) {
  auto end = read_log_end(*fs_, directory_);
  if (end.ok() && *end && (*end)->epoch > epoch) {
    end = StoreError(ErrorCode::CorruptSidecar)
              .with("path", platform::join_path(directory_, format::kLogEndFileName))
              .with("reason", "it is from epoch " + std::to_string((*end)->epoch) +
                                  ", later than the epoch file's " + std::to_string(epoch));
  }
  if (!end.ok()) {
    if (!accept_data_loss || !end.error().is(ErrorCode::CorruptSidecar)) {
      return std::move(end).error();
    }
    end_set_aside_ = end.error().to_string();
    return ok_status();
  }
  log_end_ = std::move(end).value();
  return ok_status();
}

// An accepted loss: the caller's references first, then END (the new end and the loss), so a
// crash in between leaves END naming the old point and the next open finds the loss again.
Status Log::record_loss(const LogOptions& options, uint64_t new_epoch) {
  const DataLoss& loss = *recovered_.data_loss;
  if (options.before_loss_recorded) KEEL_TRY(options.before_loss_recorded(loss));
  LogEnd end = log_end_.value_or(LogEnd{});
  end.epoch = new_epoch;
  end.segment_id = loss.segment_id;
  end.offset = loss.offset;
  end.next_sequence = loss.recovered_next_sequence;
  end.losses.push_back(AcceptedLoss{new_epoch, loss.recovered_next_sequence,
                                    loss.reference.next_sequence, loss.segment_id, loss.offset,
                                    loss.bytes_dropped});
  if (end.segment_id == 0) {  // no segment survived: the end is where the first one will start
    end.segment_id = 1;
    end.offset = format::kSegmentHeaderSize;
  }
  KEEL_TRY(write_log_end(*fs_, directory_, end));
  log_end_ = std::move(end);
  return ok_status();
}

Status Log::open_writable(platform::FileSystem& fs, const LogOptions& options,
                          const RecordVisitor& visit) {
  KEEL_ASSIGN_OR_RETURN(lock_, fs.lock(platform::join_path(directory_, format::kLockFileName),
                                       platform::LockMode::Exclusive));
  if (!lock_) {
    std::optional<platform::FileSystem::LockHolder> holder =
        fs.lock_holder(platform::join_path(directory_, format::kLockFileName));
    std::string by = "another open (its process is not known)";
    if (holder) {
      by = (holder->this_process ? "this process, pid " : "process ") + std::to_string(holder->pid);
    }
    return StoreError(ErrorCode::StoreLocked)
        .with("path", directory_)
        .with("mode", "writable")
        .with("holder", by);
  }
  if (std::optional<SyncedEnd> end = take_synced_end(fs, directory_)) {
    if (Status cut = truncate_to_synced_end(fs, *end); !cut.ok()) {
      remember_synced_end(fs, directory_, *end);  // the next reopen tries again
      return cut;
    }
  }
  KEEL_ASSIGN_OR_RETURN(uint64_t previous_epoch, stored_epoch(fs, directory_));
  KEEL_TRY(read_end(previous_epoch, options.accept_data_loss));
  KEEL_ASSIGN_OR_RETURN(
      recovered_,
      recover_log(fs, directory_,
                  recovery_options(RecoveryMode::Writable, previous_epoch, options), visit));
  if (recovered_.data_loss) KEEL_TRY(record_loss(options, previous_epoch + 1));
  // Persist the new epoch before any frame of it is written.
  epoch_ = previous_epoch + 1;
  KEEL_TRY(write_epoch(fs, directory_, epoch_));
  KEEL_ASSIGN_OR_RETURN(writer_,
                        SegmentWriter::open(fs, directory_, options.writer, recovered_, epoch_));
  return cancel_open_fence();
}

// A writer of this process was poisoned: bytes past its last fdatasync may be served by the page
// cache although the disk lost them, so they are cut before recovery can believe them.
Status Log::truncate_to_synced_end(platform::FileSystem& fs, const SyncedEnd& end) {
  KEEL_ASSIGN_OR_RETURN(auto segments, list_segment_files(fs, directory_));
  for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
    if (it->segment_id > end.segment_id) {
      KEEL_TRY(fs.remove(it->path));
      poison_truncations_.push_back("removed " + it->path + " (written after the last fdatasync)");
      continue;
    }
    if (it->segment_id < end.segment_id) break;
    KEEL_ASSIGN_OR_RETURN(auto file, fs.open(it->path, platform::OpenMode::ReadWrite));
    KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
    if (size > end.offset) {
      KEEL_TRY(file->truncate(end.offset));
      KEEL_TRY(file->sync_data());
      poison_truncations_.push_back("truncated " + it->path + " to " + std::to_string(end.offset) +
                                    " bytes (cut " + std::to_string(size - end.offset) +
                                    " bytes after the last fdatasync)");
    }
  }
  return fs.sync_directory(directory_);
}

// Row OpenFenceAtTail: append the cancel record, so the fence's events stay hidden for good.
Status Log::cancel_open_fence() {
  if (recovered_.open_fence() == nullptr) return ok_status();
  FenceRange& fence = recovered_.fences.back();
  KEEL_TRY(writer_->append_system(format::SystemRecord{format::RecordType::FenceCancel,
                                                       fence.fence_id,
                                                       format::CancelReason::Recovery, 0}));
  KEEL_TRY(writer_->sync());
  fence.state = FenceState::Cancelled;
  for (RecoveryAction& action : recovered_.actions) {
    if (action.rule == RecoveryRule::OpenFenceAtTail) action.applied = true;
  }
  return ok_status();
}

Status Log::retain_from(const RetentionFloor& floor, std::vector<std::string>* removed) {
  if (!writer_) {
    return StoreError(ErrorCode::ReadOnlyStore)
        .with("path", directory_)
        .with("operation", "retain");
  }
  if (writer_->poisoned()) return writer_->poisoned_error();
  // The active segment takes the appends: it is never below the floor.
  if (floor.first_segment_id > writer_->active_segment_id()) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "retention floor")
        .with("reason", "segment " + std::to_string(floor.first_segment_id) +
                            " is after the active segment " +
                            std::to_string(writer_->active_segment_id()));
  }
  KEEL_TRY(check_retention_floor(*fs_, directory_, floor));
  KEEL_TRY(write_retention_floor(*fs_, directory_, floor));
  // From here RETAIN is durable: what recovered() says below it is gone, whatever follows.
  std::erase_if(recovered_.segments, [&](const RecoveredSegment& segment) {
    return segment.header.segment_id < floor.first_segment_id;
  });
  recovered_.retention_floor = floor;
  recovered_.first_sequence = floor.first_sequence;
  if (Status removed_all = remove_segments_below(*fs_, directory_, floor, removed);
      !removed_all.ok()) {
    // RETAIN is durable: the floor moved, and some removals may be on disk already. In doubt, not
    // retryable as is; the next writable open deletes what is left below the floor (row 13).
    return StoreError(ErrorCode::OperationInDoubt)
        .with("operation", "retention to segment " + std::to_string(floor.first_segment_id))
        .with("reason", "RETAIN was written, but removing the segments below it failed; the next "
                        "writable open removes what is left")
        .caused_by(std::move(removed_all).error());
  }
  return ok_status();
}

Status Log::close() {
  if (!writer_) return ok_status();
  Status closed = writer_->close();
  if (closed.ok()) {
    // Everything written is durable and trimmed: from now on a log that ends before this point
    // lost durable data (row DurableEndNotReached), whatever its frames say.
    LogEnd end = log_end_.value_or(LogEnd{});
    end.epoch = epoch_;
    end.segment_id = writer_->active_segment_id();
    end.offset = writer_->written_offset();
    end.next_sequence = writer_->next_sequence();
    closed = write_log_end(*fs_, directory_, end);
    if (closed.ok()) log_end_ = std::move(end);
  }
  writer_.reset();
  lock_.reset();
  return closed;
}

}  // namespace keel::log
