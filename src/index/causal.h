// Causal walks over the EventIndex's causation links (docs/ARCHITECTURE.md §6). Every link points
// to a smaller sequence, so every walk ends; a cause recorded as external whose id is now in the
// store names a later event, which only a damaged store holds (a cycle or a forward link):
// reported, not followed.
//
// Threads: reads the index; the store serializes access.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "index/event_index.h"
#include "keel/query.h"

namespace keel::index {

struct AncestorWalk {
  std::vector<uint64_t> chain;            // the event first, then its causes
  std::optional<EventId> external_cause;  // the root's cause, not in the store
  // Damage: `forward_from` names an event whose cause is the later event `forward_to`.
  uint64_t forward_from = 0;
  uint64_t forward_to = 0;
};

// The causes of the visible event `sequence`, up to `limit` events in the chain.
AncestorWalk ancestors(const EventIndex& index, uint64_t sequence, size_t limit);

// Everything `sequence` caused, breadth-first with each level in sequence order, only sequences up
// to `visible`; at most `limit` (truncated tells whether more were left out).
std::vector<uint64_t> descendants(const EventIndex& index, uint64_t sequence, uint64_t visible,
                                  size_t limit, bool& truncated);

// Whether `ancestor` is a cause (transitively) of `sequence`.
bool is_ancestor(const EventIndex& index, uint64_t ancestor, uint64_t sequence);

}  // namespace keel::index
