// Selection: which sequences answer a Query (include/keel/query.h), computed on the EventIndex
// alone. One index drives (the correlation chain, else the entity streams, else the sequence
// range, narrowed by the HLC range when HLCs follow sequences), every other predicate filters
// the candidates through the per-event columns.
//
// Threads: reads the index; the store serializes access.
#pragma once

#include <cstdint>
#include <vector>

#include "index/event_index.h"
#include "keel/query.h"

namespace keel::index {

// Up to `want` sequences matching `query` (its page fields included: order and after), at most
// `visible`, in the query's order. The query must be valid (the store checks it first).
std::vector<uint64_t> select(const EventIndex& index, const Query& query, uint64_t visible,
                             size_t want);

// The events of a conversation (those naming it and its root), in sequence order, hidden excluded
// (any visibility).
std::vector<uint64_t> correlation_members(const EventIndex& index, const EventId& correlation);

// The first sequence in [lo, hi] whose HLC is at least `hlc` (hi + 1 when none); the index's HLCs
// must be monotonic.
uint64_t first_at_or_after(const EventIndex& index, uint64_t lo, uint64_t hi, const Hlc& hlc);

}  // namespace keel::index
