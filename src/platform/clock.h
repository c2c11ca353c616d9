// The platform seam for time: the HLC (frontier/) and timeouts read clocks only through this, so
// tests can run on a simulated clock.
#pragma once

#include <cstdint>

namespace keel::platform {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (may jump, may go backwards).
  virtual uint64_t wall_ms() = 0;
  // Nanoseconds from an arbitrary origin; never goes backwards.
  virtual uint64_t monotonic_ns() = 0;
};

// CLOCK_REALTIME / CLOCK_MONOTONIC. Never null; lives for the whole program.
Clock& system_clock();

// A clock that only moves when told; for tests and deterministic tools (the golden generator).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t wall_ms_start) : wall_ms_(wall_ms_start) {}
  uint64_t wall_ms() override { return wall_ms_; }
  uint64_t monotonic_ns() override { return monotonic_ns_; }
  void advance_ms(uint64_t ms) {
    wall_ms_ += ms;
    monotonic_ns_ += ms * 1'000'000;
  }
  // Moves only the monotonic clock (a wall clock that lags or is stuck).
  void advance_monotonic_ms(uint64_t ms) { monotonic_ns_ += ms * 1'000'000; }
  void set_wall_ms(uint64_t ms) { wall_ms_ = ms; }

 private:
  uint64_t wall_ms_;
  uint64_t monotonic_ns_ = 0;
};

}  // namespace keel::platform
