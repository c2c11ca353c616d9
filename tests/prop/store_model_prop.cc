// The store model test: random sequences of appends, batches, syncs, reopens and read-only opens
// produce exactly the events of an in-memory model, in order, with intact chains, and receipts
// that match what is read back.
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <catch2/catch.hpp>
#include <map>
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
  std::string payload;
  Receipt receipt;
};

// What the store must show: every appended event in order; the durable (visible) prefix.
struct Model {
  std::vector<ModelEvent> events;
  size_t durable = 0;
};

const char* const kEntities[] = {"order:1", "order:2", "user:7", "cart:a"};

StoreOptions options_for(platform::MemoryFileSystem& fs, bool read_only) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = !read_only;
  options.read_only = read_only;
  options.segment_size = 4096;  // rotate often
  options.lanes_max = 3;
  options.id_seed = 7;
  return options;
}

std::unique_ptr<Store> must_open(platform::MemoryFileSystem& fs, bool read_only) {
  auto store = Store::open("/store", options_for(fs, read_only));
  RC_ASSERT(store.ok());
  return std::move(store).value();
}

// The events read equal the model's first events, field by field.
void check_events(const std::vector<Event>& events, const Model& model) {
  RC_ASSERT(events.size() <= model.events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& got = events[i];
    const ModelEvent& want = model.events[i];
    RC_ASSERT(got.receipt() == want.receipt);
    RC_ASSERT(got.coordinate.entity == want.entity);
    RC_ASSERT(got.lane == want.lane);
    RC_ASSERT(got.kind == want.kind);
    RC_ASSERT(got.payload == want.payload);
  }
}

// A store nothing writes beside (a read-only one) shows exactly the model's first `count` events.
void check_prefix(Store& store, const Model& model, size_t count) {
  auto events = store.scan_events(1, UINT64_MAX);
  RC_ASSERT(events.ok());
  RC_ASSERT(events->size() == count);
  check_events(*events, model);
}

// The writer: visible is at least what the model made durable; a rotation may sync more (it seals
// the old segment with an fdatasync), never beyond what was appended. Its background sync
// (sync_interval) may publish Written events while the reads run, so each read is checked against
// the visible watermark before and after it: it shows at least the first, at most the second.
void check_store(Store& store, Model& model) {
  uint64_t visible = store.stats().sequence_visible;
  RC_ASSERT(visible >= model.durable);
  RC_ASSERT(visible <= model.events.size());
  model.durable = visible;
  auto events = store.scan_events(1, UINT64_MAX);
  RC_ASSERT(events.ok());
  RC_ASSERT(events->size() >= visible);
  RC_ASSERT(events->size() <= store.stats().sequence_visible);
  check_events(*events, model);
  // Entity streams: the model's events of each (entity, lane), in clock order 1, 2, ...
  std::map<std::pair<std::string, uint32_t>, std::vector<Receipt>> streams;
  std::map<std::pair<std::string, uint32_t>, size_t> visible_in;  // how many are <= visible
  for (size_t i = 0; i < model.events.size(); ++i) {
    std::pair<std::string, uint32_t> key{model.events[i].entity, model.events[i].lane};
    streams[key].push_back(model.events[i].receipt);
    if (i < visible) ++visible_in[key];
  }
  for (const auto& [key, receipts] : streams) {
    auto stream = store.entity_events(key.first, key.second);
    RC_ASSERT(stream.ok());
    RC_ASSERT(stream->size() >= visible_in[key]);
    RC_ASSERT(stream->size() <= receipts.size());
    uint64_t visible_after = store.stats().sequence_visible;
    for (size_t c = 0; c < stream->size(); ++c) {
      RC_ASSERT((*stream)[c].receipt() == receipts[c]);
      RC_ASSERT((*stream)[c].sequence <= visible_after);
      RC_ASSERT((*stream)[c].entity_clock == c + 1);
      if (c > 0) RC_ASSERT((*stream)[c].prev_hash == std::optional(receipts[c - 1].chained_hash));
    }
  }
}

}  // namespace

TEST_CASE("the store equals an in-memory model under random operations", "[prop][store]") {
  rc::prop("appends, batches, syncs, reopens and read-only opens", [] {
    // Each op: (what, entity, lane, size).
    auto ops = *rc::gen::container<std::vector<std::tuple<int, int, int, int>>>(
        rc::gen::tuple(rc::gen::inRange(0, 100), rc::gen::inRange(0, 4), rc::gen::inRange(0, 3),
                       rc::gen::inRange(0, 300)));
    platform::MemoryFileSystem fs;
    Model model;
    auto store = must_open(fs, false);
    uint64_t epoch = 1;
    for (const auto& [what, entity, lane, size] : ops) {
      if (what < 45) {  // one append, Durable or Written
        AppendOptions options;
        options.lane = static_cast<uint32_t>(lane);
        bool durable = what < 30;
        options.durability = durable ? Durability::Durable : Durability::Written;
        std::string payload(static_cast<size_t>(size), static_cast<char>('a' + what % 26));
        EventKind kind = EventKind::make(1, static_cast<uint16_t>(what));
        auto receipt = store->append({kEntities[entity], "s"}, kind, payload, options);
        RC_ASSERT(receipt.ok());
        RC_ASSERT(receipt->sequence == model.events.size() + 1);
        RC_ASSERT(receipt->epoch == epoch);
        model.events.push_back({kEntities[entity], options.lane, kind, payload, *receipt});
        if (durable) model.durable = model.events.size();
      } else if (what < 70) {  // a batch of 1..5 items over several entities
        std::vector<BatchItem> items;
        for (int i = 0; i <= size % 5; ++i) {
          BatchItem item{{kEntities[(entity + i) % 4], "s"}, EventKind::make(2, static_cast<uint16_t>(i)),
                         std::string(static_cast<size_t>((size * (i + 1)) % 200), 'b'), {}};
          item.options.lane = static_cast<uint32_t>((lane + i) % 3);
          items.push_back(item);
        }
        auto receipts = store->append_batch(items);
        RC_ASSERT(receipts.ok());
        RC_ASSERT(receipts->size() == items.size());
        for (size_t i = 0; i < items.size(); ++i) {
          model.events.push_back({items[i].coordinate.entity, items[i].options.lane, items[i].kind,
                                  items[i].payload, (*receipts)[i]});
        }
        model.durable = model.events.size();
      } else if (what < 80) {
        RC_ASSERT(store->sync().ok());
        model.durable = model.events.size();
      } else if (what < 90) {  // clean close and reopen: a new epoch, everything survives
        RC_ASSERT(store->close().ok());
        store = must_open(fs, false);
        RC_ASSERT(store->epoch() == ++epoch);
        model.durable = model.events.size();
      } else {  // a read-only open beside the writer sees a prefix of the durable events
        auto reader = must_open(fs, true);
        auto seen = reader->stats().sequence_visible;
        // At most what the writer has made durable by now (its background sync runs on its own).
        RC_ASSERT(seen <= store->stats().sequence_durable);
        check_prefix(*reader, model, seen);
      }
      check_store(*store, model);
    }
    auto report = store->verify();
    RC_ASSERT(report.ok());
    RC_ASSERT(report->ok);
    RC_ASSERT(store->close().ok());
    // Closed: a read-only open sees every event.
    auto reader = must_open(fs, true);
    model.durable = model.events.size();
    check_store(*reader, model);
  });
}
