// Watermarks' lane views against a model that keeps every accepted event. The watermarks keep a
// lane's pending events as runs (consecutive sequences accepted with one wall time, as a batch's
// are), trimmed as emitted and applied move; the model keeps a plain list. Random accepts (runs and
// lone events on three lanes, wall times that repeat or grow), advances of written, durable,
// visible and emitted, and a consumer's applied positions; after each step every lane view of
// every watermark, each lane's pending count, and the wall time of applied's point (looked up
// among the pending events) must be the model's.
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "frontier/watermarks.h"

namespace keel::frontier {
namespace {

struct ModelEvent {
  uint32_t lane;
  uint64_t wall_ms;
};

constexpr Watermark kAll[] = {Watermark::Accepted, Watermark::Written, Watermark::Durable,
                              Watermark::Visible,  Watermark::Emitted, Watermark::Applied};

// The lane view as include/keel/frontier.h defines it: the lane's first event above the global
// value, minus 1; accepted when it has none.
uint64_t model_lane_view(const std::vector<ModelEvent>& events, uint32_t lane, uint64_t level) {
  for (uint64_t s = level + 1; s <= events.size(); ++s) {
    if (events[s - 1].lane == lane) return s - 1;
  }
  return events.size();
}

TEST_CASE("lane views and applied's wall time match a model that keeps every event", "[frontier]") {
  rc::prop("runs and lone events on three lanes, every watermark moved at random", [] {
    Watermarks marks(VisibilityPolicy::AfterDurable);
    std::vector<ModelEvent> events;  // events[s - 1] is sequence s
    uint64_t wall = 1000;
    uint64_t floor = 0;  // the highest min(emitted, applied) so far: pending holds what is above
    auto point = [&](uint64_t s) { return HlcPoint{s == 0 ? 0 : events[s - 1].wall_ms, s}; };
    auto up_to = [&](uint64_t from, uint64_t to) {
      return from >= to ? to : *rc::gen::inRange<uint64_t>(from, to + 1);
    };
    RC_ASSERT(marks.register_consumer("reader", 0).ok());
    uint64_t consumer = 0;
    const int steps = *rc::gen::inRange(1, 60);
    for (int step = 0; step < steps; ++step) {
      switch (*rc::gen::inRange(0, 6)) {
        case 0:
        case 1: {  // a run of one lane at one wall time (a batch), sometimes at the last one's
          const uint32_t lane = *rc::gen::inRange<uint32_t>(0, 3);
          if (*rc::gen::arbitrary<bool>()) wall += *rc::gen::inRange<uint64_t>(1, 5);
          const int count = *rc::gen::inRange(1, 6);
          for (int i = 0; i < count; ++i) {
            events.push_back({lane, wall});
            RC_ASSERT(marks.accept(lane, point(events.size())).ok());
          }
          break;
        }
        case 2: {  // written, then durable, somewhere up to accepted
          uint64_t written = up_to(marks.sequence(Watermark::Written), events.size());
          RC_ASSERT(marks.advance(Watermark::Written, point(written)).ok());
          uint64_t durable = up_to(marks.sequence(Watermark::Durable), written);
          RC_ASSERT(marks.advance(Watermark::Durable, point(durable)).ok());
          break;
        }
        case 3: {  // visible (emitted follows it: no subscription)
          uint64_t visible =
              up_to(marks.sequence(Watermark::Visible), marks.sequence(Watermark::Durable));
          RC_ASSERT(marks.publish(point(visible)).ok());
          break;
        }
        case 4:
        case 5: {  // the consumer applies up to somewhere below visible
          consumer = up_to(consumer, marks.sequence(Watermark::Visible));
          RC_ASSERT(marks.consumer_applied("reader", consumer).ok());
          break;
        }
      }
      floor = std::max(
          floor, std::min(marks.sequence(Watermark::Emitted), marks.sequence(Watermark::Applied)));
      RC_ASSERT(marks.check().empty());
      for (uint32_t lane = 0; lane < 3; ++lane) {
        for (Watermark kind : kAll) {
          RC_ASSERT(marks.lane_sequence(lane, kind) ==
                    model_lane_view(events, lane, marks.sequence(kind)));
        }
        size_t pending = 0;
        for (uint64_t s = floor + 1; s <= events.size(); ++s) pending += events[s - 1].lane == lane;
        RC_ASSERT(marks.pending_count(lane) == pending);
      }
      const HlcPoint applied = marks.point(Watermark::Applied);
      RC_ASSERT(applied.wall_ms == point(applied.global_sequence).wall_ms);
    }
  });
}

}  // namespace
}  // namespace keel::frontier
