#include "index/event_index.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace keel::index {

// entity + '\0' + lane (4 bytes): entities never contain NUL, so keys are unambiguous.
std::string_view EventIndex::stream_key(std::string_view entity, uint32_t lane) const {
  key_scratch_.assign(entity);
  key_scratch_.push_back('\0');
  char bytes[sizeof lane];
  std::memcpy(bytes, &lane, sizeof lane);
  key_scratch_.append(bytes, sizeof lane);
  return key_scratch_;
}

EntityStream& EventIndex::stream_for(std::string_view entity, uint32_t lane) {
  std::string_view key = stream_key(entity, lane);
  auto it = streams_.find(absl::string_view(key.data(), key.size()));
  if (it == streams_.end()) it = streams_.emplace(std::string(key), EntityStream{}).first;
  return it->second;
}

const EntityStream* EventIndex::stream(std::string_view entity, uint32_t lane) const {
  std::string_view key = stream_key(entity, lane);
  auto it = streams_.find(absl::string_view(key.data(), key.size()));
  return it == streams_.end() || it->second.sequences.empty() ? nullptr : &it->second;
}

const char* EventIndex::add(uint64_t sequence, const EventLocation& location, const EventId& id,
                            EntityStream& stream, uint64_t clock, const Hash128& chained_hash) {
  assert(sequence == next_sequence());
  if (clock != stream.clock() + 1) return "entity clock does not follow its stream's head";
  if (sorted_ids_.empty() || sorted_ids_.back().id < id) {  // the store's own ids: always here
    if (!other_ids_.empty() && other_ids_.count(id) > 0) return "duplicate event id";
    sorted_ids_.push_back(IdEntry{id, sequence});
  } else {
    if (find(id)) return "duplicate event id";
    other_ids_.emplace(id, sequence);
  }
  ++visible_count_;
  if (stream.sequences.empty()) ++stream_count_;
  locations_.push_back(location);
  stream.sequences.push_back(sequence);
  stream.head_hash = chained_hash;
  return nullptr;
}

void EventIndex::add_hidden(uint64_t sequence) {
  assert(sequence == next_sequence());
  (void)sequence;
  locations_.push_back(EventLocation{kHidden, 0, 0});
}

const EventLocation* EventIndex::locate(uint64_t sequence) const {
  if (sequence == 0 || sequence >= next_sequence()) return nullptr;
  const EventLocation& location = locations_[sequence - 1];
  return location.segment_id == kHidden ? nullptr : &location;
}

std::optional<uint64_t> EventIndex::find(const EventId& id) const {
  auto sorted = std::lower_bound(
      sorted_ids_.begin(), sorted_ids_.end(), id,
      [](const IdEntry& entry, const EventId& key) { return entry.id < key; });
  if (sorted != sorted_ids_.end() && sorted->id == id) return sorted->sequence;
  if (other_ids_.empty()) return std::nullopt;
  auto it = other_ids_.find(id);
  if (it == other_ids_.end()) return std::nullopt;
  return it->second;
}

}  // namespace keel::index
