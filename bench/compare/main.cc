// keel-compare: keel, LevelDB, RocksDB and SQLite on the same event-log workloads in one run.
// Each (subject, repetition) runs in its own child process on a fresh directory, subjects
// interleaved within each repetition so the machine's noise falls on all of them alike. Prints
// the medians, the ratios of keel to each peer and the fdatasync probe of the run; writes CSV.
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "report.h"
#include "subject.h"
#include "workload.h"

namespace keel::compare {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "keel-compare: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void put_be64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

std::vector<std::string> subject_names() {
  return {"keel", "leveldb", "leveldb+key", "rocksdb", "rocksdb+key", "sqlite", "sqlite+key"};
}

std::unique_ptr<Subject> make_subject(const std::string& name) {
  if (name == "keel") return make_keel();
  if (name == "leveldb" || name == "leveldb+key") return make_leveldb(name.ends_with("+key"));
  if (name == "rocksdb" || name == "rocksdb+key") return make_rocksdb(name.ends_with("+key"));
  if (name == "sqlite" || name == "sqlite+key") return make_sqlite(name.ends_with("+key"));
  return nullptr;
}

namespace {

constexpr const char* kUsage = R"(usage: keel-compare [options]

Runs keel, LevelDB, RocksDB and SQLite on the same event-log workloads in one run and prints the
medians, the ratios of keel to each peer, and the disk's fdatasync latency measured in the same run.
Each subject uses its default options; "+key" peers also write a per-entity secondary key in the
same batch as each event (keel always keeps one). Every (subject, repetition) runs in a fresh
directory in its own process, once the disk has settled: after a sync(), fdatasync probes until
their median is within 1.5 x the run's first probe (at most 60 s), so that no subject's fdatasyncs
wait behind the writeback of what the one before it wrote.

workloads, per subject and repetition:
  single appends at Written (--events), then close, disk use, reopen, entity streams after the
  reopen (--streams), a full scan with the page cache warm, durable appends from each number of
  --callers for --durable-seconds each; batches at Written (--batch-events, --batch-size) in a
  fresh store; the reopen of a store of --reopen-events events built in batches.

options:
  --subjects LIST        comma-separated, of: keel leveldb leveldb+key rocksdb rocksdb+key sqlite
                         sqlite+key (default: all)
  --entities N           distinct entities (default 10000)
  --payload-bytes N      random, incompressible payload size (default 100)
  --zipf S               entity popularity: Zipf with exponent S > 0 (default: uniform)
  --events N             single appends (default 1000000)
  --batch-events N       events appended in batches (default 3000000)
  --batch-size N         events per batch (default 100)
  --callers LIST         durable caller counts (default 1,8,64)
  --durable-seconds S    seconds per caller count (default 2)
  --reopen-events N      events in the store whose reopen is timed; 0 skips it (default 10000000)
  --streams N            entity streams read after the reopen (default 200)
  --repetitions N        runs per subject; the table shows medians (default 3)
  --dir DIR              where the stores go (default: a new directory under $TMPDIR)
  --csv PATH             every value and every median as CSV (default compare.csv)
  --markdown PATH        also the run's description and the table in Markdown (what
                         scripts/bench-report puts in docs/BENCHMARKS.md)
  --help                 this text
)";

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "keel-compare: %s\nRun 'keel-compare --help' for the options.\n",
               what.c_str());
  std::exit(2);
}

uint64_t parse_count(const std::string& flag, const std::string& text, uint64_t min) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || v < min) {
    usage_error(flag + " wants a whole number of at least " + std::to_string(min) + ", got '" +
                text + "'");
  }
  return v;
}

double parse_positive(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v > 0) || v > 1e6) {
    usage_error(flag + " wants a positive number, got '" + text + "'");
  }
  return v;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  return parts;
}

// Before each subject: sync(), then fdatasync probes until their median is back within 1.5 x
// the run's first probe (at most 60 s). The previous subject's unsynced files would otherwise be
// written back during this one's run, and on a virtual disk a guest's flush also waits for the
// host to drain what it was handed: seconds after a subject that wrote gigabytes, every
// fdatasync (keel's close, each durable caller) would pay for the writes of the one before.
void settle_disk(const std::string& dir, double baseline_us) {
  ::sync();
  const auto start = std::chrono::steady_clock::now();
  double probe = fdatasync_probe_us(dir, 20);
  while (probe > 1.5 * baseline_us) {
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) {
      std::fprintf(stderr, "keel-compare: the disk did not settle (fdatasync %.0f us)\n", probe);
      return;
    }
    ::usleep(200'000);
    probe = fdatasync_probe_us(dir, 20);
  }
}

// Runs one repetition of one subject in a child process; its measurements come back as
// "metric value" lines on a pipe. False when the child failed.
bool run_child(const Config& config, const std::string& name, const std::string& dir,
               int repetition, Results& results) {
  int fds[2];
  if (::pipe(fds) != 0) fail("pipe");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    ::close(fds[0]);
    FILE* out = ::fdopen(fds[1], "w");
    auto subject = make_subject(name);
    run_workloads(config, *subject, dir, [&](const std::string& metric, double value) {
      std::fprintf(out, "%s %.17g\n", metric.c_str(), value);
      std::fflush(out);
      std::fprintf(stderr, "  %-12s %-28s %.6g\n", name.c_str(), metric.c_str(), value);
    });
    std::fclose(out);
    std::_Exit(0);
  }
  ::close(fds[1]);
  FILE* in = ::fdopen(fds[0], "r");
  char metric[128];
  double value;
  while (std::fscanf(in, "%127s %lf", metric, &value) == 2)
    results.add(name, metric, repetition, value);
  std::fclose(in);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int run(int argc, char** argv) {
  Config config;
  std::vector<std::string> subjects = subject_names();
  std::string dir, csv_path = "compare.csv", markdown_path;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc)
      usage_error(flag.starts_with("--") ? flag + " wants a value"
                                         : "unknown argument '" + flag + "'");
    const std::string value = argv[++i];
    if (flag == "--subjects") {
      subjects = split(value);
      if (subjects.empty()) usage_error("--subjects is empty");
      for (const std::string& s : subjects) {
        if (!make_subject(s)) usage_error("unknown subject '" + s + "'");
      }
    } else if (flag == "--entities") {
      config.entities = parse_count(flag, value, 1);
      if (config.entities > (uint64_t{1} << 31)) usage_error("--entities is at most 2^31");
    } else if (flag == "--payload-bytes") {
      config.payload_bytes = parse_count(flag, value, 0);
      if (config.payload_bytes > (1 << 20)) usage_error("--payload-bytes is at most 1048576");
    } else if (flag == "--zipf") {
      config.zipf = parse_positive(flag, value);
    } else if (flag == "--events") {
      config.events = parse_count(flag, value, 1);
    } else if (flag == "--batch-events") {
      config.batch_events = parse_count(flag, value, 1);
    } else if (flag == "--batch-size") {
      config.batch_size = parse_count(flag, value, 1);
    } else if (flag == "--callers") {
      config.callers.clear();
      for (const std::string& c : split(value))
        config.callers.push_back(static_cast<int>(parse_count(flag, c, 1)));
      if (config.callers.empty()) usage_error("--callers is empty");
    } else if (flag == "--durable-seconds") {
      config.durable_seconds = parse_positive(flag, value);
    } else if (flag == "--reopen-events") {
      config.reopen_events = parse_count(flag, value, 0);
    } else if (flag == "--streams") {
      config.streams = static_cast<int>(parse_count(flag, value, 1));
    } else if (flag == "--repetitions") {
      config.repetitions = static_cast<int>(parse_count(flag, value, 1));
    } else if (flag == "--dir") {
      dir = value;
    } else if (flag == "--csv") {
      csv_path = value;
    } else if (flag == "--markdown") {
      markdown_path = value;
    } else {
      usage_error("unknown option '" + flag + "'");
    }
  }
  bool made_dir = false;
  if (dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "keel-compare-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp " + pattern);
    dir = pattern;
    made_dir = true;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) usage_error("--dir " + dir + ": " + ec.message());
  }

  const double probe_before = fdatasync_probe_us(dir);
  std::fprintf(stderr,
               "keel-compare: %zu subjects x %d repetitions in %s; fdatasync probe %.0f us\n",
               subjects.size(), config.repetitions, dir.c_str(), probe_before);
  Results results;
  const auto start = std::chrono::steady_clock::now();
  for (int rep = 1; rep <= config.repetitions; ++rep) {
    for (const std::string& name : subjects) {
      const double at =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "[repetition %d/%d, %s, at %.0f s]\n", rep, config.repetitions,
                   name.c_str(), at);
      std::string sub = name;
      std::replace(sub.begin(), sub.end(), '+', '_');
      settle_disk(dir, probe_before);
      if (!run_child(config, name, dir + "/" + sub, rep, results)) {
        std::fprintf(stderr, "keel-compare: %s failed in repetition %d\n", name.c_str(), rep);
        return 1;
      }
    }
  }
  const double probe_after = fdatasync_probe_us(dir);
  if (made_dir) std::filesystem::remove_all(dir);

  char line[512];
  std::snprintf(
      line, sizeof line,
      "%llu entities (%s), %zu-byte payloads, %llu single appends, %llu in batches of %zu, the "
      "reopen of %llu events, %.1f s per durable caller count, %d repetitions",
      static_cast<unsigned long long>(config.entities),
      config.zipf > 0 ? ("zipf " + std::to_string(config.zipf)).c_str() : "uniform",
      config.payload_bytes, static_cast<unsigned long long>(config.events),
      static_cast<unsigned long long>(config.batch_events), config.batch_size,
      static_cast<unsigned long long>(config.reopen_events), config.durable_seconds,
      config.repetitions);
  const std::string workload = line;
  std::snprintf(line, sizeof line,
                "fdatasync probe (4 KiB pwrite + fdatasync, median): %.0f us before, %.0f us after",
                probe_before, probe_after);
  const std::string probe = line;
  std::printf("keel-compare: %s\n%s\n\n", workload.c_str(), probe.c_str());
  std::fputs(results.table(subjects).c_str(), stdout);
  if (!markdown_path.empty()) {
    std::ofstream markdown(markdown_path);
    markdown << "Workload: " << workload << ".\n\n" << probe << ".\n\n"
             << results.markdown(subjects);
    if (!markdown) {
      std::fprintf(stderr, "keel-compare: could not write %s\n", markdown_path.c_str());
      return 1;
    }
  }
  std::ofstream csv(csv_path);
  csv << results.csv();
  if (!csv) {
    std::fprintf(stderr, "keel-compare: could not write %s\n", csv_path.c_str());
    return 1;
  }
  std::printf("CSV: %s\n", csv_path.c_str());
  return 0;
}

}  // namespace
}  // namespace keel::compare

int main(int argc, char** argv) { return keel::compare::run(argc, argv); }
