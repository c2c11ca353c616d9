// EventIndex: the in-memory indexes the store reads through. Built on open from the recovered log
// (events of cancelled fences are hidden: they keep their sequence and are in no other index) and
// extended by every append.
//
//   sequence -> where its frame is (dense vector; 12 bytes per event)
//   event id -> sequence            (a vector sorted by id, 24 bytes per event: ids made by the
//                                    store increase with the sequence, so appending keeps it
//                                    sorted; an id that does not, from a foreign or damaged
//                                    writer, goes to a small hash map instead)
//   (entity, lane) -> head (clock, chained hash) and the sequences of its events by clock
//
// Threads: not thread-safe; the store serializes access.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "keel/ids.h"

namespace keel {

template <typename H>
H AbslHashValue(H h, const EventId& id) {
  return H::combine(std::move(h), id.high, id.low);
}

namespace index {

// Where an event's record is: the frame at `frame_offset` of segment `segment_id`, item `item` of
// its batch (0 for a single event).
struct EventLocation {
  uint32_t segment_id = 0;
  uint32_t frame_offset = 0;
  uint32_t item = 0;
};

// One (entity, lane) stream: its events by clock (clock c is sequences[c - 1]) and its head.
struct EntityStream {
  std::vector<uint64_t> sequences;
  Hash128 head_hash;
  uint64_t clock() const { return sequences.size(); }
  std::optional<Hash128> head() const {
    return sequences.empty() ? std::nullopt : std::optional<Hash128>(head_hash);
  }
};

class EventIndex {
 public:
  // The sequence the index expects next; events are added in sequence order from 1.
  uint64_t next_sequence() const { return 1 + locations_.size(); }

  // The stream of (entity, lane), created empty if it has no event yet. The reference stays valid
  // for the life of the index (the append path looks a stream up once and adds to it).
  EntityStream& stream_for(std::string_view entity, uint32_t lane);
  // Null when (entity, lane) has no event.
  const EntityStream* stream(std::string_view entity, uint32_t lane) const;

  // Records event `sequence` (== next_sequence()) as the next event of `stream`. Returns nullptr,
  // or what is inconsistent (a clock that does not follow the stream's head, a duplicate event
  // id): the event is then not added.
  const char* add(uint64_t sequence, const EventLocation& location, const EventId& id,
                  EntityStream& stream, uint64_t clock, const Hash128& chained_hash);
  // Records a hidden event (a cancelled fence's): it takes its sequence and nothing else.
  void add_hidden(uint64_t sequence);

  // Null for an unknown or hidden sequence.
  const EventLocation* locate(uint64_t sequence) const;
  std::optional<uint64_t> find(const EventId& id) const;

  uint64_t event_count() const { return visible_count_; }
  uint64_t stream_count() const { return stream_count_; }

 private:
  static constexpr uint32_t kHidden = UINT32_MAX;  // segment_id marking a hidden event
  struct IdEntry {
    EventId id;
    uint64_t sequence;
  };
  std::string_view stream_key(std::string_view entity, uint32_t lane) const;

  std::vector<EventLocation> locations_;
  std::vector<IdEntry> sorted_ids_;                    // strictly increasing ids
  absl::flat_hash_map<EventId, uint64_t> other_ids_;   // ids out of that order
  // Node map: stream references stay valid while other streams are added.
  absl::node_hash_map<std::string, EntityStream> streams_;
  uint64_t visible_count_ = 0;
  uint64_t stream_count_ = 0;  // streams with at least one event
  mutable std::string key_scratch_;
};

}  // namespace index
}  // namespace keel
