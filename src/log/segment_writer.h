// SegmentWriter: appends framed records to the active segment, rotates (seal, then create and
// preallocate the next segment), writes a group of records with one write and syncs it.
//
// Durability: a group hands the pending records to the OS with one write (sequence_written) and
// may make them durable with one fdatasync (sequence_durable). Every frame carries durable_through
// = the segment offset the last successful fdatasync covered, so recovery can tell damage in synced
// data from a torn unsynced tail (FORMAT.md, decision 2026-11-22 in docs/DECISIONS.md).
//
// Group commit: begin_write() takes the pending records under the owner's lock, run_write() does
// the I/O without it (other threads keep appending to the next group meanwhile), end_write()
// records the outcome under the lock again; begin_sync() / run_sync() / end_sync() do the same for
// one fdatasync. One write and one sync may be in flight at once. flush() and sync() run the stages
// inline (the owner calls them only when both are idle).
//
// Poisoning: after any failed write or sync the writer is poisoned: every later call fails with
// WriterPoisoned naming the original failure, and nothing is retried (docs/ARCHITECTURE.md §4). The
// offset the last successful fdatasync covered is remembered for this process
// (log/poisoned_logs.h), so a reopen in the same process truncates to it before recovery.
//
// Threads: not thread-safe; one owner (the commit point) calls it, except the static run_write()
// and run_sync(), which touch only the group or ticket they are given.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "format/record.h"
#include "keel/result.h"
#include "log/recovery.h"
#include "log/synced_point.h"
#include "platform/file_system.h"

namespace keel::log {

struct SegmentWriterOptions {
  // Segments rotate before a record would cross this size; new segments are preallocated to it.
  uint64_t segment_size = 64ull << 20;
  // NEGATIVE CONTROL FOR TESTS ONLY: sync() skips the fdatasync but still reports the records
  // durable, so tests/power_loss_test.cc can show it detects a writer that lies about syncing.
  bool skip_sync_for_test = false;
};

// The largest Seal frame of either form; every segment keeps this much room for its seal.
inline constexpr uint64_t kSealFrameMax = format::align_frame(format::kFrameHeaderMax + 10);
// The smallest segment size that can hold a header, one small record and a seal.
inline constexpr uint64_t kSegmentSizeMin = 4096;

// InvalidArgument when `options` cannot work (segment_size below kSegmentSizeMin). Log::open
// checks this before it touches the directory, so a refused open leaves nothing behind.
Status check_segment_writer_options(const SegmentWriterOptions& options);

class SegmentWriter {
 public:
  // Continues the log `recovered` describes (after writable recovery repaired it), writing frames
  // of `epoch`. Creates the first or next segment when there is none or the last one is sealed.
  // Errors: NoSpace (preallocation), Io, InvalidArgument (segment size below kSegmentSizeMin).
  static Result<std::unique_ptr<SegmentWriter>> open(platform::FileSystem& fs,
                                                     const std::string& directory,
                                                     const SegmentWriterOptions& options,
                                                     const RecoveredLog& recovered, uint64_t epoch);

  // The sequence the next event gets.
  uint64_t next_sequence() const { return next_sequence_; }
  uint64_t sequence_written() const { return sequence_written_; }
  uint64_t sequence_durable() const { return sequence_durable_; }
  uint64_t epoch() const { return epoch_; }
  uint64_t active_segment_id() const { return segment_id_; }
  bool poisoned() const { return poison_.has_value(); }
  // The failure that poisoned the writer (when poisoned()).
  const std::optional<StoreError>& poison_cause() const { return poison_; }
  // What a call refused because of the poison returns: WriterPoisoned naming the original failure
  // (FailClosed). Only when poisoned().
  StoreError poisoned_error() const;
  // Poisons the writer from outside (the commit pipeline found an invariant broken): fail closed.
  void poison_with(StoreError cause) { (void)poison(std::move(cause)); }

  // Each encodes one record into the pending group, with the next sequence(s). A record that would
  // not fit the active segment first rotates; one that fits no segment, or with a body above
  // (the format's limit), is PayloadTooLarge and leaves nothing pending.
  Status append_event(const format::EventBody& event, Hash128* chained_hash);
  Status append_batch(std::span<const format::EventBody> events,
                      std::vector<Hash128>* chained_hashes);
  // The same, linking items of the batch (format::append_batch_frame with chain_to).
  Status append_batch(std::span<format::EventBody> events, std::span<const int32_t> chain_to,
                      std::vector<Hash128>* chained_hashes);
  Status append_system(const format::SystemRecord& record);

  // Where the last appended record's frame is (valid after a successful append_*); after an open
  // or a rotation, the active segment's last frame (offset 0 when it holds none).
  RecordPosition last_record_position() const { return last_record_; }
  // Bytes encoded but not yet handed to the OS.
  uint64_t pending_bytes() const { return pending_.size(); }
  // The end of the bytes handed to the OS in the active segment.
  uint64_t written_offset() const { return written_offset_; }
  uint64_t durable_offset() const { return durable_offset_; }

  // Whether appending a record of at most `record_bytes` would rotate the segment first (a
  // rotation needs the stages idle: the owner waits for that before it appends).
  bool would_rotate(uint64_t record_bytes) const;
  // Bytes handed to the OS but not yet covered by an fdatasync, plus pending_bytes().
  uint64_t unsynced_bytes() const { return issued_offset_ - durable_offset_ + pending_.size(); }

  // ---- group commit: a write stage and a sync stage, each at most one in flight ----
  // A write of the next group may run while the previous group's fdatasync does: an fdatasync
  // covers what was written before it started, so it is taken as a ticket naming that end.
  struct WriteGroup {
    platform::File* file = nullptr;  // null: nothing to do (a rotation that ran out of space)
    uint64_t offset = 0;             // where `bytes` go in the active segment
    std::vector<std::byte> bytes;    // the group's records
    uint64_t last_sequence = 0;      // the last event the group holds
    // An fdatasync follows at once (a Durable append, the background sync). When not (a Written
    // append, the memory bound of Accepted ones) the write may go through the segment's mapping
    // (File::write_mapped).
    bool sync_follows = true;
  };
  struct SyncTicket {
    platform::File* file = nullptr;
    uint64_t offset = 0;         // the written end this fdatasync covers
    uint64_t last_sequence = 0;  // the last event it covers
    bool skip_sync_for_test = false;
    platform::File* synced_point = nullptr;  // SYNCED, told the new point after the fdatasync
    SyncedPoint point;
  };
  bool write_in_flight() const { return write_in_flight_; }
  bool sync_in_flight() const { return sync_in_flight_; }
  bool idle() const { return !write_in_flight_ && !sync_in_flight_; }
  // Moves the pending records into `group`. InvariantViolation with a write in flight;
  // WriterPoisoned when poisoned. `sync_follows`: see WriteGroup.
  Status begin_write(WriteGroup& group, bool sync_follows = true);
  // One write of the group's bytes; touches nothing but `group` (call it without the lock).
  static Status run_write(WriteGroup& group);
  // Records run_write()'s outcome: advances written, or poisons the writer.
  Status end_write(WriteGroup& group, Status outcome);
  // Takes a ticket covering everything written so far. InvariantViolation with a sync in flight.
  Status begin_sync(SyncTicket& ticket);
  // One fdatasync, then SYNCED (log/synced_point.h) overwritten with the point it covers; touches
  // nothing but `ticket` (call it without the lock).
  static Status run_sync(SyncTicket& ticket);
  // Records run_sync()'s outcome: advances durable to the ticket, or poisons the writer. A poisoned
  // writer's durable never advances again, even when an fdatasync in flight succeeds.
  Status end_sync(SyncTicket& ticket, Status outcome);

  // Writes the pending records with one write (a whole group, inline).
  Status flush();
  // The same, then one fdatasync.
  Status sync();
  // sync(), then truncates the active segment's preallocation. The writer is unusable after.
  Status close();

 private:
  SegmentWriter(platform::FileSystem& fs, std::string directory, SegmentWriterOptions options,
                uint64_t epoch)
      : fs_(fs), directory_(std::move(directory)), options_(options), epoch_(epoch) {}

  template <class Encode>
  Status append_record(uint32_t event_count, Encode encode);
  template <class Encode>
  Status append_batch_record(size_t count, std::vector<Hash128>* chained_hashes, Encode encode);
  Status create_segment(uint64_t segment_id, uint64_t first_sequence);
  Status continue_segment(const RecoveredSegment& segment);
  Status rotate();
  Status start_next_segment();
  Status check_usable() const;
  StoreError poison(StoreError cause);
  format::FrameContext context() const {
    return {segment_id_, epoch_, durable_offset_, frame_form_};
  }

  platform::FileSystem& fs_;
  std::string directory_;
  SegmentWriterOptions options_;
  uint64_t epoch_;

  std::unique_ptr<platform::File> file_;  // null after a failed rotation, until a retry
  std::unique_ptr<platform::File> synced_point_;  // SYNCED, for read-only followers
  uint64_t segment_id_ = 0;
  // The active segment's frame form: compact in the segments this build creates, padded in an
  // older version's segment continued only to be sealed (SegmentWriter::open).
  format::FrameForm frame_form_ = format::FrameForm::Compact;
  uint64_t segment_event_count_ = 0;
  uint64_t issued_offset_ = 0;   // end of the bytes given to groups (pending_ starts here)
  uint64_t written_offset_ = 0;  // end of the bytes handed to the OS
  uint64_t durable_offset_ = 0;  // end of the bytes the last fdatasync covered
  std::vector<std::byte> pending_;  // encoded records not yet in a group
  std::vector<std::byte> spare_;    // the last group's buffer, reused for the next pending_
  bool write_in_flight_ = false;
  bool sync_in_flight_ = false;

  RecordPosition last_record_;
  uint64_t next_sequence_ = 1;
  uint64_t sequence_issued_ = 0;
  uint64_t sequence_written_ = 0;
  uint64_t sequence_durable_ = 0;
  std::optional<StoreError> poison_;
  bool closed_ = false;
};

}  // namespace keel::log
