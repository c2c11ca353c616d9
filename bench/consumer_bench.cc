// Consumer benchmarks (the consumers issue's targets), on stores in a temp directory, default
// options, 10,000 entities, 200-byte payloads:
//   BM_AppendWritten        one caller appends N events at Written (the rate subscribers must
//                           keep up with); N = 100,000 and 1,000,000: the time includes the
//                           drain after the last append (the last 50 ms sync interval read by every
//                           subscriber), which weighs on 100,000 and hardly on 1,000,000, so the
//                           rate target is read at 1,000,000;
//   BM_FanOut8              the same appends while 8 Subscribers (each on its own thread) receive
//                           every event as copied Events (into Events reused from batch to batch);
//                           timed until the last subscriber has the last event (target: >= 0.8 x
//                           BM_AppendWritten's rate, each subscriber);
//   BM_FanOut8Views         the same with 8 Subscriptions read with next's visitor (views), each
//                           on its own thread;
//   BM_CatchUpSubscription  a subscription reads every event of a store of
//                           KEEL_CONSUMER_BENCH_EVENTS (default 1,000,000) events from the start,
//                           payloads included, in batches of 1,000, as views (next's visitor);
//   BM_CatchUpSubscriptionCopies  the same as copied Events (next's vector form, new Events);
//   BM_CatchUpSubscriptionReused  the same copied into the caller's Events (reused);
//   BM_CatchUpScan          Store::scan over the same store (target: the subscription >= 0.8 x);
//   BM_ReadOnlyRefresh      Store::refresh() of a read-only handle on that store beside its writer
//                           (what a follower in another process pays per 20 ms poll);
//   BM_ReadOnlyRefreshAfterAppends  the same after the writer appended 100 events;
//   BM_DeliveryLatencyDurable  append -> delivery latency p50/p99 at Durable, one live subscriber;
//   BM_ProbeFdatasyncLatency   the disk's pwrite + fdatasync latency p50/p99, beside it.
// Wall time (the first two run threads that sleep and wake); medians over repetitions
// (scripts/run-benchmarks). Compare rates within one run: the machines are shared.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "keel/keel.h"

namespace {

using keel::bench::fail;
using keel::bench::temp_dir;

using namespace keel;

constexpr int kEntities = 10'000;
const std::string kPayload(200, 'p');

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
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

// Appends N events with `subscribers` subscribers receiving them, each on its own thread: a
// Subscriber (copied Events handed to a callback), or a Subscription read with next's visitor
// (views); the time until every one has the last event.
void run_appends(benchmark::State& state, int subscribers, bool views) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    std::string dir = temp_dir();
    {
      auto store = open_new(dir + "/store");
      std::vector<std::unique_ptr<Subscriber>> subs;
      std::vector<std::thread> readers;
      std::vector<std::unique_ptr<std::atomic<uint64_t>>> received;
      SubscriptionOptions options;
      options.batch_max = 1000;
      for (int s = 0; s < subscribers; ++s) {
        received.push_back(std::make_unique<std::atomic<uint64_t>>(0));
        std::atomic<uint64_t>* count = received.back().get();
        if (views) {
          auto sub = Subscription::open(*store, Query{}, 0, options);
          if (!sub.ok()) fail("subscribe: " + sub.error().to_string());
          readers.emplace_back([sub = std::move(*sub), count, n]() mutable {
            uint64_t bytes = 0;
            while (count->load() < n) {
              auto seen = sub->next(std::chrono::milliseconds(100),
                                    [&](const EventView& e) { bytes += e.payload.size(); });
              if (!seen.ok()) fail("next: " + seen.error().to_string());
              count->fetch_add(*seen);
            }
            benchmark::DoNotOptimize(bytes);
          });
          continue;
        }
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
      for (auto& reader : readers) reader.join();
      for (auto& sub : subs) {
        if (!sub->stop().ok()) fail("subscriber ended with an error");
      }
      if (!store->close().ok()) fail("close");
    }
    std::filesystem::remove_all(dir);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void BM_AppendWritten(benchmark::State& state) { run_appends(state, 0, false); }
void BM_FanOut8(benchmark::State& state) { run_appends(state, 8, false); }
void BM_FanOut8Views(benchmark::State& state) { run_appends(state, 8, true); }
BENCHMARK(BM_AppendWritten)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FanOut8)->Arg(100'000)->Arg(1'000'000)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FanOut8Views)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Append -> delivery latency at Durable: one caller appends one event at a time at
// Durability::Durable (visible once durable, the default policy) while a subscription waits live on
// its own thread; each event's latency runs from just before its append call to its delivery.
// Reported as p50_us / p99_us counters, next to BM_ProbeFdatasyncLatency (the disk's own pwrite +
// fdatasync latency, the floor of any durable delivery).
double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t at = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[at];
}

void BM_DeliveryLatencyDurable(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  std::vector<double> latencies_us;
  for (auto _ : state) {
    std::string dir = temp_dir();
    {
      auto store = open_new(dir + "/store");
      std::vector<std::atomic<int64_t>> appended_ns(n + 1);
      std::vector<int64_t> delivered_ns(n + 1, 0);
      auto sub = Subscription::open(*store, Query{}, 0);
      if (!sub.ok()) fail("subscribe: " + sub.error().to_string());
      std::thread reader([&] {
        uint64_t got = 0;
        while (got < n) {
          auto seen = (*sub)->next(std::chrono::milliseconds(1000), [&](const EventView& e) {
            delivered_ns[e.sequence] = now_ns();
          });
          if (!seen.ok()) fail("next: " + seen.error().to_string());
          got += *seen;
        }
      });
      AppendOptions durable;
      durable.durability = Durability::Durable;
      for (uint64_t i = 1; i <= n; ++i) {
        appended_ns[i] = now_ns();
        auto r = store->append({"entity:" + std::to_string(i % kEntities), "s"},
                               EventKind::make(1, 1), kPayload, durable);
        if (!r.ok() || r->sequence != i) fail("append");
      }
      reader.join();
      for (uint64_t i = 1; i <= n; ++i) {
        latencies_us.push_back(static_cast<double>(delivered_ns[i] - appended_ns[i]) / 1e3);
      }
      sub->reset();
      if (!store->close().ok()) fail("close");
    }
    std::filesystem::remove_all(dir);
  }
  state.counters["p50_us"] = percentile(latencies_us, 0.50);
  state.counters["p99_us"] = percentile(latencies_us, 0.99);
  state.SetItemsProcessed(static_cast<int64_t>(latencies_us.size()));
}
BENCHMARK(BM_DeliveryLatencyDurable)
    ->Arg(2'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The disk's latency for one synced append (4 KiB pwrite at the end of a preallocated file, then
// fdatasync), in the directory the stores use.
void BM_ProbeFdatasyncLatency(benchmark::State& state) {
  std::string dir = temp_dir();
  std::string path = dir + "/probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("open " + path);
  if (::posix_fallocate(fd, 0, off_t{64} << 20) != 0 || ::fsync(fd) != 0) fail("preallocate");
  std::vector<char> block(4096, 'b');
  std::vector<double> latencies_us;
  off_t end = 0;
  for (auto _ : state) {
    int64_t start = now_ns();
    if (::pwrite(fd, block.data(), block.size(), end) != static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0) {
      fail("pwrite + fdatasync " + path);
    }
    latencies_us.push_back(static_cast<double>(now_ns() - start) / 1e3);
    end = (end + 4096) % (off_t{64} << 20);
  }
  ::close(fd);
  std::filesystem::remove_all(dir);
  state.counters["p50_us"] = percentile(latencies_us, 0.50);
  state.counters["p99_us"] = percentile(latencies_us, 0.99);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProbeFdatasyncLatency)
    ->Iterations(2'000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

uint64_t catch_up_events() {
  const char* value = std::getenv("KEEL_CONSUMER_BENCH_EVENTS");
  if (value == nullptr) return 1'000'000;
  char* end = nullptr;
  unsigned long long n = std::strtoull(value, &end, 10);
  if (end == value || *end != '\0' || n < 1000)
    fail("KEEL_CONSUMER_BENCH_EVENTS: a number >= 1000");
  return n;
}

// The catch-up store, built once, reopened (so reads start cold in the process) and removed at
// exit.
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

// Reads every event through a subscription in batches of 1,000: as views (the visitor form of
// next) or as copied Events.
enum class CatchUp { Views, Copies, Reused };
void catch_up(benchmark::State& state, CatchUp form) {
  CatchUpStore& s = catch_up_store();
  for (auto _ : state) {
    SubscriptionOptions options;
    options.batch_max = 1000;
    auto sub = Subscription::open(*s.store, Query{}, 0, options);
    if (!sub.ok()) fail("subscribe: " + sub.error().to_string());
    uint64_t got = 0, bytes = 0;
    std::vector<Event> reused;
    while (got < s.events) {
      if (form == CatchUp::Reused) {
        auto seen = (*sub)->next(std::chrono::milliseconds(0), reused);
        if (!seen.ok()) fail("next: " + seen.error().to_string());
        for (const Event& e : reused) bytes += e.payload.size();
        got += *seen;
      } else if (form == CatchUp::Copies) {
        auto batch = (*sub)->next(std::chrono::milliseconds(0));
        if (!batch.ok()) fail("next: " + batch.error().to_string());
        for (const Event& e : *batch) bytes += e.payload.size();
        got += batch->size();
      } else {
        auto seen = (*sub)->next(std::chrono::milliseconds(0),
                                 [&](const EventView& e) { bytes += e.payload.size(); });
        if (!seen.ok()) fail("next: " + seen.error().to_string());
        got += *seen;
      }
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}

void BM_CatchUpSubscription(benchmark::State& state) { catch_up(state, CatchUp::Views); }
void BM_CatchUpSubscriptionCopies(benchmark::State& state) { catch_up(state, CatchUp::Copies); }
void BM_CatchUpSubscriptionReused(benchmark::State& state) { catch_up(state, CatchUp::Reused); }

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
BENCHMARK(BM_CatchUpSubscriptionCopies)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CatchUpSubscriptionReused)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CatchUpScan)->UseRealTime()->Unit(benchmark::kMillisecond);

// What one poll of a follower in another process costs (a Subscription or `keel tail --follow` on
// a read-only store calls Store::refresh() every 20 ms while nothing is new): refresh() of a
// read-only handle on the catch-up store, beside its live writer, with nothing appended.
std::unique_ptr<Store> open_follower(CatchUpStore& s) {
  StoreOptions options;
  options.read_only = true;
  auto follower = Store::open(s.dir + "/store", options);
  if (!follower.ok()) fail("read-only open: " + follower.error().to_string());
  return std::move(*follower);
}

void BM_ReadOnlyRefresh(benchmark::State& state) {
  auto follower = open_follower(catch_up_store());
  for (auto _ : state) {
    if (!follower->refresh().ok()) fail("refresh");
  }
}
BENCHMARK(BM_ReadOnlyRefresh)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same after the writer appended 100 events (not timed; the last one Durable, so its frame
// vouches for the others): what a follower pays per poll beside a busy writer (it reads on from
// where its last refresh ended).
void BM_ReadOnlyRefreshAfterAppends(benchmark::State& state) {
  CatchUpStore& s = catch_up_store();
  auto follower = open_follower(s);
  for (auto _ : state) {
    state.PauseTiming();
    append_written(*s.store, 99);
    if (!s.store->sync().ok()) fail("sync");
    // A Durable append: its frame vouches for the 99 before it.
    if (!s.store->append({"entity:0", "s"}, EventKind::make(1, 1), kPayload).ok()) fail("append");
    s.events += 100;
    const uint64_t shown = follower->stats().sequence_visible;
    state.ResumeTiming();
    if (!follower->refresh().ok()) fail("refresh");
    if (follower->stats().sequence_visible <= shown) fail("the refresh showed nothing new");
  }
}
BENCHMARK(BM_ReadOnlyRefreshAfterAppends)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
