#include "log/block_cache.h"

namespace keel::log {

BlockCache::Block BlockCache::find(uint64_t segment_id, uint64_t block) {
  auto it = blocks_.find(Key{segment_id, block});
  if (it == blocks_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  Entry& entry = *it->second;
  if (entry.position != order_.begin()) {
    order_.splice(order_.begin(), order_, entry.position);
  }
  return entry.bytes;
}

BlockCache::Block BlockCache::insert(uint64_t segment_id, uint64_t block, Block bytes) {
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
  blocks_.emplace(key, std::make_unique<Entry>(Entry{bytes, order_.begin()}));
  return bytes;
}

}  // namespace keel::log
