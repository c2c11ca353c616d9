// EventIndex::truncate (src/index/event_index.h): a fence's events are added to the index live;
// when the fence is cancelled the store truncates them, restores the heads of the streams they
// touched and adds them back hidden. The index must then be exactly the one a load builds (the kept
// events added, the fenced ones hidden): both are compared byte for byte through the index image
// encoder and answer for answer (every sequence, id, stream and correlation), on a hand-written
// fence and on 200 random shapes, also with a new event added after the truncation. Counters show
// that the random shapes reach every undo (a cause's newest effect moved back, a correlation head
// moved back or erased, streams emptied, a segment dropped, both ordering flags turned on again)
// and that the index before the truncation answered differently, so each comparison could fail.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "index/event_index.h"
#include "index/index_image.h"
#include "index/sequence_links.h"

using namespace keel;
using Bytes = std::vector<std::byte>;

// encode_image's bytes as the Bytes the rest of this file handles.
template <typename... Args>
Bytes encode_image(const Args&... args) {
  index::ImageBytes image = index::encode_image(args...);
  return Bytes(image.begin(), image.end());
}

namespace {

// One event as the store hands it to the index (or a hidden slot).
struct Spec {
  bool hidden = false;
  std::string entity;
  uint32_t lane = 0;
  EventId id;
  Hlc hlc;
  uint16_t kind = 0;
  std::string scope;
  EventId correlation;
  std::optional<EventId> causation;
  index::EventLocation location;
  Hash128 hash;
};

// Adds `e` as the next sequence, the way the store does (clock after the stream's head).
void add_event(index::EventIndex& x, const Spec& e) {
  const uint64_t sequence = x.next_sequence();
  if (e.hidden) return x.add_hidden(sequence);
  index::EntityStream& stream = x.stream_for(e.entity, e.lane);
  index::EventFacts facts{e.id,  stream.clock() + 1, e.hash,     e.kind, e.scope,
                          e.hlc, e.correlation,      e.causation};
  const char* problem = x.add(sequence, e.location, facts, stream);
  INFO("sequence " << sequence << ": " << (problem ? problem : ""));
  REQUIRE(problem == nullptr);
}

index::EventIndex build(const std::vector<Spec>& events) {
  index::EventIndex x;
  for (const Spec& e : events) add_event(x, e);
  return x;
}

Hash128 no_hash(uint64_t sequence) {
  FAIL("encode_image asked for the hash of sequence " << sequence << " of a whole index");
  return Hash128{};
}

// The image of the whole index; decoding it must pass the decoder's consistency checks.
Bytes image_of(const index::EventIndex& x) {
  const uint64_t n = x.next_sequence() - 1;
  Bytes bytes = encode_image(x, index::ImageCheckpoint{n + 1, 1, 1, 64, 0}, no_hash);
  index::EventIndex decoded;
  index::ImageCheckpoint cp;
  std::string reason;
  INFO(reason);
  CHECK(index::decode_image(bytes, decoded, cp, reason) == index::ImageDecode::Ok);
  return bytes;
}

std::string hex(const std::optional<EventId>& id) { return id ? id->to_hex() : "-"; }

// Everything the index answers, one line per sequence, stream, id and correlation of `events`.
std::vector<std::string> answers(const index::EventIndex& x, const std::vector<Spec>& events) {
  std::vector<std::string> lines;
  std::ostringstream head;
  head << "next " << x.next_sequence() << " events " << x.event_count() << " streams "
       << x.stream_count() << " last visible " << x.last_visible_sequence() << " hlc monotonic "
       << x.hlc_monotonic() << " lanes";
  for (uint32_t lane : x.lanes()) head << " " << lane;
  lines.push_back(head.str());
  for (uint64_t s = 1; s < x.next_sequence(); ++s) {
    std::ostringstream line;
    line << s;
    if (!x.visible_in_index(s)) {
      line << " hidden locate " << x.locate(s).has_value() << " id " << x.id_at(s).to_hex();
      lines.push_back(line.str());
      continue;
    }
    const index::EventLocation at = *x.locate(s);
    const index::EntityStream& stream = x.stream_at(s);
    const Hlc hlc = x.hlc_at(s);
    line << " at " << at.segment_id << ":" << at.frame_offset << " id " << x.id_at(s).to_hex()
         << " kind " << x.kind_at(s) << " scope " << x.scope_name(x.scope_number_at(s))
         << " stream " << stream.entity << "@" << stream.lane << "#" << stream.clock_of(s)
         << " hlc " << hlc.wall_ms << "." << hlc.logical << " cause " << x.cause_of(s)
         << " external " << hex(x.external_cause_of(s)) << " newest effect "
         << x.newest_effect_of(s) << " older sibling " << x.older_sibling_of(s)
         << " previous of correlation " << x.previous_of_correlation(s) << " own correlation "
         << x.correlation_is_own_id(s);
    lines.push_back(line.str());
  }
  for (const index::EntityStream* s : x.streams_with_prefix("")) {
    std::ostringstream line;
    line << "stream " << s->entity << "@" << s->lane << " clock " << s->clock() << " head "
         << s->head_hash.to_hex() << ":";
    for (uint64_t sequence : s->sequences) line << " " << sequence;
    lines.push_back(line.str());
  }
  std::set<EventId> correlations;
  for (const Spec& e : events) {
    if (e.hidden) continue;
    std::optional<uint64_t> found = x.find(e.id);
    lines.push_back("find " + e.id.to_hex() + " " + (found ? std::to_string(*found) : "-"));
    correlations.insert(e.correlation);
  }
  for (const EventId& id : correlations) {
    lines.push_back("correlation " + id.to_hex() + " newest " +
                    std::to_string(x.newest_of_correlation(id)));
  }
  return lines;
}

// The first line where two answer lists differ, "" when equal.
std::string first_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    std::string left = i < a.size() ? a[i] : "(none)";
    std::string right = i < b.size() ? b[i] : "(none)";
    if (left != right) return "line " + std::to_string(i) + ":\n  " + left + "\n  " + right;
  }
  return "";
}

// A fence's undo as the store does it: the heads of the streams the fence touches are saved before
// it, and restored after the truncation (a stream it created gets the empty head back).
class FenceUndo {
 public:
  void save_heads(const index::EventIndex& x, const std::vector<Spec>& fenced) {
    for (const Spec& e : fenced) {
      auto key = std::make_pair(e.entity, e.lane);
      if (heads_.contains(key)) continue;
      const index::EntityStream* s = x.stream(e.entity, e.lane);
      heads_[key] = s ? s->head_hash : Hash128{};
    }
  }
  void restore_heads(index::EventIndex& x) const {
    for (const auto& [key, head] : heads_) x.stream_for(key.first, key.second).head_hash = head;
  }

 private:
  std::map<std::pair<std::string, uint32_t>, Hash128> heads_;
};

// The index a load builds: `kept` added, then the streams the fence named (they exist in the live
// index too, empty) and `fenced` hidden.
index::EventIndex loaded(const std::vector<Spec>& kept, const std::vector<Spec>& fenced) {
  index::EventIndex x = build(kept);
  for (const Spec& e : fenced) x.stream_for(e.entity, e.lane);
  for (size_t i = 0; i < fenced.size(); ++i) x.add_hidden(x.next_sequence());
  return x;
}

// The live index: `kept` and `fenced` added, the fence cancelled (truncated, heads restored,
// fenced sequences added hidden unless `hide` is false).
index::EventIndex cancelled(const std::vector<Spec>& kept, const std::vector<Spec>& fenced,
                            bool hide = true) {
  index::EventIndex x = build(kept);
  FenceUndo fence;
  fence.save_heads(x, fenced);
  for (const Spec& e : fenced) add_event(x, e);
  x.truncate(kept.size() + 1);
  fence.restore_heads(x);
  if (hide) {
    for (size_t i = 0; i < fenced.size(); ++i) x.add_hidden(x.next_sequence());
  }
  return x;
}

std::vector<Spec> joined(const std::vector<Spec>& a, const std::vector<Spec>& b) {
  std::vector<Spec> all = a;
  all.insert(all.end(), b.begin(), b.end());
  return all;
}

void require_same(const index::EventIndex& live, const index::EventIndex& load,
                  const std::vector<Spec>& events) {
  CHECK(first_difference(answers(live, events), answers(load, events)) == "");
  CHECK(image_of(live) == image_of(load));
}

// ---- random shapes ----

class ShapeMaker {
 public:
  explicit ShapeMaker(uint64_t seed) : rng_(seed) {}

  // An event after every one made so far: store-made ids (HLC in the id, increasing) with a few
  // foreign ids and HLCs apart from the id, some earlier, among 5 entities on 3 lanes.
  Spec next(bool may_hide, bool fenced) {
    Spec e;
    e.hidden = may_hide && chance(10);
    if (chance(30)) ++segment_, offset_ = 64;
    offset_ += 100;
    e.location = index::EventLocation{segment_, offset_};
    if (e.hidden) return e;
    wall_ += below(3);
    logical_ = below(2) == 0 ? 0 : logical_ + 1;
    e.id = EventId{wall_ << 16 | logical_, rng_() << 1};  // low bit 0: id + 1 is never taken
    if (chance(4)) e.id.high = rng_() >> 1;               // foreign: out of order
    e.hlc = index::hlc_in_id(e.id);
    if (chance(8)) e.hlc = Hlc{wall_ - below(4), 7};
    e.entity = "entity-" + std::to_string(below(5));
    e.lane = static_cast<uint32_t>(below(3));
    e.kind = static_cast<uint16_t>(below(6));
    if (!fenced) {
      e.scope = "scope-" + std::to_string(below(3));
      scopes_.push_back(e.scope);
    } else {
      e.scope = scopes_[below(scopes_.size())];  // a new scope would stay interned
    }
    const uint64_t pick = below(10);
    if (pick < 4 || visible_.empty()) {
      e.correlation = e.id;
    } else if (pick < 7) {
      e.correlation = visible_[below(visible_.size())];
    } else {
      e.correlation = EventId{1, below(3)};  // external correlations, shared
    }
    const uint64_t cause = below(10);
    if (cause < 5 && !visible_.empty()) {
      e.causation = visible_[below(visible_.size())];
    } else if (cause < 7) {
      e.causation = EventId{2, below(3)};  // external causes
    }
    e.hash = Hash128{rng_(), rng_()};
    visible_.push_back(e.id);
    return e;
  }
  uint64_t below(uint64_t n) { return rng_() % n; }
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }

 private:
  std::mt19937_64 rng_;
  uint64_t wall_ = 1000;
  uint32_t logical_ = 0;
  uint32_t segment_ = 1;
  uint32_t offset_ = 64;
  std::vector<EventId> visible_;
  std::vector<std::string> scopes_;
};

bool ids_increase(const std::vector<Spec>& events) {
  std::optional<EventId> last;
  for (const Spec& e : events) {
    if (e.hidden) continue;
    if (last && !(*last < e.id)) return false;
    last = e.id;
  }
  return true;
}

// A new event after the cancelled fence: its id just above every kept id (below the fenced ones
// when those are larger, so a largest id left from them would show), in a segment after all.
Spec event_after(const std::vector<Spec>& kept, const std::vector<Spec>& fenced,
                 const std::string& entity, uint32_t lane) {
  Spec e;
  for (const Spec& k : kept) {
    if (!k.hidden) e.id = std::max(e.id, k.id);
  }
  e.id.low += 1;
  e.hlc = index::hlc_in_id(e.id);
  e.entity = entity;
  e.lane = lane;
  e.kind = 9;
  for (const Spec& k : kept) {
    if (!k.hidden) e.scope = k.scope;  // a scope the load has too
  }
  e.correlation = e.id;
  const Spec& last = fenced.empty() ? kept.back() : fenced.back();
  e.location = index::EventLocation{last.location.segment_id + 1, 64};
  e.hash = Hash128{42, 42};
  return e;
}

}  // namespace

TEST_CASE("SequenceLinks::truncate drops the links above the size, overflowed ones too",
          "[index][truncate]") {
  index::SequenceLinks links(index::SequenceLinks::Direction::Forward);
  links.extend_to(3);
  const uint64_t far = uint64_t{1} << 33;  // a distance past 4 bytes: kept in the overflow map
  links.set(1, 1 + far);
  links.set(2, 3);
  links.set(3, 3 + far);
  links.truncate(2);
  links.extend_to(3);
  CHECK(links.get(1) == 1 + far);
  CHECK(links.get(2) == 3);
  CHECK(links.get(3) == 0);
  links.truncate(5);  // above the size: nothing to do
  CHECK(links.get(1) == 1 + far);
}

TEST_CASE("A cancelled fence truncated and hidden is the index a load builds: a hand-made fence",
          "[index][truncate]") {
  const EventId x_correlation{1, 77};  // an external correlation first named inside the fence
  auto event = [](uint64_t n, const char* entity, uint32_t lane, uint32_t segment) {
    Spec e;
    e.entity = entity;
    e.lane = lane;
    e.id = EventId{(1000 + n) << 16, n * 2};
    e.hlc = index::hlc_in_id(e.id);
    e.kind = static_cast<uint16_t>(n);
    e.scope = "orders";
    e.correlation = e.id;
    e.location = index::EventLocation{segment, static_cast<uint32_t>(64 + 100 * n)};
    e.hash = Hash128{n, n};
    return e;
  };
  std::vector<Spec> kept;
  kept.push_back(event(1, "order-1", 0, 1));
  kept.push_back(Spec{});  // sequence 2: hidden, an older cancelled fence's
  kept.back().hidden = true;
  kept.push_back(event(3, "order-1", 0, 1));
  kept.back().causation = kept[0].id;
  kept.back().correlation = kept[0].id;
  kept.push_back(event(4, "order-2", 1, 1));
  kept.back().causation = kept[0].id;
  kept.back().correlation = kept[0].id;
  std::vector<Spec> fenced;
  fenced.push_back(event(5, "order-1", 0, 1));  // the newest effect of 1, on its chain
  fenced.back().causation = kept[0].id;
  fenced.back().correlation = kept[0].id;
  fenced.push_back(event(6, "order-3", 0, 2));  // a new stream and segment, caused by 5
  fenced.back().causation = fenced[0].id;
  fenced.back().correlation = x_correlation;
  fenced.push_back(event(7, "order-2", 1, 2));
  fenced.back().causation = kept[2].id;
  fenced.back().correlation = x_correlation;
  fenced.back().hlc = Hlc{900, 0};  // earlier than the kept events: HLCs no longer monotonic
  const std::vector<Spec> all = joined(kept, fenced);

  index::EventIndex live = build(kept);
  FenceUndo fence;
  fence.save_heads(live, fenced);
  for (const Spec& e : fenced) add_event(live, e);
  const index::EventIndex load = loaded(kept, fenced);
  // Before the truncation the live index answers otherwise: the comparisons below can fail.
  REQUIRE(live.newest_effect_of(1) == 5);
  REQUIRE(live.newest_effect_of(3) == 7);
  REQUIRE(live.newest_of_correlation(kept[0].id) == 5);
  REQUIRE(live.newest_of_correlation(x_correlation) == 7);
  REQUIRE(live.stream_count() == 3);
  REQUIRE_FALSE(live.hlc_monotonic());
  CHECK(image_of(live) != image_of(load));

  live.truncate(5);
  CHECK(live.next_sequence() == 5);
  CHECK(live.event_count() == 3);
  CHECK(live.stream_count() == 2);
  CHECK(live.stream("order-3", 0) == nullptr);
  CHECK(live.stream("order-1", 0)->clock() == 2);
  CHECK(live.stream("order-2", 1)->clock() == 1);
  CHECK(live.newest_effect_of(1) == 4);
  CHECK(live.older_sibling_of(4) == 3);
  CHECK(live.older_sibling_of(3) == 0);
  CHECK(live.newest_effect_of(3) == 0);
  CHECK(live.newest_of_correlation(kept[0].id) == 4);
  CHECK(live.newest_of_correlation(x_correlation) == 0);
  CHECK(live.hlc_monotonic());
  CHECK(live.locate(4)->segment_id == 1);
  for (const Spec& e : fenced) CHECK_FALSE(live.find(e.id).has_value());
  CHECK(live.find(kept[3].id) == 4);
  // The index leaves the heads to the caller: order-1's is still the fenced event's.
  CHECK(live.stream("order-1", 0)->head_hash == fenced[0].hash);
  fence.restore_heads(live);
  CHECK(live.stream("order-1", 0)->head_hash == kept[2].hash);

  // Without the hidden slots the images differ (the comparison sees the event count); with them
  // they are the same bytes.
  CHECK(image_of(live) != image_of(load));
  for (size_t i = 0; i < fenced.size(); ++i) live.add_hidden(live.next_sequence());
  require_same(live, load, all);

  // Appends go on after the fence in both alike.
  index::EventIndex load_then = loaded(kept, fenced);
  Spec after = event_after(kept, fenced, "order-3", 0);
  after.causation = kept[0].id;
  add_event(live, after);
  add_event(load_then, after);
  require_same(live, load_then, joined(all, {after}));
  CHECK(live.newest_effect_of(1) == 8);
  CHECK(live.older_sibling_of(8) == 4);
}

TEST_CASE("Truncating at next_sequence changes nothing, truncating at 1 empties the index",
          "[index][truncate]") {
  ShapeMaker maker(7);
  std::vector<Spec> events;
  for (int i = 0; i < 30; ++i) events.push_back(maker.next(i > 0, false));
  index::EventIndex x = build(events);
  const Bytes before = image_of(x);
  x.truncate(x.next_sequence());
  CHECK(image_of(x) == before);

  x.truncate(1);
  const index::EventIndex empty;
  CHECK(x.next_sequence() == 1);
  CHECK(x.event_count() == 0);
  CHECK(x.stream_count() == 0);
  CHECK(x.streams_with_prefix("").empty());
  CHECK(x.lanes().empty());
  CHECK(x.last_visible_sequence() == 0);
  CHECK(first_difference(answers(x, events), answers(empty, events)) == "");
  // The first event again, now at sequence 1: its clock is 1, its id is found.
  const Spec& first = events[0];
  add_event(x, first);
  CHECK(x.find(first.id) == 1);
  CHECK(x.stream(first.entity, first.lane)->clock() == 1);
}

TEST_CASE("A cancelled fence truncated and hidden is the index a load builds: random shapes",
          "[index][truncate]") {
  struct Reached {
    int effects_moved = 0;
    int heads_moved = 0;
    int heads_erased = 0;
    int streams_emptied = 0;
    int segments_dropped = 0;
    int ids_sorted_again = 0;
    int hlc_monotonic_again = 0;
    int kept_unsorted = 0;
    int hidden_kept = 0;
  } reached;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    ShapeMaker maker(seed);
    const size_t kept_count = 1 + maker.below(40);
    const size_t fenced_count = maker.chance(5) ? 0 : 1 + maker.below(25);
    std::vector<Spec> kept;
    std::vector<Spec> fenced;
    for (size_t i = 0; i < kept_count; ++i) kept.push_back(maker.next(true, false));
    if (std::all_of(kept.begin(), kept.end(), [](const Spec& e) { return e.hidden; })) {
      kept.push_back(maker.next(false, false));  // fenced events take their scopes from these
    }
    for (size_t i = 0; i < fenced_count; ++i) fenced.push_back(maker.next(false, true));
    const std::vector<Spec> all = joined(kept, fenced);
    INFO("seed " << seed << ": " << kept.size() << " kept, " << fenced.size() << " fenced");

    // What the live index holds before the truncation, against the load: where they differ.
    index::EventIndex before = build(all);
    index::EventIndex load = loaded(kept, fenced);
    bool effects_moved = false;
    for (uint64_t s = 1; s <= kept.size(); ++s) {
      if (before.visible_in_index(s)) {
        effects_moved |= before.newest_effect_of(s) != load.newest_effect_of(s);
      }
    }
    reached.effects_moved += effects_moved;
    for (const Spec& e : fenced) {
      if (e.correlation == e.id) continue;
      uint64_t head = load.newest_of_correlation(e.correlation);
      reached.heads_moved += head != 0;
      reached.heads_erased += head == 0;
    }
    reached.streams_emptied += before.stream_count() != load.stream_count();
    reached.segments_dropped +=
        !fenced.empty() && fenced.back().location.segment_id != kept.back().location.segment_id;
    reached.ids_sorted_again += ids_increase(kept) && !ids_increase(all);
    reached.kept_unsorted += !ids_increase(kept) && !fenced.empty();
    reached.hlc_monotonic_again += !before.hlc_monotonic() && load.hlc_monotonic();
    reached.hidden_kept +=
        std::any_of(kept.begin(), kept.end(), [](const Spec& e) { return e.hidden; });

    index::EventIndex live = cancelled(kept, fenced);
    require_same(live, load, all);

    // A new event after the fence, on a kept stream or a new one, caused by a kept event.
    const Spec& some = kept[maker.below(kept.size())];
    Spec after = maker.chance(50) && !some.hidden
                     ? event_after(kept, fenced, some.entity, some.lane)
                     : event_after(kept, fenced, "entity-new", 2);
    if (!some.hidden) after.causation = some.id;
    add_event(live, after);
    add_event(load, after);
    require_same(live, load, joined(all, {after}));

    // The same event straight after the truncation, without the hidden slots: the index of the
    // kept events and it (the fence's streams exist, empty).
    index::EventIndex live_direct = cancelled(kept, fenced, false);
    index::EventIndex load_direct = build(kept);
    for (const Spec& e : fenced) load_direct.stream_for(e.entity, e.lane);
    add_event(live_direct, after);
    add_event(load_direct, after);
    require_same(live_direct, load_direct, joined(all, {after}));
  }
  INFO("effects " << reached.effects_moved << " heads moved " << reached.heads_moved << " erased "
                  << reached.heads_erased << " streams " << reached.streams_emptied << " segments "
                  << reached.segments_dropped << " ids " << reached.ids_sorted_again << " hlc "
                  << reached.hlc_monotonic_again << " unsorted " << reached.kept_unsorted
                  << " hidden " << reached.hidden_kept);
  CHECK(reached.effects_moved > 0);
  CHECK(reached.heads_moved > 0);
  CHECK(reached.heads_erased > 0);
  CHECK(reached.streams_emptied > 0);
  CHECK(reached.segments_dropped > 0);
  CHECK(reached.ids_sorted_again > 0);
  CHECK(reached.hlc_monotonic_again > 0);
  CHECK(reached.kept_unsorted > 0);
  CHECK(reached.hidden_kept > 0);
}
