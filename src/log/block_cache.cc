#include "log/block_cache.h"

namespace keel::log {

std::span<const std::byte> BlockCache::find(uint64_t segment_id, uint64_t block) {
  auto it = blocks_.find(Key{segment_id, block});
  if (it == blocks_.end()) {
    ++misses_;
    return {};
  }
  ++hits_;
  Entry& entry = *it->second;
  if (entry.position != order_.begin()) {
    order_.splice(order_.begin(), order_, entry.position);
  }
  return entry.bytes;
}

std::span<const std::byte> BlockCache::insert(uint64_t segment_id, uint64_t block,
                                              std::vector<std::byte> bytes) {
  Key key{segment_id, block};
  auto existing = blocks_.find(key);
  if (existing != blocks_.end()) {
    order_.erase(existing->second->position);
    blocks_.erase(existing);
  }
  while (!blocks_.empty() && blocks_.size() >= capacity_blocks_) {
    blocks_.erase(order_.back());
    order_.pop_back();
  }
  order_.push_front(key);
  auto entry = std::make_unique<Entry>(Entry{std::move(bytes), order_.begin()});
  std::span<const std::byte> view(entry->bytes);
  blocks_.emplace(key, std::move(entry));
  return view;
}

}  // namespace keel::log
