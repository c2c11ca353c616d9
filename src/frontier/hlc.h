// HlcClock: hands out hybrid-logical-clock timestamps that never go backwards, in this process or
// across restarts (the highest recovered HLC is observed on open). The full frontier (jump bounds
// and counters, DESIGN.md §4) builds on this.
//
// Threads: not thread-safe; the commit point owns it.
#pragma once

#include <cstdint>

#include "keel/event.h"
#include "platform/clock.h"

namespace keel::frontier {

class HlcClock {
 public:
  explicit HlcClock(platform::Clock& clock) : clock_(clock) {}

  // Makes every later timestamp greater than `seen` (a recovered event's HLC).
  void observe(const Hlc& seen) {
    if (seen > last_) last_ = seen;
  }

  // The logical counter stays below 2^16, so (wall_ms << 16 | logical) is strictly increasing too:
  // event ids start with it and the index relies on ids increasing with the sequence.
  static constexpr uint32_t kLogicalMax = 0xffff;

  // A timestamp greater than every earlier one and than everything observed: the wall clock when it
  // moved forward, else the last wall time with the logical counter advanced (and when the counter
  // is full, the next millisecond, borrowed from the future as HLCs do).
  Hlc next() { return next_at(clock_.wall_ms()); }
  // The same with a wall time the caller read (a batch reads the clock once for all its items).
  Hlc next_at(uint64_t wall) {
    if (wall > last_.wall_ms) {
      last_ = Hlc{wall, 0};
    } else if (last_.logical >= kLogicalMax) {
      last_ = Hlc{last_.wall_ms + 1, 0};
    } else {
      ++last_.logical;
    }
    return last_;
  }

  const Hlc& last() const { return last_; }
  uint64_t wall_ms() { return clock_.wall_ms(); }

 private:
  platform::Clock& clock_;
  Hlc last_;
};

}  // namespace keel::frontier
