#include "index/causal.h"

#include <algorithm>

namespace keel::index {

AncestorWalk ancestors(const EventIndex& index, uint64_t sequence, size_t limit) {
  AncestorWalk walk;
  for (uint64_t s = sequence; s != 0 && walk.chain.size() < limit; s = index.cause_of(s)) {
    walk.chain.push_back(s);
    if (index.cause_of(s) != 0) continue;
    if (std::optional<EventId> external = index.external_cause_of(s)) {
      if (std::optional<uint64_t> later = index.find(*external)) {
        walk.forward_from = s;
        walk.forward_to = *later;
      } else {
        walk.external_cause = external;
      }
    }
  }
  return walk;
}

std::vector<uint64_t> descendants(const EventIndex& index, uint64_t sequence, uint64_t visible,
                                  size_t limit, bool& truncated) {
  std::vector<uint64_t> found;
  std::vector<uint64_t> level{sequence};
  std::vector<uint64_t> next;
  truncated = false;
  while (!level.empty()) {
    next.clear();
    for (uint64_t parent : level) {
      for (uint64_t child = index.newest_effect_of(parent); child != 0;
           child = index.older_sibling_of(child)) {
        if (child <= visible) next.push_back(child);
      }
    }
    std::sort(next.begin(), next.end());
    for (uint64_t s : next) {
      if (found.size() == limit) {
        truncated = true;
        return found;
      }
      found.push_back(s);
    }
    level.swap(next);
  }
  return found;
}

bool is_ancestor(const EventIndex& index, uint64_t ancestor, uint64_t sequence) {
  for (uint64_t s = index.cause_of(sequence); s >= ancestor && s != 0; s = index.cause_of(s)) {
    if (s == ancestor) return true;
  }
  return false;
}

}  // namespace keel::index
