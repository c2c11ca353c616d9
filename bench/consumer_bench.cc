// Consumer benchmarks (the consumers issue's targets), on stores in a temp directory, default
// options, 10,000 entities, 200-byte payloads:
//   BM_AppendWritten        one caller appends N events at Written (the rate subscribers must
//                           keep up with);
//   BM_FanOut8              the same appends while 8 Subscribers (each on its own thread) receive
//                           every event; timed until the last subscriber has the last event
//                           (target: >= 0.8 x BM_AppendWritten's rate, each subscriber);
//   BM_CatchUpSubscription  a subscription reads every event of a store of
//                           KEEL_CONSUMER_BENCH_EVENTS (default 1,000,000) events from the start,
//                           payloads included, in batches of 1,000;
//   BM_CatchUpScan          Store::scan over the same store (target: the subscription >= 0.8 x).
// Wall time (the first two run threads that sleep and wake); medians over repetitions
// (scripts/run-benchmarks). Compare rates within one run: the machines are shared.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "keel/keel.h"

namespace {

using namespace keel;

constexpr int kEntities = 10'000;
const std::string kPayload(200, 'p');

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "consumer_bench: %s\n", what.c_str());
  std::abort();
}

std::string temp_dir() {
  std::string pattern = std::filesystem::temp_directory_path() / "keel-consumer-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp");
  return pattern;
}

std::unique_ptr<Store> open_new(const std::string& dir) {
  StoreOptions options;
  options.create_if_missing = true;
  auto opened = Store::open(dir, options);
  if (!opened.ok()) fail("open: " + opened.error().to_string());
  return std::move(opened).value();
}

void append_written(Store& store, uint64_t n) {
  AppendOptions written;
  written.durability = Durability::Written;
  for (uint64_t i = 0; i < n; ++i) {
    auto r = store.append({"entity:" + std::to_string(i % kEntities), "s"}, EventKind::make(1, 1),
                          kPayload, written);
    if (!r.ok()) fail("append: " + r.error().to_string());
  }
}

// Appends N events with `subscribers` Subscribers receiving them; the time until every one has the
// last event.
void run_appends(benchmark::State& state, int subscribers) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    std::string dir = temp_dir();
    {
      auto store = open_new(dir + "/store");
      std::vector<std::unique_ptr<Subscriber>> subs;
      std::vector<std::unique_ptr<std::atomic<uint64_t>>> received;
      for (int s = 0; s < subscribers; ++s) {
        received.push_back(std::make_unique<std::atomic<uint64_t>>(0));
        std::atomic<uint64_t>* count = received.back().get();
        SubscriptionOptions options;
        options.batch_max = 1000;
        auto sub = Subscriber::start(
            *store, Query{}, 0,
            [count](const std::vector<Event>& batch) {
              count->fetch_add(batch.size());
              return ok_status();
            },
            options);
        if (!sub.ok()) fail("subscribe: " + sub.error().to_string());
        subs.push_back(std::move(*sub));
      }
      auto start = std::chrono::steady_clock::now();
      append_written(*store, n);
      if (!store->sync().ok()) fail("sync");  // visible under AfterDurable
      for (auto& count : received) {
        while (count->load() < n) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      auto elapsed = std::chrono::steady_clock::now() - start;
      state.SetIterationTime(std::chrono::duration<double>(elapsed).count());
      for (auto& sub : subs) {
        if (!sub->stop().ok()) fail("subscriber ended with an error");
      }
      if (!store->close().ok()) fail("close");
    }
    std::filesystem::remove_all(dir);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void BM_AppendWritten(benchmark::State& state) { run_appends(state, 0); }
void BM_FanOut8(benchmark::State& state) { run_appends(state, 8); }
BENCHMARK(BM_AppendWritten)->Arg(100'000)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FanOut8)->Arg(100'000)->UseManualTime()->Unit(benchmark::kMillisecond);

uint64_t catch_up_events() {
  const char* value = std::getenv("KEEL_CONSUMER_BENCH_EVENTS");
  if (value == nullptr) return 1'000'000;
  char* end = nullptr;
  unsigned long long n = std::strtoull(value, &end, 10);
  if (end == value || *end != '\0' || n < 1000) fail("KEEL_CONSUMER_BENCH_EVENTS: a number >= 1000");
  return n;
}

// The catch-up store, built once, reopened (so reads start cold in the process) and removed at exit.
struct CatchUpStore {
  std::string dir = temp_dir();
  std::unique_ptr<Store> store;
  uint64_t events = catch_up_events();
  CatchUpStore() {
    {
      auto writer = open_new(dir + "/store");
      append_written(*writer, events);
      if (!writer->close().ok()) fail("close");
    }
    store = open_new(dir + "/store");
  }
  ~CatchUpStore() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

CatchUpStore& catch_up_store() {
  static CatchUpStore built;
  return built;
}

void BM_CatchUpSubscription(benchmark::State& state) {
  CatchUpStore& s = catch_up_store();
  for (auto _ : state) {
    SubscriptionOptions options;
    options.batch_max = 1000;
    auto sub = Subscription::open(*s.store, Query{}, 0, options);
    if (!sub.ok()) fail("subscribe: " + sub.error().to_string());
    uint64_t got = 0, bytes = 0;
    while (got < s.events) {
      auto batch = (*sub)->next(std::chrono::milliseconds(0));
      if (!batch.ok()) fail("next: " + batch.error().to_string());
      for (const Event& e : *batch) bytes += e.payload.size();
      got += batch->size();
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}

void BM_CatchUpScan(benchmark::State& state) {
  CatchUpStore& s = catch_up_store();
  for (auto _ : state) {
    uint64_t got = 0, bytes = 0;
    Status scanned = s.store->scan(1, UINT64_MAX, [&](const EventView& e) {
      bytes += e.payload.size();
      ++got;
      return true;
    });
    if (!scanned.ok() || got != s.events) fail("scan");
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}
BENCHMARK(BM_CatchUpSubscription)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CatchUpScan)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
