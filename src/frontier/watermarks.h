// Watermarks: the six global watermarks of docs/ARCHITECTURE.md §4, the lane views, and the
// consumers whose progress defines `applied` (include/keel/frontier.h states the semantics and
// invariants).
//
// Lane views: each lane keeps the sequences of its events that have not yet reached the lowest
// watermark (min of emitted and applied), ascending. A lane's view of watermark K is then
// (its first pending sequence above K) - 1, or `accepted` when it has none. Views are computed on
// demand; the hot path (accept) is one push_back. Pending entries keep the event's wall time too,
// so a consumer-driven `applied` gets the wall time of the event at its sequence.
//
// Every change checks the invariants it could break and is refused (InvariantViolation, nothing
// changed) when it would break one. Once poison() is called, durable is frozen: a later advance of
// durable is a no-op, even after a successful fsync (fsyncgate).
//
// Threads: not thread-safe; the store's commit mutex guards it.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "keel/frontier.h"
#include "keel/options.h"
#include "keel/result.h"

namespace keel::frontier {

class Watermarks {
 public:
  explicit Watermarks(VisibilityPolicy policy) : policy_(policy) {}
  // Movable (the lane cache points into nodes that move with the map), not copyable.
  Watermarks(Watermarks&&) = default;
  Watermarks& operator=(Watermarks&&) = default;
  Watermarks(const Watermarks&) = delete;
  Watermarks& operator=(const Watermarks&) = delete;

  // Open: every recovered event (sequences 1 .. recovered.global_sequence) has reached every level.
  void bootstrap(HlcPoint recovered);
  // A lane that holds recovered events (listed by snapshot()).
  void note_lane(uint32_t lane);

  // The commit point assigned point.global_sequence to an event of `lane`. Sequences are accepted
  // in increasing order: InvariantViolation unless above accepted.
  Status accept(uint32_t lane, HlcPoint point);

  // Raises written, durable, visible or emitted to `point`; a point not above the current value is
  // a no-op (watermarks are monotone). InvariantViolation, changing nothing, when the new value
  // would break an invariant (e.g. written above accepted, visible above durable under
  // AfterDurable). Accepted moves only through accept(); applied only through the consumers.
  Status advance(Watermark kind, HlcPoint point);
  // Publication: raises visible to `point`, then, with no live subscription, emitted to visible
  // and, with no consumer registered, applied to visible.
  Status publish(HlcPoint point);

  // A visibility fence (docs/ARCHITECTURE.md §7): while held, publish() raises visible to at most
  // `at` (the last event before the fence), so the fence's events stay invisible whatever durable
  // does. release_visible() lifts the hold; the caller then publishes the policy's watermark again.
  void hold_visible(HlcPoint at) { visible_hold_ = at; }
  void release_visible() { visible_hold_.reset(); }

  // Freezes durable for good (the writer is poisoned).
  void poison() { poisoned_ = true; }
  bool poisoned() const { return poisoned_; }

  // ---- consumers (docs/ARCHITECTURE.md §4 and §8) ----
  // Registers `name` at position `at` (the last sequence it has applied): InvalidArgument when the
  // name is empty or taken, or `at` is below applied (registering must not lower applied; use
  // reset_applied) or above visible.
  Status register_consumer(std::string_view name, uint64_t at);
  // Open, right after bootstrap(): the durable consumers persisted in the store, each at its
  // committed cursor (at most visible). Applied starts at the lowest of them: not a reset, the
  // store's applied was that low when it closed (or crashed).
  void restore_consumers(const std::vector<std::pair<std::string, uint64_t>>& consumers);
  // The consumer has applied every event up to `sequence`: InvalidArgument when below its position
  // (positions are monotone) or above visible; NotFound for an unknown name. Applied becomes
  // max(applied, min over consumers).
  Status consumer_applied(std::string_view name, uint64_t sequence);
  // NotFound for an unknown name. With no consumer left, applied follows visible again, at once.
  Status unregister_consumer(std::string_view name);
  // The explicit reset that may lower applied (docs/ARCHITECTURE.md §4): sets applied to `sequence`
  // (at most visible: InvalidArgument above it) and every consumer position above it down to it.
  // Returns the line to log, naming the old and new values and `reason`. The lanes no longer know
  // which of their events lie between the new applied and the trim floor, so until applied climbs
  // back there every seen lane's applied view reads the global applied (low, never high).
  Result<std::string> reset_applied(uint64_t sequence, std::string_view reason);
  size_t consumer_count() const { return consumers_.size(); }

  // ---- live subscriptions: they define emitted (docs/ARCHITECTURE.md §4) ----
  // emitted = max(emitted, min over live subscriptions' positions), at most visible; with none it
  // follows visible. A subscription starting below emitted does not lower it.
  uint64_t add_subscription(uint64_t position);
  // The subscription has been handed every matching event up to `position` (it only moves up).
  void subscription_delivered(uint64_t id, uint64_t position);
  void remove_subscription(uint64_t id);
  size_t subscription_count() const { return subscriptions_.size(); }

  // ---- reading ----
  uint64_t sequence(Watermark kind) const { return points_[index(kind)].global_sequence; }
  const HlcPoint& point(Watermark kind) const { return points_[index(kind)]; }
  // The lane view of `kind` (include/keel/frontier.h); a lane never seen reads `accepted`.
  uint64_t lane_sequence(uint32_t lane, Watermark kind) const;
  LaneFrontier lane(uint32_t lane) const;
  // Fills points, visible_minus_durable, lanes (every lane seen, ascending), consumers, poisoned.
  void snapshot(Frontier& out) const;
  // Checks every invariant of include/keel/frontier.h; empty when they hold, else a description.
  // (Monotonicity is enforced by advance(); this checks the ordering between watermarks.)
  std::string check() const;
  // The ordering invariants alone, for any set of values (recovered ones on open, a candidate
  // change here): empty when they hold, else "written 7 above accepted 5" (several joined by "; ").
  static std::string check_ordering(const WatermarkSequences& sequences, VisibilityPolicy policy);
  // Events of `lane` held for the lane views (not yet at min(emitted, applied)): the memory the
  // views cost, and what a test reads to see them trimmed.
  size_t pending_count(uint32_t lane) const;

  // Consecutive sequences of one lane accepted with one wall time (a batch's events, mostly): the
  // events [first, last].
  struct PendingRun {
    uint64_t first = 0;
    uint64_t last = 0;
    uint64_t wall_ms = 0;
  };

 private:
  static int index(Watermark kind) { return static_cast<int>(kind); }
  void trim_lanes();
  // Applied := max(applied, min over consumers); nothing without a consumer.
  void raise_applied();
  // `sequence` with the wall time of the event there when known (a current point, the trim floor
  // or a pending event), else the wall time of the closest known point below it (a lower bound:
  // wall time is non-decreasing in sequence). Inexact only after reset_applied below the floor.
  HlcPoint point_at(uint64_t sequence) const;

  struct Lane {
    std::deque<PendingRun> pending;  // events not yet at min(emitted, applied), ascending
  };

  VisibilityPolicy policy_;
  HlcPoint points_[kWatermarkCount];
  // Every pending deque holds all of its lane's events above this point (the highest
  // min(emitted, applied) trimmed at); only reset_applied can put applied below it.
  HlcPoint trimmed_;
  bool poisoned_ = false;
  std::optional<HlcPoint> visible_hold_;
  // Node-based: a Lane never moves, so the last accepted lane is cached (appends mostly repeat a
  // lane, and accept() is on every append's path). Lanes are never removed.
  absl::node_hash_map<uint32_t, Lane> lanes_;
  uint32_t last_lane_id_ = 0;
  Lane* last_lane_ = nullptr;
  absl::flat_hash_map<std::string, uint64_t> consumers_;  // name -> last applied sequence
  // Emitted := max(emitted, min over subscriptions, visible); visible without a subscription.
  void raise_emitted();
  absl::flat_hash_map<uint64_t, uint64_t> subscriptions_;  // id -> position delivered through
  uint64_t next_subscription_id_ = 1;
};

}  // namespace keel::frontier
