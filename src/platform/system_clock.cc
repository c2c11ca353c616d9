// The system clock: the only place keel reads CLOCK_REALTIME and CLOCK_MONOTONIC.
#include <time.h>

#include "platform/clock.h"

namespace keel::platform {
namespace {

uint64_t read_ns(clockid_t id) {
  struct timespec ts {};
  ::clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

class SystemClock final : public Clock {
 public:
  uint64_t wall_ms() override { return read_ns(CLOCK_REALTIME) / 1'000'000; }
  uint64_t monotonic_ns() override { return read_ns(CLOCK_MONOTONIC); }
};

}  // namespace

Clock& system_clock() {
  static SystemClock* clock = new SystemClock();  // never destroyed
  return *clock;
}

}  // namespace keel::platform
