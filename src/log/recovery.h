// Recovery: reads a store directory's segments on open and decides, row by row of the recovery
// table (recovery_table.h), what is data, what is a torn tail to drop, and what is corruption to
// fail closed on. Writable recovery applies its repairs (delete, truncate) only after every check
// passed, so a FailClosed outcome leaves every file byte-identical. Read-only recovery applies the
// same rules in memory and writes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "format/frame.h"
#include "format/segment_header.h"
#include "keel/result.h"
#include "log/recovery_table.h"
#include "log/retention_floor.h"
#include "platform/file_system.h"

namespace keel::log {

enum class RecoveryMode : uint8_t { Writable, ReadOnly };

// Where an index image (index/index_image.h) says the log continues: recovery trusts what comes
// before it (checking the segment headers and the record that ends there) and scans only the rest.
struct Checkpoint {
  uint64_t next_sequence = 1;       // events 1 .. next_sequence - 1 are covered
  uint64_t epoch = 0;               // no covered frame has a later epoch
  uint64_t resume_segment_id = 0;   // recovery continues in this segment,
  uint64_t resume_offset = 0;       // at this offset (the end of the last covered record);
  uint64_t last_record_offset = 0;  // where that record starts in it, 0 when it holds none
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// Persisted state that names a point of the log as durable (END, an index image's checkpoint, the
// idempotency keys' covered_through): the recovered log must reach it (row DurableEndNotReached).
struct LogReference {
  std::string name;            // the file that names it
  uint64_t next_sequence = 1;  // every event before it must be in the log
  uint64_t segment_id = 0;     // and, when not 0, every byte of the log before (segment_id, offset)
  uint64_t offset = 0;
};

// The log ended before a reference: what recovery found, for the error or for the record of an
// accepted loss.
struct DataLoss {
  LogReference reference;                // the furthest reference not reached
  std::vector<LogReference> not_reached; // every reference not reached, that one included
  uint64_t recovered_next_sequence = 1;  // where the recovered log ends
  uint64_t segment_id = 0;               // its last segment (0: none)
  uint64_t offset = 0;                   // and that segment's data end
  uint64_t bytes_dropped = 0;            // non-zero bytes the repairs cut
  std::string found;                     // what recovery found at the end, in words
};

struct RecoveryOptions {
  RecoveryMode mode = RecoveryMode::Writable;
  // The epoch file's value: no segment or frame may claim a later epoch.
  uint64_t stored_epoch = 0;
  // With a checkpoint, records before it are not visited. When the log does not match it (a
  // segment missing or below the retention floor, a header or the record at the resume point not
  // as it says), recovery calls `checkpoint_rejected` with the reason before visiting anything,
  // then recovers everything retained.
  std::optional<Checkpoint> checkpoint;
  std::function<void(const std::string& reason)> checkpoint_rejected;
  // Points the recovered log must reach. When it does not: DurableDataLost (FailClosed, no file
  // touched), or, with accept_data_loss, RecoveredLog::data_loss and the repairs as usual.
  std::vector<LogReference> references;
  bool accept_data_loss = false;
  // A read-only store following a live writer from the end of its last load (the checkpoint):
  // the checkpoint's segment is read from the record before the resume point frame by frame, up
  // to where no frame starts, not to the end of its preallocation. What lies past that point the
  // writer is still writing (or its own recovery will judge); the rows about bytes after damage
  // see only what was read.
  bool follow = false;
};

struct RecordPosition {
  uint64_t segment_id = 0;
  uint64_t offset = 0;
};

// Called for every record recovery keeps, in log order, with the frame valid for the call only.
// If recovery then fails, everything the visitor was told is void.
using RecordVisitor = std::function<void(const RecordPosition&, const format::DecodedFrame&)>;

struct RecoveredSegment {
  format::SegmentHeader header;
  std::string path;
  uint64_t data_end = 0;       // offset after the last kept frame
  uint64_t next_sequence = 0;  // the sequence after this segment's last event
  uint64_t event_count = 0;
  bool sealed = false;         // ends with a Seal record
  uint64_t last_frame_offset = 0;  // of the last kept frame; 0 when none (or a covered segment)
};

enum class FenceState : uint8_t { Committed, Cancelled, OpenAtTail };

struct FenceRange {
  uint64_t fence_id = 0;
  uint64_t first_sequence = 0;  // the fence's events are [first_sequence, end_sequence)
  uint64_t end_sequence = 0;
  FenceState state = FenceState::Committed;
};

struct RecoveryAction {
  RecoveryRule rule = RecoveryRule::CleanEnd;
  std::string path;
  uint64_t offset = 0;          // where the dropped region starts; for OpenFenceAtTail, the end
                                // of the recovered log, which the cancel record follows
  uint64_t bytes_dropped = 0;   // non-zero bytes dropped
  uint64_t frames_dropped = 0;  // valid frames dropped (an unsynced torn region)
  bool applied = false;         // false in read-only mode, and for OpenFenceAtTail until the
                                // caller appended the cancel record
};

struct RecoveredLog {
  std::vector<RecoveredSegment> segments;  // by id; the last one is the active segment
  // RETAIN, when the store has one: the chain starts at its segment (log/retention_floor.h).
  std::optional<RetentionFloor> retention_floor;
  uint64_t first_sequence = 1;          // the first retained sequence: 1 without a floor
  uint64_t next_sequence = 1;           // 1 + the last recovered sequence
  uint64_t max_epoch = 0;               // the highest epoch of any segment header or frame
  std::vector<FenceRange> fences;       // in log order; an OpenAtTail fence, if any, is last
  std::vector<RecoveryAction> actions;  // repairs, in the order taken
  RecoveryRule tail_rule = RecoveryRule::CleanEnd;  // how the last segment ended
  bool checkpoint_used = false;     // records before the checkpoint were not scanned
  std::string checkpoint_rejected;  // why a checkpoint was not used, when one was given
  std::optional<DataLoss> data_loss;  // a reference not reached, accepted (accept_data_loss)

  const FenceRange* open_fence() const {
    return !fences.empty() && fences.back().state == FenceState::OpenAtTail ? &fences.back()
                                                                           : nullptr;
  }
};

// Recovers the log in `directory`, from the retention floor's segment when RETAIN exists (segment
// 1 otherwise). Errors: Corruption / SegmentChainBroken / DurableDataLost (FailClosed, files
// untouched), UnsupportedVersion, CorruptSidecar (RETAIN), Io. Segments below the floor are ignored and, when
// writable, deleted (BelowRetentionFloor actions). A fence open at the tail is reported
// (open_fence() and an OpenFenceAtTail action) for the caller to cancel: Log::open appends the
// cancel record.
Result<RecoveredLog> recover_log(platform::FileSystem& fs, const std::string& directory,
                                 const RecoveryOptions& options, const RecordVisitor& visit);

}  // namespace keel::log
