// SequenceLinks: one link per event from its sequence to an earlier sequence (or none), stored in
// 4 bytes per event as the backward distance. The causal and correlation indexes are built from
// such columns (parent, first child, next sibling, previous event of a correlation): a link always
// points back, because an event can only name an event that was there before it.
//
// A distance of 2^32 - 1 or more (a store of billions of events) goes to a small overflow map, so
// nothing is clamped. Links can be set once per event, in sequence order, or updated later (a
// parent's first child changes as children arrive).
//
// Threads: not thread-safe; the store serializes access.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace keel::index {

class SequenceLinks {
 public:
  // Makes room for links from sequences up to `sequence` (unset ones are "none").
  void extend_to(uint64_t sequence) {
    if (sequence > distances_.size()) distances_.resize(sequence, 0);
  }
  // The sequence `from` links to, or 0 for none. `from` must be within extend_to().
  uint64_t get(uint64_t from) const {
    uint32_t distance = distances_[from - 1];
    if (distance == 0) return 0;
    if (distance != kOverflow) return from - distance;
    return overflow_.at(from);
  }
  // Links `from` to `to` (< from), or to none when `to` is 0.
  void set(uint64_t from, uint64_t to) {
    uint64_t distance = to == 0 ? 0 : from - to;
    if (distance >= kOverflow) {
      distances_[from - 1] = kOverflow;
      overflow_[from] = to;
      return;
    }
    if (distances_[from - 1] == kOverflow) overflow_.erase(from);
    distances_[from - 1] = static_cast<uint32_t>(distance);
  }
  void clear() {
    distances_.clear();
    overflow_.clear();
  }
  uint64_t memory_bytes() const {
    return distances_.capacity() * sizeof(uint32_t) +
           overflow_.capacity() * (sizeof(uint64_t) * 2 + 1);
  }

 private:
  static constexpr uint32_t kOverflow = UINT32_MAX;
  std::vector<uint32_t> distances_;  // index sequence - 1; 0 = none
  absl::flat_hash_map<uint64_t, uint64_t> overflow_;
};

}  // namespace keel::index
