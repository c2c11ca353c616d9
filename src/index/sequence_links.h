// SequenceLinks: one link per event from its sequence to another (or none), stored in 4 bytes per
// event as the distance, in the column's one direction: backward (cause, older sibling, previous
// event of a correlation: an event can only name events that were there before it) or forward
// (a cause's newest effect).
//
// A distance of 2^32 - 1 or more (a store of billions of events) goes to a small overflow map, so
// nothing is clamped. Links can be set once per event, in sequence order, or updated later (a
// parent's first child changes as children arrive).
//
// Threads: not thread-safe; the store serializes access.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "index/column.h"

namespace keel::index {

class SequenceLinks {
 public:
  enum class Direction : uint8_t { Backward, Forward };
  explicit SequenceLinks(Direction direction = Direction::Backward) : direction_(direction) {}
  Direction direction() const { return direction_; }

  // Makes room for links from sequences up to `sequence` (unset ones are "none"). A column holds
  // no memory until its first link: a store that never names a cause or a correlation keeps its
  // four link columns empty (16 bytes per event).
  void extend_to(uint64_t sequence) {
    if (!distances_.empty() && sequence > distances_.size()) distances_.resize(sequence, 0);
  }
  // The sequence `from` links to, or 0 for none.
  uint64_t get(uint64_t from) const {
    if (from > distances_.size()) return 0;  // a column with no link from here on
    uint32_t distance = distances_[from - 1];
    if (distance == 0) return 0;
    if (distance != kOverflow)
      return direction_ == Direction::Backward ? from - distance : from + distance;
    return overflow_.at(from);
  }
  // Links `from` to `to` (before `from` in a backward column, after it in a forward one), or to
  // none when `to` is 0. The first link makes room up to `from`; extend_to() grows it from then on.
  void set(uint64_t from, uint64_t to) {
    if (from > distances_.size()) {
      if (to == 0) return;
      distances_.resize(from, 0);
    }
    uint64_t distance = to == 0 ? 0 : direction_ == Direction::Backward ? from - to : to - from;
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
  // Drops the links from sequences above `size` (an undone append's). Links from the sequences
  // kept to the ones dropped are the caller's to reset first.
  void truncate(uint64_t size) {
    if (size >= distances_.size()) return;
    distances_.resize(size);
    if (!overflow_.empty()) {
      absl::erase_if(overflow_, [size](const auto& entry) { return entry.first > size; });
    }
  }
  // Whether no sequence up to `n` links anywhere.
  bool none_up_to(uint64_t n) const {
    const uint64_t end = std::min<uint64_t>(n, distances_.size());
    for (uint64_t i = 0; i < end; ++i) {
      if (distances_[i] != 0) return false;
    }
    return true;
  }
  uint64_t memory_bytes() const {
    return distances_.capacity() * sizeof(uint32_t) +
           overflow_.capacity() * (sizeof(uint64_t) * 2 + 1);
  }

 private:
  friend struct ImageCodec;  // index/index_image.cc
  static constexpr uint32_t kOverflow = UINT32_MAX;
  Direction direction_;
  Column<uint32_t> distances_;  // index sequence - 1; 0 = none
  absl::flat_hash_map<uint64_t, uint64_t> overflow_;
};

}  // namespace keel::index
