// Query benchmarks (the causal-queries issue's targets) on a store the benchmark builds once:
// KEEL_QUERY_BENCH_EVENTS events (default 10,000,000; 64-byte payloads) in conversations of 100
// events, each a causation chain (every event caused by the one before it, correlation = the
// first), spread over 100,000 entities, plus 10 "hot" entities that get every 100th event (so
// each has at least 1,000 events when the store holds 1M or more).
//   BM_Reopen                 open of the whole store after a clean close, timed alone (target:
//                             <= 1 s for 10M events);
//                             counters: index_bytes_per_event (the index's own estimate) and
//                             heap_bytes_per_event (glibc's allocated bytes, heap and mmapped,
//                             after open minus before, over the events);
//   BM_EntityStream1000       read 1,000 events of a hot entity (target: <= 200 µs);
//   BM_Ancestors100           ancestors of a conversation's last event: 100 events (target:
//                             <= 100 µs);
//   BM_QueryEntityPage        a 100-event page of an entity's stream through Store::query;
//   BM_QueryCorrelation       a whole conversation (100 events) through Store::query;
//   BM_Descendants100         the effects of a conversation's first event.
// Timed in CPU time, medians over repetitions (scripts/run-benchmarks); the store stays in the
// page cache between iterations, as a serving process's would.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.h"
#include "keel/keel.h"

namespace {

using keel::bench::fail;

using namespace keel;

constexpr int kConversation = 100;
constexpr int kEntities = 100'000;
constexpr int kHotEntities = 10;
constexpr int kHotEvery = 100;
const std::string kPayload(64, 'p');

uint64_t events_wanted() {
  const char* value = std::getenv("KEEL_QUERY_BENCH_EVENTS");
  if (value == nullptr) return 10'000'000;
  char* end = nullptr;
  unsigned long long n = std::strtoull(value, &end, 10);
  if (end == value || *end != '\0' || n < 1000) fail("KEEL_QUERY_BENCH_EVENTS: a number >= 1000");
  return n;
}

StoreOptions store_options() {
  StoreOptions options;
  options.create_if_missing = true;
  options.visibility = VisibilityPolicy::AfterWrite;
  return options;
}

// The store all benchmarks share, built on first use and removed at exit.
struct BuiltStore {
  std::string dir;
  std::unique_ptr<Store> store;
  uint64_t events = 0;
  std::vector<EventId> conversation_first;
  std::vector<EventId> conversation_last;
  std::string hot_entity = "hot:0";

  BuiltStore() {
    dir = keel::bench::temp_dir() + "/store";
    events = events_wanted();
    auto opened = Store::open(dir, store_options());
    if (!opened.ok()) fail("open: " + opened.error().to_string());
    store = std::move(opened).value();
    auto started = std::chrono::steady_clock::now();
    AppendOptions options;
    options.durability = Durability::Accepted;
    EventId previous;
    EventId first;
    for (uint64_t i = 0; i < events; ++i) {
      bool starts = i % kConversation == 0;
      options.causation_id = starts ? std::nullopt : std::optional<EventId>(previous);
      options.correlation_id = starts ? std::nullopt : std::optional<EventId>(first);
      std::string entity = i % kHotEvery == 0
                               ? "hot:" + std::to_string((i / kHotEvery) % kHotEntities)
                               : "entity:" + std::to_string(i % kEntities);
      auto receipt =
          store->append({entity, "bench"}, EventKind::make(1, 1 + i % 7), kPayload, options);
      if (!receipt.ok()) fail("append: " + receipt.error().to_string());
      previous = receipt->event_id;
      if (starts) {
        first = previous;
        conversation_first.push_back(first);
      }
      if (i % kConversation == kConversation - 1) conversation_last.push_back(previous);
    }
    if (Status closed = store->close(); !closed.ok()) fail("close: " + closed.error().to_string());
    store.reset();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "query_bench: built %llu events in %.1f s\n",
                 static_cast<unsigned long long>(events), seconds);
    reopen();
  }
  ~BuiltStore() {
    store.reset();
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  }
  void reopen() {
    if (store) {
      if (Status closed = store->close(); !closed.ok())
        fail("close: " + closed.error().to_string());
      store.reset();
    }
    auto opened = Store::open(dir, store_options());
    if (!opened.ok()) fail("reopen: " + opened.error().to_string());
    store = std::move(opened).value();
  }
};

BuiltStore& built() {
  static BuiltStore instance;
  return instance;
}

void BM_Reopen(benchmark::State& state) {
  BuiltStore& b = built();
  size_t heap_before = 0;
  size_t heap_after = 0;
  for (auto _ : state) {
    if (Status closed = b.store->close(); !closed.ok())
      fail("close: " + closed.error().to_string());
    b.store.reset();
    heap_before = mallinfo2().uordblks + mallinfo2().hblkhd;
    auto started = std::chrono::steady_clock::now();
    auto opened = Store::open(b.dir, store_options());
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (!opened.ok()) fail("reopen: " + opened.error().to_string());
    b.store = std::move(opened).value();
    heap_after = mallinfo2().uordblks + mallinfo2().hblkhd;
  }
  StoreStats stats = b.store->stats();
  state.SetLabel("indexes from: " + stats.index_source);
  state.counters["records_replayed"] = static_cast<double>(stats.records_replayed);
  state.counters["events"] = static_cast<double>(stats.events);
  state.counters["index_bytes_per_event"] =
      static_cast<double>(stats.index_bytes) / static_cast<double>(stats.events);
  state.counters["heap_bytes_per_event"] =
      static_cast<double>(heap_after - heap_before) / static_cast<double>(stats.events);
}
BENCHMARK(BM_Reopen)->Unit(benchmark::kMillisecond)->Iterations(1)->UseManualTime();

void BM_EntityStream1000(benchmark::State& state) {
  BuiltStore& b = built();
  size_t read = 0;
  for (auto _ : state) {
    read = 0;
    Status s = b.store->entity_stream(b.hot_entity, 0, 1, 1000, [&](const EventView& e) {
      benchmark::DoNotOptimize(e.payload.data());
      ++read;
      return true;
    });
    if (!s.ok()) fail("entity_stream: " + s.error().to_string());
  }
  if (read != 1000) state.SkipWithError("the hot entity has fewer than 1,000 events");
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(read));
}
BENCHMARK(BM_EntityStream1000)->Unit(benchmark::kMicrosecond);

void BM_Ancestors100(benchmark::State& state) {
  BuiltStore& b = built();
  size_t i = 0;
  for (auto _ : state) {
    auto ancestry = b.store->ancestors(b.conversation_last[i++ % b.conversation_last.size()]);
    if (!ancestry.ok() || ancestry->chain.size() != kConversation) fail("ancestors");
    benchmark::DoNotOptimize(ancestry->chain.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ancestors100)->Unit(benchmark::kMicrosecond);

void BM_Descendants100(benchmark::State& state) {
  BuiltStore& b = built();
  size_t i = 0;
  for (auto _ : state) {
    auto effects = b.store->descendants(b.conversation_first[i++ % b.conversation_first.size()]);
    if (!effects.ok() || effects->events.size() != kConversation - 1) fail("descendants");
    benchmark::DoNotOptimize(effects->events.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Descendants100)->Unit(benchmark::kMicrosecond);

void BM_QueryEntityPage(benchmark::State& state) {
  BuiltStore& b = built();
  Query q;
  q.entity = b.hot_entity;
  q.limit = 100;
  q.with_payload = true;
  for (auto _ : state) {
    auto page = b.store->query(q);
    if (!page.ok() || page->events.size() != 100) fail("query entity page");
    benchmark::DoNotOptimize(page->events.data());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_QueryEntityPage)->Unit(benchmark::kMicrosecond);

void BM_QueryCorrelation(benchmark::State& state) {
  BuiltStore& b = built();
  size_t i = 0;
  Query q;
  q.limit = kConversation;
  for (auto _ : state) {
    q.correlation_id = b.conversation_first[i++ % b.conversation_first.size()];
    auto page = b.store->query(q);
    if (!page.ok() || page->events.size() != kConversation) fail("query correlation");
    benchmark::DoNotOptimize(page->events.data());
  }
  state.SetItemsProcessed(state.iterations() * kConversation);
}
BENCHMARK(BM_QueryCorrelation)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
