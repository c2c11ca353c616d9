// HlcClock: the hybrid logical clock of docs/ARCHITECTURE.md §4. It hands out timestamps that never
// go backwards, in this process or across restarts (the store observes the highest recovered HLC on
// open).
//
// Physical time is a monotonic clock anchored to the wall clock at construction (= store open), so
// downtime between runs is never a jump. It follows the wall clock only forward: a wall clock ahead
// of the physical time by at most the jump bound is adopted (re-anchored), one further ahead is
// not, and one behind is ignored. A change of the wall-minus-physical offset by more than the bound
// between two readings is counted as a jump (status(), reported in frontier()), never an error; a
// wall clock that stays an hour ahead counts once, and its return counts once the other way.
//
// Threads: not thread-safe; the commit point owns it.
#pragma once

#include <cstdint>

#include "keel/event.h"
#include "keel/frontier.h"
#include "platform/clock.h"

namespace keel::frontier {

class HlcClock {
 public:
  // Anchors physical time at clock's current wall and monotonic readings. jump_bound_ms is
  // StoreOptions::hlc_jump_bound. `clock` must outlive this.
  HlcClock(platform::Clock& clock, uint64_t jump_bound_ms);

  // Makes every later timestamp greater than `seen` (a recovered event's HLC).
  void observe(const Hlc& seen) {
    if (seen > last_) last_ = seen;
  }

  // The logical counter stays below 2^16, so (wall_ms << 16 | logical) is strictly increasing too:
  // event ids start with it and the index relies on ids increasing with the sequence.
  static constexpr uint32_t kLogicalMax = 0xffff;

  // Reads the clocks once and returns the physical time in ms (see the file comment); adopts a
  // wall clock moved forward within the bound and counts jumps beyond it.
  uint64_t physical_ms();

  // A timestamp greater than every earlier one and than everything observed: the physical time
  // when it moved forward, else the last wall time with the logical counter advanced (and when the
  // counter is full, the next millisecond, borrowed from the future as HLCs do).
  Hlc next() { return next_at(physical_ms()); }
  // The same with a physical time the caller read (a batch reads the clock once for all its items).
  Hlc next_at(uint64_t physical) {
    if (physical > last_.wall_ms) {
      last_ = Hlc{physical, 0};
    } else if (last_.logical >= kLogicalMax) {
      last_ = Hlc{last_.wall_ms + 1, 0};
    } else {
      ++last_.logical;
    }
    return last_;
  }

  const Hlc& last() const { return last_; }
  // The jump counters as of the last physical_ms() reading.
  HlcStatus status() const;

 private:
  platform::Clock& clock_;
  const uint64_t jump_bound_ms_;
  uint64_t anchor_wall_ms_;
  uint64_t anchor_monotonic_ns_;
  Hlc last_;
  int64_t wall_offset_ms_ = 0;  // wall minus physical at the last reading (0 right after adopting)
  uint64_t forward_jumps_ = 0;
  uint64_t backward_jumps_ = 0;
  uint64_t largest_jump_ms_ = 0;
};

}  // namespace keel::frontier
