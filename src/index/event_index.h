// EventIndex: the in-memory indexes the store reads and queries through (docs/ARCHITECTURE.md §6).
// Built on open from the recovered log (events of cancelled fences are hidden: they keep their
// sequence and are in no other index), extended by every append, and cut back by truncate() when a
// fence whose events it added live is cancelled.
//
// Columns by sequence (index sequence - 1), 38 to 54 bytes per event in all, in huge-page memory
// once large (Column, index/column.h):
//   frame offset        4   where its frame is; the segment comes from a table of segment starts;
//                           0 marks a hidden event (no frame starts at 0: the segment header does)
//   event id           16   ids made by the store increase with the sequence, so the column is
//                           sorted and find() is a binary search; an id out of that order (a
//                           foreign or damaged writer) switches find() to a hash map of all ids
//   kind, scope, stream 2+4+4  scope and stream as small numbers (scopes interned)
//   cause, newest effect, older sibling, previous of its correlation  4 each (SequenceLinks), from
//                           a column's first link on (a store without causes holds none)
//   and 8 per event in its (entity, lane) stream: the sequences by clock. Measured: 56 B per event
//   at 10M events in 100,010 streams with causes (bench/query_bench.cc).
// The HLC of an event made by the store is in its id (the high word is wall_ms << 16 | logical);
// the few that are not are kept aside, so HLC ranges need no column of their own.
//
// Causation links point back: an event's cause is resolved when the event is added, among the
// events before it; a cause not found is external (kept aside with its id). Walks up these links
// always move to smaller sequences and walks down (newest effect, then older siblings) to larger
// ones and then smaller ones among siblings, so every walk ends, even on a damaged store.
//
// Threads: not thread-safe; the store serializes access.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "format/event_body.h"
#include "index/sequence_links.h"
#include "keel/event.h"
#include "keel/ids.h"

namespace keel {

template <typename H>
H AbslHashValue(H h, const EventId& id) {
  return H::combine(std::move(h), id.high, id.low);
}

namespace index {

// Where an event's record is: the frame at `frame_offset` of segment `segment_id`.
struct EventLocation {
  uint32_t segment_id = 0;
  uint32_t frame_offset = 0;
};

// What the index keeps of an event, taken from its body.
struct EventFacts {
  EventId id;
  uint64_t clock = 0;
  Hash128 chained_hash;
  uint16_t kind = 0;
  std::string_view scope;
  Hlc hlc;
  EventId correlation_id;
  std::optional<EventId> causation_id;
};

// The facts of a decoded or encoded body (scope points into it; chained_hash is the body's).
EventFacts facts_of(const format::EventBody& body);

// One (entity, lane) stream: its events by clock (clock c is sequences[c - 1]) and its head.
struct EntityStream {
  uint32_t number = 0;  // the stream's number in the index (the per-event stream column)
  std::string_view entity;
  uint32_t lane = 0;
  std::vector<uint64_t> sequences;
  Hash128 head_hash;
  uint64_t clock() const { return sequences.size(); }
  std::optional<Hash128> head() const {
    return sequences.empty() ? std::nullopt : std::optional<Hash128>(head_hash);
  }
  // The clock of `sequence` in this stream, 0 when it is not one of its events.
  uint64_t clock_of(uint64_t sequence) const;
  // The next older stream whose key hashes the same (EventIndex's table holds the newest).
  EntityStream* same_hash = nullptr;
  // entity + '\0' + lane (4 bytes, big-endian): entities never contain NUL, so keys are
  // unambiguous, all lanes of an entity sort together and before any longer entity.
  std::string_view sorted_key() const { return {entity.data(), entity.size() + 5}; }
};

// A stream's identity: (entity, lane).
struct StreamKey {
  std::string_view entity;
  uint32_t lane = 0;
};

namespace detail {
// A stream is one allocation: the EntityStream, then its sorted_key() bytes, which `entity` views,
// so comparing a key reads only the stream's own node.
struct StreamDelete {
  void operator()(EntityStream* stream) const;
};
using StreamNode = std::unique_ptr<EntityStream, StreamDelete>;
StreamNode make_stream(std::string_view entity, uint32_t lane, uint32_t number);
}  // namespace detail

class EventIndex {
 public:
  EventIndex() = default;
  EventIndex(EventIndex&&) = default;
  EventIndex& operator=(EventIndex&&) = default;

  // The sequence the index expects next; events are added in sequence order from 1.
  uint64_t next_sequence() const { return 1 + offsets_.size(); }

  // The stream of (entity, lane), created empty if it has no event yet. The reference stays valid
  // for the life of the index (the append path looks a stream up once and adds to it).
  EntityStream& stream_for(std::string_view entity, uint32_t lane);
  // The streams of `count` keys, null for a key without one (none is created). Looked up together,
  // in stages, so that the cache misses of many streams overlap: appends in batches touch streams
  // at random among thousands. out[i] is what stream() would find, even when empty.
  void find_streams(const StreamKey* keys, size_t count, EntityStream** out);
  // Starts loading the stream of `key` into the cache (a single append calls it first thing, so
  // that the miss overlaps its checks).
  void prefetch_stream(const StreamKey& key) const;
  // Tests: hash every stream key with `hash` (before the first stream), e.g. one constant, so that
  // streams sharing a hash are exercised.
  void set_stream_hash_for_test(uint64_t (*hash)(const StreamKey&)) { stream_hash_ = hash; }
  // Null when (entity, lane) has no event.
  const EntityStream* stream(std::string_view entity, uint32_t lane) const;
  // The streams of `entity` on every lane, or of every entity starting with `prefix`, in order of
  // (entity, lane); only streams with events.
  std::vector<const EntityStream*> streams_of(std::string_view entity) const;
  std::vector<const EntityStream*> streams_with_prefix(std::string_view prefix) const;

  // Records event `sequence` (== next_sequence()) as the next event of `stream`. Returns nullptr,
  // or what is inconsistent (a clock that does not follow the stream's head, a duplicate event
  // id): the event is then not added.
  const char* add(uint64_t sequence, const EventLocation& location, const EventFacts& facts,
                  EntityStream& stream);
  // Records a hidden event (a cancelled fence's): it takes its sequence and nothing else.
  void add_hidden(uint64_t sequence);
  // Undoes the add() and add_hidden() of every sequence from `first_removed` on (1 <= first_removed
  // <= next_sequence(); nothing to do at next_sequence()): a cancelled fence's events, added live,
  // leave the index as a load would build it from the kept events (a load then adds the fenced
  // ones with add_hidden). Except for what the index cannot or need not undo:
  // - a stream's head_hash (no per-event hashes are kept): the caller restores it;
  // - streams that become empty and scopes first named by removed events stay, as a stream_for()
  //   without an add leaves one (queries skip empty streams; references stay valid);
  // - an ordering flag (ids sorted, HLCs monotonic) already off in the image the index was
  //   restored from stays off, as a load from that image leaves it (otherwise it is exact).
  // Cost: the removed events, plus one pass over the correlation heads when a removed event names
  // an explicit correlation (no per-event correlation id is kept) and over the id map when ids
  // are unsorted and the largest id is removed.
  void truncate(uint64_t first_removed);

  // Null for an unknown or hidden sequence.
  std::optional<EventLocation> locate(uint64_t sequence) const;
  bool visible_in_index(uint64_t sequence) const {
    return sequence >= 1 && sequence < next_sequence() && offsets_[sequence - 1] != 0;
  }
  // The sequence of a (non-hidden) event.
  std::optional<uint64_t> find(const EventId& id) const;

  // Per-event facts of an indexed, non-hidden sequence.
  const EventId& id_at(uint64_t sequence) const { return ids_[sequence - 1]; }
  uint16_t kind_at(uint64_t sequence) const { return kinds_[sequence - 1]; }
  uint32_t scope_number_at(uint64_t sequence) const { return scopes_[sequence - 1]; }
  const std::string& scope_name(uint32_t number) const { return scope_names_[number]; }
  // The number of a scope, nullopt when no event has it.
  std::optional<uint32_t> scope_number(std::string_view scope) const;
  const EntityStream& stream_at(uint64_t sequence) const {
    return *stream_list_[stream_numbers_[sequence - 1]];
  }
  Hlc hlc_at(uint64_t sequence) const;
  // Whether HLCs never decrease with the sequence (as the store assigns them): HLC ranges are then
  // sequence ranges.
  bool hlc_monotonic() const { return hlc_monotonic_; }

  // Causation: the sequence of the event's cause (0 for none or an external cause), the external
  // cause's id, the first effect (the latest one: effects are linked newest first) and the next
  // older sibling.
  uint64_t cause_of(uint64_t sequence) const { return causes_.get(sequence); }
  std::optional<EventId> external_cause_of(uint64_t sequence) const;
  uint64_t newest_effect_of(uint64_t sequence) const { return newest_effects_.get(sequence); }
  uint64_t older_sibling_of(uint64_t sequence) const { return older_siblings_.get(sequence); }

  // Correlation: the newest event that names `correlation` explicitly (0 when none) and, from an
  // event, the previous one naming the same correlation; the root (the event whose id it is, when
  // that event's correlation is its own id) is not in that chain.
  uint64_t newest_of_correlation(const EventId& correlation) const;
  uint64_t previous_of_correlation(uint64_t sequence) const {
    return correlation_chain_.get(sequence);
  }
  bool correlation_is_own_id(uint64_t sequence) const { return own_correlation_[sequence - 1]; }

  uint64_t event_count() const { return visible_count_; }
  uint64_t stream_count() const { return stream_count_; }
  // An estimate of the heap memory the index holds (capacity of its containers).
  uint64_t memory_bytes() const;
  // The lanes that have events.
  std::vector<uint32_t> lanes() const;
  // The largest non-hidden sequence, 0 when none.
  uint64_t last_visible_sequence() const;

 private:
  friend struct ImageCodec;  // index/index_image.cc reads and restores every member
  struct SegmentStart {
    uint64_t first_sequence;
    uint32_t segment_id;
  };
  uint32_t intern_scope(std::string_view scope);
  void grow_columns(uint64_t sequence);
  void undo_add(uint64_t sequence);
  void truncate_correlation_heads(uint64_t first_removed);
  void restore_ordering_after_truncate(uint64_t first_removed, bool largest_id_removed);

  // Columns by sequence - 1.
  Column<uint32_t> offsets_;  // 0: hidden
  Column<EventId> ids_;
  Column<uint16_t> kinds_;
  Column<uint32_t> scopes_;
  Column<uint32_t> stream_numbers_;
  std::vector<bool> own_correlation_;
  SequenceLinks causes_;
  SequenceLinks newest_effects_{SequenceLinks::Direction::Forward};
  SequenceLinks older_siblings_;
  SequenceLinks correlation_chain_;

  std::vector<SegmentStart> segments_;             // in sequence order
  EventId last_id_;                                // the largest id so far
  bool ids_sorted_ = true;                         // every id above the one before
  absl::flat_hash_map<EventId, uint64_t> id_map_;  // all ids, once !ids_sorted_
  absl::flat_hash_map<uint64_t, Hlc> other_hlcs_;  // events whose id does not carry their HLC
  Hlc last_hlc_;
  bool hlc_monotonic_ = true;
  // The sequences whose add() turned ids_sorted_ and hlc_monotonic_ off, for truncate(); 0 while
  // on, or when off already in the image the index was restored from.
  uint64_t ids_unsorted_at_ = 0;
  uint64_t hlc_unordered_at_ = 0;
  absl::flat_hash_map<uint64_t, EventId> external_causes_;
  absl::flat_hash_map<EventId, uint64_t> correlation_heads_;  // explicit correlations: newest
  std::vector<std::string> scope_names_;
  absl::flat_hash_map<std::string, uint32_t> scope_numbers_;
  uint32_t last_scope_ = 0;  // the scope interned last (a cache: appends repeat scopes)
  // Streams own their nodes, so references stay valid while other streams are added. The table
  // maps a key's 64-bit hash to the newest stream with that hash; older ones chain by same_hash.
  // Its slots hold the hash itself, so a lookup reads a slot and then the one node it names.
  static uint64_t hash_of(const StreamKey& key);
  EntityStream* find_stream(const StreamKey& key, uint64_t hash) const;
  uint64_t (*stream_hash_)(const StreamKey&) = &hash_of;
  std::vector<detail::StreamNode> stream_list_;  // by number
  absl::flat_hash_map<uint64_t, EntityStream*> streams_;
  absl::btree_map<std::string_view, EntityStream*> sorted_keys_;  // by sorted_key(), for prefixes
  uint64_t visible_count_ = 0;
  uint64_t stream_count_ = 0;  // streams with at least one event
};

// The HLC an id made by the store carries (wall_ms << 16 | logical in the high word).
inline Hlc hlc_in_id(const EventId& id) {
  return Hlc{id.high >> 16, static_cast<uint32_t>(id.high & 0xffff)};
}

}  // namespace index
}  // namespace keel
