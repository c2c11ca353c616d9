// Export and import benchmarks (include/keel/artifact.h), on a store of KEEL_EXPORT_BENCH_BYTES
// (default 1 GiB) of segments: 10,000 entities, 200-byte payloads, default options, written once
// per run in a temp directory on the real disk, then closed and opened again.
//   BM_Export       export_store of that store while another thread appends (Written) at about
//                   20,000 events/s; counters: writer_blocked_ms (how long the cut held the commit
//                   mutex), append_max_ms (the slowest single append during the export: the
//                   worst stall an appender saw, whatever its cause), appends (how many went
//                   through meanwhile);
//   BM_PeerCopy     the floor: the same files copied with read/write, each fdatasync'd, the
//                   directory synced (what `cp` plus a sync does; no hashing, no checks);
//   BM_Import       import_store of the export (hashing every file, opening and verifying the
//                   copy, renaming it into place).
// Wall time, manual; three iterations each. Compare within one run (the machines are shared).
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
using keel::bench::seconds_since;

using namespace keel;
namespace fs = std::filesystem;

struct Fixture {
  std::string root;
  std::string store_dir;
  std::string artifact_dir;
  std::unique_ptr<Store> store;
  uint64_t store_bytes = 0;
};

uint64_t directory_bytes(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  return bytes;
}

// The store, built once per process.
Fixture& fixture() {
  static Fixture* f = [] {
    auto* fixture = new Fixture();
    fixture->root = keel::bench::temp_dir();
    fixture->store_dir = fixture->root + "/store";
    fixture->artifact_dir = fixture->root + "/artifact";
    uint64_t target = 1ull << 30;
    if (const char* env = std::getenv("KEEL_EXPORT_BENCH_BYTES")) target = std::stoull(env);
    StoreOptions options;
    options.create_if_missing = true;
    auto opened = Store::open(fixture->store_dir, options);
    if (!opened.ok()) fail("open: " + opened.error().to_string());
    fixture->store = std::move(*opened);
    std::string payload(200, 'p');
    std::vector<BatchItem> batch(1000);
    uint64_t n = 0;
    BatchOptions written;
    written.durability = Durability::Written;
    const auto start = std::chrono::steady_clock::now();
    while (directory_bytes(fixture->store_dir) < target) {
      for (int round = 0; round < 100; ++round) {
        for (BatchItem& item : batch) {
          item.coordinate = Coordinate{"entity:" + std::to_string(n % 10'000), ""};
          item.kind = EventKind::make(1, 1);
          std::snprintf(payload.data(), payload.size(), "%llu", static_cast<unsigned long long>(n));
          item.payload = payload;
          ++n;
        }
        if (!fixture->store->append_batch(batch, written).ok()) fail("append");
      }
    }
    // Closed and opened again, as a service finds its store at a restart: the clean close leaves
    // an index image, so opening the export's copy replays only what followed it.
    fixture->store.reset();
    opened = Store::open(fixture->store_dir, options);
    if (!opened.ok()) fail("reopen: " + opened.error().to_string());
    fixture->store = std::move(*opened);
    fixture->store_bytes = directory_bytes(fixture->store_dir);
    std::fprintf(stderr, "artifact_bench: store of %llu events, %.2f GiB, written in %.1f s\n",
                 static_cast<unsigned long long>(n),
                 static_cast<double>(fixture->store_bytes) / (1ull << 30), seconds_since(start));
    return fixture;
  }();
  return *f;
}

void BM_Export(benchmark::State& state) {
  Fixture& f = fixture();
  double blocked_ms = 0, check_ms = 0, append_max_ms = 0, appends = 0, bytes = 0;
  for (auto _ : state) {
    fs::remove_all(f.artifact_dir);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> count{0};
    double worst = 0;
    AppendOptions options;
    options.durability = Durability::Written;
    std::thread appender([&] {
      for (uint64_t i = 0; !stop; ++i) {
        const auto start = std::chrono::steady_clock::now();
        if (!f.store->append({"entity:" + std::to_string(i % 10'000), ""}, EventKind::make(1, 2),
                             std::string(200, 'a'), options)
                 .ok()) {
          fail("append during export");
        }
        worst = std::max(worst, seconds_since(start));
        ++count;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
    const auto start = std::chrono::steady_clock::now();
    auto report = export_store(*f.store, f.artifact_dir);
    state.SetIterationTime(seconds_since(start));
    stop = true;
    appender.join();
    if (!report.ok()) fail("export: " + report.error().to_string());
    blocked_ms += static_cast<double>(report->writer_blocked_us) / 1000.0;
    check_ms += static_cast<double>(report->check_ms);
    append_max_ms += worst * 1000.0;
    appends += static_cast<double>(count.load());
    bytes += static_cast<double>(report->bytes);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["writer_blocked_ms"] = blocked_ms / n;
  state.counters["check_ms"] = check_ms / n;
  state.counters["append_max_ms"] = append_max_ms / n;
  state.counters["appends"] = appends / n;
  state.counters["GiB"] = bytes / n / (1ull << 30);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Export)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

// Copies `from` into the new file `to` and fdatasyncs it.
void copy_and_sync(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (in < 0 || out < 0) fail("open for copy");
  std::vector<char> buffer(1 << 20);
  while (true) {
    ssize_t got = ::read(in, buffer.data(), buffer.size());
    if (got < 0) fail("read");
    if (got == 0) break;
    if (::write(out, buffer.data(), static_cast<size_t>(got)) != got) fail("write");
  }
  if (::fdatasync(out) != 0) fail("fdatasync");
  ::close(in);
  ::close(out);
}

void BM_PeerCopy(benchmark::State& state) {
  Fixture& f = fixture();
  const std::string to = f.root + "/peer";
  uint64_t bytes = 0;
  for (auto _ : state) {
    fs::remove_all(to);
    bytes += directory_bytes(f.store_dir);
    const auto start = std::chrono::steady_clock::now();
    fs::create_directory(to);
    for (const auto& entry : fs::directory_iterator(f.store_dir)) {
      if (!entry.is_regular_file() || entry.path().filename() == "LOCK") continue;
      copy_and_sync(entry.path().string(), to + "/" + entry.path().filename().string());
    }
    int dir = ::open(to.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir < 0 || ::fsync(dir) != 0) fail("fsync directory");
    ::close(dir);
    state.SetIterationTime(seconds_since(start));
  }
  fs::remove_all(to);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_PeerCopy)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Import(benchmark::State& state) {
  Fixture& f = fixture();
  if (!fs::exists(f.artifact_dir + "/MANIFEST")) {
    fs::remove_all(f.artifact_dir);
    if (!export_store(*f.store, f.artifact_dir).ok()) fail("export for import");
  }
  const std::string to = f.root + "/imported";
  uint64_t bytes = 0;
  double check_ms = 0;
  for (auto _ : state) {
    fs::remove_all(to);
    const auto start = std::chrono::steady_clock::now();
    auto report = import_store(f.artifact_dir, to);
    state.SetIterationTime(seconds_since(start));
    if (!report.ok()) fail("import: " + report.error().to_string());
    bytes += report->bytes;
    check_ms += static_cast<double>(report->check_ms);
  }
  fs::remove_all(to);
  state.counters["check_ms"] = check_ms / static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Import)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  Fixture& f = fixture();
  f.store.reset();
  fs::remove_all(f.root);
  return 0;
}
