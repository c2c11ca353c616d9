// Watermarks (src/frontier/watermarks.h): the ordering invariants of include/keel/frontier.h, each
// refused at the change that would break it; monotone advances on the sequence axis; publication;
// the durable freeze after poison; bootstrap; the lane views and the trimming of their pending
// queues; and the consumers that define `applied`. Also ports the watermark state tests of batpak
// (the Rust store keel was specified from) to keel's semantics. Every test drives the state
// machine directly (no store).
#include "frontier/watermarks.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "keel/frontier.h"
#include "test_support.h"

namespace keel {
std::ostream& operator<<(std::ostream& out, const HlcPoint& point) {
  return out << "{wall_ms " << point.wall_ms << ", sequence " << point.global_sequence << "}";
}
}  // namespace keel

namespace keel::frontier {
namespace {

// The event at sequence s has wall time 100 * s, so a wrong wall time is visible in a point.
HlcPoint at(uint64_t sequence) { return HlcPoint{sequence * 100, sequence}; }

void accept_range(Watermarks& marks, uint32_t lane, uint64_t first, uint64_t last) {
  for (uint64_t s = first; s <= last; ++s) KEEL_REQUIRE_OK(marks.accept(lane, at(s)));
}

// Written and durable to `sequence`.
void make_durable(Watermarks& marks, uint64_t sequence) {
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(sequence)));
  KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, at(sequence)));
}

// Accepts 1..last on lane 1 and makes them durable.
Watermarks durable_through(uint64_t last,
                           VisibilityPolicy policy = VisibilityPolicy::AfterDurable) {
  Watermarks marks(policy);
  accept_range(marks, 1, 1, last);
  make_durable(marks, last);
  return marks;
}

// The `invariant` field of an InvariantViolation (fails the test for any other outcome).
std::string invariant_of(const Status& status) {
  REQUIRE_FALSE(status.ok());
  REQUIRE(status.error().is(ErrorCode::InvariantViolation));
  return status.error().field_string("invariant").value_or("<missing>");
}

template <class T>
bool is_invalid_argument(const Result<T>& status) {
  return !status.ok() && status.error().is(ErrorCode::InvalidArgument);
}

std::vector<uint32_t> lanes_listed(const Watermarks& marks) {
  Frontier frontier;
  marks.snapshot(frontier);
  std::vector<uint32_t> out;
  for (const LaneFrontier& lane : frontier.lanes) out.push_back(lane.lane);
  return out;
}

WatermarkSequences sequences_of(uint64_t accepted, uint64_t written, uint64_t durable,
                                uint64_t visible, uint64_t emitted, uint64_t applied) {
  return WatermarkSequences{{accepted, written, durable, visible, emitted, applied}};
}

constexpr Watermark kAll[] = {Watermark::Accepted, Watermark::Written, Watermark::Durable,
                              Watermark::Visible,  Watermark::Emitted, Watermark::Applied};

// ---- names ----

TEST_CASE("watermark_name names every watermark", "[frontier]") {
  CHECK(watermark_name(Watermark::Accepted) == "accepted");
  CHECK(watermark_name(Watermark::Written) == "written");
  CHECK(watermark_name(Watermark::Durable) == "durable");
  CHECK(watermark_name(Watermark::Visible) == "visible");
  CHECK(watermark_name(Watermark::Emitted) == "emitted");
  CHECK(watermark_name(Watermark::Applied) == "applied");
}

// ---- accept and advance ----

TEST_CASE("accept requires a sequence strictly above accepted", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  KEEL_REQUIRE_OK(marks.accept(1, at(5)));

  CHECK(invariant_of(marks.accept(2, at(5))) == "accepted 5 not above accepted 5");
  CHECK(invariant_of(marks.accept(2, at(4))) == "accepted 4 not above accepted 5");
  // Refused means nothing changed: no new lane, nothing pending, accepted where it was.
  CHECK(marks.point(Watermark::Accepted) == at(5));
  CHECK(lanes_listed(marks) == std::vector<uint32_t>{1});
  CHECK(marks.pending_count(1) == 1);

  KEEL_REQUIRE_OK(marks.accept(2, at(6)));
  CHECK(marks.point(Watermark::Accepted) == at(6));
  CHECK(marks.check().empty());
}

TEST_CASE("accepted and applied cannot be advanced directly", "[frontier]") {
  Watermarks marks = durable_through(5);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(5)));  // applied stays 0: no publish

  // Both changes would keep the ordering; they are refused for the route they take.
  CHECK(is_invalid_argument(marks.advance(Watermark::Accepted, at(9))));
  CHECK(is_invalid_argument(marks.advance(Watermark::Applied, at(4))));
  CHECK(marks.sequence(Watermark::Accepted) == 5);
  CHECK(marks.sequence(Watermark::Applied) == 0);
  CHECK(marks.pending_count(1) == 5);
}

TEST_CASE("an advance to or below the current value is a no-op", "[frontier]") {
  Watermarks marks = durable_through(9);
  KEEL_REQUIRE_OK(marks.publish(at(7)));  // visible, emitted, applied at 7
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(9)));

  for (Watermark kind :
       {Watermark::Written, Watermark::Durable, Watermark::Visible, Watermark::Emitted}) {
    INFO(watermark_name(kind));
    const HlcPoint before = marks.point(kind);
    KEEL_REQUIRE_OK(marks.advance(kind, at(3)));  // lower: monotone, not an error
    CHECK(marks.point(kind) == before);
    // Equal sequence with another wall time: still a no-op (points compare by sequence).
    KEEL_REQUIRE_OK(marks.advance(kind, HlcPoint{1, before.global_sequence}));
    CHECK(marks.point(kind) == before);
  }
  CHECK(marks.check().empty());
}

TEST_CASE("written may not pass accepted", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  accept_range(marks, 1, 1, 5);
  CHECK(invariant_of(marks.advance(Watermark::Written, at(7))) == "written 7 above accepted 5");
  CHECK(marks.sequence(Watermark::Written) == 0);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(5)));  // equal is allowed
  CHECK(marks.point(Watermark::Written) == at(5));
}

TEST_CASE("durable may not pass written", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  accept_range(marks, 1, 1, 5);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(3)));
  CHECK(invariant_of(marks.advance(Watermark::Durable, at(4))) == "durable 4 above written 3");
  CHECK(marks.sequence(Watermark::Durable) == 0);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, at(3)));
  CHECK(marks.point(Watermark::Durable) == at(3));
}

TEST_CASE("under AfterDurable visible may not pass durable", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  accept_range(marks, 1, 1, 5);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(5)));
  KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, at(3)));

  CHECK(invariant_of(marks.advance(Watermark::Visible, at(4))) == "visible 4 above durable 3");
  CHECK(invariant_of(marks.publish(at(4))) == "visible 4 above durable 3");
  // The refused publish moved nothing, not even emitted or applied.
  for (Watermark kind : {Watermark::Visible, Watermark::Emitted, Watermark::Applied}) {
    CHECK(marks.sequence(kind) == 0);
  }
  KEEL_REQUIRE_OK(marks.publish(at(3)));
  CHECK(marks.point(Watermark::Visible) == at(3));
}

TEST_CASE("under AfterWrite visible may pass durable but not written", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterWrite);
  accept_range(marks, 1, 1, 6);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(5)));
  KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, at(3)));

  KEEL_REQUIRE_OK(marks.publish(at(5)));  // above durable: allowed under this policy
  CHECK(marks.point(Watermark::Visible) == at(5));
  CHECK(invariant_of(marks.advance(Watermark::Visible, at(6))) == "visible 6 above written 5");
  CHECK(marks.sequence(Watermark::Visible) == 5);

  Frontier frontier;
  marks.snapshot(frontier);
  CHECK(frontier.visible_minus_durable == 2);
  CHECK(marks.check().empty());
}

TEST_CASE("emitted may not pass visible", "[frontier]") {
  Watermarks marks = durable_through(5);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(3)));
  CHECK(invariant_of(marks.advance(Watermark::Emitted, at(4))) == "emitted 4 above visible 3");
  CHECK(marks.sequence(Watermark::Emitted) == 0);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Emitted, at(3)));
  CHECK(marks.point(Watermark::Emitted) == at(3));
}

TEST_CASE("nothing moves applied above visible", "[frontier]") {
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(5)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));

  CHECK(is_invalid_argument(marks.consumer_applied("billing", 6)));
  CHECK(is_invalid_argument(marks.reset_applied(6, "skip ahead")));
  CHECK(marks.sequence(Watermark::Applied) == 0);
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 5));  // equal to visible is allowed
  CHECK(marks.point(Watermark::Applied) == at(5));
  CHECK(marks.check().empty());
}

TEST_CASE("check_ordering names each broken invariant", "[frontier]") {
  const auto after_durable = VisibilityPolicy::AfterDurable;
  const auto after_write = VisibilityPolicy::AfterWrite;
  // All equal is valid: every bound is inclusive.
  CHECK(Watermarks::check_ordering(sequences_of(5, 5, 5, 5, 5, 5), after_durable).empty());
  CHECK(Watermarks::check_ordering(sequences_of(9, 8, 6, 5, 4, 3), after_durable).empty());

  CHECK(Watermarks::check_ordering(sequences_of(5, 7, 0, 0, 0, 0), after_durable) ==
        "written 7 above accepted 5");
  CHECK(Watermarks::check_ordering(sequences_of(9, 5, 7, 0, 0, 0), after_durable) ==
        "durable 7 above written 5");
  CHECK(Watermarks::check_ordering(sequences_of(9, 8, 5, 7, 0, 0), after_durable) ==
        "visible 7 above durable 5");
  CHECK(Watermarks::check_ordering(sequences_of(9, 8, 5, 7, 0, 0), after_write).empty());
  CHECK(Watermarks::check_ordering(sequences_of(9, 6, 5, 7, 0, 0), after_write) ==
        "visible 7 above written 6");
  CHECK(Watermarks::check_ordering(sequences_of(9, 9, 9, 5, 7, 0), after_durable) ==
        "emitted 7 above visible 5");
  CHECK(Watermarks::check_ordering(sequences_of(9, 9, 9, 5, 0, 7), after_durable) ==
        "applied 7 above visible 5");
  CHECK(Watermarks::check_ordering(sequences_of(5, 7, 0, 0, 0, 3), after_durable) ==
        "written 7 above accepted 5; applied 3 above visible 0");
}

// ---- poison (seed: advance_durable_is_a_noop_once_the_writer_is_poisoned) ----

TEST_CASE("durable is frozen once the writer is poisoned", "[frontier]") {
  Watermarks marks = durable_through(5);
  REQUIRE(marks.point(Watermark::Durable) == at(5));
  marks.poison();
  CHECK(marks.poisoned());

  accept_range(marks, 1, 6, 9);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(9)));
  // fsyncgate: a later "successful" sync proves nothing; durable must not track it.
  KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, at(9)));
  CHECK(marks.point(Watermark::Durable) == at(5));
  CHECK(marks.lane_sequence(1, Watermark::Durable) == 5);
  // Under AfterDurable nothing past the frozen point becomes visible.
  CHECK(invariant_of(marks.publish(at(9))) == "visible 9 above durable 5");

  Frontier frontier;
  marks.snapshot(frontier);
  CHECK(frontier.poisoned);
  CHECK(frontier[Watermark::Durable] == at(5));
}

// ---- publish (seed: advance_visible_and_emitted_moves_both_watermarks) ----

TEST_CASE("publish raises visible, then emitted and applied to it", "[frontier]") {
  Watermarks marks = durable_through(20);
  KEEL_REQUIRE_OK(marks.publish(at(17)));
  CHECK(marks.point(Watermark::Visible) == at(17));
  CHECK(marks.point(Watermark::Emitted) == at(17));
  CHECK(marks.point(Watermark::Applied) == at(17));  // no consumer registered

  // Visible moved alone (e.g. by advance); a publish not above it still catches emitted up.
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(20)));
  CHECK(marks.sequence(Watermark::Emitted) == 17);
  KEEL_REQUIRE_OK(marks.publish(at(18)));
  CHECK(marks.point(Watermark::Visible) == at(20));
  CHECK(marks.point(Watermark::Emitted) == at(20));
  CHECK(marks.point(Watermark::Applied) == at(20));
  CHECK(marks.check().empty());
}

TEST_CASE("with a consumer registered, publish leaves applied to it", "[frontier]") {
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.publish(at(2)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 2));
  KEEL_REQUIRE_OK(marks.publish(at(10)));
  CHECK(marks.sequence(Watermark::Emitted) == 10);
  CHECK(marks.point(Watermark::Applied) == at(2));
}

// ---- bootstrap (seeds: for_bootstrap_seeds_*, bootstrap_lane_durable_merge_uses_sequence_axis)

TEST_CASE("bootstrap seeds every global watermark from the recovered point, not zero",
          "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  marks.bootstrap(at(99));
  for (Watermark kind : kAll) {
    INFO(watermark_name(kind));
    CHECK(marks.point(kind) == at(99));
  }
  CHECK(marks.check().empty());
  // The next sequence to accept is above the recovered head.
  CHECK(invariant_of(marks.accept(0, at(99))) == "accepted 99 not above accepted 99");
  KEEL_REQUIRE_OK(marks.accept(0, at(100)));
}

TEST_CASE("bootstrap seeds the lane views from the recovered point, with nothing pending",
          "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  // A lane with events accepted before the bootstrap: they are recovered, so no longer pending.
  accept_range(marks, 1, 1, 3);
  marks.bootstrap(at(42));
  marks.note_lane(3);

  for (uint32_t lane : {1u, 3u}) {
    INFO("lane " << lane);
    CHECK(marks.pending_count(lane) == 0);
    const LaneFrontier view = marks.lane(lane);
    for (Watermark kind : kAll) CHECK(view.sequences[kind] == 42);
    CHECK(view.visible_minus_durable == 0);
  }
  CHECK(lanes_listed(marks) == std::vector<uint32_t>{1, 3});

  // A lane's durable view covers its visible view after bootstrap, by sequence.
  KEEL_REQUIRE_OK(marks.accept(3, HlcPoint{1, 43}));  // lower wall time than the recovered head
  CHECK(marks.lane_sequence(3, Watermark::Durable) == 42);
  CHECK(marks.lane_sequence(3, Watermark::Visible) == 42);
}

TEST_CASE("snapshot lists every lane seen, ascending, with the globals", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  marks.note_lane(7);
  accept_range(marks, 5, 1, 1);
  accept_range(marks, 2, 2, 2);
  marks.note_lane(2);  // already seen: listed once
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));

  Frontier frontier;
  frontier.lanes.push_back(LaneFrontier{99, {}, 0});  // stale content is replaced
  marks.snapshot(frontier);
  CHECK(lanes_listed(marks) == std::vector<uint32_t>{2, 5, 7});
  REQUIRE(frontier.lanes.size() == 3);
  CHECK(frontier.lanes[0].lane == 2);
  CHECK(frontier[Watermark::Accepted] == at(2));
  CHECK(frontier.consumers == 1);
  CHECK_FALSE(frontier.poisoned);
}

// ---- lane views ----

TEST_CASE("visible_minus_durable is signed, per lane and globally", "[frontier]") {
  // Seed: lane_view_reports_signed_visible_minus_durable. durable 10, visible 3: 3 - 10 = -7
  // (an unsigned or summed value would read 13).
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.publish(at(3)));

  const LaneFrontier lane = marks.lane(1);
  CHECK(lane.sequences[Watermark::Durable] == 10);
  CHECK(lane.sequences[Watermark::Visible] == 3);
  CHECK(lane.visible_minus_durable == -7);

  Frontier frontier;
  marks.snapshot(frontier);
  CHECK(frontier.visible_minus_durable == -7);
  REQUIRE(frontier.lanes.size() == 1);
  CHECK(frontier.lanes[0].visible_minus_durable == -7);
}

TEST_CASE("a lane view counts only that lane's pending events", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  for (uint64_t s = 1; s <= 6; ++s) KEEL_REQUIRE_OK(marks.accept(s % 2 == 1 ? 1 : 2, at(s)));
  KEEL_REQUIRE_OK(marks.advance(Watermark::Written, at(6)));
  KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, at(4)));
  KEEL_REQUIRE_OK(marks.publish(at(2)));
  // Lane 1 holds 1, 3, 5; lane 2 holds 2, 4, 6. Global: written 6, durable 4, visible 2.

  const LaneFrontier odd = marks.lane(1);
  CHECK(odd.sequences == sequences_of(6, 6, 4, 2, 2, 2));
  // Lane 2's next event above durable 4 is 6, so its durable view is 5: above the global value.
  const LaneFrontier even = marks.lane(2);
  CHECK(even.sequences == sequences_of(6, 6, 5, 3, 3, 3));
  CHECK(even.visible_minus_durable == -2);
  // A lane never seen has nothing pending anywhere.
  CHECK(marks.lane(3).sequences == sequences_of(6, 6, 6, 6, 6, 6));
}

TEST_CASE("lane views use the sequence axis, not wall-clock order", "[frontier]") {
  // Seeds: lane_durable_uses_sequence_axis_not_hlc_wall_order and lane_visible_uses_... .
  const HlcPoint high_sequence_low_wall{1, 10};
  const HlcPoint low_sequence_high_wall{9'999, 5};

  SECTION("durable") {
    Watermarks marks(VisibilityPolicy::AfterDurable);
    KEEL_REQUIRE_OK(marks.accept(1, high_sequence_low_wall));
    KEEL_REQUIRE_OK(marks.advance(Watermark::Written, high_sequence_low_wall));
    KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, low_sequence_high_wall));
    CHECK(marks.point(Watermark::Durable) == low_sequence_high_wall);
    // The sync covered sequence 5: the lane's event at 10 is not durable, although its wall time
    // sorts lower. Our view reads 9 (everything of the lane up to 9 is durable), never 10.
    CHECK(marks.lane_sequence(1, Watermark::Durable) == 9);
  }
  SECTION("visible") {
    Watermarks marks(VisibilityPolicy::AfterDurable);
    KEEL_REQUIRE_OK(marks.accept(1, high_sequence_low_wall));
    KEEL_REQUIRE_OK(marks.advance(Watermark::Written, high_sequence_low_wall));
    KEEL_REQUIRE_OK(marks.advance(Watermark::Durable, high_sequence_low_wall));
    KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, low_sequence_high_wall));
    CHECK(marks.lane_sequence(1, Watermark::Visible) == 9);
    KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, high_sequence_low_wall));
    CHECK(marks.point(Watermark::Visible) == high_sequence_low_wall);
    CHECK(marks.lane_sequence(1, Watermark::Visible) == 10);
    // A later wall time at a lower sequence is not an advance.
    KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, HlcPoint{99'999, 7}));
    CHECK(marks.point(Watermark::Visible) == high_sequence_low_wall);
  }
}

TEST_CASE("lane queues are trimmed as the lower of emitted and applied moves", "[frontier]") {
  SECTION("no consumer: publish trims") {
    Watermarks marks = durable_through(4);
    KEEL_REQUIRE_OK(marks.publish(at(2)));
    CHECK(marks.pending_count(1) == 2);
    KEEL_REQUIRE_OK(marks.publish(at(4)));
    CHECK(marks.pending_count(1) == 0);
  }
  SECTION("emitted behind applied: events above emitted stay pending") {
    Watermarks marks = durable_through(4);
    KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(4)));  // emitted stays 0
    KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));
    KEEL_REQUIRE_OK(marks.consumer_applied("billing", 4));
    CHECK(marks.sequence(Watermark::Applied) == 4);
    CHECK(marks.pending_count(1) == 4);
    CHECK(marks.lane_sequence(1, Watermark::Emitted) == 0);
    CHECK(marks.lane_sequence(1, Watermark::Applied) == 4);

    KEEL_REQUIRE_OK(marks.advance(Watermark::Emitted, at(3)));
    CHECK(marks.pending_count(1) == 1);
    CHECK(marks.lane_sequence(1, Watermark::Emitted) == 3);
  }
  SECTION("applied behind emitted: events above applied stay pending") {
    Watermarks marks = durable_through(4);
    KEEL_REQUIRE_OK(marks.publish(at(1)));
    KEEL_REQUIRE_OK(marks.register_consumer("billing", 1));
    KEEL_REQUIRE_OK(marks.publish(at(4)));
    CHECK(marks.pending_count(1) == 3);
    CHECK(marks.lane_sequence(1, Watermark::Applied) == 1);
    CHECK(marks.lane_sequence(1, Watermark::Emitted) == 4);

    KEEL_REQUIRE_OK(marks.consumer_applied("billing", 3));
    CHECK(marks.pending_count(1) == 1);
    CHECK(marks.lane_sequence(1, Watermark::Applied) == 3);
  }
}

// ---- consumers ----

TEST_CASE("a consumer may not register below applied", "[frontier]") {
  Watermarks marks = durable_through(5);
  KEEL_REQUIRE_OK(marks.publish(at(5)));  // applied 5
  CHECK(is_invalid_argument(marks.register_consumer("billing", 4)));
  CHECK(marks.consumer_count() == 0);
  CHECK(marks.sequence(Watermark::Applied) == 5);
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 5));  // at applied (and visible): allowed
  CHECK(marks.consumer_count() == 1);
}

TEST_CASE("a consumer may not register above visible", "[frontier]") {
  Watermarks marks = durable_through(8);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(5)));  // applied stays 0
  CHECK(is_invalid_argument(marks.register_consumer("billing", 6)));
  CHECK(marks.consumer_count() == 0);
  CHECK(marks.sequence(Watermark::Applied) == 0);
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 3));
  CHECK(marks.point(Watermark::Applied) == at(3));  // the only consumer: applied = its position
}

TEST_CASE("consumer names must be unique and non-empty", "[frontier]") {
  Watermarks marks = durable_through(5);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(5)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 2));
  CHECK(is_invalid_argument(marks.register_consumer("billing", 4)));
  CHECK(is_invalid_argument(marks.register_consumer("", 4)));
  CHECK(marks.consumer_count() == 1);
  CHECK(marks.sequence(Watermark::Applied) == 2);  // the refused duplicate did not move it
}

TEST_CASE("unknown consumers are NotFound", "[frontier]") {
  Watermarks marks = durable_through(5);
  const Status applied = marks.consumer_applied("nobody", 1);
  REQUIRE_FALSE(applied.ok());
  CHECK(applied.error().is(ErrorCode::NotFound));
  CHECK(applied.error().field_string("key") == "nobody");
  const Status removed = marks.unregister_consumer("nobody");
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().is(ErrorCode::NotFound));
}

TEST_CASE("applied is the minimum over the consumers, with the event's wall time", "[frontier]") {
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(10)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));
  KEEL_REQUIRE_OK(marks.register_consumer("shipping", 0));

  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 8));
  CHECK(marks.sequence(Watermark::Applied) == 0);  // shipping has applied nothing yet
  KEEL_REQUIRE_OK(marks.consumer_applied("shipping", 6));
  CHECK(marks.point(Watermark::Applied) == at(6));
  KEEL_REQUIRE_OK(marks.consumer_applied("shipping", 9));
  CHECK(marks.point(Watermark::Applied) == at(8));
  CHECK(marks.check().empty());
}

TEST_CASE("a consumer's position is monotone", "[frontier]") {
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(10)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));
  KEEL_REQUIRE_OK(marks.register_consumer("shipping", 0));
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 5));

  CHECK(is_invalid_argument(marks.consumer_applied("billing", 2)));
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 5));  // repeating the position is fine
  // Billing is still at 5: once shipping passes it, applied is 5, not 2.
  KEEL_REQUIRE_OK(marks.consumer_applied("shipping", 7));
  CHECK(marks.point(Watermark::Applied) == at(5));
}

TEST_CASE("applied never falls when a consumer behind it reports", "[frontier]") {
  // applied = max(applied, min over consumers): after a reset upwards a consumer may sit below.
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(10)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 2));
  KEEL_REQUIRE_OK(marks.reset_applied(5, "skip a poison event"));  // billing stays at 2
  CHECK(marks.sequence(Watermark::Applied) == 5);
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 3));
  CHECK(marks.point(Watermark::Applied) == at(5));
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 7));
  CHECK(marks.point(Watermark::Applied) == at(7));
}

TEST_CASE("unregistering: the rest define applied, with none left it follows visible",
          "[frontier]") {
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(10)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));
  KEEL_REQUIRE_OK(marks.register_consumer("shipping", 0));
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 2));
  KEEL_REQUIRE_OK(marks.consumer_applied("shipping", 6));
  REQUIRE(marks.sequence(Watermark::Applied) == 2);

  KEEL_REQUIRE_OK(marks.unregister_consumer("billing"));
  CHECK(marks.point(Watermark::Applied) == at(6));
  KEEL_REQUIRE_OK(marks.unregister_consumer("shipping"));
  CHECK(marks.consumer_count() == 0);
  CHECK(marks.point(Watermark::Applied) == at(10));  // vacuously applied by every consumer

  accept_range(marks, 1, 11, 12);
  make_durable(marks, 12);
  KEEL_REQUIRE_OK(marks.publish(at(12)));
  CHECK(marks.point(Watermark::Applied) == at(12));
  CHECK(marks.pending_count(1) == 0);
}

TEST_CASE("reset_applied lowers applied and the consumers above it, and says so", "[frontier]") {
  Watermarks marks = durable_through(10);
  KEEL_REQUIRE_OK(marks.advance(Watermark::Visible, at(10)));
  KEEL_REQUIRE_OK(marks.register_consumer("billing", 0));
  KEEL_REQUIRE_OK(marks.register_consumer("shipping", 0));
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 8));
  KEEL_REQUIRE_OK(marks.consumer_applied("shipping", 6));

  CHECK(is_invalid_argument(marks.reset_applied(11, "too far")));
  CHECK(marks.sequence(Watermark::Applied) == 6);

  Result<std::string> line = marks.reset_applied(4, "replay billing");
  REQUIRE(line.ok());
  CHECK(*line == "applied reset from 6 to 4 (2 consumer positions lowered): replay billing");
  CHECK(marks.point(Watermark::Applied) == at(4));
  CHECK(marks.lane_sequence(1, Watermark::Applied) == 4);
  // Billing was lowered from 8 to 4, so reporting 5 is progress, not a regression.
  KEEL_REQUIRE_OK(marks.consumer_applied("billing", 5));
  KEEL_REQUIRE_OK(marks.consumer_applied("shipping", 5));
  CHECK(marks.point(Watermark::Applied) == at(5));
  CHECK(marks.check().empty());
}

TEST_CASE("after a reset below the trimmed events, lane applied views stay low", "[frontier]") {
  Watermarks marks(VisibilityPolicy::AfterDurable);
  accept_range(marks, 1, 1, 5);
  accept_range(marks, 2, 6, 10);
  make_durable(marks, 10);
  KEEL_REQUIRE_OK(marks.publish(at(10)));  // everything applied and trimmed
  REQUIRE(marks.pending_count(1) + marks.pending_count(2) == 0);

  Result<std::string> line = marks.reset_applied(3, "rebuild projections");
  REQUIRE(line.ok());
  CHECK(marks.sequence(Watermark::Applied) == 3);
  // Lane 1's events 4 and 5 are no longer applied: its view must not cover them.
  CHECK(marks.lane_sequence(1, Watermark::Applied) == 3);
  CHECK(marks.lane_sequence(2, Watermark::Applied) <= 5);
  // The wall time of sequence 3 is no longer known; what is reported never runs ahead of it.
  CHECK(marks.point(Watermark::Applied).wall_ms <= at(3).wall_ms);
  // The next publish (no consumers) brings applied and the views back up.
  KEEL_REQUIRE_OK(marks.publish(at(10)));
  CHECK(marks.lane_sequence(1, Watermark::Applied) == 10);
  CHECK(marks.check().empty());
}

}  // namespace
}  // namespace keel::frontier
