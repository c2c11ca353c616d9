// The subscription model test: random appends, batches, fences (committed and cancelled), filters,
// subscriptions starting at random positions, and reopens. Each subscription delivers exactly the
// model's visible events that match its filter, after its start, in order; no hidden event is ever
// delivered.
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

struct ModelEvent {
  std::string entity;
  uint32_t lane;
  EventKind kind;
  bool hidden;  // appended through a cancelled fence
};

const char* const kEntities[] = {"order:1", "order:2", "user:7", "cart:a"};

StoreOptions options_on(platform::MemoryFileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.segment_size = 4096;
  options.lanes_max = 3;
  options.id_seed = 9;
  return options;
}

// Filters drawn by number: none, an entity prefix, an entity and lane, a kind, a category.
Query filter_of(int which) {
  Query q;
  switch (which % 5) {
    case 1: q.entity_prefix = "order:"; break;
    case 2: q.entity = "user:7"; q.lane = 1; break;
    case 3: q.kind = EventKind::make(1, 3); break;
    case 4: q.category = 2; break;
    default: break;
  }
  return q;
}

bool matches(const Query& q, const ModelEvent& e) {
  if (q.entity_prefix && !e.entity.starts_with(*q.entity_prefix)) return false;
  if (q.entity && e.entity != *q.entity) return false;
  if (q.lane && e.lane != *q.lane) return false;
  if (q.kind && e.kind != *q.kind) return false;
  if (q.category && e.kind.category() != *q.category) return false;
  return true;
}

struct Sub {
  std::unique_ptr<Subscription> subscription;
  Query filter;
  std::vector<uint64_t> delivered;
  uint64_t after;
};

}  // namespace

TEST_CASE("subscriptions deliver exactly the model's visible matching events in order",
          "[prop][consumer]") {
  rc::prop("appends, batches, fences, subscriptions at random positions, reopens", [] {
    // Each op: (what, a, b, c).
    auto ops = *rc::gen::container<std::vector<std::tuple<int, int, int, int>>>(
        rc::gen::tuple(rc::gen::inRange(0, 100), rc::gen::inRange(0, 4), rc::gen::inRange(0, 3),
                       rc::gen::inRange(0, 8)));
    platform::MemoryFileSystem fs;
    auto store = std::move(Store::open("/s", options_on(fs))).value();
    std::vector<ModelEvent> model;  // index = sequence - 1
    std::vector<Sub> subs;
    auto item_kind = [](int c) { return EventKind::make(static_cast<uint8_t>(1 + c % 2), static_cast<uint16_t>(c % 4)); };
    for (const auto& [what, a, b, c] : ops) {
      if (what < 40) {  // one append
        AppendOptions options;
        options.lane = static_cast<uint32_t>(b);
        RC_ASSERT(store->append({kEntities[a], "s"}, item_kind(c), "p", options).ok());
        model.push_back({kEntities[a], static_cast<uint32_t>(b), item_kind(c), false});
      } else if (what < 55) {  // a batch
        std::vector<BatchItem> items;
        for (int i = 0; i <= c % 4; ++i) {
          BatchItem item{{kEntities[(a + i) % 4], "s"}, item_kind(c + i), "b", {}};
          item.options.lane = static_cast<uint32_t>((b + i) % 3);
          items.push_back(item);
          model.push_back({item.coordinate.entity, item.options.lane, item.kind, false});
        }
        RC_ASSERT(store->append_batch(items).ok());
      } else if (what < 70) {  // a fence of 1..3 events, committed or cancelled
        auto fence = store->begin_fence();
        RC_ASSERT(fence.ok());
        const bool cancel = c % 2 == 1;
        for (int i = 0; i <= a % 3; ++i) {
          RC_ASSERT((*fence)->append({kEntities[(a + i) % 4], "s"}, item_kind(c + i), "f").ok());
          model.push_back({kEntities[(a + i) % 4], 0, item_kind(c + i), cancel});
        }
        RC_ASSERT((cancel ? (*fence)->cancel() : (*fence)->commit()).ok());
      } else if (what < 85) {  // a new subscription after a random position
        uint64_t after = model.empty() ? 0 : static_cast<uint64_t>(a * 7 + c) % (model.size() + 1);
        Sub sub{nullptr, filter_of(a + b), {}, after};
        SubscriptionOptions options;
        options.batch_max = static_cast<size_t>(1 + c);
        auto opened = Subscription::open(*store, sub.filter, after, options);
        RC_ASSERT(opened.ok());
        sub.subscription = std::move(*opened);
        subs.push_back(std::move(sub));
      } else if (what < 95) {  // every subscription reads one batch
        for (Sub& sub : subs) {
          auto batch = sub.subscription->next(std::chrono::milliseconds(0));
          RC_ASSERT(batch.ok());
          for (const Event& e : *batch) sub.delivered.push_back(e.sequence);
        }
      } else {  // reopen: subscriptions resume after their positions on the new store
        std::vector<uint64_t> positions;
        for (Sub& sub : subs) positions.push_back(sub.subscription->position());
        for (Sub& sub : subs) sub.subscription.reset();
        RC_ASSERT(store->close().ok());
        store = std::move(Store::open("/s", options_on(fs))).value();
        for (size_t i = 0; i < subs.size(); ++i) {
          auto opened = Subscription::open(*store, subs[i].filter, positions[i]);
          RC_ASSERT(opened.ok());
          subs[i].subscription = std::move(*opened);
        }
      }
    }
    RC_ASSERT(store->sync().ok());
    for (Sub& sub : subs) {
      // Drain, then compare with the model.
      for (;;) {
        auto batch = sub.subscription->next(std::chrono::milliseconds(0));
        RC_ASSERT(batch.ok());
        if (batch->empty()) break;
        for (const Event& e : *batch) sub.delivered.push_back(e.sequence);
      }
      std::vector<uint64_t> want;
      for (uint64_t s = sub.after + 1; s <= model.size(); ++s) {
        const ModelEvent& e = model[s - 1];
        if (!e.hidden && matches(sub.filter, e)) want.push_back(s);
      }
      RC_ASSERT(sub.delivered == want);
      RC_ASSERT(sub.subscription->position() == model.size());
    }
  });
}
