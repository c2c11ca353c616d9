// Retention as a policy (include/keel/retention.h): which floor, and what holds it back (durable
// consumers, published snapshots). The
// mechanism (persist what outlives the events, write RETAIN, remove files) is the store's
// (src/store/store_retention.cc).
#include "keel/retention.h"

#include <algorithm>

#include "consumers/invalid_argument.h"
#include "keel/consumer.h"
#include "log/snapshot_files.h"
#include "store/store_internals.h"

namespace keel {

namespace {

using consumers::invalid_argument;

// The highest floor the durable consumers and the published snapshots allow: every event after
// the lowest committed cursor, and after each name's published snapshot (replaying from it needs
// them), stays. A damaged cursor or pointer holds the floor at 1 (its position is unknown).
struct Bound {
  uint64_t floor = UINT64_MAX;
  std::string held_by;
  void hold(uint64_t at, std::string by) {
    if (at < floor) {
      floor = at;
      held_by = std::move(by);
    }
  }
};

Result<Bound> bound_of(Store& store) {
  KEEL_ASSIGN_OR_RETURN(std::vector<ConsumerInfo> consumers, list_consumers(store));
  Bound bound;
  for (const ConsumerInfo& c : consumers) {
    bound.hold(c.problem.empty() ? c.cursor + 1 : 1,
               "consumer " + c.name + " at cursor " + std::to_string(c.cursor) +
                   (c.problem.empty() ? "" : " (its file is damaged)"));
  }
  platform::FileSystem& fs = StoreInternals::file_system(store);
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names,
                        log::list_snapshot_names(fs, store.directory()));
  for (const std::string& name : names) {
    auto pointer = log::read_snapshot_pointer(fs, store.directory(), name);
    if (!pointer.ok()) {
      if (!pointer.error().is(ErrorCode::CorruptSidecar) &&
          !pointer.error().is(ErrorCode::UnsupportedVersion)) {
        return std::move(pointer).error();
      }
      bound.hold(1, "snapshot " + name + " (its pointer is damaged)");
    } else if (*pointer) {
      bound.hold((*pointer)->sequence + 1,
                 "snapshot " + name + " at sequence " + std::to_string((*pointer)->sequence));
    }
  }
  return bound;
}

Result<RetentionResult> retain(Store& store, uint64_t wanted, const RetentionOptions& options) {
  RetentionResult result;
  result.wanted = wanted;
  result.first_retained_before = store.stats().first_retained_sequence;
  uint64_t floor = wanted;
  if (!options.force) {
    KEEL_ASSIGN_OR_RETURN(Bound bound, bound_of(store));
    if (bound.floor < floor) {
      floor = bound.floor;
      result.held_by = bound.held_by;
    }
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<SegmentSpan> before, StoreInternals::segment_spans(store));
  if (floor > result.first_retained_before) {
    KEEL_ASSIGN_OR_RETURN(result.first_retained, StoreInternals::retain_from(store, floor));
  } else {
    result.first_retained = result.first_retained_before;
  }
  for (const SegmentSpan& span : before) {
    if (span.first_sequence < result.first_retained && !span.active) {
      ++result.segments_removed;
      result.bytes_removed += span.bytes;
    }
  }
  return result;
}

}  // namespace

Result<RetentionResult> retain_from(Store& store, uint64_t sequence,
                                    const RetentionOptions& options) {
  if (sequence == 0) return invalid_argument("sequence", "sequences start at 1");
  return retain(store, sequence, options);
}

Result<RetentionResult> apply_retention(Store& store, const RetentionPolicy& policy,
                                        const RetentionOptions& options) {
  if (policy.max_age.count() < 0) return invalid_argument("max_age", "must not be negative");
  KEEL_ASSIGN_OR_RETURN(std::vector<SegmentSpan> spans, StoreInternals::segment_spans(store));
  // The policy's floor: the first sequence of the oldest segment every bound lets stay.
  size_t keep_from = 0;  // index into spans
  if (policy.max_bytes > 0) {
    uint64_t total = 0;
    for (const SegmentSpan& span : spans) total += span.bytes;
    while (keep_from < spans.size() && !spans[keep_from].active && total > policy.max_bytes) {
      total -= spans[keep_from].bytes;
      ++keep_from;
    }
  }
  if (policy.max_age.count() > 0) {
    const uint64_t now = StoreInternals::now_wall_ms(store);
    const uint64_t age = static_cast<uint64_t>(policy.max_age.count());
    const uint64_t oldest_kept = now > age ? now - age : 0;
    size_t i = keep_from;
    while (i < spans.size() && !spans[i].active && spans[i].last_wall_ms < oldest_kept) ++i;
    keep_from = i;
  }
  if (keep_from == 0 || spans.empty()) {
    return retain(store, spans.empty() ? 1 : spans.front().first_sequence, options);
  }
  return retain(store, spans[keep_from].first_sequence, options);
}

}  // namespace keel
