// Snapshot and projection benchmarks (include/keel/snapshot.h, include/keel/projection.h).
//   BM_SnapshotSave/N        save_snapshot of N bytes (1 MiB, 64 MiB) on a store in a temp
//                            directory on the real disk: the payload written and fdatasync'd under
//                            its own name, the directory synced, then the pointer replaced
//                            (written, fdatasync'd, renamed, directory synced);
//   BM_PeerWriteFdatasync/N  the floor it is compared with: one new file of the same N bytes
//                            written and fdatasync'd (target: save >= 0.8 x its rate);
//   BM_SnapshotLoad/N        load_snapshot of that snapshot (hot page cache): pointer read, payload
//                            read whole, XXH3-128 checked;
//   BM_PeerReadFile/N        the same file read whole with pread (the floor of a load);
//   BM_ProjectionReplay      a Projection catching up from nothing over a store of
//                            KEEL_SNAPSHOT_BENCH_EVENTS (default 1,000,000) events of 10,000
//                            entities with 200-byte payloads, folding each payload's size, saving
//                            at the default bound (every second) and once at the end;
//   BM_ProjectionScan        Store::scan over the same store with the same fold (the floor).
// Wall time, manual where setup must stay out; compare within one run (the machines are shared).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "bench_support.h"
#include "keel/keel.h"

namespace {

using keel::bench::fail;
using keel::bench::seconds_since;
using keel::bench::temp_dir;

using namespace keel;

std::unique_ptr<Store> open_new(const std::string& dir) {
  StoreOptions options;
  options.create_if_missing = true;
  auto opened = Store::open(dir, options);
  if (!opened.ok()) fail("open: " + opened.error().to_string());
  return std::move(*opened);
}

std::string state_of(size_t bytes, uint64_t salt) {
  std::string state(bytes, 's');
  for (size_t i = 0; i < bytes; i += 4096) state[i] = static_cast<char>('a' + (salt + i) % 26);
  return state;
}

void BM_SnapshotSave(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string dir = temp_dir();
  auto store = open_new(dir + "/store");
  uint64_t round = 0;
  for (auto _ : state) {
    // Not timed: a new event to cover, new bytes, and the last payload pruned (disk space).
    if (!store->append({"entity:1", ""}, EventKind::make(1, 1), "e").ok()) fail("append");
    const std::string bytes = state_of(size, ++round);
    const auto start = std::chrono::steady_clock::now();
    auto saved = save_snapshot(*store, "bench", bytes, round);
    state.SetIterationTime(seconds_since(start));
    if (!saved.ok() || saved->outcome != SaveOutcome::Published) fail("save");
    if (!prune_snapshots(*store, "bench", 1).ok()) fail("prune");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  store.reset();
  std::filesystem::remove_all(dir);
}

void BM_PeerWriteFdatasync(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string dir = temp_dir();
  uint64_t round = 0;
  for (auto _ : state) {
    const std::string bytes = state_of(size, ++round);
    const std::string path = dir + "/file" + std::to_string(round);
    const auto start = std::chrono::steady_clock::now();
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) fail("open");
    for (size_t done = 0; done < size;) {
      ssize_t n = ::pwrite(fd, bytes.data() + done, size - done, static_cast<off_t>(done));
      if (n <= 0) fail("pwrite");
      done += static_cast<size_t>(n);
    }
    if (::fdatasync(fd) != 0) fail("fdatasync");
    ::close(fd);
    state.SetIterationTime(seconds_since(start));
    std::filesystem::remove(path);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  std::filesystem::remove_all(dir);
}

void BM_SnapshotLoad(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string dir = temp_dir();
  auto store = open_new(dir + "/store");
  if (!store->append({"entity:1", ""}, EventKind::make(1, 1), "e").ok()) fail("append");
  if (!save_snapshot(*store, "bench", state_of(size, 1), 1).ok()) fail("save");
  for (auto _ : state) {
    auto loaded = load_snapshot(*store, "bench");
    if (!loaded.ok() || !loaded->has_value() || (*loaded)->bytes.size() != size) fail("load");
    benchmark::DoNotOptimize((*loaded)->bytes.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  store.reset();
  std::filesystem::remove_all(dir);
}

void BM_PeerReadFile(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string dir = temp_dir();
  const std::string path = dir + "/file";
  {
    const std::string bytes = state_of(size, 1);
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0 || ::pwrite(fd, bytes.data(), size, 0) != static_cast<ssize_t>(size)) fail("write");
    ::close(fd);
  }
  for (auto _ : state) {
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) fail("open");
    std::string bytes(size, '\0');
    for (size_t done = 0; done < size;) {
      ssize_t n = ::pread(fd, bytes.data() + done, size - done, static_cast<off_t>(done));
      if (n <= 0) fail("pread");
      done += static_cast<size_t>(n);
    }
    ::close(fd);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size));
  std::filesystem::remove_all(dir);
}

constexpr int64_t kMiB = 1 << 20;
BENCHMARK(BM_SnapshotSave)
    ->Arg(kMiB)
    ->Arg(64 * kMiB)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PeerWriteFdatasync)
    ->Arg(kMiB)
    ->Arg(64 * kMiB)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SnapshotLoad)->Arg(kMiB)->Arg(64 * kMiB)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PeerReadFile)->Arg(kMiB)->Arg(64 * kMiB)->UseRealTime()->Unit(benchmark::kMillisecond);

uint64_t replay_events() {
  const char* value = std::getenv("KEEL_SNAPSHOT_BENCH_EVENTS");
  if (value == nullptr) return 1'000'000;
  char* end = nullptr;
  unsigned long long n = std::strtoull(value, &end, 10);
  if (end == value || *end != '\0' || n < 1000)
    fail("KEEL_SNAPSHOT_BENCH_EVENTS: a number >= 1000");
  return n;
}

// The replay store, built once (10,000 entities, 200-byte payloads) and removed at exit.
struct ReplayStore {
  std::string dir = temp_dir();
  std::unique_ptr<Store> store;
  uint64_t events = replay_events();
  ReplayStore() {
    {
      auto writer = open_new(dir + "/store");
      AppendOptions written;
      written.durability = Durability::Written;
      const std::string payload(200, 'p');
      for (uint64_t i = 0; i < events; ++i) {
        if (!writer
                 ->append({"entity:" + std::to_string(i % 10'000), ""}, EventKind::make(1, 1),
                          payload, written)
                 .ok()) {
          fail("append");
        }
      }
      if (!writer->close().ok()) fail("close");
    }
    store = open_new(dir + "/store");
  }
  ~ReplayStore() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

ReplayStore& replay_store() {
  static ReplayStore built;
  return built;
}

Status sum_sizes(std::string& state, const EventView& event) {
  uint64_t total = 0;
  if (state.size() == sizeof total) std::memcpy(&total, state.data(), sizeof total);
  total += event.payload.size();
  state.assign(reinterpret_cast<const char*>(&total), sizeof total);
  return ok_status();
}

void BM_ProjectionReplay(benchmark::State& state) {
  ReplayStore& s = replay_store();
  static uint64_t round = 0;  // a new name each time: a name's snapshot would skip the replay
  for (auto _ : state) {
    const std::string name = "replay" + std::to_string(++round);
    ProjectionOptions options;
    options.subscription.batch_max = 1000;
    auto projection = Projection::open(*s.store, name, Query{}, sum_sizes, options);
    if (!projection.ok()) fail("open: " + projection.error().to_string());
    while ((*projection)->position() < s.events) {
      if (!(*projection)->run(std::chrono::milliseconds(0)).ok()) fail("run");
    }
    if (!(*projection)->save().ok()) fail("save");
    benchmark::DoNotOptimize((*projection)->state().data());
    projection->reset();
    state.PauseTiming();
    if (!DurableConsumer::remove(*s.store, name).ok()) fail("remove consumer");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}

void BM_ProjectionScan(benchmark::State& state) {
  ReplayStore& s = replay_store();
  for (auto _ : state) {
    std::string folded;
    Status scanned =
        s.store->scan(1, UINT64_MAX, [&](const EventView& e) { return sum_sizes(folded, e).ok(); });
    if (!scanned.ok()) fail("scan");
    benchmark::DoNotOptimize(folded.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}
BENCHMARK(BM_ProjectionReplay)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ProjectionScan)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
