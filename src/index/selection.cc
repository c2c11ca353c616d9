#include "index/selection.h"

#include <algorithm>
#include <optional>
#include <queue>
#include <span>

namespace keel::index {
namespace {

// The query's bounds and per-event predicates, resolved against the index once.
class Matcher {
 public:
  Matcher(const EventIndex& index, const Query& q, uint64_t visible) : index_(index), q_(q) {
    lo_ = std::max<uint64_t>(q.sequence_from, 1);
    hi_ = std::min(q.sequence_to, visible);
    if (q.after && q.order == Order::Ascending) {
      if (*q.after == UINT64_MAX) empty_ = true;
      lo_ = std::max(lo_, *q.after + 1);
    } else if (q.after) {
      if (*q.after == 0) empty_ = true;
      hi_ = std::min(hi_, *q.after - 1);
    }
    if (q.scope) {
      scope_ = index.scope_number(*q.scope);
      if (!scope_) empty_ = true;  // no event has that scope
    }
    // HLC bounds become sequence bounds when HLCs follow sequences.
    if (index.hlc_monotonic() && lo_ <= hi_) {
      if (q.hlc_from) lo_ = first_at_or_after(index, lo_, hi_, *q.hlc_from);
      if (q.hlc_to && lo_ <= hi_ && *q.hlc_to < Hlc{UINT64_MAX, UINT32_MAX}) {
        Hlc above = q.hlc_to->logical == UINT32_MAX ? Hlc{q.hlc_to->wall_ms + 1, 0}
                                                    : Hlc{q.hlc_to->wall_ms, q.hlc_to->logical + 1};
        uint64_t first_above = first_at_or_after(index, lo_, hi_, above);
        hi_ = first_above - 1;
      }
      hlc_in_bounds_ = true;
    }
    if (lo_ > hi_) empty_ = true;
  }

  bool empty() const { return empty_; }
  uint64_t lo() const { return lo_; }
  uint64_t hi() const { return hi_; }

  // Every predicate but the driving index's (`entity_checked`: the candidate came from a stream
  // the entity, prefix and lane predicates selected, `clock` its clock there).
  bool matches(uint64_t s, bool entity_checked, uint64_t clock) const {
    if (s < lo_ || s > hi_ || !index_.visible_in_index(s)) return false;
    if (q_.kind && index_.kind_at(s) != q_.kind->value) return false;
    if (q_.category && EventKind{index_.kind_at(s)}.category() != *q_.category) return false;
    if (scope_ && index_.scope_number_at(s) != *scope_) return false;
    if (!hlc_in_bounds_) {
      Hlc hlc = index_.hlc_at(s);
      if ((q_.hlc_from && hlc < *q_.hlc_from) || (q_.hlc_to && *q_.hlc_to < hlc)) return false;
    }
    if (!entity_checked) {
      const EntityStream& stream = index_.stream_at(s);
      if (q_.lane && stream.lane != *q_.lane) return false;
      if (q_.entity && stream.entity != *q_.entity) return false;
      if (q_.entity_prefix && !stream.entity.starts_with(*q_.entity_prefix)) return false;
      if (q_.entity || q_.entity_prefix) clock = stream.clock_of(s);
    }
    if ((q_.entity || q_.entity_prefix) && (clock < q_.clock_from || clock > q_.clock_to)) {
      return false;
    }
    return true;
  }

 private:
  const EventIndex& index_;
  const Query& q_;
  uint64_t lo_ = 1;
  uint64_t hi_ = 0;
  bool empty_ = false;
  std::optional<uint32_t> scope_;
  bool hlc_in_bounds_ = false;
};

}  // namespace

// The explicit chain (newest first) and the root.
std::vector<uint64_t> correlation_members(const EventIndex& index, const EventId& correlation) {
  std::vector<uint64_t> found;
  for (uint64_t s = index.newest_of_correlation(correlation); s != 0;
       s = index.previous_of_correlation(s)) {
    found.push_back(s);
  }
  if (std::optional<uint64_t> root = index.find(correlation);
      root && index.correlation_is_own_id(*root)) {
    found.push_back(*root);
  }
  std::sort(found.begin(), found.end());
  return found;
}

namespace {

// One stream's events within the clock range and [lo, hi], as a slice of its sequences.
std::span<const uint64_t> stream_slice(const EntityStream& stream, const Query& q, uint64_t lo,
                                       uint64_t hi) {
  std::span<const uint64_t> all(stream.sequences);
  uint64_t first_clock = std::max<uint64_t>(q.clock_from, 1);
  if (first_clock > all.size()) return {};
  uint64_t last_clock = std::min<uint64_t>(q.clock_to, all.size());
  if (last_clock < first_clock) return {};
  auto slice = all.subspan(first_clock - 1, last_clock - first_clock + 1);
  auto begin = std::lower_bound(slice.begin(), slice.end(), lo);
  auto end = std::upper_bound(begin, slice.end(), hi);
  return std::span<const uint64_t>(&*slice.begin() + (begin - slice.begin()),
                                   static_cast<size_t>(end - begin));
}

}  // namespace

uint64_t first_at_or_after(const EventIndex& index, uint64_t lo, uint64_t hi, const Hlc& hlc) {
  uint64_t count = hi - lo + 1;
  uint64_t first = lo;
  while (count > 0) {
    uint64_t step = count / 2;
    uint64_t mid = first + step;
    if (index.hlc_at(mid) < hlc) {
      first = mid + 1;
      count -= step + 1;
    } else {
      count = step;
    }
  }
  return first;
}

std::vector<uint64_t> select(const EventIndex& index, const Query& q, uint64_t visible,
                             size_t want) {
  std::vector<uint64_t> out;
  Matcher match(index, q, visible);
  if (match.empty() || want == 0) return out;
  const bool ascending = q.order == Order::Ascending;

  if (q.correlation_id) {
    std::vector<uint64_t> candidates = correlation_members(index, *q.correlation_id);
    if (!ascending) std::reverse(candidates.begin(), candidates.end());
    for (uint64_t s : candidates) {
      if (match.matches(s, false, 0)) out.push_back(s);
      if (out.size() == want) break;
    }
    return out;
  }

  if (q.entity || q.entity_prefix) {
    std::vector<const EntityStream*> streams =
        q.entity ? index.streams_of(*q.entity) : index.streams_with_prefix(*q.entity_prefix);
    // A k-way merge of the streams' slices by sequence.
    struct Cursor {
      std::span<const uint64_t> slice;
      size_t at;             // next position (ascending) or one past it (descending)
      uint64_t first_clock;  // the clock of slice[0]
    };
    std::vector<Cursor> cursors;
    for (const EntityStream* stream : streams) {
      if (q.lane && stream->lane != *q.lane) continue;
      std::span<const uint64_t> slice = stream_slice(*stream, q, match.lo(), match.hi());
      if (slice.empty()) continue;
      uint64_t first_clock = static_cast<uint64_t>(slice.data() - stream->sequences.data()) + 1;
      cursors.push_back(Cursor{slice, ascending ? 0 : slice.size(), first_clock});
    }
    auto head = [&](size_t c) {
      const Cursor& cursor = cursors[c];
      return ascending ? cursor.slice[cursor.at] : cursor.slice[cursor.at - 1];
    };
    auto later = [&](size_t a, size_t b) {  // heap order: the next in `order` on top
      return ascending ? head(a) > head(b) : head(a) < head(b);
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(later)> heap(later);
    for (size_t c = 0; c < cursors.size(); ++c) heap.push(c);
    while (!heap.empty() && out.size() < want) {
      size_t c = heap.top();
      heap.pop();
      Cursor& cursor = cursors[c];
      size_t position = ascending ? cursor.at : cursor.at - 1;
      uint64_t s = cursor.slice[position];
      if (match.matches(s, true, cursor.first_clock + position)) out.push_back(s);
      if (ascending ? ++cursor.at < cursor.slice.size() : --cursor.at > 0) heap.push(c);
    }
    return out;
  }

  if (ascending) {
    for (uint64_t s = match.lo(); s <= match.hi() && out.size() < want; ++s) {
      if (match.matches(s, false, 0)) out.push_back(s);
    }
  } else {
    for (uint64_t s = match.hi(); s >= match.lo() && out.size() < want; --s) {
      if (match.matches(s, false, 0)) out.push_back(s);
    }
  }
  return out;
}

}  // namespace keel::index
