// HlcClock: physical time from the anchored monotonic clock, forward-only wall-clock adoption and
// jump counting (docs/ARCHITECTURE.md §4; the rules are in hlc.h).
#include "frontier/hlc.h"

#include <algorithm>

namespace keel::frontier {
namespace {

// |v| without overflow at INT64_MIN.
uint64_t magnitude(int64_t v) {
  return v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
}

// a - b as a signed offset; wraps (well defined) instead of overflowing on absurd clock values.
int64_t difference(uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b); }

}  // namespace

HlcClock::HlcClock(platform::Clock& clock, uint64_t jump_bound_ms)
    : clock_(clock),
      jump_bound_ms_(jump_bound_ms),
      anchor_wall_ms_(clock.wall_ms()),
      anchor_monotonic_ns_(clock.monotonic_ns()) {}

uint64_t HlcClock::physical_ms() {
  uint64_t wall = clock_.wall_ms();
  uint64_t monotonic = std::max(clock_.monotonic_ns(), anchor_monotonic_ns_);
  uint64_t physical = anchor_wall_ms_ + (monotonic - anchor_monotonic_ns_) / 1'000'000;
  int64_t offset = difference(wall, physical);

  // A jump is a change of the offset, not the offset itself: a wall clock that stays ahead (not
  // adopted) or behind counts once, when it moved, and once more when it comes back.
  int64_t change =
      difference(static_cast<uint64_t>(offset), static_cast<uint64_t>(wall_offset_ms_));
  if (magnitude(change) > jump_bound_ms_) {
    if (change > 0) {
      ++forward_jumps_;
    } else {
      ++backward_jumps_;
    }
    largest_jump_ms_ = std::max(largest_jump_ms_, magnitude(change));
  }

  // Follow the wall clock forward when it is at most the bound ahead of physical time (even if it
  // got there by a counted jump from behind); never backward, never further ahead.
  if (offset > 0 && magnitude(offset) <= jump_bound_ms_) {
    anchor_wall_ms_ = wall;
    anchor_monotonic_ns_ = monotonic;
    physical = wall;
    offset = 0;
  }
  wall_offset_ms_ = offset;
  return physical;
}

HlcStatus HlcClock::status() const {
  HlcStatus s;
  s.last = last_;
  s.jump_bound_ms = jump_bound_ms_;
  s.forward_jumps = forward_jumps_;
  s.backward_jumps = backward_jumps_;
  s.largest_jump_ms = largest_jump_ms_;
  s.wall_offset_ms = wall_offset_ms_;
  return s;
}

}  // namespace keel::frontier
