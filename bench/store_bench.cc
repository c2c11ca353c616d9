// Store benchmarks (Foundation II targets, 100-byte payloads): single-caller appends at Written
// (no fsync), batches of 100, a sequential scan and an entity stream read from the page cache.
// Peer in the same binary: SQLite (WAL, synchronous=OFF: the closest to Written) doing the same
// inserts and reads, so the summary can report ratios on the same machine in the same run.
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.h"
#include "keel/keel.h"

namespace {

using keel::bench::temp_dir;

using namespace keel;

const std::string kPayload(100, 'p');
constexpr int kEntities = 1000;

struct StoreFixture {
  std::string dir = temp_dir();
  std::unique_ptr<Store> store;
  std::vector<std::string> entities;

  // key_window: idempotency_window_events (0: the default), with no time window.
  explicit StoreFixture(uint64_t key_window = 0) {
    StoreOptions options;
    options.create_if_missing = true;
    options.visibility = VisibilityPolicy::AfterWrite;
    if (key_window != 0) {
      options.idempotency_window_events = key_window;
      options.idempotency_window = std::chrono::milliseconds(0);
    }
    auto opened = Store::open(dir + "/store", options);
    if (!opened.ok()) std::abort();
    store = std::move(opened).value();
    for (int i = 0; i < kEntities; ++i) entities.push_back("order:" + std::to_string(10000 + i));
  }
  ~StoreFixture() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
  void fill(int64_t events) {
    AppendOptions written;
    written.durability = Durability::Written;
    for (int64_t i = 0; i < events; ++i) {
      if (!store->append({entities[i % kEntities], "bench"}, EventKind::make(1, 1), kPayload, written).ok()) {
        std::abort();
      }
    }
    if (!store->sync().ok()) std::abort();
  }
};

void BM_AppendWritten(benchmark::State& state) {
  StoreFixture f;
  AppendOptions written;
  written.durability = Durability::Written;
  int64_t i = 0;
  for (auto _ : state) {
    auto r = f.store->append({f.entities[i++ % kEntities], "bench"}, EventKind::make(1, 1), kPayload,
                             written);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AppendWritten)->MinTime(1.0);

// The same appends at Accepted: no syscall per append (the buffer is written every 1 MiB), so this
// is the store's own cost per append: validation, clocks, chain, encode, checksum, index.
void BM_AppendAccepted(benchmark::State& state) {
  StoreFixture f;
  AppendOptions accepted;
  accepted.durability = Durability::Accepted;
  int64_t i = 0;
  for (auto _ : state) {
    auto r = f.store->append({f.entities[i++ % kEntities], "bench"}, EventKind::make(1, 1), kPayload,
                             accepted);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AppendAccepted)->MinTime(1.0);

// Issue #6: the cost of an idempotency key and of one gate. Every case runs on a store that holds
// Arg events before timing starts (one store per case, shared by its runs): keyed ones fill the key
// window (Arg keys, no time window), so each timed keyed append also forgets the oldest key, the
// steady state of a store that has run a while; 1,000 keys stay in cache, 1,000,000 (the default
// event window) do not. Keys are unique per append (the lookup misses, the key is added). The gate
// is one registered predicate reading the head and the payload (a typical invariant check).
enum class Variant { kPlain, kKeyed, kGated };

struct FilledFixture {
  StoreFixture store;
  Variant variant;
  int64_t next = 0;  // the next append's number (its key's, when keyed)
  std::string key;

  FilledFixture(uint64_t events, Variant v)
      : store(v == Variant::kKeyed ? events : 0), variant(v) {
    if (v == Variant::kGated) {
      Status registered = store.store->register_gate(Gate{"bounded", [](const GateContext& c) {
        return c.head.clock < 1'000'000'000 && !c.payload.empty()
                   ? GateVerdict::allow()
                   : GateVerdict::deny("unbounded");
      }});
      if (!registered.ok()) std::abort();
    }
    for (int64_t i = 0; i < static_cast<int64_t>(events); ++i) append(Durability::Accepted);
    if (!store.store->sync().ok()) std::abort();
  }
  void append(Durability durability) {
    // Every variant makes the key (a caller's work, not the store's): only the keyed one passes it.
    key.assign("req-");
    key += std::to_string(next);
    AppendOptions options;
    options.durability = durability;
    if (variant == Variant::kKeyed) options.idempotency_key = key;
    if (!store.store->append({store.entities[next % kEntities], "bench"}, EventKind::make(1, 1),
                             kPayload, options)
             .ok()) {
      std::abort();
    }
    ++next;
  }
};

FilledFixture& filled(int64_t events, Variant variant) {
  static std::map<std::pair<int64_t, Variant>, std::unique_ptr<FilledFixture>> fixtures;
  auto& f = fixtures[{events, variant}];
  if (!f) f = std::make_unique<FilledFixture>(static_cast<uint64_t>(events), variant);
  return *f;
}

// The costs are measured as ratios in one loop, which is what the targets are about and what a
// shared machine lets us measure: blocks of appends alternate between the plain store and the
// keyed (or gated) one of the same Arg, each block timed in thread CPU time, so both see the same
// machine weather. Counters: plain_ns and variant_ns per append, ratio = variant / plain, and
// throughput_loss = 1 - plain / variant (the share of the plain store's appends per second the
// variant gives up).
double thread_cpu_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
}

void BM_PairedCost(benchmark::State& state, Durability durability, Variant variant) {
  constexpr int kBlock = 200;
  FilledFixture& plain = filled(state.range(0), Variant::kPlain);
  FilledFixture& other = filled(state.range(0), variant);
  double plain_ns = 0;
  double variant_ns = 0;
  for (auto _ : state) {
    const double t0 = thread_cpu_ns();
    for (int i = 0; i < kBlock; ++i) plain.append(durability);
    const double t1 = thread_cpu_ns();
    for (int i = 0; i < kBlock; ++i) other.append(durability);
    const double t2 = thread_cpu_ns();
    plain_ns += t1 - t0;
    variant_ns += t2 - t1;
  }
  const double appends = static_cast<double>(state.iterations()) * kBlock;
  state.counters["plain_ns"] = plain_ns / appends;
  state.counters["variant_ns"] = variant_ns / appends;
  state.counters["ratio"] = variant_ns / plain_ns;
  state.counters["throughput_loss"] = 1 - plain_ns / variant_ns;
  state.SetItemsProcessed(state.iterations() * 2 * kBlock);
}
// KeyWritten also at 64Ki and 256Ki keys: where between cache and the default window the cost grows.
BENCHMARK_CAPTURE(BM_PairedCost, KeyWritten, Durability::Written, Variant::kKeyed)
    ->Arg(1'000)->Arg(65'536)->Arg(262'144)->Arg(1'000'000)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_PairedCost, KeyAccepted, Durability::Accepted, Variant::kKeyed)
    ->Arg(1'000)->Arg(1'000'000)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_PairedCost, GateWritten, Durability::Written, Variant::kGated)
    ->Arg(1'000)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_PairedCost, GateAccepted, Durability::Accepted, Variant::kGated)
    ->Arg(1'000)->MinTime(2.0);

void BM_AppendBatch100Written(benchmark::State& state) {
  StoreFixture f;
  std::vector<BatchItem> items;
  for (int i = 0; i < 100; ++i) {
    items.push_back(BatchItem{{f.entities[i * 7 % kEntities], "bench"}, EventKind::make(1, 1), kPayload, {}});
  }
  BatchOptions written{Durability::Written, {}};
  for (auto _ : state) {
    auto r = f.store->append_batch(items, written);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_AppendBatch100Written)->MinTime(1.0);

void BM_Scan(benchmark::State& state) {
  StoreFixture f;
  f.fill(state.range(0));
  for (auto _ : state) {
    uint64_t bytes = 0;
    Status s = f.store->scan(1, UINT64_MAX, [&](const EventView& e) {
      bytes += e.payload.size();
      return true;
    });
    if (!s.ok()) std::abort();
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Scan)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

void BM_EntityStream1000(benchmark::State& state) {
  StoreFixture f;
  f.fill(1000 * 100);  // 100 events per entity; order:10000 gets 100 of them ...
  // ... so read a dedicated entity of 1000 events, interleaved with others.
  AppendOptions written;
  written.durability = Durability::Written;
  for (int i = 0; i < 1000; ++i) {
    (void)f.store->append({"hot:1", "bench"}, EventKind::make(1, 1), kPayload, written);
    (void)f.store->append({f.entities[i % kEntities], "bench"}, EventKind::make(1, 1), kPayload, written);
  }
  (void)f.store->sync();
  for (auto _ : state) {
    uint64_t n = 0;
    Status s = f.store->entity_stream("hot:1", 0, 1, UINT64_MAX, [&](const EventView&) {
      ++n;
      return true;
    });
    if (!s.ok() || n != 1000) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_EntityStream1000)->Unit(benchmark::kMicrosecond);

// ---- peers: the kernel's pwrite (the floor of a Written append) and SQLite as an event log ----

// One 280-byte pwrite per iteration into a preallocated file: what one Written append must at
// least cost (keel's format-1 frame for a 100-byte payload was 280 bytes; about 190 in format 3).
void BM_PeerPwrite280(benchmark::State& state) {
  std::string dir = temp_dir();
  int fd = ::open((dir + "/f").c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0 || ::posix_fallocate(fd, 0, 64 << 20) != 0) std::abort();
  std::string frame(280, 'f');
  off_t offset = 0;
  for (auto _ : state) {
    if (::pwrite(fd, frame.data(), frame.size(), offset) != 280) std::abort();
    offset = (offset + 280) % (60 << 20);
  }
  ::close(fd);
  std::filesystem::remove_all(dir);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PeerPwrite280)->MinTime(1.0);


struct SqliteFixture {
  std::string dir = temp_dir();
  sqlite3* db = nullptr;
  sqlite3_stmt* insert = nullptr;

  SqliteFixture() {
    if (sqlite3_open((dir + "/events.db").c_str(), &db) != SQLITE_OK) std::abort();
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=OFF");
    exec("CREATE TABLE events (seq INTEGER PRIMARY KEY, entity TEXT, scope TEXT, kind INTEGER, "
         "clock INTEGER, payload BLOB)");
    exec("CREATE INDEX by_entity ON events(entity, clock)");
    sqlite3_prepare_v2(db, "INSERT INTO events (entity, scope, kind, clock, payload) VALUES (?,?,?,?,?)",
                       -1, &insert, nullptr);
  }
  ~SqliteFixture() {
    sqlite3_finalize(insert);
    sqlite3_close(db);
    std::filesystem::remove_all(dir);
  }
  void exec(const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) std::abort();
  }
  void insert_one(const std::string& entity, int64_t clock) {
    sqlite3_bind_text(insert, 1, entity.data(), static_cast<int>(entity.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert, 2, "bench", 5, SQLITE_STATIC);
    sqlite3_bind_int(insert, 3, 0x1001);
    sqlite3_bind_int64(insert, 4, clock);
    sqlite3_bind_blob(insert, 5, kPayload.data(), static_cast<int>(kPayload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE) std::abort();
    sqlite3_reset(insert);
  }
};

void BM_PeerSqliteInsert(benchmark::State& state) {
  SqliteFixture f;
  std::string entity = "order:10000";
  int64_t i = 0;
  for (auto _ : state) f.insert_one(entity, ++i);  // autocommit: one transaction per event
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PeerSqliteInsert)->MinTime(1.0);

void BM_PeerSqliteInsertBatch100(benchmark::State& state) {
  SqliteFixture f;
  std::string entity = "order:10000";
  int64_t i = 0;
  for (auto _ : state) {
    f.exec("BEGIN");
    for (int k = 0; k < 100; ++k) f.insert_one(entity, ++i);
    f.exec("COMMIT");
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_PeerSqliteInsertBatch100)->MinTime(1.0);

void BM_PeerSqliteScan(benchmark::State& state) {
  SqliteFixture f;
  f.exec("BEGIN");
  for (int64_t i = 0; i < state.range(0); ++i) f.insert_one("order:" + std::to_string(i % kEntities), i);
  f.exec("COMMIT");
  sqlite3_stmt* scan = nullptr;
  sqlite3_prepare_v2(f.db, "SELECT seq, entity, payload FROM events ORDER BY seq", -1, &scan, nullptr);
  for (auto _ : state) {
    uint64_t bytes = 0;
    while (sqlite3_step(scan) == SQLITE_ROW) bytes += static_cast<uint64_t>(sqlite3_column_bytes(scan, 2));
    sqlite3_reset(scan);
    benchmark::DoNotOptimize(bytes);
  }
  sqlite3_finalize(scan);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PeerSqliteScan)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

// The entity stream read of BM_EntityStream1000 in SQLite: 1000 rows of one entity, interleaved
// with 101,000 others, read through the (entity, clock) index.
void BM_PeerSqliteEntity1000(benchmark::State& state) {
  SqliteFixture f;
  f.exec("BEGIN");
  for (int64_t i = 0; i < 100'000; ++i) f.insert_one("order:" + std::to_string(i % kEntities), i);
  for (int64_t i = 0; i < 1000; ++i) {
    f.insert_one("hot:1", i + 1);
    f.insert_one("order:" + std::to_string(i % kEntities), 100'000 + i);
  }
  f.exec("COMMIT");
  sqlite3_stmt* read = nullptr;
  sqlite3_prepare_v2(f.db, "SELECT seq, clock, payload FROM events WHERE entity = ?1 ORDER BY clock",
                     -1, &read, nullptr);
  for (auto _ : state) {
    sqlite3_bind_text(read, 1, "hot:1", 5, SQLITE_STATIC);
    uint64_t n = 0;
    while (sqlite3_step(read) == SQLITE_ROW) n += sqlite3_column_bytes(read, 2) > 0;
    sqlite3_reset(read);
    if (n != 1000) std::abort();
  }
  sqlite3_finalize(read);
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_PeerSqliteEntity1000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
