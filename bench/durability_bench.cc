// Durability benchmarks (the durability issue's targets; 100-byte payloads), each in the same run
// as a probe of the disk the stores write to:
//   BM_Probe_Append4KiB_Fdatasync  raw POSIX: a 4 KiB pwrite at the end of a file + fdatasync, the
//                                  physical limit of one synced commit on this disk;
//   BM_Store_Durable/threads:N     N callers appending at Durability::Durable to one shared store
//                                  (targets: N=1 >= 0.8 x probe, N=8 >= 6 x probe, N=64 >= 100k/s);
//   BM_Store_Accepted_1, _Written_1  one caller at the unsynced levels (target: within 10% of the
//                                  same benchmark on a foundation build).
// and the peers a user would pick instead, doing the same at their strictest synchronous setting:
//   BM_Peer_RocksDB_Sync/threads:N   RocksDB 7.8, WriteOptions::sync (its own group commit of the
//                                    write-ahead log), one Put of a 100-byte value per event;
//   BM_Peer_SQLite_Full/threads:N    SQLite 3.40, WAL with synchronous=FULL, one INSERT per
//                                    transaction on one shared connection (SQLite has one writer).
// scripts/durability-report turns the medians into ratios against the targets and the peers.
//
// All are timed in wall-clock time (UseRealTime): a Durable caller sleeps in fdatasync and a
// pipeline may do the work on another thread, so a caller's CPU time says nothing about throughput.
// The store benchmarks also report wall_events_per_s (see RunSpan): Google Benchmark's real time of
// a multi-threaded run is the mean of the threads' own times, which flatters throughput when
// callers finish unevenly (an unfair mutex lets one caller run ahead).
//
// Threading: Setup/Teardown run on the main thread before the benchmark threads start and after
// they have joined, so the shared store they open and close needs no other synchronization; the
// benchmark threads only call Store::append (thread-safe) and the RunSpan atomics.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/statistics.h>
#include <sqlite3.h>

#include "bench_support.h"
#include "keel/keel.h"

namespace {

using keel::bench::fail;
using keel::bench::temp_dir;

using namespace keel;

const std::string kPayload(100, 'p');
constexpr int kEntitiesPerCaller = 100;

// The same base directory as the store benchmarks ($TMPDIR or /tmp), so the probe and the stores
// share one disk.
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Wall-clock span of one run over all its threads: from the first caller's first append to the last
// caller's last one. Reset in Setup (before the threads start); read by thread 0 after the loop's
// closing barrier, which every thread reaches only after recording its end.
struct RunSpan {
  std::atomic<int64_t> start_ns{INT64_MAX};
  std::atomic<int64_t> end_ns{INT64_MIN};

  void reset() {
    start_ns.store(INT64_MAX);
    end_ns.store(INT64_MIN);
  }
  void begin(int64_t t) {
    int64_t seen = start_ns.load();
    while (t < seen && !start_ns.compare_exchange_weak(seen, t)) continue;
  }
  void finish(int64_t t) {
    int64_t seen = end_ns.load();
    while (t > seen && !end_ns.compare_exchange_weak(seen, t)) continue;
  }
  double seconds() const { return static_cast<double>(end_ns.load() - start_ns.load()) * 1e-9; }
};

// The store shared by the threads of one run (one fresh directory per run).
struct SharedStore {
  std::string dir;
  std::unique_ptr<Store> store;
  RunSpan span;
};
SharedStore g_shared;

void open_store(VisibilityPolicy visibility) {
  g_shared.dir = temp_dir();
  StoreOptions options;
  options.create_if_missing = true;
  options.visibility = visibility;
  auto opened = Store::open(g_shared.dir + "/store", options);
  if (!opened.ok()) fail("open: " + opened.error().to_string());
  g_shared.store = std::move(opened).value();
  g_shared.span.reset();
}

// Durable appends return once durable and visible: the default policy is the one measured.
void SetupDurable(const benchmark::State&) { open_store(VisibilityPolicy::AfterDurable); }
// The unsynced levels use the foundation benchmark's configuration (store_bench BM_AppendWritten).
void SetupUnsynced(const benchmark::State&) { open_store(VisibilityPolicy::AfterWrite); }

void TeardownStore(const benchmark::State&) {
  Status closed = g_shared.store->close();
  if (!closed.ok()) fail("close: " + closed.error().to_string());
  g_shared.store.reset();
  std::filesystem::remove_all(g_shared.dir);
}

// Every run of this binary reports the same counters: Google Benchmark's CSV reporter aborts when a
// run lacks a counter an earlier one had, and the interleaved repetitions run in random order.
void set_counters(benchmark::State& state, double wall_events_per_s, double events_per_fdatasync) {
  state.counters["wall_events_per_s"] = benchmark::Counter(wall_events_per_s);
  state.counters["events_per_fdatasync"] = benchmark::Counter(events_per_fdatasync);
}

// One caller's loop: appends to its own entities (callers never share a stream, as independent
// request handlers would not) at `durability`.
void append_loop(benchmark::State& state, Durability durability) {
  std::vector<Coordinate> coordinates;
  for (int i = 0; i < kEntitiesPerCaller; ++i) {
    coordinates.push_back(
        {"order:" + std::to_string(state.thread_index()) + "-" + std::to_string(i), "bench"});
  }
  AppendOptions options;
  options.durability = durability;
  Store& store = *g_shared.store;
  const benchmark::IterationCount iterations = state.max_iterations;
  benchmark::IterationCount done = 0;
  for (auto _ : state) {
    if (done == 0) g_shared.span.begin(now_ns());
    auto receipt = store.append(coordinates[done % kEntitiesPerCaller], EventKind::make(1, 1),
                                kPayload, options);
    // No break on error: every thread must reach the loop's closing barrier.
    if (!receipt.ok() && !state.error_occurred()) {
      state.SkipWithError(receipt.error().to_string().c_str());
    }
    if (++done == iterations) g_shared.span.finish(now_ns());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const double events = static_cast<double>(iterations) * state.threads();
    // Group commit at work: events per fdatasync (the store is fresh for each run; for the
    // unsynced levels, the background syncs'). 0 when nothing was synced.
    const double syncs = static_cast<double>(store.stats().commit_syncs);
    set_counters(state, events / g_shared.span.seconds(), syncs == 0 ? 0.0 : events / syncs);
  }
}

// The disk's synced-append rate: 4 KiB pwrite at the end + fdatasync. `preallocate` (range(0) = 1)
// reserves the file first, as keel preallocates segments, so each fdatasync commits no size change:
// the stricter peer for keel's ratios.
void BM_Probe_Append4KiB_Fdatasync(benchmark::State& state) {
  std::string dir = temp_dir();
  std::string path = dir + "/probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("open " + path);
  if (state.range(0) == 1) {
    if (::posix_fallocate(fd, 0, off_t{256} << 20) != 0) fail("posix_fallocate " + path);
    if (::fsync(fd) != 0) fail("fsync " + path);
  }
  std::vector<char> block(4096, 'b');
  off_t end = 0;
  const int64_t start_ns = now_ns();
  for (auto _ : state) {
    if (::pwrite(fd, block.data(), block.size(), end) != static_cast<ssize_t>(block.size())) {
      fail("pwrite " + path);
    }
    if (::fdatasync(fd) != 0) fail("fdatasync " + path);
    end += static_cast<off_t>(block.size());
  }
  const double seconds = static_cast<double>(now_ns() - start_ns) * 1e-9;
  ::close(fd);
  std::filesystem::remove_all(dir);
  set_counters(state, static_cast<double>(state.iterations()) / seconds, 1.0);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(block.size()));
}
BENCHMARK(BM_Probe_Append4KiB_Fdatasync)->ArgName("preallocated")->Arg(0)->Arg(1)->UseRealTime()->MinTime(1.0);

void BM_Store_Durable(benchmark::State& state) { append_loop(state, Durability::Durable); }
BENCHMARK(BM_Store_Durable)
    ->Setup(SetupDurable)
    ->Teardown(TeardownStore)
    ->UseRealTime()
    ->MinTime(1.0)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64);

void BM_Store_Accepted_1(benchmark::State& state) { append_loop(state, Durability::Accepted); }
BENCHMARK(BM_Store_Accepted_1)
    ->Setup(SetupUnsynced)
    ->Teardown(TeardownStore)
    ->UseRealTime()
    ->MinTime(1.0);

void BM_Store_Written_1(benchmark::State& state) { append_loop(state, Durability::Written); }
BENCHMARK(BM_Store_Written_1)
    ->Setup(SetupUnsynced)
    ->Teardown(TeardownStore)
    ->UseRealTime()
    ->MinTime(1.0);

// ---- Peers: the same Durable workload on RocksDB and SQLite ----

// The peer database shared by the threads of one run, opened and closed by Setup/Teardown as the
// store is (one fresh directory per run).
struct SharedPeers {
  std::string dir;
  std::unique_ptr<rocksdb::DB> rocks;
  sqlite3* sqlite = nullptr;
  sqlite3_stmt* insert = nullptr;
  std::mutex sqlite_mutex;  // one connection, one writer: callers take turns, as SQLite makes them
};
SharedPeers g_peers;

void SetupRocksDB(const benchmark::State&) {
  g_peers.dir = temp_dir();
  rocksdb::Options options;
  options.create_if_missing = true;
  options.statistics = rocksdb::CreateDBStatistics();  // counts its WAL syncs
  rocksdb::DB* db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(options, g_peers.dir + "/rocksdb", &db);
  if (!status.ok()) fail("rocksdb open: " + status.ToString());
  g_peers.rocks.reset(db);
  g_shared.span.reset();
}

void TeardownRocksDB(const benchmark::State&) {
  rocksdb::Status status = g_peers.rocks->Close();
  if (!status.ok()) fail("rocksdb close: " + status.ToString());
  g_peers.rocks.reset();
  std::filesystem::remove_all(g_peers.dir);
}

void SetupSQLite(const benchmark::State&) {
  g_peers.dir = temp_dir();
  std::string path = g_peers.dir + "/events.db";
  if (sqlite3_open(path.c_str(), &g_peers.sqlite) != SQLITE_OK) fail("sqlite open " + path);
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                          "CREATE TABLE events (seq INTEGER PRIMARY KEY, entity TEXT, payload BLOB)"}) {
    if (sqlite3_exec(g_peers.sqlite, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail(std::string("sqlite: ") + sqlite3_errmsg(g_peers.sqlite));
    }
  }
  if (sqlite3_prepare_v2(g_peers.sqlite, "INSERT INTO events (entity, payload) VALUES (?, ?)", -1,
                         &g_peers.insert, nullptr) != SQLITE_OK) {
    fail(std::string("sqlite prepare: ") + sqlite3_errmsg(g_peers.sqlite));
  }
  g_shared.span.reset();
}

void TeardownSQLite(const benchmark::State&) {
  sqlite3_finalize(g_peers.insert);
  if (sqlite3_close(g_peers.sqlite) != SQLITE_OK) fail("sqlite close");
  g_peers.insert = nullptr;
  g_peers.sqlite = nullptr;
  std::filesystem::remove_all(g_peers.dir);
}

// One caller's loop against a peer: `put(entity, n)` stores one synced 100-byte event; `syncs()`
// is the number of fdatasyncs the peer issued since Setup.
template <typename Put, typename Syncs>
void peer_loop(benchmark::State& state, Put put, Syncs syncs) {
  std::vector<std::string> entities;
  for (int i = 0; i < kEntitiesPerCaller; ++i) {
    entities.push_back("order:" + std::to_string(state.thread_index()) + "-" + std::to_string(i));
  }
  const benchmark::IterationCount iterations = state.max_iterations;
  benchmark::IterationCount done = 0;
  for (auto _ : state) {
    if (done == 0) g_shared.span.begin(now_ns());
    put(entities[done % kEntitiesPerCaller], done);
    if (++done == iterations) g_shared.span.finish(now_ns());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const double events = static_cast<double>(iterations) * state.threads();
    const double synced = static_cast<double>(syncs());
    set_counters(state, events / g_shared.span.seconds(), synced == 0 ? 0.0 : events / synced);
  }
}

void BM_Peer_RocksDB_Sync(benchmark::State& state) {
  rocksdb::WriteOptions options;
  options.sync = true;
  peer_loop(state, [&](const std::string& entity, benchmark::IterationCount n) {
    // A key per event, as an event log would use: entity/clock.
    std::string key = entity + "/" + std::to_string(n / kEntitiesPerCaller);
    rocksdb::Status status = g_peers.rocks->Put(options, key, kPayload);
    if (!status.ok()) fail("rocksdb put: " + status.ToString());
  }, [] { return g_peers.rocks->GetOptions().statistics->getTickerCount(rocksdb::WAL_FILE_SYNCED); });
}
BENCHMARK(BM_Peer_RocksDB_Sync)
    ->Setup(SetupRocksDB)
    ->Teardown(TeardownRocksDB)
    ->UseRealTime()
    ->MinTime(1.0)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64);

void BM_Peer_SQLite_Full(benchmark::State& state) {
  peer_loop(state, [&](const std::string& entity, benchmark::IterationCount) {
    std::lock_guard lock(g_peers.sqlite_mutex);
    sqlite3_stmt* insert = g_peers.insert;
    sqlite3_bind_text(insert, 1, entity.data(), static_cast<int>(entity.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert, 2, kPayload.data(), static_cast<int>(kPayload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE) {
      fail(std::string("sqlite insert: ") + sqlite3_errmsg(g_peers.sqlite));
    }
    sqlite3_reset(insert);
  }, [&] {
    // In WAL mode with synchronous=FULL SQLite syncs the WAL at every commit: one per event.
    return static_cast<uint64_t>(state.iterations()) * static_cast<uint64_t>(state.threads());
  });
}
BENCHMARK(BM_Peer_SQLite_Full)
    ->Setup(SetupSQLite)
    ->Teardown(TeardownSQLite)
    ->UseRealTime()
    ->MinTime(1.0)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64);

// What a dedicated writer thread would add to every append: one hand-off to the thread and one
// back (mutex + condition variable each way), measured as a round trip. Leader-based group commit
// pays none for a lone caller (docs/DECISIONS.md).
void BM_ThreadHandoff_RoundTrip(benchmark::State& state) {
  std::mutex mutex;
  std::condition_variable to_worker;
  std::condition_variable to_caller;
  uint64_t posted = 0;
  uint64_t done = 0;
  bool stop = false;
  std::thread worker([&] {
    std::unique_lock lock(mutex);
    for (;;) {
      to_worker.wait(lock, [&] { return stop || posted > done; });
      if (stop) return;
      ++done;
      to_caller.notify_one();
    }
  });
  const int64_t start_ns = now_ns();
  for (auto _ : state) {
    std::unique_lock lock(mutex);
    ++posted;
    to_worker.notify_one();
    to_caller.wait(lock, [&] { return done == posted; });
  }
  {
    std::lock_guard lock(mutex);
    stop = true;
  }
  const double seconds = static_cast<double>(now_ns() - start_ns) * 1e-9;
  to_worker.notify_one();
  worker.join();
  set_counters(state, static_cast<double>(state.iterations()) / seconds, 0.0);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ThreadHandoff_RoundTrip)->UseRealTime()->MinTime(0.5);

}  // namespace

BENCHMARK_MAIN();
