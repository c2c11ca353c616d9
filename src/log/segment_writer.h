// SegmentWriter: appends framed records to the active segment, rotates (seal, then create and
// preallocate the next segment), writes a group of records with one write and syncs it.
//
// Durability: flush() hands the pending records to the OS (sequence_written); sync() makes them
// durable with one fdatasync (sequence_durable). Every frame carries durable_through = the segment
// offset the last successful fdatasync covered, so recovery can tell damage in synced data from a
// torn unsynced tail (FORMAT.md, decision 2026-11-22 in docs/DECISIONS.md).
//
// Poisoning: after any failed write or sync the writer is poisoned: every later call fails with
// WriterPoisoned naming the original failure, and nothing is retried (DESIGN.md §4).
//
// Threads: not thread-safe; one owner (the commit point) calls it.
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
#include "platform/file_system.h"

namespace keel::log {

struct SegmentWriterOptions {
  // Segments rotate before a record would cross this size; new segments are preallocated to it.
  uint64_t segment_size = 64ull << 20;
  // NEGATIVE CONTROL FOR TESTS ONLY: sync() skips the fdatasync but still reports the records
  // durable, so tests/power_loss_test.cc can show it detects a writer that lies about syncing.
  bool skip_sync_for_test = false;
};

// The largest Seal frame; every segment keeps this much room for its seal.
inline constexpr uint64_t kSealFrameMax = format::align_frame(format::kFrameHeaderSize + 10);
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

  // Each encodes one record into the pending group, with the next sequence(s). A record that would
  // not fit the active segment first rotates; one that fits no segment is PayloadTooLarge.
  Status append_event(const format::EventBody& event, Hash128* chained_hash);
  Status append_batch(std::span<const format::EventBody> events,
                      std::vector<Hash128>* chained_hashes);
  // The same, linking items of the batch (format::append_batch_frame with chain_to).
  Status append_batch(std::span<format::EventBody> events, std::span<const int32_t> chain_to,
                      std::vector<Hash128>* chained_hashes);
  Status append_system(const format::SystemRecord& record);

  // Where the last appended record's frame is (valid after a successful append_*).
  RecordPosition last_record_position() const { return last_record_; }
  // Bytes encoded but not yet handed to the OS.
  uint64_t pending_bytes() const { return pending_.size(); }
  // The end of the bytes handed to the OS in the active segment.
  uint64_t written_offset() const { return write_offset_; }

  // Writes the pending group with one write.
  Status flush();
  // flush(), then one fdatasync.
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
  format::FrameContext context() const { return {segment_id_, epoch_, durable_offset_}; }

  platform::FileSystem& fs_;
  std::string directory_;
  SegmentWriterOptions options_;
  uint64_t epoch_;

  std::unique_ptr<platform::File> file_;  // null after a failed rotation, until a retry
  uint64_t segment_id_ = 0;
  uint64_t segment_event_count_ = 0;
  uint64_t write_offset_ = 0;    // end of the bytes handed to the OS
  uint64_t durable_offset_ = 0;  // end of the bytes the last fdatasync covered
  std::vector<std::byte> pending_;  // encoded records not yet written, starting at write_offset_

  RecordPosition last_record_;
  uint64_t next_sequence_ = 1;
  uint64_t sequence_written_ = 0;
  uint64_t sequence_durable_ = 0;
  std::optional<StoreError> poison_;
  bool closed_ = false;
};

}  // namespace keel::log
