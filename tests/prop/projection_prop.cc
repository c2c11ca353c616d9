// The projection property: loading the snapshot and replaying the tail gives what a replay from
// the first event gives. Random appends (some through fences, committed or cancelled), projections
// run in random steps with random save bounds, closed and reopened at random points (each reopen
// loads the last published snapshot and replays after it), store reopens, and explicit saves; at
// the end, and after every reopen once caught up, the projection's state equals the fold of every
// visible matching event from the first.
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "keel/keel.h"
#include "platform/memory_file_system.h"

using namespace keel;

namespace {

const char* const kEntities[] = {"order:1", "order:2", "user:7", "cart:a"};

StoreOptions options_on(platform::MemoryFileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.segment_size = 4096;
  options.id_seed = 3;
  return options;
}

// The fold: appends "<sequence>:<payload>;" (order and every byte matter).
Status fold(std::string& state, const EventView& event) {
  state += std::to_string(event.sequence);
  state += ':';
  state.append(event.payload.data(), event.payload.size());
  state += ';';
  return ok_status();
}

// The fold of every visible event matching `filter`, from the first.
std::string full_replay(Store& store, Query filter) {
  std::string state;
  filter.limit = kQueryLimitMax;
  filter.with_payload = true;
  filter.after = 0;
  for (;;) {
    auto page = store.query(filter);
    RC_ASSERT(page.ok());
    for (const Event& e : page->events) {
      EventView view;
      view.sequence = e.sequence;
      view.payload = e.payload;
      RC_ASSERT(fold(state, view).ok());
    }
    if (!page->next_after) return state;
    filter.after = page->next_after;
  }
}

}  // namespace

TEST_CASE("a projection's snapshot plus its tail equals a full replay", "[prop][snapshot]") {
  rc::prop("appends, fences, runs, saves, projection and store reopens", [] {
    const Query filter = *rc::gen::element(0, 1) == 0 ? Query{} : [] {
      Query q;
      q.entity_prefix = "order:";
      return q;
    }();
    ProjectionOptions options;
    options.save_every_events = *rc::gen::inRange<uint64_t>(0, 8);
    options.save_every = std::chrono::milliseconds(0);
    options.subscription.batch_max = *rc::gen::inRange<size_t>(1, 6);
    auto ops = *rc::gen::container<std::vector<std::tuple<int, int, int>>>(
        rc::gen::tuple(rc::gen::inRange(0, 100), rc::gen::inRange(0, 4), rc::gen::inRange(1, 6)));
    platform::MemoryFileSystem fs;
    auto store = std::move(Store::open("/s", options_on(fs))).value();
    auto open_projection = [&] {
      auto p = Projection::open(*store, "totals", filter, fold, options);
      RC_ASSERT(p.ok());
      return std::move(*p);
    };
    auto projection = open_projection();
    int appended = 0;
    for (const auto& [what, entity, n] : ops) {
      if (what < 45) {  // appends
        for (int i = 0; i < n; ++i) {
          RC_ASSERT(store
                        ->append({kEntities[entity], ""}, EventKind::make(1, 1),
                                 "p" + std::to_string(appended++))
                        .ok());
        }
      } else if (what < 52) {  // a fence, committed or cancelled
        auto fence = store->begin_fence();
        RC_ASSERT(fence.ok());
        for (int i = 0; i < n; ++i) {
          RC_ASSERT((*fence)
                        ->append({kEntities[entity], ""}, EventKind::make(1, 1),
                                 "f" + std::to_string(appended++))
                        .ok());
        }
        RC_ASSERT((n % 2 == 0 ? (*fence)->commit() : (*fence)->cancel()).ok());
      } else if (what < 80) {  // a step of the projection
        RC_ASSERT(projection->run(std::chrono::milliseconds(0)).ok());
      } else if (what < 86) {
        RC_ASSERT(projection->save().ok());
      } else if (what < 95) {  // the projection restarts from its snapshot
        projection.reset();
        projection = open_projection();
        RC_ASSERT(projection->position() == projection->saved_sequence());
      } else {  // the store restarts
        projection.reset();
        RC_ASSERT(store->close().ok());
        store = std::move(Store::open("/s", options_on(fs))).value();
        projection = open_projection();
      }
    }
    // Caught up, the state is the full replay's.
    const uint64_t visible = store->stats().sequence_visible;
    while (projection->position() < visible) {
      RC_ASSERT(projection->run(std::chrono::milliseconds(0)).ok());
    }
    const std::string expected = full_replay(*store, filter);
    RC_ASSERT(projection->state() == expected);
    // And so is a projection opened from the last snapshot and caught up again.
    RC_ASSERT(projection->save().ok());
    RC_ASSERT(store->append({"order:1", ""}, EventKind::make(1, 1), "late").ok());
    projection.reset();
    projection = open_projection();
    while (projection->position() < store->stats().sequence_visible) {
      RC_ASSERT(projection->run(std::chrono::milliseconds(0)).ok());
    }
    RC_ASSERT(projection->state() == full_replay(*store, filter));
  });
}
