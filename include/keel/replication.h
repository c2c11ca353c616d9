// keel: copying a store's events into another store (a read replica) through any ordered
// transport. docs/REPLICATION.md has the message format and the guarantees; the NATS JetStream
// transport is include/keel/replication_nats.h (target keel::keel_nats).
//
// The source side reads its visible events as messages: each carries the event's body as the
// source stores it (segments/FORMAT.md 6.1) and where it sits in the source's log (its sequence,
// and the record holding it). The replica side writes them into another store, checking that
// each event continues the replica exactly: the next sequence, the next clock of its (entity,
// lane), the previous event's chained hash, a body whose hash matches its bytes in keel's
// canonical encoding. The replica then holds the same events as the source, with the same ids,
// sequences, clocks, HLCs, causes and chained hashes, in the same records (a source batch is one
// batch there too: all or nothing, visible at once); `verify` passes on it and reports the same
// hashes. Only the epochs differ: a frame carries the epoch of the open that wrote it.
//
// Fences are carried: a committed fence's events are written in the replica between a FenceBegin
// and a FenceCommit of the same id, all at once (the follower holds them until the fence's last
// message), so they carry the source's fence id and hashes and become visible together; the
// hidden events of a cancelled fence travel as one message naming the run of hidden sequences,
// which the replica takes with placeholders it hides the same way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/ids.h"
#include "keel/result.h"
#include "keel/store.h"

namespace keel {

// One event as replication carries it.
struct ReplicationMessage {
  uint64_t sequence = 0;       // its sequence in the source, and in every replica
  uint64_t record_first = 0;   // the first sequence of the source record holding it
  uint32_t record_events = 0;  // that record's events (1: a single append)
  EventId event_id;
  Hash128 chained_hash;
  uint64_t wall_ms = 0;    // its HLC wall time (for lag)
  std::string body;        // the event body, segments/FORMAT.md 6.1 (field 16 as bin8)
  uint64_t fence = 0;      // the source fence the event was written in (0: none), from the body
  bool fence_end = false;  // the last event of that (committed) fence
  // A run of `record_events` hidden sequences from `sequence` (a cancelled fence's events): no
  // event, an empty body.
  bool hidden = false;

  // The header values of docs/REPLICATION.md.
  std::string sequence_header() const { return std::to_string(sequence); }  // Keel-Sequence
  std::string record_header() const {                                       // Keel-Record
    return std::to_string(record_first) + "/" + std::to_string(record_events);
  }
  std::optional<std::string> fence_end_header() const {  // Keel-Fence-End
    return fence_end ? std::optional(std::to_string(fence)) : std::nullopt;
  }
  std::optional<std::string> hidden_header() const {  // Keel-Hidden
    return hidden ? std::optional(std::to_string(record_events)) : std::nullopt;
  }
};

// The header values of a received message (nullopt: absent).
struct ReplicationHeaders {
  std::optional<std::string_view> sequence;   // Keel-Sequence
  std::optional<std::string_view> record;     // Keel-Record
  std::optional<std::string_view> fence_end;  // Keel-Fence-End
  std::optional<std::string_view> hidden;     // Keel-Hidden
};

// Parses a received message: its header values and its body. `stream` and `position` (the
// transport's own position, e.g. the JetStream sequence) only name the message in errors.
// MessageInvalid {position, stream, reason} for a missing or malformed header, a sequence outside
// its record, a body that does not decode as one event body, a chained hash that does not match
// the body's bytes, a Keel-Fence-End that is not the body's fence, a hidden run with a body.
Result<ReplicationMessage> decode_replication_message(std::string_view stream, uint64_t position,
                                                      const ReplicationHeaders& headers,
                                                      std::string_view body);

// Appends to `out` the source's visible events after `after`, whole records at a time, until
// `max_events` (at least 1) are there or the visible end is reached; returns how many it appended
// (0: none visible yet). CursorExpired when events after `after` were removed by retention;
// Corruption, Io.
Result<size_t> read_replication_messages(Store& source, uint64_t after, size_t max_events,
                                         std::vector<ReplicationMessage>& out);

// The receiving side: writes messages, in the source's sequence order, into a writable store that
// holds nothing but events copied from the same source (a new store, or one a replica wrote).
class Replica {
 public:
  // `store` must not be appended to by anything else while the Replica writes into it.
  explicit Replica(Store& store);

  // The sequence the replica needs next (1 for an empty store).
  uint64_t next_sequence() const { return next_ + pending(); }
  // Takes the next message. One the replica holds already (a transport delivering again after a
  // reconnect) is compared with the event there and skipped: ReplicaDiverged when it differs in
  // event id or chained hash. The next one is held until its record is whole (a fenced one until
  // its fence's last message, at most kFenceCopyBytesMax of bodies), then written
  // (Durability::Written: sync() makes it durable). Returns how many sequences it wrote.
  // Errors: ReplicaDiverged (a message after a gap, a record that does not continue the replica),
  // MessageInvalid (a record's or a fence's messages that disagree about it), NotSupported (a
  // fence above the limit), and those of writing (WriterPoisoned, NoSpace, ...).
  Result<size_t> apply(ReplicationMessage message);  // moved into the held record
  // Makes what apply() wrote durable, and visible to readers (Store::sync()).
  Status sync() { return store_.sync(); }
  // Events held until their record (or fence) is whole.
  size_t pending() const { return pending_.size() + fence_events_; }
  static constexpr uint64_t kFenceCopyBytesMax = 256ull << 20;

 private:
  Status write_fence();
  Store& store_;
  uint64_t next_;                                       // the store's next sequence
  std::vector<ReplicationMessage> pending_;             // the record under way
  std::vector<std::vector<ReplicationMessage>> fence_;  // whole records of the open fence
  uint64_t fence_events_ = 0;
  uint64_t fence_bytes_ = 0;
};

}  // namespace keel
