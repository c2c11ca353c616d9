// Under VisibilityPolicy::AfterDurable no read path ever returns an event above durable: random
// concurrent appends (every level, several entities and lanes) and syncs run while the fault file
// system stalls and releases fdatasync at random, and every read API (read, get, scan, scan_events,
// entity_stream, entity_events) is checked against the durable watermark read right after it
// (durable only grows, so an event returned by the read was durable when it was read if it is at or
// below that). The control runs the same workload under AfterWrite, where reads do see written,
// unsynced events, and requires that the checker catches that.
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keel/keel.h"
#include "platform/fault_file_system.h"

using namespace keel;

namespace {

const char* const kEntities[] = {"order:1", "order:2", "user:7"};

struct Workload {
  platform::FaultFileSystem fs;
  std::unique_ptr<Store> store;
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::vector<EventId> ids;  // of acknowledged appends (get() targets)

  ~Workload() {
    fs.stall_syncs(false);
    for (auto& t : threads) t.join();
  }
};

// Runs one random workload; returns how many reads returned an event above durable.
uint64_t run_workload(VisibilityPolicy policy) {
  Workload w;
  StoreOptions options;
  options.file_system = &w.fs;
  options.create_if_missing = true;
  options.visibility = policy;
  options.lanes_max = 3;
  options.segment_size = 8192;
  options.sync_interval = std::chrono::milliseconds(*rc::gen::inRange(1, 30));
  auto opened = Store::open("/store", options);
  RC_ASSERT(opened.ok());
  w.store = std::move(opened).value();
  Store& store = *w.store;
  uint64_t above_durable = 0;
  auto check = [&](uint64_t sequence) {
    if (sequence > store.frontier()[Watermark::Durable].global_sequence) ++above_durable;
  };
  const int steps = *rc::gen::inRange(10, 60);
  for (int step = 0; step < steps; ++step) {
    switch (*rc::gen::inRange(0, 10)) {
      case 0:
      case 1:
      case 2: {  // an append at a random level, on its own thread (it may block on the stall)
        std::string entity = kEntities[*rc::gen::inRange(0, 3)];
        AppendOptions append;
        append.durability = static_cast<Durability>(*rc::gen::inRange(0, 3));
        append.lane = static_cast<uint32_t>(*rc::gen::inRange(0, 3));
        w.threads.emplace_back([&w, entity, append] {
          auto r = w.store->append({entity, ""}, EventKind::make(1, 1), "p", append);
          if (r.ok()) {
            std::lock_guard lock(w.mutex);
            w.ids.push_back(r->event_id);
          }
        });
        break;
      }
      case 3:
        w.fs.stall_syncs(*rc::gen::arbitrary<bool>());
        break;
      case 4:
        w.threads.emplace_back([&w] { (void)w.store->sync(); });
        break;
      case 5: {
        uint64_t sequence = *rc::gen::inRange<uint64_t>(1, 40);
        if (auto e = store.read(sequence); e.ok()) check(e->sequence);
        break;
      }
      case 6: {
        std::optional<EventId> id;
        {
          std::lock_guard lock(w.mutex);
          if (!w.ids.empty()) id = w.ids[*rc::gen::inRange<size_t>(0, w.ids.size())];
        }
        if (id) {
          if (auto e = store.get(*id); e.ok()) check(e->sequence);
        }
        break;
      }
      case 7: {
        uint64_t highest = 0;
        RC_ASSERT(store.scan(1, UINT64_MAX, [&](const EventView& v) {
                         highest = v.sequence;
                         return true;
                       }).ok());
        if (highest > 0) check(highest);
        auto events = store.scan_events(1, UINT64_MAX);
        RC_ASSERT(events.ok());
        if (!events->empty()) check(events->back().sequence);
        break;
      }
      case 8: {
        const char* entity = kEntities[*rc::gen::inRange(0, 3)];
        uint32_t lane = static_cast<uint32_t>(*rc::gen::inRange(0, 3));
        uint64_t highest = 0;
        RC_ASSERT(store.entity_stream(entity, lane, 1, UINT64_MAX, [&](const EventView& v) {
                         highest = std::max(highest, v.sequence);
                         return true;
                       }).ok());
        if (highest > 0) check(highest);
        auto events = store.entity_events(entity, lane);
        RC_ASSERT(events.ok());
        for (const Event& e : *events) check(e.sequence);
        break;
      }
      default: {  // the frontier itself: visible never passes durable under AfterDurable
        Frontier f = store.frontier();
        if (policy == VisibilityPolicy::AfterDurable) {
          RC_ASSERT(f[Watermark::Visible].global_sequence <= f[Watermark::Durable].global_sequence);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(*rc::gen::inRange(0, 500)));
        break;
      }
    }
  }
  // Release: everything acknowledged or not becomes durable and visible; reads agree.
  w.fs.stall_syncs(false);
  for (auto& t : w.threads) t.join();
  w.threads.clear();
  RC_ASSERT(store.sync().ok());
  Frontier f = store.frontier();
  RC_ASSERT(f[Watermark::Visible].global_sequence == f[Watermark::Accepted].global_sequence);
  auto all = store.scan_events(1, UINT64_MAX);
  RC_ASSERT(all.ok());
  RC_ASSERT(all->size() == f[Watermark::Accepted].global_sequence);
  return above_durable;
}

}  // namespace

TEST_CASE("AfterDurable: no read path returns an event above durable", "[prop][durability]") {
  rc::prop("reads under stalled and released fdatasync", [] {
    RC_ASSERT(run_workload(VisibilityPolicy::AfterDurable) == 0u);
  });
}

TEST_CASE("visibility control: under AfterWrite the same checker sees events above durable",
          "[prop][durability]") {
  uint64_t workloads_caught = 0;
  rc::prop("count", [&] {
    if (run_workload(VisibilityPolicy::AfterWrite) > 0) ++workloads_caught;
  });
  CHECK(workloads_caught > 0);
}
