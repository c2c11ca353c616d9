// HlcClock (src/frontier/hlc.h, docs/ARCHITECTURE.md §4) on a ManualClock: timestamps never go
// backwards, the logical counter orders one millisecond, the wall clock is followed only forward
// and within the jump bound, jumps are counted once per move, and downtime between runs is not a
// jump.
#include "frontier/hlc.h"

#include <catch2/catch.hpp>
#include <cstdint>

#include "platform/clock.h"

using keel::Hlc;
using keel::HlcStatus;
using keel::frontier::HlcClock;
using keel::platform::ManualClock;

namespace {

constexpr uint64_t kStartMs = 1'700'000'000'000;
constexpr uint64_t kBoundMs = 60'000;
constexpr uint64_t kHourMs = 3'600'000;

}  // namespace

TEST_CASE("HLC: timestamps strictly increase across many calls", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  Hlc previous = hlc.next();
  for (int i = 0; i < 10'000; ++i) {
    if (i % 7 == 0) clock.advance_ms(1);
    Hlc current = hlc.next();
    REQUIRE(current > previous);
    previous = current;
  }
  CHECK(previous.wall_ms == kStartMs + 10'000 / 7 + 1);
  CHECK(hlc.last() == previous);
}

TEST_CASE("HLC: within one millisecond the logical counter orders events", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  CHECK(hlc.next() == Hlc{kStartMs, 0});
  CHECK(hlc.next() == Hlc{kStartMs, 1});
  CHECK(hlc.next() == Hlc{kStartMs, 2});
  clock.advance_ms(1);  // a new millisecond resets the counter
  CHECK(hlc.next() == Hlc{kStartMs + 1, 0});
}

TEST_CASE("HLC: a full logical counter borrows the next millisecond", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  Hlc h;
  for (uint32_t i = 0; i <= HlcClock::kLogicalMax; ++i) h = hlc.next();
  CHECK(h == Hlc{kStartMs, HlcClock::kLogicalMax});
  CHECK(hlc.next() == Hlc{kStartMs + 1, 0});
  // The clock is still in the borrowed millisecond's past: the counter goes on from there.
  CHECK(hlc.next() == Hlc{kStartMs + 1, 1});
  clock.advance_ms(2);
  CHECK(hlc.next() == Hlc{kStartMs + 2, 0});
}

TEST_CASE("HLC: physical time follows the monotonic clock while the wall clock stands still",
          "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  clock.advance_monotonic_ms(25);
  CHECK(hlc.physical_ms() == kStartMs + 25);
  CHECK(hlc.next() == Hlc{kStartMs + 25, 0});
  CHECK(hlc.status().wall_offset_ms == -25);  // a lagging wall clock is not a jump
  CHECK(hlc.status().backward_jumps == 0);
}

TEST_CASE("HLC: a restart with the wall clock set back never goes backwards", "[hlc]") {
  // The recovered HLC is an hour ahead of this run's wall clock (the clock was set back while the
  // store was closed).
  Hlc recovered{kStartMs + kHourMs, 7};
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  hlc.observe(recovered);
  hlc.observe(Hlc{kStartMs, 3});  // an older one changes nothing
  CHECK(hlc.next() == Hlc{kStartMs + kHourMs, 8});
  clock.advance_ms(10);
  CHECK(hlc.next() == Hlc{kStartMs + kHourMs, 9});
  CHECK(hlc.status().forward_jumps + hlc.status().backward_jumps == 0);
}

TEST_CASE("HLC: a wall clock moved forward within the bound is adopted", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  clock.set_wall_ms(kStartMs + 500);  // e.g. NTP stepping a slow clock; monotonic has not moved
  CHECK(hlc.next() == Hlc{kStartMs + 500, 0});
  CHECK(hlc.status().wall_offset_ms == 0);  // physical time is the wall time again
  // Exactly the bound is still adopted.
  clock.set_wall_ms(kStartMs + 500 + kBoundMs);
  CHECK(hlc.next() == Hlc{kStartMs + 500 + kBoundMs, 0});
  // Re-anchored: physical time goes on from the adopted wall time.
  clock.advance_monotonic_ms(3);
  CHECK(hlc.physical_ms() == kStartMs + 503 + kBoundMs);
  HlcStatus status = hlc.status();
  CHECK(status.forward_jumps == 0);
  CHECK(status.wall_offset_ms == -3);
  CHECK(status.jump_bound_ms == kBoundMs);
}

TEST_CASE("HLC: a forward jump beyond the bound is not adopted and counted once", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  hlc.next();
  clock.set_wall_ms(kStartMs + kHourMs);
  for (uint64_t i = 1; i <= 100; ++i) {
    clock.advance_ms(1);
    // The HLC keeps following monotonic time, not the jumped wall clock.
    REQUIRE(hlc.next() == Hlc{kStartMs + i, 0});
  }
  HlcStatus status = hlc.status();
  CHECK(status.forward_jumps == 1);  // the wall clock stayed ahead: one jump, not 100
  CHECK(status.backward_jumps == 0);
  CHECK(status.largest_jump_ms == kHourMs);
  CHECK(status.wall_offset_ms == static_cast<int64_t>(kHourMs));
  CHECK(status.last == Hlc{kStartMs + 100, 0});
}

TEST_CASE("HLC: a backward jump is counted and the HLC never goes back", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  clock.advance_ms(1'000);
  Hlc before = hlc.next();
  CHECK(before == Hlc{kStartMs + 1'000, 0});
  clock.set_wall_ms(kStartMs - kHourMs);
  Hlc previous = before;
  for (int i = 0; i < 50; ++i) {
    clock.advance_ms(1);
    Hlc current = hlc.next();
    REQUIRE(current > previous);
    previous = current;
  }
  CHECK(previous == Hlc{kStartMs + 1'050, 0});  // still on monotonic time
  HlcStatus status = hlc.status();
  CHECK(status.backward_jumps == 1);
  CHECK(status.forward_jumps == 0);
  CHECK(status.largest_jump_ms == kHourMs + 1'000);
  CHECK(status.wall_offset_ms == -static_cast<int64_t>(kHourMs + 1'000));
}

TEST_CASE("HLC: a small backward move is ignored, not adopted and not counted", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  clock.advance_ms(100);
  CHECK(hlc.next() == Hlc{kStartMs + 100, 0});
  clock.set_wall_ms(kStartMs + 40);
  clock.advance_monotonic_ms(1);
  CHECK(hlc.next() == Hlc{kStartMs + 101, 0});
  CHECK(hlc.status().backward_jumps == 0);
  CHECK(hlc.status().wall_offset_ms == -61);
}

TEST_CASE("HLC: downtime between runs is not a jump", "[hlc]") {
  ManualClock first_run(kStartMs);
  Hlc recovered;
  {
    HlcClock hlc(first_run, kBoundMs);
    first_run.advance_ms(5);
    recovered = hlc.next();
  }
  // Reopened hours later, after a reboot: the monotonic clock starts from zero again.
  ManualClock second_run(kStartMs + 5 * kHourMs);
  HlcClock hlc(second_run, kBoundMs);
  hlc.observe(recovered);
  CHECK(hlc.next() == Hlc{kStartMs + 5 * kHourMs, 0});  // the new wall time is adopted
  second_run.advance_ms(1);
  CHECK(hlc.next() == Hlc{kStartMs + 5 * kHourMs + 1, 0});
  HlcStatus status = hlc.status();
  CHECK(status.forward_jumps == 0);
  CHECK(status.backward_jumps == 0);
  CHECK(status.largest_jump_ms == 0);
  CHECK(status.wall_offset_ms == 0);
}

TEST_CASE("HLC: a jump and its return count one each way", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  hlc.next();
  clock.set_wall_ms(kStartMs + kHourMs);  // ahead
  for (int i = 0; i < 10; ++i) {
    clock.advance_ms(1);
    hlc.next();
  }
  clock.set_wall_ms(kStartMs + 10);  // back to the HLC's time
  for (int i = 0; i < 10; ++i) {
    clock.advance_ms(1);
    hlc.next();
  }
  HlcStatus status = hlc.status();
  CHECK(status.forward_jumps == 1);
  CHECK(status.backward_jumps == 1);
  CHECK(status.wall_offset_ms == 0);
  CHECK(hlc.last() == Hlc{kStartMs + 20, 0});
}

TEST_CASE("HLC: largest_jump_ms keeps the largest jump either way", "[hlc]") {
  ManualClock clock(kStartMs);
  HlcClock hlc(clock, kBoundMs);
  clock.set_wall_ms(kStartMs + 2 * kHourMs);  // +2h
  hlc.physical_ms();
  CHECK(hlc.status().largest_jump_ms == 2 * kHourMs);
  clock.set_wall_ms(kStartMs + kHourMs);  // -1h relative to the last offset: smaller
  hlc.physical_ms();
  CHECK(hlc.status().largest_jump_ms == 2 * kHourMs);
  clock.set_wall_ms(kStartMs - 3 * kHourMs);  // -4h: larger
  hlc.physical_ms();
  HlcStatus status = hlc.status();
  CHECK(status.largest_jump_ms == 4 * kHourMs);
  CHECK(status.forward_jumps == 1);
  CHECK(status.backward_jumps == 2);
  CHECK(hlc.physical_ms() == kStartMs);  // none of it adopted; monotonic has not moved
}
