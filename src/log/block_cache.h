// BlockCache: the most recently read blocks of segment files (kBlockBytes each, aligned), so that
// point reads of events near each other or read again cost no system call. Only bytes that can no
// longer change are cached: the caller says up to where a segment is stable (written bytes never
// change while the store is open; a same-process reopen after a poison makes a new cache).
// Least recently used blocks are dropped once the capacity is reached; capacity 0 disables it.
// Blocks are shared: a reader keeps the block it decodes from alive after it was evicted.
//
// Threads: not thread-safe; RecordReader serializes access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace keel::log {

class BlockCache {
 public:
  static constexpr uint64_t kBlockBytes = 4 << 10;

  explicit BlockCache(uint64_t capacity_bytes) : capacity_blocks_(capacity_bytes / kBlockBytes) {}

  bool enabled() const { return capacity_blocks_ > 0; }
  // A block's bytes (uninitialized until read into: a memset per block read showed up).
  struct Bytes {
    explicit Bytes(size_t n) : data(std::make_unique_for_overwrite<std::byte[]>(n)), size(n) {}
    std::unique_ptr<std::byte[]> data;
    size_t size;
    std::span<std::byte> span() { return {data.get(), size}; }
    std::span<const std::byte> span() const { return {data.get(), size}; }
  };
  using Block = std::shared_ptr<const Bytes>;
  // The cached bytes of block `block` (offset block * kBlockBytes) of segment `segment_id`, or
  // null. A hit makes it the most recently used.
  Block find(uint64_t segment_id, uint64_t block);
  // Caches `bytes` as that block (evicting the least recently used when full) and returns it.
  Block insert(uint64_t segment_id, uint64_t block, Block bytes);
  void clear() {
    blocks_.clear();
    order_.clear();
  }
  uint64_t bytes() const { return blocks_.size() * kBlockBytes; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  struct Key {
    uint64_t segment_id;
    uint64_t block;
    friend bool operator==(const Key&, const Key&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.segment_id, k.block);
    }
  };
  struct Entry {
    Block bytes;
    std::list<Key>::iterator position;  // in order_
  };
  size_t capacity_blocks_;
  absl::flat_hash_map<Key, std::unique_ptr<Entry>> blocks_;
  std::list<Key> order_;  // most recently used first
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace keel::log
