// The seam between the Store and the layers above it (src/consumers/): what they need that the
// public API does not give. Nothing else includes this.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/replication.h"
#include "keel/store.h"
#include "platform/file_system.h"

namespace keel {

// A retained segment, for the retention policy.
struct SegmentSpan {
  uint64_t segment_id = 0;
  uint64_t first_sequence = 0;
  uint64_t last_sequence = 0;  // first_sequence - 1 when it holds no event yet
  uint64_t bytes = 0;          // the file's size; the active segment's data
  uint64_t last_wall_ms = 0;   // the HLC wall time of its newest event (0 when none)
  bool active = false;         // the segment being written: never removed
};

// The store's files as of one durable sequence, for export (src/artifact/): what a copy needs to
// open as a store holding exactly the events up to `sequence`. Each file is opened in the cut, so
// it reads as it was then even if it is replaced (an index image) or removed (retention) later.
struct StoreCut {
  uint64_t sequence = 0;  // the last event the cut holds (0: none)
  uint64_t epoch = 0;
  struct File {
    std::string name;                      // its name in the store directory
    std::unique_ptr<platform::File> file;  // opened in the cut
    uint64_t bytes = 0;                    // copy [0, bytes)
  };
  // INDEX and IDEMPOTENCY as they are on disk (each cut at a durable sequence <= `sequence`),
  // EPOCH, RETAIN and END (each when present), and the retained segments through the one holding
  // `sequence`: whole, except that last one, up to the end of the record holding `sequence`.
  std::vector<File> files;
  uint64_t writer_blocked_us = 0;  // how long the cut held the store's commit mutex
};

// A record copied from another store, for StoreInternals::append_stored.
struct StoredRecord {
  uint64_t first_sequence = 0;
  std::vector<std::string_view> bodies;
};

struct StoreInternals {
  // The file system the store runs on (StoreOptions::file_system, or POSIX).
  static platform::FileSystem& file_system(Store& store);
  static bool read_only(const Store& store);
  // The retained segments, oldest first. ReadOnlyStore, Io, Corruption (a header unreadable).
  static Result<std::vector<SegmentSpan>> segment_spans(Store& store);
  // Removes the sealed segments whose events all lie below `floor_sequence` (at most durable + 1),
  // after persisting what must outlive them (src/store/store_retention.cc). Returns the first
  // retained sequence. InvalidArgument (a fence open, the floor above durable + 1, no image can be
  // cut now), ReadOnlyStore, WriterPoisoned, OperationInDoubt, Io, NoSpace.
  static Result<uint64_t> retain_from(Store& store, uint64_t floor_sequence);
  // A cut at the durable sequence, taken under the commit mutex (appends wait meanwhile: it opens
  // files and reads one frame, it copies nothing). nullopt when none can be cut now: the durable
  // prefix ends inside a fence, or its last event is hidden; a later durable record allows one.
  // ReadOnlyStore, WriterPoisoned, Io, Corruption.
  static Result<std::optional<StoreCut>> cut_for_export(Store& store);
  // Waits until the INDEX a writable open restored is durable (the image thread syncs it first
  // thing; at once when there is no such thread or nothing to sync).
  static void wait_for_restored_image_sync(Store& store);
  // The store clock's wall time (StoreOptions::clock).
  static uint64_t now_wall_ms(Store& store);
  // Store::query without copies: `visit` sees each event of the page in order (views valid during
  // the call), with no lock of the store held; the page's `events` stay empty.
  static Result<QueryPage> query_views(Store& store, const Query& query,
                                       const std::function<void(const EventView&)>& visit);
  // Counts consumer `name` at `position` in applied (replacing its earlier registration), lowering
  // applied first when it is above `position`: a reset_applied logged with `reason`, in one step
  // with the registration (appends meanwhile would move an uncounted applied back up).
  static Status count_consumer(Store& store, std::string_view name, uint64_t position,
                               std::string_view reason);
  // Replication (src/replication/). Appends to `out` the visible events from `from` on, whole
  // records at a time, until `max_events` are there or the visible end is reached; returns how
  // many it appended. A run of hidden sequences (a cancelled fence's events) is one message with
  // `hidden` set; a committed fence's last event has `fence_end`. CursorExpired when `from` is
  // below the retention floor; Corruption, Io.
  static Result<size_t> read_stored(Store& store, uint64_t from, size_t max_events,
                                    std::vector<ReplicationMessage>& out);
  // Writes records copied from another store (ReplicationMessage bodies, segments/FORMAT.md
  // 6.1), each with its first sequence; one body is an Event record, more a Batch. Without a
  // fence id: one record. With one: the records of a committed fence of the source, written
  // between a FenceBegin and a FenceCommit of that id and visible all at once (a failure after
  // the begin poisons the writer; the reopen cancels the fence). The bytes must be keel's
  // canonical encoding (they are re-encoded and compared), so the copy's chained hashes are the
  // original's. Nothing is written when a check fails: MessageInvalid {position, stream, reason}
  // (bytes that do not decode, a chained hash that does not match its bytes, a bad coordinate or
  // kind, an event whose fence id is not `fence_id`, non-canonical bytes: `position` is the
  // sequence, `stream` "record"), ReplicaDiverged (a sequence that is not this store's next one,
  // an event that does not continue its (entity, lane) chain, an id the store holds),
  // InvalidArgument (a lane >= lanes_max, a fence open), ReadOnlyStore, WriterPoisoned, NoSpace.
  // Returns at Durability::Written (the fence's commit as the policy needs): Store::sync()
  // makes it durable.
  static Status append_stored(Store& store, std::optional<uint64_t> fence_id,
                              std::span<const StoredRecord> records);
  // Takes sequences first_sequence .. + count - 1 as hidden events (a cancelled fence of the
  // source): placeholders written inside a fence of this store, then cancelled. ReplicaDiverged
  // when first_sequence is not the next one; InvalidArgument (count 0, a fence open),
  // ReadOnlyStore, WriterPoisoned, NoSpace.
  static Status append_hidden(Store& store, uint64_t first_sequence, uint64_t count);
  // Live subscriptions define `emitted` (include/keel/frontier.h): registered at their start
  // position, told what each batch handed out, removed when destroyed.
  static uint64_t add_subscription(Store& store, uint64_t position);
  static void subscription_delivered(Store& store, uint64_t id, uint64_t position);
  static void remove_subscription(Store& store, uint64_t id);
};

}  // namespace keel
