#include "index/event_index.h"

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

const char* EventIndex::add(uint64_t sequence, const EventLocation& location, bool hidden,
                     const EventId& id, std::string_view entity, uint32_t lane, uint64_t clock,
                     const Hash128& chained_hash) {
  assert(sequence == next_sequence());
  if (hidden) {
    locations_.push_back(EventLocation{kHidden, 0, 0});
    return nullptr;
  }
  std::string_view key = stream_key(entity, lane);
  auto it = streams_.find(absl::string_view(key.data(), key.size()));
  uint64_t head_clock = it == streams_.end() ? 0 : it->second.clock();
  if (clock != head_clock + 1) return "entity clock does not follow its stream's head";
  if (!ids_.emplace(id, sequence).second) return "duplicate event id";
  if (it == streams_.end()) it = streams_.emplace(std::string(key), EntityStream{}).first;
  locations_.push_back(location);
  it->second.sequences.push_back(sequence);
  it->second.head_hash = chained_hash;
  return nullptr;
}

const EventLocation* EventIndex::locate(uint64_t sequence) const {
  if (sequence == 0 || sequence >= next_sequence()) return nullptr;
  const EventLocation& location = locations_[sequence - 1];
  return location.segment_id == kHidden ? nullptr : &location;
}

std::optional<uint64_t> EventIndex::find(const EventId& id) const {
  auto it = ids_.find(id);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const EntityStream* EventIndex::stream(std::string_view entity, uint32_t lane) const {
  std::string_view key = stream_key(entity, lane);
  auto it = streams_.find(absl::string_view(key.data(), key.size()));
  return it == streams_.end() ? nullptr : &it->second;
}

}  // namespace keel::index
