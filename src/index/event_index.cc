#include "index/event_index.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>

namespace keel::index {

EventFacts facts_of(const format::EventBody& body) {
  return EventFacts{body.event_id,       body.entity_clock, body.chained_hash,
                    body.kind,           body.scope,        Hlc{body.hlc_wall_ms, body.hlc_logical},
                    body.correlation_id, body.causation_id};
}

uint64_t EntityStream::clock_of(uint64_t sequence) const {
  auto it = std::lower_bound(sequences.begin(), sequences.end(), sequence);
  return it != sequences.end() && *it == sequence
             ? static_cast<uint64_t>(it - sequences.begin()) + 1
             : 0;
}

namespace detail {

void StreamDelete::operator()(EntityStream* stream) const {
  stream->~EntityStream();
  ::operator delete(static_cast<void*>(stream));
}

StreamNode make_stream(std::string_view entity, uint32_t lane, uint32_t number) {
  void* memory = ::operator new(sizeof(EntityStream) + entity.size() + 5);
  char* key = static_cast<char*>(memory) + sizeof(EntityStream);
  std::memcpy(key, entity.data(), entity.size());
  key[entity.size()] = '\0';
  for (int i = 0; i < 4; ++i) key[entity.size() + 1 + i] = static_cast<char>(lane >> (24 - 8 * i));
  StreamNode stream(new (memory) EntityStream{});
  stream->number = number;
  stream->entity = std::string_view(key, entity.size());
  stream->lane = lane;
  return stream;
}

}  // namespace detail

uint64_t EventIndex::hash_of(const StreamKey& key) {
  return absl::HashOf(absl::string_view(key.entity.data(), key.entity.size()), key.lane);
}

EntityStream* EventIndex::find_stream(const StreamKey& key, uint64_t hash) const {
  auto it = streams_.find(hash);
  EntityStream* s = it == streams_.end() ? nullptr : it->second;
  while (s != nullptr && (s->lane != key.lane || s->entity != key.entity)) s = s->same_hash;
  return s;
}

EntityStream& EventIndex::stream_for(std::string_view entity, uint32_t lane) {
  const StreamKey key{entity, lane};
  const uint64_t hash = stream_hash_(key);
  if (EntityStream* found = find_stream(key, hash)) return *found;
  detail::StreamNode& created = stream_list_.emplace_back(
      detail::make_stream(entity, lane, static_cast<uint32_t>(stream_list_.size())));
  EntityStream*& newest = streams_[hash];
  created->same_hash = newest;
  newest = created.get();
  sorted_keys_.emplace(created->sorted_key(), created.get());
  return *created;
}

void EventIndex::prefetch_stream(const StreamKey& key) const {
  auto it = streams_.find(stream_hash_(key));
  if (it == streams_.end()) return;
  __builtin_prefetch(it->second);
  __builtin_prefetch(reinterpret_cast<const char*>(it->second) + sizeof(EntityStream));  // its key
}

void EventIndex::find_streams(const StreamKey* keys, size_t count, EntityStream** out) {
  // In rounds of up to 64 keys: hash and prefetch each table slot; read the slots and prefetch
  // the nodes they name; compare the keys and prefetch where add() will append the sequence.
  constexpr size_t kRound = 64;
  uint64_t hashes[kRound];
  for (size_t start = 0; start < count; start += kRound) {
    const size_t n = std::min(kRound, count - start);
    for (size_t i = 0; i < n; ++i) {
      hashes[i] = stream_hash_(keys[start + i]);
      streams_.prefetch(hashes[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      auto it = streams_.find(hashes[i]);
      out[start + i] = it == streams_.end() ? nullptr : it->second;
      if (EntityStream* s = out[start + i]) {
        __builtin_prefetch(s);
        __builtin_prefetch(reinterpret_cast<const char*>(s) + sizeof(EntityStream));  // its key
      }
    }
    for (size_t i = 0; i < n; ++i) {
      EntityStream*& s = out[start + i];
      const StreamKey& key = keys[start + i];
      while (s != nullptr && (s->lane != key.lane || s->entity != key.entity)) s = s->same_hash;
      if (s != nullptr) __builtin_prefetch(s->sequences.data() + s->sequences.size(), 1);
    }
  }
}

const EntityStream* EventIndex::stream(std::string_view entity, uint32_t lane) const {
  const StreamKey key{entity, lane};
  const EntityStream* s = find_stream(key, stream_hash_(key));
  return s == nullptr || s->sequences.empty() ? nullptr : s;
}

std::vector<const EntityStream*> EventIndex::streams_of(std::string_view entity) const {
  std::vector<const EntityStream*> found;
  std::string first(entity);
  first.push_back('\0');
  for (auto it = sorted_keys_.lower_bound(first); it != sorted_keys_.end(); ++it) {
    const EntityStream& s = *it->second;
    if (s.entity != entity) break;
    if (!s.sequences.empty()) found.push_back(&s);
  }
  return found;
}

std::vector<const EntityStream*> EventIndex::streams_with_prefix(std::string_view prefix) const {
  std::vector<const EntityStream*> found;
  for (auto it = sorted_keys_.lower_bound(prefix); it != sorted_keys_.end(); ++it) {
    if (it->first.substr(0, prefix.size()) != prefix) break;
    const EntityStream& s = *it->second;
    // The prefix must match within the entity, not run into the lane bytes.
    if (s.entity.size() < prefix.size()) continue;
    if (!s.sequences.empty()) found.push_back(&s);
  }
  return found;
}

uint32_t EventIndex::intern_scope(std::string_view scope) {
  // Appends mostly repeat the scope before them: compare with it before hashing.
  if (last_scope_ < scope_names_.size() && scope_names_[last_scope_] == scope) return last_scope_;
  auto it = scope_numbers_.find(absl::string_view(scope.data(), scope.size()));
  if (it != scope_numbers_.end()) return last_scope_ = it->second;
  uint32_t number = static_cast<uint32_t>(scope_names_.size());
  scope_names_.emplace_back(scope);
  scope_numbers_.emplace(std::string(scope), number);
  return last_scope_ = number;
}

std::optional<uint32_t> EventIndex::scope_number(std::string_view scope) const {
  auto it = scope_numbers_.find(absl::string_view(scope.data(), scope.size()));
  if (it == scope_numbers_.end()) return std::nullopt;
  return it->second;
}

void EventIndex::grow_columns(uint64_t sequence) {
  offsets_.push_back(0);
  ids_.emplace_back();
  kinds_.push_back(0);
  scopes_.push_back(0);
  stream_numbers_.push_back(0);
  own_correlation_.push_back(false);
  causes_.extend_to(sequence);
  newest_effects_.extend_to(sequence);
  older_siblings_.extend_to(sequence);
  correlation_chain_.extend_to(sequence);
}

const char* EventIndex::add(uint64_t sequence, const EventLocation& location,
                            const EventFacts& facts, EntityStream& stream) {
  assert(sequence == next_sequence());
  if (facts.clock != stream.clock() + 1) return "entity clock does not follow its stream's head";
  if (location.frame_offset == 0) return "an event frame at offset 0";
  // The store's own ids increase: above the largest so far no search is needed.
  if (!(ids_sorted_ && last_id_ < facts.id) && find(facts.id)) return "duplicate event id";
  grow_columns(sequence);
  const size_t at = sequence - 1;
  offsets_[at] = location.frame_offset;
  if (segments_.empty() || segments_.back().segment_id != location.segment_id) {
    segments_.push_back(SegmentStart{sequence, location.segment_id});
  }
  ids_[at] = facts.id;
  if (ids_sorted_ && !(last_id_ < facts.id) && sequence > 1) {
    ids_sorted_ = false;  // from now on find() uses the map of every visible id
    ids_unsorted_at_ = sequence;
    for (uint64_t s = 1; s < sequence; ++s) {
      if (offsets_[s - 1] != 0) id_map_.emplace(ids_[s - 1], s);
    }
  }
  if (!ids_sorted_) id_map_.emplace(facts.id, sequence);
  last_id_ = std::max(last_id_, facts.id);
  if (hlc_in_id(facts.id) != facts.hlc) other_hlcs_.emplace(sequence, facts.hlc);
  if (hlc_monotonic_ && facts.hlc < last_hlc_) {
    hlc_monotonic_ = false;
    hlc_unordered_at_ = sequence;
  }
  last_hlc_ = std::max(last_hlc_, facts.hlc);
  kinds_[at] = facts.kind;
  scopes_[at] = intern_scope(facts.scope);
  stream_numbers_[at] = stream.number;

  if (facts.causation_id) {
    std::optional<uint64_t> cause = find(*facts.causation_id);
    if (cause) {
      causes_.set(sequence, *cause);
      older_siblings_.set(sequence, newest_effects_.get(*cause));
      newest_effects_.set(*cause, sequence);
    } else {
      external_causes_.emplace(sequence, *facts.causation_id);
    }
  }
  if (facts.correlation_id == facts.id) {
    own_correlation_[at] = true;
  } else {
    uint64_t& newest = correlation_heads_[facts.correlation_id];
    correlation_chain_.set(sequence, newest);
    newest = sequence;
  }

  ++visible_count_;
  if (stream.sequences.empty()) ++stream_count_;
  stream.sequences.push_back(sequence);
  stream.head_hash = facts.chained_hash;
  return nullptr;
}

void EventIndex::add_hidden(uint64_t sequence) {
  assert(sequence == next_sequence());
  grow_columns(sequence);
  // The id column keeps its order: a hidden slot repeats the largest id (find() skips it).
  ids_[sequence - 1] = last_id_;
}

void EventIndex::truncate(uint64_t first_removed) {
  assert(first_removed >= 1 && first_removed <= next_sequence());
  const uint64_t kept = first_removed - 1;
  // Undone newest first: each add() undone is then the last one, its cause's newest effect is
  // this event and its stream ends with it.
  bool correlations_removed = false;
  bool largest_id_removed = false;
  for (uint64_t s = offsets_.size(); s > kept; --s) {
    if (offsets_[s - 1] == 0) continue;  // hidden: add_hidden() touched its columns only
    correlations_removed |= !own_correlation_[s - 1];
    largest_id_removed |= ids_[s - 1] == last_id_;
    undo_add(s);
  }
  if (correlations_removed) truncate_correlation_heads(first_removed);
  while (!segments_.empty() && segments_.back().first_sequence >= first_removed) {
    segments_.pop_back();
  }
  offsets_.resize(kept);
  ids_.resize(kept);
  kinds_.resize(kept);
  scopes_.resize(kept);
  stream_numbers_.resize(kept);
  own_correlation_.resize(kept);
  causes_.truncate(kept);
  newest_effects_.truncate(kept);
  older_siblings_.truncate(kept);
  correlation_chain_.truncate(kept);
  restore_ordering_after_truncate(first_removed, largest_id_removed);
}

// Undoes what add() did for visible event `sequence`, the last one still added, but its columns
// and its correlation head (see truncate_correlation_heads).
void EventIndex::undo_add(uint64_t sequence) {
  EntityStream& stream = *stream_list_[stream_numbers_[sequence - 1]];
  assert(!stream.sequences.empty() && stream.sequences.back() == sequence);
  stream.sequences.pop_back();
  if (stream.sequences.empty()) --stream_count_;
  --visible_count_;
  if (uint64_t cause = causes_.get(sequence); cause != 0) {
    assert(newest_effects_.get(cause) == sequence);
    newest_effects_.set(cause, older_siblings_.get(sequence));
  } else if (!external_causes_.empty()) {
    external_causes_.erase(sequence);
  }
  if (!other_hlcs_.empty()) other_hlcs_.erase(sequence);
  if (!ids_sorted_) id_map_.erase(ids_[sequence - 1]);  // ids are unique among visible events
}

// The index keeps no correlation id per event: the heads naming removed events are found by a
// pass over all heads, and each moves back along its chain to the newest kept event, if any.
void EventIndex::truncate_correlation_heads(uint64_t first_removed) {
  std::vector<EventId> emptied;
  for (auto& [correlation, newest] : correlation_heads_) {
    while (newest >= first_removed) newest = correlation_chain_.get(newest);
    if (newest == 0) emptied.push_back(correlation);
  }
  for (const EventId& correlation : emptied) correlation_heads_.erase(correlation);
}

// last_id_, ids_sorted_, last_hlc_ and hlc_monotonic_ as the kept events would have left them,
// without a pass over them: a flag turned off by a removed event is on again (the kept prefix was
// in order up to it); with ids sorted the largest id is the last kept slot's (hidden slots repeat
// it), and with HLCs monotonic the largest HLC is the last kept visible event's. A flag that
// stays off keeps last_hlc_ as it was: it feeds only hlc_monotonic_, which stays off anyway.
void EventIndex::restore_ordering_after_truncate(uint64_t first_removed, bool largest_id_removed) {
  const uint64_t kept = first_removed - 1;
  if (!ids_sorted_ && ids_unsorted_at_ >= first_removed) {
    ids_sorted_ = true;
    ids_unsorted_at_ = 0;
    id_map_.clear();
  }
  if (ids_sorted_) {
    last_id_ = kept == 0 ? EventId{} : ids_[kept - 1];
  } else if (largest_id_removed) {
    last_id_ = EventId{};  // the map holds exactly the kept visible ids (rare: foreign ids)
    for (const auto& entry : id_map_) last_id_ = std::max(last_id_, entry.first);
  }
  if (!hlc_monotonic_ && hlc_unordered_at_ >= first_removed) {
    hlc_monotonic_ = true;
    hlc_unordered_at_ = 0;
  }
  if (hlc_monotonic_) {
    uint64_t last = kept;
    while (last > 0 && offsets_[last - 1] == 0) --last;  // only hidden slots of older fences
    last_hlc_ = last == 0 ? Hlc{} : hlc_at(last);
  }
}

std::optional<EventLocation> EventIndex::locate(uint64_t sequence) const {
  if (!visible_in_index(sequence)) return std::nullopt;
  auto segment = std::upper_bound(
      segments_.begin(), segments_.end(), sequence,
      [](uint64_t s, const SegmentStart& start) { return s < start.first_sequence; });
  assert(segment != segments_.begin());
  return EventLocation{std::prev(segment)->segment_id, offsets_[sequence - 1]};
}

std::optional<uint64_t> EventIndex::find(const EventId& id) const {
  if (!ids_sorted_) {
    auto it = id_map_.find(id);
    if (it == id_map_.end()) return std::nullopt;
    return it->second;
  }
  // Hidden slots repeat the id before them: the first match is the visible event, if any.
  auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
  for (; it != ids_.end() && *it == id; ++it) {
    uint64_t sequence = static_cast<uint64_t>(it - ids_.begin()) + 1;
    if (offsets_[sequence - 1] != 0) return sequence;
  }
  return std::nullopt;
}

Hlc EventIndex::hlc_at(uint64_t sequence) const {
  if (!other_hlcs_.empty()) {
    auto it = other_hlcs_.find(sequence);
    if (it != other_hlcs_.end()) return it->second;
  }
  return hlc_in_id(ids_[sequence - 1]);
}

std::optional<EventId> EventIndex::external_cause_of(uint64_t sequence) const {
  auto it = external_causes_.find(sequence);
  if (it == external_causes_.end()) return std::nullopt;
  return it->second;
}

uint64_t EventIndex::newest_of_correlation(const EventId& correlation) const {
  auto it = correlation_heads_.find(correlation);
  return it == correlation_heads_.end() ? 0 : it->second;
}

std::vector<uint32_t> EventIndex::lanes() const {
  std::vector<uint32_t> found;
  for (const detail::StreamNode& s : stream_list_) {
    if (!s->sequences.empty()) found.push_back(s->lane);
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

uint64_t EventIndex::last_visible_sequence() const {
  for (uint64_t s = offsets_.size(); s > 0; --s) {
    if (offsets_[s - 1] != 0) return s;
  }
  return 0;
}

uint64_t EventIndex::memory_bytes() const {
  auto vector_bytes = [](const auto& v) { return v.capacity() * sizeof(v[0]); };
  uint64_t bytes = vector_bytes(offsets_) + vector_bytes(ids_) + vector_bytes(kinds_) +
                   vector_bytes(scopes_) + vector_bytes(stream_numbers_) +
                   own_correlation_.capacity() / 8 + causes_.memory_bytes() +
                   newest_effects_.memory_bytes() + older_siblings_.memory_bytes() +
                   correlation_chain_.memory_bytes() + vector_bytes(segments_);
  // Hash maps: a slot is the value plus one control byte; node maps add a heap node per entry.
  bytes += id_map_.capacity() * (sizeof(EventId) + 8 + 1);
  bytes += other_hlcs_.capacity() * (8 + sizeof(Hlc) + 1);
  bytes += external_causes_.capacity() * (8 + sizeof(EventId) + 1);
  bytes += correlation_heads_.capacity() * (sizeof(EventId) + 8 + 1);
  for (const std::string& name : scope_names_) bytes += sizeof(name) + name.capacity();
  bytes += scope_numbers_.capacity() * (sizeof(std::string) + 4 + 1);
  bytes += streams_.capacity() * (8 + sizeof(void*) + 1);
  for (const detail::StreamNode& stream : stream_list_) {
    bytes += sizeof(EntityStream) + stream->sorted_key().size() + 16;  // node, allocator header
    bytes += stream->sequences.capacity() * sizeof(uint64_t);
  }
  bytes += vector_bytes(stream_list_);
  bytes += sorted_keys_.size() * (sizeof(std::string_view) + sizeof(void*) + 2);  // ~full nodes
  return bytes;
}

}  // namespace keel::index
