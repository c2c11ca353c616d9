// keel: the frontier — how far events have got, globally and per lane. docs/ARCHITECTURE.md §4.
//
// Six watermarks on the global-sequence axis (every value is a global sequence; 0 = none yet):
//   accepted  the sequence was assigned at the commit point
//   written   the bytes were handed to the OS (survive a killed process)
//   durable   a successful fdatasync covered them (survive a power loss)
//   visible   reads see them: every non-hidden event at or below it is readable, none above it
//   emitted   handed to every live subscription (include/keel/consumer.h; none: follows visible)
//   applied   processed by every registered consumer (none registered: follows visible)
// Invariants, checked at every change and on open: accepted >= written >= durable;
// visible <= durable under VisibilityPolicy::AfterDurable, <= written under AfterWrite;
// emitted <= visible; applied <= visible; every watermark is monotone (only an explicit
// reset_applied() lowers applied).
//
// A lane's watermark is a view, not separate state: the largest g <= accepted such that every event
// of that lane at or below g has reached the level. A lane with nothing pending at a level reads
// `accepted` there, so a lane view can be above the global value of the same watermark.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "keel/event.h"

namespace keel {

enum class Watermark : uint8_t { Accepted, Written, Durable, Visible, Emitted, Applied };
inline constexpr int kWatermarkCount = 6;

// "accepted", "written", "durable", "visible", "emitted", "applied".
std::string_view watermark_name(Watermark kind);

// A point on the global-sequence axis with the HLC wall time of the event at that sequence (0 for
// sequence 0). Points compare by global_sequence; wall_ms is non-decreasing in it.
struct HlcPoint {
  uint64_t wall_ms = 0;
  uint64_t global_sequence = 0;
  friend bool operator==(const HlcPoint&, const HlcPoint&) = default;
};

// One value per watermark, indexed by Watermark.
struct WatermarkSequences {
  uint64_t value[kWatermarkCount] = {0, 0, 0, 0, 0, 0};
  uint64_t operator[](Watermark kind) const { return value[static_cast<int>(kind)]; }
  uint64_t& operator[](Watermark kind) { return value[static_cast<int>(kind)]; }
  friend bool operator==(const WatermarkSequences&, const WatermarkSequences&) = default;
};

struct LaneFrontier {
  uint32_t lane = 0;
  WatermarkSequences sequences;  // the lane views
  int64_t visible_minus_durable = 0;  // signed: negative while durable events wait to be visible
};

// The hybrid logical clock's view of the wall clock (docs/ARCHITECTURE.md §4): wall jumps beyond
// the bound are not adopted, only counted here. Downtime between runs is not a jump.
struct HlcStatus {
  Hlc last;                       // the highest HLC handed out or recovered
  uint64_t jump_bound_ms = 0;     // StoreOptions::hlc_jump_bound
  uint64_t forward_jumps = 0;     // wall clock moved ahead of the HLC's time by more than the bound
  uint64_t backward_jumps = 0;    // wall clock moved back by more than the bound
  uint64_t largest_jump_ms = 0;   // the largest jump seen, either way
  int64_t wall_offset_ms = 0;     // wall clock minus the HLC's physical time at the last reading
};

struct Frontier {
  HlcPoint points[kWatermarkCount];  // indexed by Watermark
  const HlcPoint& operator[](Watermark kind) const { return points[static_cast<int>(kind)]; }
  int64_t visible_minus_durable = 0;  // signed; negative under AfterDurable while a group publishes
  std::vector<LaneFrontier> lanes;    // every lane that has held an event, ascending
  HlcStatus hlc;
  uint64_t consumers = 0;             // registered consumers (they define applied)
  bool poisoned = false;              // the writer is poisoned: durable is frozen until reopen
};

}  // namespace keel
