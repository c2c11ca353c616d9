// Watermarks: the six global watermarks, the lane views and the consumers (watermarks.h).
//
// Every change is checked against the invariants it could break (the raised watermark is the lower
// side of each); a refused change leaves nothing changed, and its error names what
// check_ordering() reports for the candidate values. Threads: not thread-safe; the store's commit mutex guards it.
#include "frontier/watermarks.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace keel {

std::string_view watermark_name(Watermark kind) {
  switch (kind) {
    case Watermark::Accepted:
      return "accepted";
    case Watermark::Written:
      return "written";
    case Watermark::Durable:
      return "durable";
    case Watermark::Visible:
      return "visible";
    case Watermark::Emitted:
      return "emitted";
    case Watermark::Applied:
      return "applied";
  }
  return "unknown";
}

namespace frontier {
namespace {

// Abseil 20220623 is not std-aliased (docs/ARCHITECTURE.md §11.3): convert at its boundary.
absl::string_view as_absl(std::string_view text) { return {text.data(), text.size()}; }

StoreError invariant_violation(std::string invariant) {
  return StoreError(ErrorCode::InvariantViolation).with("invariant", invariant);
}

StoreError invalid_argument(std::string_view argument, std::string reason) {
  return StoreError(ErrorCode::InvalidArgument).with("argument", argument).with("reason", reason);
}

StoreError consumer_not_found(std::string_view name) {
  return StoreError(ErrorCode::NotFound).with("what", "consumer").with("key", name);
}

// The first pending run of a lane with an event above `sequence`, or end.
std::deque<Watermarks::PendingRun>::const_iterator first_above(
    const std::deque<Watermarks::PendingRun>& pending, uint64_t sequence) {
  return std::upper_bound(
      pending.begin(), pending.end(), sequence,
      [](uint64_t value, const Watermarks::PendingRun& run) { return value < run.last; });
}

}  // namespace

void Watermarks::bootstrap(HlcPoint recovered) {
  for (HlcPoint& point : points_) point = recovered;
  trimmed_ = recovered;
  // Every recovered event has reached every level: nothing is pending. Lanes noted stay listed.
  for (auto& [id, lane] : lanes_) lane.pending.clear();
}

void Watermarks::note_lane(uint32_t lane) { lanes_.try_emplace(lane); }

Status Watermarks::accept(uint32_t lane, HlcPoint point) {
  const uint64_t accepted = sequence(Watermark::Accepted);
  if (point.global_sequence <= accepted) {
    return invariant_violation(
        absl::StrCat("accepted ", point.global_sequence, " not above accepted ", accepted));
  }
  points_[index(Watermark::Accepted)] = point;
  if (last_lane_ == nullptr || last_lane_id_ != lane) {
    last_lane_ = &lanes_[lane];
    last_lane_id_ = lane;
  }
  std::deque<PendingRun>& runs = last_lane_->pending;
  if (!runs.empty() && runs.back().last + 1 == point.global_sequence &&
      runs.back().wall_ms == point.wall_ms) {
    runs.back().last = point.global_sequence;
  } else {
    runs.push_back(PendingRun{point.global_sequence, point.global_sequence, point.wall_ms});
  }
  return ok_status();
}

Status Watermarks::advance(Watermark kind, HlcPoint point) {
  switch (kind) {
    case Watermark::Accepted:
      return invalid_argument("kind", "accepted moves only through accept()");
    case Watermark::Applied:
      return invalid_argument("kind", "applied moves only through the consumers");
    case Watermark::Durable:
      // fsyncgate: after a failed sync the kernel may have dropped the dirty pages and cleared the
      // error, so a later successful sync proves nothing about them.
      if (poisoned_) return ok_status();
      break;
    case Watermark::Written:
    case Watermark::Visible:
    case Watermark::Emitted:
      break;
  }
  if (point.global_sequence <= sequence(kind)) return ok_status();  // monotone: not a regression

  // Raising a watermark can only break the invariants where it is the lower side, so the hot path
  // compares with that one bound; the full check names what broke.
  Watermark upper = Watermark::Accepted;
  if (kind == Watermark::Durable) upper = Watermark::Written;
  if (kind == Watermark::Visible) {
    upper = policy_ == VisibilityPolicy::AfterDurable ? Watermark::Durable : Watermark::Written;
  }
  if (kind == Watermark::Emitted) upper = Watermark::Visible;
  if (point.global_sequence > sequence(upper)) {
    WatermarkSequences candidate;
    for (int i = 0; i < kWatermarkCount; ++i) candidate.value[i] = points_[i].global_sequence;
    candidate[kind] = point.global_sequence;
    return invariant_violation(check_ordering(candidate, policy_));
  }

  points_[index(kind)] = point;
  if (kind == Watermark::Emitted) trim_lanes();
  return ok_status();
}

Status Watermarks::publish(HlcPoint point) {
  if (visible_hold_ && visible_hold_->global_sequence < point.global_sequence) {
    point = *visible_hold_;
  }
  KEEL_TRY(advance(Watermark::Visible, point));
  const HlcPoint& visible = points_[index(Watermark::Visible)];
  // Both stay <= visible, so raising them to it cannot break an invariant.
  if (subscriptions_.empty()) points_[index(Watermark::Emitted)] = visible;
  if (consumers_.empty()) points_[index(Watermark::Applied)] = visible;
  trim_lanes();
  return ok_status();
}

void Watermarks::trim_lanes() {
  const HlcPoint& emitted = points_[index(Watermark::Emitted)];
  const HlcPoint& applied = points_[index(Watermark::Applied)];
  const HlcPoint& floor = emitted.global_sequence <= applied.global_sequence ? emitted : applied;
  if (floor.global_sequence <= trimmed_.global_sequence) return;
  for (auto& [id, lane] : lanes_) {
    while (!lane.pending.empty() && lane.pending.front().last <= floor.global_sequence) {
      lane.pending.pop_front();
    }
    if (!lane.pending.empty() && lane.pending.front().first <= floor.global_sequence) {
      lane.pending.front().first = floor.global_sequence + 1;
    }
  }
  trimmed_ = floor;
}

// ---- live subscriptions ----

uint64_t Watermarks::add_subscription(uint64_t position) {
  const uint64_t id = next_subscription_id_++;
  subscriptions_.emplace(id, position);
  return id;
}

void Watermarks::subscription_delivered(uint64_t id, uint64_t position) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end() || position <= it->second) return;
  it->second = position;
  raise_emitted();
}

void Watermarks::remove_subscription(uint64_t id) {
  subscriptions_.erase(id);
  raise_emitted();
}

void Watermarks::raise_emitted() {
  const uint64_t visible = sequence(Watermark::Visible);
  uint64_t lowest = visible;
  for (const auto& [id, position] : subscriptions_) lowest = std::min(lowest, position);
  if (lowest <= sequence(Watermark::Emitted)) return;
  points_[index(Watermark::Emitted)] =
      lowest == visible ? points_[index(Watermark::Visible)] : point_at(lowest);
  trim_lanes();
}

// ---- consumers ----

Status Watermarks::register_consumer(std::string_view name, uint64_t at) {
  if (name.empty()) return invalid_argument("consumer", "the name is empty");
  if (consumers_.contains(as_absl(name))) {
    return invalid_argument("consumer",
                            absl::StrCat("'", as_absl(name), "' is already registered"));
  }
  const uint64_t applied = sequence(Watermark::Applied);
  const uint64_t visible = sequence(Watermark::Visible);
  if (at < applied) {
    return invalid_argument(
        "at", absl::StrCat("position ", at, " is below applied ", applied,
                           " (registering must not lower applied; use reset_applied)"));
  }
  if (at > visible) {
    return invalid_argument("at", absl::StrCat("position ", at, " is above visible ", visible));
  }
  consumers_.emplace(as_absl(name), at);
  raise_applied();
  return ok_status();
}

void Watermarks::restore_consumers(
    const std::vector<std::pair<std::string, uint64_t>>& consumers) {
  if (consumers.empty()) return;
  uint64_t lowest = UINT64_MAX;
  for (const auto& [name, at] : consumers) {
    const uint64_t position = std::min(at, sequence(Watermark::Visible));
    consumers_.insert_or_assign(name, position);
    lowest = std::min(lowest, position);
  }
  if (lowest < sequence(Watermark::Applied)) points_[index(Watermark::Applied)] = point_at(lowest);
}

Status Watermarks::consumer_applied(std::string_view name, uint64_t sequence_applied) {
  auto it = consumers_.find(as_absl(name));
  if (it == consumers_.end()) return consumer_not_found(name);
  if (sequence_applied < it->second) {
    return invalid_argument("sequence", absl::StrCat(sequence_applied, " is below consumer '",
                                                     as_absl(name), "' position ", it->second));
  }
  const uint64_t visible = sequence(Watermark::Visible);
  if (sequence_applied > visible) {
    return invalid_argument("sequence",
                            absl::StrCat(sequence_applied, " is above visible ", visible));
  }
  it->second = sequence_applied;
  raise_applied();
  return ok_status();
}

Status Watermarks::unregister_consumer(std::string_view name) {
  auto it = consumers_.find(as_absl(name));
  if (it == consumers_.end()) return consumer_not_found(name);
  consumers_.erase(it);
  if (consumers_.empty()) {
    // No consumer left: every event up to visible has been applied by all of them.
    points_[index(Watermark::Applied)] = points_[index(Watermark::Visible)];
    trim_lanes();
  } else {
    raise_applied();
  }
  return ok_status();
}

Result<std::string> Watermarks::reset_applied(uint64_t sequence_reset, std::string_view reason) {
  const uint64_t visible = sequence(Watermark::Visible);
  if (sequence_reset > visible) {
    return invalid_argument("sequence",
                            absl::StrCat(sequence_reset, " is above visible ", visible));
  }
  const uint64_t old_applied = sequence(Watermark::Applied);
  points_[index(Watermark::Applied)] = point_at(sequence_reset);
  size_t lowered = 0;
  for (auto& [name, position] : consumers_) {
    if (position > sequence_reset) {
      position = sequence_reset;
      ++lowered;
    }
  }
  trim_lanes();  // a reset upwards may pass the floor
  return absl::StrCat("applied reset from ", old_applied, " to ", sequence_reset, " (", lowered,
                      " consumer positions lowered): ", as_absl(reason));
}

void Watermarks::raise_applied() {
  uint64_t lowest = UINT64_MAX;
  for (const auto& [name, position] : consumers_) lowest = std::min(lowest, position);
  if (lowest == UINT64_MAX || lowest <= sequence(Watermark::Applied)) return;
  points_[index(Watermark::Applied)] = point_at(lowest);
  trim_lanes();
}

HlcPoint Watermarks::point_at(uint64_t sequence_wanted) const {
  HlcPoint best;  // sequence 0 has wall time 0
  auto consider = [&](const HlcPoint& known) {
    if (known.global_sequence <= sequence_wanted && known.global_sequence >= best.global_sequence) {
      best = known;
    }
  };
  for (const HlcPoint& known : points_) consider(known);
  consider(trimmed_);
  for (const auto& [id, lane] : lanes_) {
    auto above = first_above(lane.pending, sequence_wanted);
    if (above != lane.pending.end() && above->first <= sequence_wanted) {
      consider(HlcPoint{above->wall_ms, sequence_wanted});
    }
    if (above != lane.pending.begin()) {
      consider(HlcPoint{std::prev(above)->wall_ms, std::prev(above)->last});
    }
  }
  return HlcPoint{best.wall_ms, sequence_wanted};
}

// ---- reading ----

uint64_t Watermarks::lane_sequence(uint32_t lane, Watermark kind) const {
  const uint64_t accepted = sequence(Watermark::Accepted);
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return accepted;
  const uint64_t level = sequence(kind);
  // Only applied, after reset_applied, can sit below the floor: the lane's events between them are
  // no longer known, so report the global value, which is low but never covers an unapplied event.
  if (level < trimmed_.global_sequence) return level;
  auto above = first_above(it->second.pending, level);
  return above == it->second.pending.end() ? accepted : std::max(above->first, level + 1) - 1;
}

LaneFrontier Watermarks::lane(uint32_t lane) const {
  LaneFrontier out;
  out.lane = lane;
  for (int i = 0; i < kWatermarkCount; ++i) {
    out.sequences.value[i] = lane_sequence(lane, static_cast<Watermark>(i));
  }
  out.visible_minus_durable = static_cast<int64_t>(out.sequences[Watermark::Visible]) -
                              static_cast<int64_t>(out.sequences[Watermark::Durable]);
  return out;
}

size_t Watermarks::pending_count(uint32_t lane) const {
  auto it = lanes_.find(lane);
  if (it == lanes_.end()) return 0;
  size_t events = 0;
  for (const PendingRun& run : it->second.pending) events += run.last - run.first + 1;
  return events;
}

void Watermarks::snapshot(Frontier& out) const {
  std::copy(std::begin(points_), std::end(points_), std::begin(out.points));
  out.visible_minus_durable = static_cast<int64_t>(sequence(Watermark::Visible)) -
                              static_cast<int64_t>(sequence(Watermark::Durable));
  std::vector<uint32_t> ids;
  ids.reserve(lanes_.size());
  for (const auto& [id, lane] : lanes_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  out.lanes.clear();
  for (uint32_t id : ids) out.lanes.push_back(lane(id));
  out.consumers = consumers_.size();
  out.poisoned = poisoned_;
}

std::string Watermarks::check_ordering(const WatermarkSequences& sequences,
                                       VisibilityPolicy policy) {
  std::string out;
  // "lower must not be above upper"
  auto require = [&](Watermark lower, Watermark upper) {
    if (sequences[lower] <= sequences[upper]) return;
    if (!out.empty()) out += "; ";
    absl::StrAppend(&out, as_absl(watermark_name(lower)), " ", sequences[lower], " above ",
                    as_absl(watermark_name(upper)), " ", sequences[upper]);
  };
  require(Watermark::Written, Watermark::Accepted);
  require(Watermark::Durable, Watermark::Written);
  require(Watermark::Visible,
          policy == VisibilityPolicy::AfterDurable ? Watermark::Durable : Watermark::Written);
  require(Watermark::Emitted, Watermark::Visible);
  require(Watermark::Applied, Watermark::Visible);
  return out;
}

std::string Watermarks::check() const {
  WatermarkSequences sequences;
  for (int i = 0; i < kWatermarkCount; ++i) sequences.value[i] = points_[i].global_sequence;
  return check_ordering(sequences, policy_);
}

}  // namespace frontier
}  // namespace keel
