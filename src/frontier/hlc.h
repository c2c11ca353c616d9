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

  // A timestamp greater than every earlier one and than everything observed: the wall clock when it
  // moved forward, else the last wall time with the logical counter advanced.
  Hlc next() {
    uint64_t wall = clock_.wall_ms();
    if (wall > last_.wall_ms) {
      last_ = Hlc{wall, 0};
    } else if (last_.logical == UINT32_MAX) {
      last_ = Hlc{last_.wall_ms + 1, 0};
    } else {
      ++last_.logical;
    }
    return last_;
  }

  const Hlc& last() const { return last_; }

 private:
  platform::Clock& clock_;
  Hlc last_;
};

}  // namespace keel::frontier
