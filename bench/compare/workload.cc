#include "workload.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace keel::compare {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Anonymous memory the process holds (RssAnon), after malloc returned to the system what it can:
// the heap and mappings made outside malloc alike (keel's index columns are huge-page mappings,
// which malloc's own counters do not see). Mapped files (LevelDB's tables) are not anonymous.
double memory_in_use() {
  malloc_trim(0);
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) == 0) return std::stod(line.substr(8)) * 1024;  // in kB
  }
  return 0;
}

// Bytes the files under `dir` occupy on disk (allocated blocks, as du counts them).
double disk_bytes(const std::string& dir) {
  double total = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st;
    if (entry.is_regular_file() && ::stat(entry.path().c_str(), &st) == 0) {
      total += static_cast<double>(st.st_blocks) * 512;
    }
  }
  return total;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// The events every subject appends: entity i of the k-th event and its payload.
class Events {
 public:
  explicit Events(const Config& config) {
    std::mt19937_64 rng(42);
    names_.reserve(config.entities);
    for (uint64_t i = 0; i < config.entities; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "entity-%07llu", static_cast<unsigned long long>(i));
      names_.emplace_back(name);
    }
    std::vector<double> cdf;
    if (config.zipf > 0) {
      double sum = 0;
      for (uint64_t i = 0; i < config.entities; ++i)
        cdf.push_back(sum += 1 / std::pow(i + 1.0, config.zipf));
      for (double& c : cdf) c /= sum;
    }
    std::uniform_real_distribution<double> unit(0, 1);
    draws_.resize(kDraws);
    for (uint32_t& d : draws_) {
      if (cdf.empty()) {
        d = static_cast<uint32_t>(rng() % config.entities);
      } else {
        d = static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), unit(rng)) -
                                  cdf.begin());
        d = std::min<uint32_t>(d, static_cast<uint32_t>(config.entities - 1));
      }
    }
    payloads_.resize(kPayloads);
    for (std::string& p : payloads_) {
      p.resize(config.payload_bytes);
      for (char& c : p) c = static_cast<char>(rng());
    }
  }
  const std::string& entity(uint64_t k) const { return names_[draws_[k % kDraws]]; }
  const std::string& payload(uint64_t k) const { return payloads_[k % kPayloads]; }

 private:
  static constexpr size_t kDraws = size_t{1} << 20;
  static constexpr size_t kPayloads = 4096;
  std::vector<std::string> names_;
  std::vector<uint32_t> draws_;
  std::vector<std::string> payloads_;
};

void append_in_batches(Subject& subject, const Events& events, uint64_t count, size_t batch_size,
                       uint64_t first) {
  std::vector<Item> batch;
  for (uint64_t k = 0; k < count;) {
    batch.clear();
    for (size_t i = 0; i < batch_size && k < count; ++i, ++k) {
      batch.push_back({events.entity(first + k), events.payload(first + k)});
    }
    subject.append_batch_written(batch);
  }
}

}  // namespace

void run_workloads(const Config& config, Subject& subject, const std::string& dir,
                   const Sink& sink) {
  const Events events(config);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  // Single appends at Written into a fresh store; then close, disk use, reopen, reads.
  const std::string main = dir + "/main";
  double memory_before = memory_in_use();
  subject.open(main);
  auto start = Clock::now();
  for (uint64_t k = 0; k < config.events; ++k)
    subject.append_written(events.entity(k), events.payload(k));
  sink("append_written", config.events / seconds_since(start));
  sink("memory_after_appends", (memory_in_use() - memory_before) / config.events);
  start = Clock::now();
  subject.close();
  sink("close_ms", seconds_since(start) * 1e3);
  sink("disk_bytes", disk_bytes(main) / config.events);

  memory_before = memory_in_use();
  start = Clock::now();
  subject.open(main);
  sink("reopen_ms", seconds_since(start) * 1e3);
  if (subject.has_entity_index()) {
    std::vector<double> micros;
    double read = 0;
    for (int s = 0; s < config.streams; ++s) {
      const std::string& entity = events.entity(config.events + 7919 * static_cast<uint64_t>(s));
      start = Clock::now();
      read += static_cast<double>(subject.read_entity(entity));
      micros.push_back(seconds_since(start) * 1e6);
    }
    sink("entity_stream_us", median(micros));
    sink("entity_stream_events", read / config.streams);
  }
  sink("memory_after_reopen", (memory_in_use() - memory_before) / config.events);
  subject.scan();  // the page cache and the subject's caches warm
  start = Clock::now();
  const uint64_t scanned = subject.scan();
  const double scan_seconds = seconds_since(start);
  if (scanned != config.events) {
    fail("scan saw " + std::to_string(scanned) + " events of " + std::to_string(config.events));
  }
  sink("scan", scanned / scan_seconds);

  // Durable appends from N callers at once, on the same store.
  uint64_t offset = config.events;
  for (int callers : config.callers) {
    std::atomic<uint64_t> done{0};
    std::atomic<bool> stop{false};
    const uint64_t syncs_before = subject.syncs();
    std::vector<std::thread> threads;
    start = Clock::now();
    for (int t = 0; t < callers; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t k = offset + static_cast<uint64_t>(t) * 1'000'003; !stop.load(); ++k) {
          subject.append_durable(events.entity(k), events.payload(k));
          done.fetch_add(1);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(config.durable_seconds));
    stop = true;
    for (std::thread& t : threads) t.join();
    const double elapsed = seconds_since(start);
    const std::string name = "durable_" + std::to_string(callers);
    sink(name, done.load() / elapsed);
    if (const uint64_t syncs = subject.syncs() - syncs_before; syncs > 0) {
      sink(name + "_events_per_sync", static_cast<double>(done.load()) / syncs);
    }
    offset += done.load();
  }
  subject.close();

  // Batches at Written into a fresh store.
  const std::string batched = dir + "/batches";
  subject.open(batched);
  start = Clock::now();
  append_in_batches(subject, events, config.batch_events, config.batch_size, 0);
  sink("append_batch_written", config.batch_events / seconds_since(start));
  subject.close();
  std::filesystem::remove_all(batched);

  // Reopen of a large store (built in batches, then closed).
  if (config.reopen_events > 0) {
    const std::string big = dir + "/big";
    subject.open(big);
    append_in_batches(subject, events, config.reopen_events, config.batch_size, 0);
    subject.close();
    start = Clock::now();
    subject.open(big);
    sink("reopen_big_ms", seconds_since(start) * 1e3);
    subject.close();
  }
  std::filesystem::remove_all(dir);
}

double fdatasync_probe_us(const std::string& dir, int rounds) {
  const std::string path = dir + "/fdatasync-probe";
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  if (fd < 0) fail("open " + path);
  const std::string block(4096, 'x');
  std::vector<double> micros;
  for (int i = 0; i < rounds; ++i) {
    auto start = Clock::now();
    if (::pwrite(fd, block.data(), block.size(), static_cast<off_t>(i % 16) * 4096) !=
            static_cast<ssize_t>(block.size()) ||
        ::fdatasync(fd) != 0) {
      fail("probe write " + path);
    }
    micros.push_back(seconds_since(start) * 1e6);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return median(micros);
}

}  // namespace keel::compare
