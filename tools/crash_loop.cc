// keel-crash-loop: the SIGKILL crash loop of real processes (docs/ARCHITECTURE.md §10).
//
// `run` (the parent) starts this binary again as `child` on a pipe, lets it append from several
// threads for a random few milliseconds (KillPlan), SIGKILLs it, reopens the store writable and
// checks what the child reported against what recovery kept (the Oracle below). The directory is
// reused, so every iteration also checks the receipts of all earlier ones. `child` appends until it
// is killed and writes one line per acknowledged or refused append to stdout, only after the store
// returned.
//
// Threads: the parent is single-threaded (it forks). The child runs kAppenders threads and a
// reactor thread on one Store; its report lines go out under one mutex, one write(2) per append, so
// lines never interleave. The reactor reports nothing: the oracle checks its reactions against
// the stored sources and its committed cursor.
//
// SIGKILL keeps the page cache, so this loop cannot catch a missing fdatasync (the fault file
// system's power-loss tests do). It catches recovery that loses, alters, splits, reorders or
// invents events, chains that break across a torn tail, and epochs or watermarks that go wrong on
// reopen.
//
// Report lines (space-separated; entities never contain spaces):
//   O <epoch>                                        the child opened the store in this epoch
//   E <level> <receipt fields>                       one append acknowledged at level D, W or A
//   B <level> <batch> <index> <count> <fields>       one item of an acknowledged batch
//   R <tag> <error code>                             an append refused as the child intended
//   X <message>                                      the child hit an unexpected error and exits
// where <receipt fields> = <tag> <filler> <sequence> <epoch> <clock> <hlc wall> <hlc logical>
// <event id hex> <chained hash hex> <entity> <lane>. Every payload is `<tag> <filler bytes>`, the
// filler a function of the tag, so a stored payload names the append that wrote it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "keel/consumer.h"
#include "keel/reactor.h"
#include "keel/store.h"
#include "platform/fault_file_system.h"

namespace {

using keel::AppendOptions;
using keel::BatchItem;
using keel::BatchOptions;
using keel::Coordinate;
using keel::Durability;
using keel::ErrorCode;
using keel::EventKind;
using keel::Hash128;
using keel::Receipt;
using keel::Store;
using keel::StoreOptions;
using Clock = std::chrono::steady_clock;

constexpr int kAppenders = 4;
constexpr int kEntities = 8;       // few entities, so threads contend on the same chains
constexpr uint32_t kLanes = 3;     // lanes the child appends to
constexpr uint32_t kLanesMax = 8;  // lane kLanesMax is refused
constexpr const char* kScope = "crash";
constexpr std::string_view kRefusedPrefix = "refused.";
constexpr std::string_view kFencePrefix = "fence.";  // fence.<tag>.k<n>: events of one fence
// The child's reactor answers every event of kReactorSource with one event on kReactions whose
// payload is make_payload("react." + the source's tag, ...) (its tag names the source).
constexpr const char* kReactorName = "crash-reactor";
constexpr const char* kReactorSource = "acct-0";
constexpr const char* kReactions = "reactions";
constexpr std::string_view kReactionPrefix = "react.";
constexpr EventKind kReactionKind = EventKind::make(4, 1);  // appenders use categories 1 to 3

// The child varies the segment size (rotation under load), the visibility policy and the background
// sync interval by seed; the parent's reopen uses seed 0. Recovery must not depend on either.
StoreOptions store_options(uint64_t seed) {
  static constexpr uint64_t kSegmentSizes[] = {64u << 10, 256u << 10, 1u << 20};
  StoreOptions options;
  options.create_if_missing = true;
  options.lanes_max = kLanesMax;
  options.segment_size = kSegmentSizes[seed % 3];
  options.visibility = (seed / 3) % 2 == 1 ? keel::VisibilityPolicy::AfterWrite
                                           : keel::VisibilityPolicy::AfterDurable;
  options.sync_interval = std::chrono::milliseconds((seed / 6) % 2 == 1 ? 5 : 50);
  // Periodic index images while the child runs, so kills land before, during and after them and
  // reopens start from an image cut at a durable point plus the log after it.
  options.index_image_interval = std::chrono::milliseconds(20);
  options.index_image_min_events = 32;
  return options;
}

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string make_payload(std::string_view tag, uint64_t filler) {
  std::string payload(tag);
  payload.push_back(' ');
  uint64_t state = 0xcbf29ce484222325ull;
  for (char c : tag) state = (state ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  for (uint64_t i = 0; i < filler; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    payload.push_back(static_cast<char>('a' + (state >> 33) % 26));
  }
  return payload;
}

std::string hash_hex(const Hash128& h) { return h.to_hex(); }
std::optional<Hash128> hash_from_hex(std::string_view hex) {
  // Hash128 and EventId share the layout and the hex form (high then low).
  auto id = keel::EventId::from_hex(hex);
  if (!id) return std::nullopt;
  return Hash128{id->high, id->low};
}

char level_letter(Durability level) {
  return level == Durability::Durable ? 'D' : level == Durability::Written ? 'W' : 'A';
}

// ---------------------------------------------------------------------------------------------
// The child.

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(4);  // the parent is gone
    text.remove_prefix(static_cast<size_t>(n));
  }
}

// Thrown to end an appender thread of the power-loss mode (no process to kill there).
struct Stopped {};

// Where the appenders' report lines go: stdout (the child process of `run`), or a string kept in
// memory (`power`, where the appenders run in the loop's own process).
class Reporter {
 public:
  Reporter() = default;
  explicit Reporter(std::string* lines) : lines_(lines) {}

  void send(const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (lines_ != nullptr) {
      lines_->append(text);
    } else {
      write_all(STDOUT_FILENO, text);
    }
  }
  // An unexpected failure: the child exits; an in-process appender stops, and reports it unless
  // the power was cut (then every failure is expected).
  [[noreturn]] void fatal(const std::string& message) {
    std::string line = "X " + message;
    for (char& c : line) c = c == '\n' ? ' ' : c;
    if (lines_ == nullptr) {
      send(line + "\n");
      _exit(3);
    }
    if (!power_cut_) send(line + "\n");
    throw Stopped{};
  }
  // Power-loss mode: from now on nothing reaches the disk, and the appenders stop.
  void cut_power() { power_cut_ = true; }
  bool stopping() const { return power_cut_; }

 private:
  std::mutex mutex_;
  std::string* lines_ = nullptr;
  std::atomic<bool> power_cut_{false};
};

class Appender {
 public:
  Appender(Store& store, Reporter& out, uint64_t epoch, int thread, uint64_t seed)
      : store_(store), out_(out), epoch_(epoch), thread_(thread), rng_(seed) {}

  void run() {
    while (!out_.stopping()) {
      uint64_t dice = rng_() % 100;
      if (dice < 45)
        append_one(Durability::Durable);
      else if (dice < 60)
        append_one(Durability::Written);
      else if (dice < 70)
        append_one(Durability::Accepted);
      else if (dice < 85)
        append_batch();
      else if (dice < 95 || thread_ != 0)
        append_refused();
      else
        append_fenced();
    }
  }

 private:
  std::string next_tag() {
    return "e" + std::to_string(epoch_) + ".t" + std::to_string(thread_) + ".n" +
           std::to_string(++count_);
  }
  Durability any_level() { return static_cast<Durability>(rng_() % 3); }
  // While another thread's fence is open, unfenced appends fail fast with VisibilityFenceActive
  // (Retryable: nothing was written); they are retried until it ends.
  template <class Append>
  auto retried(Append append) {
    for (;;) {
      auto result = append();
      if (result.ok() || !result.error().is(ErrorCode::VisibilityFenceActive) || out_.stopping()) {
        return result;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  std::string entity() { return "acct-" + std::to_string(rng_() % kEntities); }
  EventKind kind() {
    return EventKind::make(static_cast<uint8_t>(1 + rng_() % 3),
                           static_cast<uint16_t>(rng_() % 100));
  }
  uint64_t filler() {  // mostly small, sometimes pages long, rarely a good part of a segment
    uint64_t dice = rng_() % 100;
    if (dice < 90) return rng_() % 300;
    if (dice < 99) return 300 + rng_() % 4000;
    return 4000 + rng_() % 16000;
  }
  static std::string fields(const Receipt& r, const std::string& tag, uint64_t filler,
                            const std::string& entity, uint32_t lane) {
    std::ostringstream s;
    s << tag << ' ' << filler << ' ' << r.sequence << ' ' << r.epoch << ' ' << r.entity_clock << ' '
      << r.hlc.wall_ms << ' ' << r.hlc.logical << ' ' << r.event_id.to_hex() << ' '
      << hash_hex(r.chained_hash) << ' ' << entity << ' ' << lane;
    return s.str();
  }

  void append_one(Durability level) {
    std::string tag = next_tag();
    Coordinate coordinate{entity(), kScope};
    AppendOptions options;
    options.durability = level;
    options.lane = static_cast<uint32_t>(rng_() % kLanes);
    options.idempotency_key = tag;  // the parent retries it after the crash (check_keys)
    uint64_t bytes = filler();
    EventKind event_kind = kind();
    std::string payload = make_payload(tag, bytes);
    auto receipt = retried([&] { return store_.append(coordinate, event_kind, payload, options); });
    if (!receipt.ok()) out_.fatal("append " + tag + " failed: " + receipt.error().to_string());
    out_.send(std::string("E ") + level_letter(level) + ' ' +
              fields(*receipt, tag, bytes, coordinate.entity, options.lane) + "\n");
  }

  void append_batch() {
    std::string batch = next_tag();
    size_t count = 1 + rng_() % 8;
    Durability level = any_level();
    std::vector<BatchItem> items(count);
    std::vector<uint64_t> fillers(count);
    for (size_t k = 0; k < count; ++k) {
      fillers[k] = filler();
      items[k].coordinate = Coordinate{entity(), kScope};
      items[k].kind = kind();
      items[k].payload = make_payload(batch + ".i" + std::to_string(k), fillers[k]);
      items[k].options.lane = static_cast<uint32_t>(rng_() % kLanes);
    }
    auto receipts = retried([&] { return store_.append_batch(items, BatchOptions{level, {}}); });
    if (!receipts.ok()) out_.fatal("batch " + batch + " failed: " + receipts.error().to_string());
    if (receipts->size() != count) out_.fatal("batch " + batch + " returned too few receipts");
    std::string text;
    for (size_t k = 0; k < count; ++k) {
      text += std::string("B ") + level_letter(level) + ' ' + batch + ' ' + std::to_string(k) +
              ' ' + std::to_string(count) + ' ' +
              fields((*receipts)[k], batch + ".i" + std::to_string(k), fillers[k],
                     items[k].coordinate.entity, items[k].options.lane) +
              "\n";
    }
    out_.send(text);
  }

  // Appends the store must refuse, each marked in its payload; none may ever be stored.
  void append_refused() {
    std::string tag = std::string(kRefusedPrefix) + next_tag();
    uint64_t variant = rng_() % 5;
    Durability level = any_level();
    if (variant == 4) return append_refused_batch(tag, level);
    Coordinate coordinate{entity(), kScope};
    AppendOptions options;
    options.durability = level;
    EventKind event_kind = kind();
    ErrorCode expected = ErrorCode::InvalidArgument;
    if (variant == 0) coordinate.entity = "", expected = ErrorCode::InvalidCoordinate;
    if (variant == 1) coordinate.entity = "../escape", expected = ErrorCode::InvalidCoordinate;
    if (variant == 2) options.lane = kLanesMax;
    if (variant == 3) event_kind = EventKind::make(0, 1);  // category 0: the store's own records
    std::string payload = make_payload(tag, filler());
    auto receipt = retried([&] { return store_.append(coordinate, event_kind, payload, options); });
    if (receipt.ok()) {
      out_.fatal("refused append " + tag + " was accepted as sequence " +
                 std::to_string(receipt->sequence));
    }
    if (!receipt.error().is(expected)) {
      out_.fatal("refused append " + tag + " failed with " + receipt.error().to_string());
    }
    out_.send("R " + tag + " " + std::string(receipt.error().code_name()) + "\n");
  }

  // A batch with one bad item: all of it must be refused.
  void append_refused_batch(const std::string& batch, Durability level) {
    size_t count = 2 + rng_() % 4;
    size_t bad = rng_() % count;
    std::vector<BatchItem> items(count);
    for (size_t k = 0; k < count; ++k) {
      items[k].coordinate = Coordinate{entity(), kScope};
      items[k].kind = kind();
      items[k].payload = make_payload(batch + ".i" + std::to_string(k), filler());
      items[k].options.lane = k == bad ? kLanesMax : static_cast<uint32_t>(rng_() % kLanes);
    }
    auto receipts = retried([&] { return store_.append_batch(items, BatchOptions{level, {}}); });
    if (receipts.ok()) out_.fatal("refused batch " + batch + " was accepted");
    if (!receipts.error().is(ErrorCode::BatchItemFailed)) {
      out_.fatal("refused batch " + batch + " failed with " + receipts.error().to_string());
    }
    std::string text;
    for (size_t k = 0; k < count; ++k) {
      text += "R " + batch + ".i" + std::to_string(k) + " BatchItemFailed\n";
    }
    out_.send(text);
  }

  // A visibility fence: a few single appends through it (each reported once its level is
  // reached, like any receipt), then commit or cancel, reported once it returned: "C <fence>" or
  // "K <fence>". A kill before that leaves the fence open (recovery hides its events) or its end
  // record in flight: the parent wants the fence's events all visible or all absent.
  void append_fenced() {
    std::string fence_name = std::string(kFencePrefix) + next_tag();
    auto fence = retried([&] { return store_.begin_fence(); });
    if (!fence.ok()) out_.fatal("begin_fence failed: " + fence.error().to_string());
    size_t count = 1 + rng_() % 5;
    for (size_t k = 0; k < count; ++k) {
      std::string tag = fence_name + ".k" + std::to_string(k);
      Coordinate coordinate{entity(), kScope};
      AppendOptions options;
      options.durability = any_level();
      options.lane = static_cast<uint32_t>(rng_() % kLanes);
      options.idempotency_key = tag;
      uint64_t bytes = filler();
      auto receipt = (*fence)->append(coordinate, kind(), make_payload(tag, bytes), options);
      if (!receipt.ok()) out_.fatal("fenced " + tag + " failed: " + receipt.error().to_string());
      out_.send(std::string("E ") + level_letter(options.durability) + ' ' +
                fields(*receipt, tag, bytes, coordinate.entity, options.lane) + "\n");
    }
    bool commit = rng_() % 10 < 7;
    auto ended = commit ? (*fence)->commit() : (*fence)->cancel();
    if (!ended.ok()) out_.fatal(fence_name + " end failed: " + ended.error().to_string());
    out_.send((commit ? "C " : "K ") + fence_name + "\n");
  }

  Store& store_;
  Reporter& out_;
  uint64_t epoch_;
  int thread_;
  std::mt19937_64 rng_;
  uint64_t count_ = 0;
};

// The appender threads on `store`; they run until the process is killed, or stop once `out` is
// told the power was cut.
std::vector<std::thread> start_appenders(Store& store, Reporter& out, uint64_t seed) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kAppenders; ++t) {
    threads.emplace_back([&store, &out, seed, t] {
      try {
        Appender(store, out, store.epoch(), t, mix(seed + static_cast<uint64_t>(t))).run();
      } catch (const Stopped&) {
      }
    });
  }
  return threads;
}

// The workload's store options; the child's test-only switches come from --tamper.
StoreOptions workload_options(uint64_t seed, const std::string& tamper) {
  StoreOptions options = store_options(seed);
  options.unsafe_skip_fence_records_for_test = tamper == "fences";
  options.unsafe_skip_fdatasync_for_test = tamper == "nosync";
  return options;
}

// The child's reactor: a durable consumer of kReactorSource's events appending one reaction per
// source (Reactor: causation = the source, an idempotency key derived from the source's id),
// committing every few sources, beside the appenders. A refused batch (another thread's fence is
// open) leaves its cursor before the source, and it tries again. --tamper reactor drops the derived
// keys: a kill between a reaction and its commit then reacts twice, which the oracle must catch.
void run_reactor(Store& store, Reporter& out, bool skip_keys) {
  keel::Query sources;
  sources.entity = kReactorSource;
  keel::ReactorOptions options;
  options.consumer.subscription.batch_max = 4;
  options.unsafe_skip_idempotency_keys_for_test = skip_keys;
  auto react = [](const keel::Event& source) -> keel::Result<std::vector<keel::Reaction>> {
    std::string tag(std::string_view(source.payload).substr(0, source.payload.find(' ')));
    std::vector<keel::Reaction> reactions;
    reactions.push_back(
        keel::Reaction{Coordinate{kReactions, kScope},
                       kReactionKind,
                       make_payload(std::string(kReactionPrefix) + tag, source.sequence % 64),
                       {}});
    return reactions;
  };
  auto reactor = keel::Reactor::open(store, kReactorName, sources, react, options);
  if (!reactor.ok()) out.fatal("reactor open failed: " + reactor.error().to_string());
  for (;;) {
    auto ran = (*reactor)->run_once(std::chrono::milliseconds(20));
    if (!ran.ok() && ran.error().error_class() != keel::ErrorClass::Retryable) {
      out.fatal("reactor failed: " + ran.error().to_string());
    }
  }
}

int run_child(const std::string& directory, uint64_t seed, const std::string& tamper) {
  Reporter out;
  auto opened = Store::open(directory, workload_options(seed, tamper));
  if (!opened.ok()) out.fatal("open failed: " + opened.error().to_string());
  std::unique_ptr<Store> store = std::move(*opened);
  out.send("O " + std::to_string(store->epoch()) + "\n");
  std::thread reactor([&] { run_reactor(*store, out, tamper == "reactor"); });
  for (auto& thread : start_appenders(*store, out, seed)) thread.join();  // never: we are killed
  reactor.join();
  return 0;
}

// ---------------------------------------------------------------------------------------------
// The parent: what the child reported.

struct Reported {
  char level = 'D';   // D, W or A
  std::string batch;  // empty for a single append
  std::string fence;  // the fence it was appended through; empty for none
  uint32_t index = 0;
  uint32_t count = 1;
  std::string tag;
  uint64_t filler = 0;
  Receipt receipt;
  std::string entity;
  uint32_t lane = 0;
  int iteration = 0;
  bool kept = false;  // seen after a reopen, whose close made it durable: must stay
  bool lost = false;  // absent after a reopen: must never come back

  std::string describe() const {
    std::ostringstream s;
    s << (batch.empty() ? "receipt " : "batch item ") << tag << " (level " << level
      << ", iteration " << iteration << ", sequence " << receipt.sequence << ", epoch "
      << receipt.epoch << ", clock " << receipt.entity_clock << ", id " << receipt.event_id.to_hex()
      << ", hash " << hash_hex(receipt.chained_hash) << ", " << entity << " lane " << lane << ")";
    return s.str();
  }
};

struct ChildReport {
  bool in_process = false;      // `power`: appenders in this process, stopped, not killed
  bool commits_durable = true;  // a returned fence commit is durable (not under AfterWrite)
  std::optional<uint64_t> epoch;
  std::vector<Reported> receipts;
  std::vector<std::pair<std::string, char>> fence_ends;  // fence, 'C' committed or 'K' cancelled
  std::vector<std::string> refused;
  std::vector<std::string> problems;  // X lines and malformed lines
  int wait_status = 0;
};

bool parse_u64(const std::string& text, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  out = value;
  return true;
}

bool parse_receipt_fields(const std::vector<std::string>& w, size_t at, Reported& r) {
  if (w.size() != at + 11) return false;
  uint64_t lane = 0, logical = 0;
  auto id = keel::EventId::from_hex(w[at + 7]);
  auto hash = hash_from_hex(w[at + 8]);
  r.tag = w[at];
  r.entity = w[at + 9];
  bool ok = parse_u64(w[at + 1], r.filler) && parse_u64(w[at + 2], r.receipt.sequence) &&
            parse_u64(w[at + 3], r.receipt.epoch) && parse_u64(w[at + 4], r.receipt.entity_clock) &&
            parse_u64(w[at + 5], r.receipt.hlc.wall_ms) && parse_u64(w[at + 6], logical) && id &&
            hash && parse_u64(w[at + 10], lane) && logical <= UINT32_MAX && lane < kLanesMax;
  if (!ok) return false;
  r.receipt.hlc.logical = static_cast<uint32_t>(logical);
  r.receipt.event_id = *id;
  r.receipt.chained_hash = *hash;
  r.lane = static_cast<uint32_t>(lane);
  return true;
}

void parse_line(const std::string& line, ChildReport& report) {
  std::vector<std::string> w;
  std::istringstream words(line);
  for (std::string word; words >> word;) w.push_back(word);
  bool ok = false;
  if (!w.empty() && w[0] == "X") {
    report.problems.push_back("the child reported: " +
                              line.substr(std::min<size_t>(2, line.size())));
    return;
  }
  if (w.size() == 2 && w[0] == "O") {
    uint64_t epoch = 0;
    ok = parse_u64(w[1], epoch);
    report.epoch = epoch;
  } else if (w.size() == 2 && (w[0] == "C" || w[0] == "K")) {
    ok = w[1].starts_with(kFencePrefix);
    report.fence_ends.emplace_back(w[1], w[0][0]);
  } else if (w.size() == 3 && w[0] == "R") {
    ok = w[1].starts_with(kRefusedPrefix);
    report.refused.push_back(w[1]);
  } else if (w.size() >= 2 && (w[0] == "E" || w[0] == "B") && w[1].size() == 1 &&
             std::string_view("DWA").find(w[1][0]) != std::string_view::npos) {
    Reported r;
    r.level = w[1][0];
    uint64_t index = 0, count = 1;
    if (w[0] == "E") {
      ok = parse_receipt_fields(w, 2, r);
      if (ok && r.tag.starts_with(kFencePrefix)) r.fence = r.tag.substr(0, r.tag.rfind(".k"));
    } else {
      r.batch = w.size() > 2 ? w[2] : "";
      ok = w.size() > 4 && parse_u64(w[3], index) && parse_u64(w[4], count) && index < count &&
           count <= 10'000 && parse_receipt_fields(w, 5, r);
    }
    r.index = static_cast<uint32_t>(index);
    r.count = static_cast<uint32_t>(count);
    if (ok) report.receipts.push_back(std::move(r));
  }
  if (!ok) report.problems.push_back("malformed report line: " + line);
}

// When the kill comes: `after` past the child's open (its O line), so most iterations append for a
// while whatever the machine's load, or past the spawn, which lands kills in exec, open and
// recovery. A child that has not opened within kOpenPatience is killed and reported as stuck.
struct KillPlan {
  std::chrono::milliseconds after{0};
  bool from_open = true;
};
constexpr std::chrono::seconds kOpenPatience{30};

pid_t spawn_child(const std::string& self, const std::string& directory, uint64_t seed,
                  const std::string& tamper, int fds[2]) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::dup2(fds[1], STDOUT_FILENO);  // the pipe's ends are close-on-exec; the dup is not
  std::string seed_text = std::to_string(seed);
  const char* argv[] = {self.c_str(),      "child",  "--dir",
                        directory.c_str(), "--seed", seed_text.c_str(),
                        nullptr,           nullptr,  nullptr};
  if (!tamper.empty()) argv[6] = "--tamper", argv[7] = tamper.c_str();
  ::execv(self.c_str(), const_cast<char* const*>(argv));
  _exit(127);
}

// Starts `self child`, reads its lines until the plan's moment, SIGKILLs it and reads the rest.
std::optional<ChildReport> run_child_process(const std::string& self, const std::string& directory,
                                             uint64_t seed, const std::string& tamper,
                                             KillPlan plan, std::string& error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    error = "pipe: " + std::string(std::strerror(errno));
    return std::nullopt;
  }
  pid_t pid = spawn_child(self, directory, seed, tamper, fds);
  ::close(fds[1]);
  if (pid < 0) {
    error = "fork: " + std::string(std::strerror(errno));
    ::close(fds[0]);
    return std::nullopt;
  }
  ChildReport report;
  Clock::time_point deadline = Clock::now() + (plan.from_open ? kOpenPatience : plan.after);
  std::string pending;
  bool killed = false;
  for (;;) {
    if (!killed) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{fds[0], POLLIN, 0};
      int ready = left.count() <= 0 ? 0 : ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        ::kill(pid, SIGKILL);
        killed = true;
        if (!report.epoch && plan.from_open) {
          report.problems.push_back("the child did not open the store within 30 s");
        }
        continue;
      }
    }
    char buffer[1 << 16];
    ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is gone (a torn last line stays in `pending`, unread)
    pending.append(buffer, static_cast<size_t>(n));
    size_t begin = 0;
    for (size_t end; (end = pending.find('\n', begin)) != std::string::npos; begin = end + 1) {
      bool opened = report.epoch.has_value();
      parse_line(pending.substr(begin, end - begin), report);
      if (!opened && report.epoch && plan.from_open) deadline = Clock::now() + plan.after;
    }
    pending.erase(0, begin);
  }
  ::close(fds[0]);
  if (!killed) ::kill(pid, SIGKILL);  // EOF before the deadline: it closed stdout or died
  while (::waitpid(pid, &report.wait_status, 0) < 0 && errno == EINTR) {
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// The parent: the oracle.

struct StoredEvent {
  uint64_t epoch = 0;
  keel::EventId id;
  Hash128 hash;
  uint64_t clock = 0;
  keel::Hlc hlc;
  std::string entity;
  uint32_t lane = 0;
  uint16_t kind = 0;
  std::optional<keel::EventId> causation;
  std::string tag;
  uint64_t filler = 0;
};

using Failure = std::optional<std::string>;  // what broke, when something did

#define RETURN_IF_FAILED(expr)                      \
  do {                                              \
    if (Failure failure_ = (expr)) return failure_; \
  } while (false)

struct IterationSummary {
  uint64_t epoch = 0;
  uint64_t events = 0;
  std::optional<uint64_t> child_epoch;  // none when the kill came before the child's open returned
  size_t durable = 0, weaker_kept = 0, weaker_lost = 0, batches = 0, refused = 0, fences = 0;
  size_t recovery_actions = 0;  // what the reopen repaired (a torn tail, ...)
  size_t reactions = 0;         // sources the reactor answered (run mode)
};

// Accumulates every receipt and refusal over the run and checks them after each reopen:
//  - the open succeeds, its epoch exceeds every earlier one (the child's included), and right after
//    it durable == written == visible == next - 1;
//  - verify() is ok, and the scan agrees: payloads well formed, clocks dense per (entity, lane),
//    prev hashes linked, HLC wall time non-decreasing in sequence, no refused payload;
//  - every receipt that had to survive is there with the same epoch, chained hash, id, clock, HLC,
//    entity, lane and payload: those acknowledged Durable, those acknowledged Written when the
//    appenders were only killed (the page cache keeps what was handed to the OS; a power cut may
//    not), those at or below a Durable receipt of
//    their epoch (durable is a prefix), and those seen after an earlier reopen. Any other receipt
//    is there the same way or absent, and once absent never returns;
//  - a sequence never holds another event of the receipt's epoch (only a new epoch reissues it);
//  - batches are whole or absent, their items at consecutive sequences of one epoch;
//  - a fence's events are all visible once its commit returned, all absent (hidden) once its
//    cancel returned, and otherwise all visible or all absent, whatever their own levels;
//  - this iteration's receipts resolve by id (get) and by sequence (read) alike.
class Oracle {
 public:
  // `fs`: the file system the store lives on (null: the real one).
  explicit Oracle(std::string directory, keel::platform::FileSystem* fs = nullptr)
      : directory_(std::move(directory)), fs_(fs) {}

  Failure absorb(int iteration, ChildReport report, IterationSummary& summary) {
    if (!report.problems.empty()) return report.problems.front();
    if (!report.in_process &&
        (!WIFSIGNALED(report.wait_status) || WTERMSIG(report.wait_status) != SIGKILL)) {
      return "the child ended on its own (wait status " + std::to_string(report.wait_status) +
             "; exit 127 means exec failed) instead of being killed";
    }
    if (report.epoch && *report.epoch <= epoch_last_) {
      return "the child opened epoch " + std::to_string(*report.epoch) +
             ", not above the last epoch " + std::to_string(epoch_last_);
    }
    if (report.epoch) epoch_last_ = *report.epoch;
    summary.child_epoch = report.epoch;
    for (Reported& r : report.receipts) {
      if (!report.epoch || r.receipt.epoch != *report.epoch) {
        return r.describe() + " does not carry the epoch the child opened";
      }
      r.iteration = iteration;
      if (r.level == 'D' && r.fence.empty()) {  // a fenced event is visible only if committed
        uint64_t& floor = durable_floor_[r.receipt.epoch];
        floor = std::max(floor, r.receipt.sequence);
      }
      if (!r.batch.empty()) batches_[r.batch].push_back(receipts_.size());
      if (!r.fence.empty()) fences_[r.fence].items.push_back(receipts_.size());
      receipts_.push_back(std::move(r));
    }
    for (auto& tag : report.refused) refused_.push_back(std::move(tag));
    for (const auto& [fence, end] : report.fence_ends) {
      // Under AfterWrite a commit returns once written: a power loss may take it back, so the
      // fence is then only all-or-none.
      if (end == 'K' || report.commits_durable) fences_[fence].end = end;
    }
    iteration_first_ = receipts_.size() - report.receipts.size();
    iteration_refused_ = report.refused.size();
    return std::nullopt;
  }

  // Negative controls: falsify one durable receipt (or claim a stored one was refused) so the
  // check must fail. Returns false while there is no durable receipt to falsify.
  bool tamper(const std::string& mode) {
    if (mode == "keys") {  // the store's own negative control: reopen without the logged keys
      ignore_logged_keys_ = true;
      std::fprintf(stderr, "keel-crash-loop: tampered (keys): reopens ignore the logged keys\n");
      return true;
    }
    if (mode == "fences" || mode == "nosync" || mode == "reactor") {  // a workload control
      std::fprintf(stderr, "keel-crash-loop: tampered (%s): the workload's %s\n", mode.c_str(),
                   mode == "fences"   ? "store writes no fence records"
                   : mode == "nosync" ? "store skips every fdatasync"
                                      : "reactor appends without its derived idempotency keys");
      return true;
    }
    for (size_t i = receipts_.size(); i-- > 0;) {
      Reported& r = receipts_[i];
      if (mode == "written" ? r.level != 'W' || !r.fence.empty() : r.level != 'D') continue;
      if (mode == "hash") r.receipt.chained_hash.low ^= 1;
      if (mode == "epoch" || mode == "written") r.receipt.epoch += 1;
      if (mode == "refused") refused_.push_back(r.tag);
      std::fprintf(stderr, "keel-crash-loop: tampered (%s) with %s\n", mode.c_str(),
                   r.describe().c_str());
      return true;
    }
    return false;
  }

  Failure check(IterationSummary& summary) {
    StoreOptions options = store_options(0);
    options.file_system = fs_;
    options.unsafe_ignore_logged_keys_for_test = ignore_logged_keys_;
    auto opened = Store::open(directory_, options);
    if (!opened.ok()) return "reopen failed: " + opened.error().to_string();
    Store& store = **opened;
    summary.epoch = store.epoch();
    if (store.epoch() <= epoch_last_) {
      return "reopen got epoch " + std::to_string(store.epoch()) + ", not above the last epoch " +
             std::to_string(epoch_last_);
    }
    epoch_last_ = store.epoch();
    RETURN_IF_FAILED(check_watermarks(store.stats()));
    RETURN_IF_FAILED(check_frontier(store, store.stats().sequence_next - 1));
    summary.recovery_actions = store.stats().recovery_actions.size();
    auto report = store.verify();
    if (!report.ok()) return "verify could not run: " + report.error().to_string();
    if (!report->ok) {
      return "verify found a break at sequence " + std::to_string(report->first_bad_sequence) +
             ": " + report->problem;
    }
    RETURN_IF_FAILED(scan(store, summary));
    RETURN_IF_FAILED(check_receipts(summary));
    RETURN_IF_FAILED(check_batches());
    RETURN_IF_FAILED(check_fences(summary));
    RETURN_IF_FAILED(check_point_reads(store));
    RETURN_IF_FAILED(check_refused(summary));
    RETURN_IF_FAILED(check_keys(store));
    RETURN_IF_FAILED(check_reactions(store, summary));
    auto closed = store.close();
    if (!closed.ok()) return "close failed: " + closed.error().to_string();
    return std::nullopt;
  }

 private:
  static Failure check_watermarks(const keel::StoreStats& s) {
    if (s.sequence_durable == s.sequence_written && s.sequence_written == s.sequence_visible &&
        s.sequence_visible + 1 == s.sequence_next) {
      return std::nullopt;
    }
    return "watermarks after reopen: durable " + std::to_string(s.sequence_durable) + ", written " +
           std::to_string(s.sequence_written) + ", visible " + std::to_string(s.sequence_visible) +
           ", next " + std::to_string(s.sequence_next) +
           " (want durable = written = visible = next-1)";
  }

  // Right after a writable open every recovered event has reached every level, globally and in
  // every lane that holds one, and nothing is poisoned; except applied, which the reactor's durable
  // consumer defines: its committed cursor (lanes: between that and the last event).
  static Failure check_frontier(Store& store, uint64_t last) {
    using keel::Watermark;
    auto consumers = keel::list_consumers(store);
    if (!consumers.ok()) return "list_consumers failed: " + consumers.error().to_string();
    uint64_t applied = last;
    for (const keel::ConsumerInfo& c : *consumers) applied = std::min(applied, c.cursor);
    const keel::Frontier f = store.frontier();
    for (Watermark kind : {Watermark::Accepted, Watermark::Written, Watermark::Durable,
                           Watermark::Visible, Watermark::Emitted, Watermark::Applied}) {
      const uint64_t want = kind == Watermark::Applied ? applied : last;
      if (f[kind].global_sequence != want) {
        return "frontier after reopen: " + std::string(keel::watermark_name(kind)) + " at " +
               std::to_string(f[kind].global_sequence) + ", want " + std::to_string(want);
      }
      for (const keel::LaneFrontier& lane : f.lanes) {
        const uint64_t at = lane.sequences[kind];
        if (kind == Watermark::Applied ? at < applied || at > last : at != last) {
          return "frontier after reopen: lane " + std::to_string(lane.lane) + " " +
                 std::string(keel::watermark_name(kind)) + " at " + std::to_string(at) + ", want " +
                 (kind == Watermark::Applied
                      ? "between " + std::to_string(applied) + " and " + std::to_string(last)
                      : std::to_string(last));
        }
      }
    }
    if (f.poisoned || f.visible_minus_durable != 0) return "frontier after reopen: poisoned or gap";
    return std::nullopt;
  }

  // The chain heads and the last event seen while scanning in sequence order.
  struct ScanState {
    struct Head {
      uint64_t clock;
      Hash128 hash;
    };
    std::unordered_map<std::string, Head> heads;  // "entity\nlane" -> last event
    uint64_t last_sequence = 0;
    uint64_t last_wall = 0;
  };

  // One stored event against the events before it (and the payload format the child writes).
  static Failure check_stored(const keel::EventView& e, const StoredEvent& s, bool well_formed,
                              ScanState& state) {
    auto at = [&] { return "stored event at sequence " + std::to_string(e.sequence); };
    std::string key = s.entity + '\n' + std::to_string(s.lane);
    auto head = state.heads.find(key);
    if (e.sequence <= state.last_sequence) {
      return at() + " follows sequence " + std::to_string(state.last_sequence);
    }
    if (e.hlc.wall_ms < state.last_wall) return at() + ": HLC wall time went backwards";
    if (!well_formed) return at() + ": payload is not one the child wrote";
    if (s.tag.starts_with(kRefusedPrefix)) return at() + " holds refused append " + s.tag;
    if (e.entity_clock != (head == state.heads.end() ? 1 : head->second.clock + 1)) {
      return at() + ": clock " + std::to_string(e.entity_clock) + " of " + key + " is not dense";
    }
    if (head != state.heads.end() && e.prev_hash != head->second.hash) {
      return at() + ": prev hash is not the chained hash of the previous event of " + key;
    }
    state.heads[key] = ScanState::Head{e.entity_clock, e.chained_hash};
    state.last_sequence = e.sequence;
    state.last_wall = e.hlc.wall_ms;
    return std::nullopt;
  }

  Failure scan(Store& store, IterationSummary& summary) {
    stored_.clear();
    tags_.clear();
    ScanState state;
    Failure failure;
    auto status = store.scan(1, UINT64_MAX, [&](const keel::EventView& e) {
      size_t space = e.payload.find(' ');
      StoredEvent s;
      s.epoch = e.epoch;
      s.id = e.event_id;
      s.hash = e.chained_hash;
      s.clock = e.entity_clock;
      s.hlc = e.hlc;
      s.entity = e.entity;
      s.lane = e.lane;
      s.kind = e.kind.value;
      s.causation = e.causation_id;
      s.tag = e.payload.substr(0, space);
      if (space != std::string_view::npos) s.filler = e.payload.size() - space - 1;
      bool well_formed =
          space != std::string_view::npos && e.payload == make_payload(s.tag, s.filler);
      failure = check_stored(e, s, well_formed, state);
      if (failure) return false;
      tags_.insert(s.tag);
      stored_.emplace(e.sequence, std::move(s));
      return true;
    });
    if (failure) return failure;
    if (!status.ok()) return "scan failed: " + status.error().to_string();
    summary.events = stored_.size();
    if (stored_.size() != store.stats().events) {
      return "the scan saw " + std::to_string(stored_.size()) + " events, stats() says " +
             std::to_string(store.stats().events);
    }
    return std::nullopt;
  }

  static Failure compare(const Reported& r, const StoredEvent& s) {
    std::string field = s.id != r.receipt.event_id          ? "event id " + s.id.to_hex()
                        : s.clock != r.receipt.entity_clock ? "clock " + std::to_string(s.clock)
                        : s.hlc != r.receipt.hlc            ? "HLC " + std::to_string(s.hlc.wall_ms)
                        : s.entity != r.entity || s.lane != r.lane
                            ? "coordinate " + s.entity + " lane " + std::to_string(s.lane)
                        : s.tag != r.tag || s.filler != r.filler ? "payload of " + s.tag
                                                                 : "";
    if (field.empty()) return std::nullopt;
    return r.describe() + ": the stored event has the same hash but " + field;
  }

  Failure check_receipts(IterationSummary& summary) {
    for (size_t i = 0; i < receipts_.size(); ++i) {
      Reported& r = receipts_[i];
      auto floor = durable_floor_.find(r.receipt.epoch);
      char fence_end = r.fence.empty() ? 0 : fences_[r.fence].end;
      const bool written_kept = r.level == 'W' && fs_ == nullptr;  // killed, not powered off
      bool required = r.fence.empty() ? r.level == 'D' || written_kept || r.kept ||
                                            (floor != durable_floor_.end() &&
                                             r.receipt.sequence <= floor->second)
                                      : fence_end == 'C' || r.kept;
      auto stored = stored_.find(r.receipt.sequence);
      bool same_epoch = stored != stored_.end() && stored->second.epoch == r.receipt.epoch;
      if (same_epoch && fence_end == 'K') {
        return r.describe() + " is visible although its fence " + r.fence + " was cancelled";
      }
      if (same_epoch && stored->second.hash != r.receipt.chained_hash) {
        return r.describe() +
               ": its sequence holds another event of the same epoch, chained hash " +
               hash_hex(stored->second.hash);
      }
      if (!same_epoch) {
        if (required) {
          return "lost acknowledged " + r.describe() + ": its sequence holds " +
                 (stored == stored_.end()
                      ? std::string("nothing")
                      : "an event of epoch " + std::to_string(stored->second.epoch));
        }
        if (i >= iteration_first_) ++summary.weaker_lost;
        r.lost = true;
        continue;
      }
      if (r.lost) return r.describe() + " was absent after an earlier reopen and is back";
      RETURN_IF_FAILED(compare(r, stored->second));
      if (i >= iteration_first_) ++(r.level == 'D' ? summary.durable : summary.weaker_kept);
      r.kept = true;
    }
    return std::nullopt;
  }

  Failure check_batches() {
    for (const auto& [batch, items] : batches_) {
      auto present_now = [&](size_t i) { return receipts_[i].kept && !receipts_[i].lost; };
      const Reported& first = receipts_[items.front()];
      bool present = present_now(items.front());
      for (size_t i : items) {
        if (present_now(i) != present) {
          return "batch " + batch + " is split: " + receipts_[items.front()].describe() + " is " +
                 (present ? "present" : "absent") + ", " + receipts_[i].describe() + " is not";
        }
      }
      if (!present || items.front() < iteration_first_) continue;
      uint64_t base = first.receipt.sequence - first.index;
      for (uint32_t k = 0; k < first.count; ++k) {
        auto s = stored_.find(base + k);
        std::string tag = batch + ".i" + std::to_string(k);
        if (s == stored_.end() || s->second.epoch != first.receipt.epoch || s->second.tag != tag) {
          return "batch " + batch + " is not whole: item " + std::to_string(k) + " of " +
                 std::to_string(first.count) + " is not at sequence " + std::to_string(base + k);
        }
      }
    }
    return std::nullopt;
  }

  // Like batches: a fence's events are all present or all absent.
  Failure check_fences(IterationSummary& summary) {
    for (const auto& [fence, state] : fences_) {
      if (state.items.empty()) continue;  // begun, killed before its first append returned
      auto present_now = [&](size_t i) { return receipts_[i].kept && !receipts_[i].lost; };
      bool present = present_now(state.items.front());
      for (size_t i : state.items) {
        if (present_now(i) != present) {
          return "fence " + fence + " is split: " + receipts_[state.items.front()].describe() +
                 " is " + (present ? "present" : "absent") + ", " + receipts_[i].describe() +
                 " is not";
        }
      }
      summary.fences += state.items.front() >= iteration_first_;
    }
    return std::nullopt;
  }

  Failure check_point_reads(Store& store) {
    for (size_t i = iteration_first_; i < receipts_.size(); ++i) {
      const Reported& r = receipts_[i];
      auto by_id = store.get(r.receipt.event_id);
      if (r.lost) {
        if (by_id.ok()) return "lost " + r.describe() + " is still found by id";
        if (!by_id.error().is(ErrorCode::NotFound)) return "get: " + by_id.error().to_string();
        continue;
      }
      auto by_sequence = store.read(r.receipt.sequence);
      if (!by_id.ok() || !by_sequence.ok()) {
        return r.describe() + " is in the scan but not found by " +
               (by_id.ok() ? "sequence" : "id");
      }
      if (by_id->receipt() != r.receipt || by_sequence->receipt() != r.receipt) {
        return r.describe() + ": get or read returned another receipt";
      }
    }
    return std::nullopt;
  }

  // Single appends carry their tag as idempotency key: after the crash, a retry of a stored one
  // (those of the last child, and a sample of older ones) must return its receipt and write
  // nothing, so keys are rebuilt from whatever the open restored (log, index image, sidecar).
  Failure check_keys(Store& store) {
    const uint64_t next = store.stats().sequence_next;
    size_t older = 0;
    for (const auto& [sequence, s] : stored_) {
      if (s.tag.find(".i") != std::string::npos) continue;  // a batch item: no key
      if (s.tag.starts_with(kReactionPrefix)) continue;     // the reactor's own keys
      if (s.epoch != epoch_last_ - 1 && ++older > 20) continue;
      AppendOptions retry;
      retry.lane = s.lane;
      retry.idempotency_key = s.tag;
      auto receipt = store.append(Coordinate{s.entity, kScope}, EventKind{s.kind},
                                  make_payload(s.tag, s.filler), retry);
      if (!receipt.ok()) return "retry of " + s.tag + " failed: " + receipt.error().to_string();
      Receipt stored{s.id, s.epoch, sequence, s.clock, s.hlc, s.hash};
      if (*receipt != stored) {
        return "retry of " + s.tag + " returned sequence " + std::to_string(receipt->sequence) +
               " instead of the stored sequence " + std::to_string(sequence);
      }
    }
    if (store.stats().sequence_next != next) return "a retry of a stored key wrote an event";
    return std::nullopt;
  }

  // The reactor: every reaction names its source by causation and by tag, and only sources of
  // kReactorSource have one; no source has two (exactly once across kills); every source at or
  // below the reactor's committed cursor has one (the cursor moves only after the reactions).
  Failure check_reactions(Store& store, IterationSummary& summary) {
    std::unordered_map<std::string, uint64_t> source_of_id;  // event id hex -> sequence
    for (const auto& [sequence, s] : stored_) source_of_id.emplace(s.id.to_hex(), sequence);
    std::unordered_map<uint64_t, int> reactions;  // source sequence -> reactions to it
    for (const auto& [sequence, s] : stored_) {
      if (!s.tag.starts_with(kReactionPrefix)) continue;
      auto at = [&] { return "reaction " + s.tag + " at sequence " + std::to_string(sequence); };
      if (s.entity != kReactions || s.kind != kReactionKind.value || !s.causation) {
        return at() + " is not on " + kReactions + " or has no causation";
      }
      auto source = source_of_id.find(s.causation->to_hex());
      if (source == source_of_id.end()) return at() + ": its source is not stored";
      const StoredEvent& from = stored_.at(source->second);
      if (from.entity != kReactorSource || "react." + from.tag != s.tag) {
        return at() + " names source " + from.tag + " of " + from.entity;
      }
      if (++reactions[source->second] > 1) {
        return "source " + from.tag + " at sequence " + std::to_string(source->second) +
               " was reacted to twice";
      }
    }
    auto consumers = keel::list_consumers(store);
    if (!consumers.ok()) return "list_consumers failed: " + consumers.error().to_string();
    uint64_t cursor = 0;
    for (const keel::ConsumerInfo& c : *consumers) {
      if (c.name != kReactorName) continue;
      if (!c.problem.empty()) return "the reactor's cursor file is damaged: " + c.problem;
      cursor = c.cursor;
    }
    for (const auto& [sequence, s] : stored_) {
      if (sequence > cursor) break;
      if (s.entity == kReactorSource && reactions.count(sequence) == 0) {
        return "source " + s.tag + " at sequence " + std::to_string(sequence) +
               " is at or below the reactor's cursor " + std::to_string(cursor) +
               " and has no reaction";
      }
    }
    summary.reactions = reactions.size();
    return std::nullopt;
  }

  Failure check_refused(IterationSummary& summary) {
    summary.refused = iteration_refused_;
    for (const std::string& tag : refused_) {
      if (tags_.count(tag) != 0) return "refused append " + tag + " is stored";
    }
    for (const auto& [batch, items] : batches_)
      summary.batches += items.front() >= iteration_first_;
    return std::nullopt;
  }

  std::string directory_;
  keel::platform::FileSystem* fs_;
  bool ignore_logged_keys_ = false;  // --tamper keys
  std::vector<Reported> receipts_;
  std::unordered_map<std::string, std::vector<size_t>> batches_;
  struct FenceState {
    std::vector<size_t> items;  // receipts_ indexes of its events
    char end = 0;               // 'C' committed, 'K' cancelled, 0 unknown (killed before)
  };
  std::unordered_map<std::string, FenceState> fences_;
  std::vector<std::string> refused_;
  std::map<uint64_t, uint64_t> durable_floor_;  // epoch -> highest Durable receipt's sequence
  uint64_t epoch_last_ = 0;
  size_t iteration_first_ = 0;  // receipts_ index where the current iteration starts
  size_t iteration_refused_ = 0;
  std::unordered_map<uint64_t, StoredEvent> stored_;  // sequence -> event, from the last scan
  std::unordered_set<std::string> tags_;
};

// ---------------------------------------------------------------------------------------------
// Command line.

constexpr const char* kHelp =
    R"(usage: keel-crash-loop run --dir DIR [--iterations N] [--seed S] [--max-ms M] [--per-store K]
       keel-crash-loop power --dir DIR [--iterations N] [--seed S] [--max-ms M] [--per-store K]
       keel-crash-loop child --dir DIR --seed S

The crash loop (docs/FAULTS.md). `run` starts this binary as `child`, which opens (or creates)
the store in DIR and appends from 4 threads - single events at Durable, Written and Accepted,
batches, visibility fences (committed or cancelled), and appends the store must refuse - and runs a
reactor answering each event of acct-0 with one reaction, with an index image written every 20 ms,
reporting each receipt on a pipe. A random 5..M ms (default 200)
after the child opened the store (after its start, one time in four, to kill it inside open and
recovery) the parent SIGKILLs it, reopens the store and checks: every receipt acknowledged Durable
(or covered by one, or seen before) is present with the same epoch, chained hash, id, clock, HLC
and payload; weaker receipts are present the same way or absent; batches are whole or absent; a
fence's events are all visible once its commit returned, all hidden once its cancel returned, and
all or none otherwise; refused appends are absent; no source has two reactions and every source at
or below the reactor's committed cursor has one; verify() is ok; the watermarks agree; the epoch
grows with every open. DIR is reused, so every receipt is checked again each time; after K
iterations (default 200) the store is removed and the loop starts again on a new one, so a long
run's checks stay as fast as its first (the oracle reads the whole store every iteration).

`power` runs the same workload and oracle in this process, on the fault-injecting file system in
memory (DIR only names the store there): after the random delay the power is cut - nothing more
reaches the disk, and every page written since its file's last fdatasync is kept, dropped or
zeroed at random - then the store is reopened on what the disk kept. A SIGKILL keeps the page
cache and cannot see a missing fdatasync; this mode does (--tamper nosync must fail).

N defaults to 100; S to a random seed (printed). `run`: DIR's parent must exist. Exit 0 when
every iteration passes, 1 naming the iteration and the broken receipt when one fails, 2 on usage
errors.

  --tamper hash|epoch|written|refused|keys|fences|nosync|reactor
                                test-only negative control: falsify one reported durable receipt
                                (or claim it was refused; written: (run only) move one receipt
                                acknowledged Written to another epoch, as if the kill had taken
                                it back), reopen ignoring the idempotency keys
                                in the log, let the workload's store write no fence records,
                                (power only) skip every fdatasync, or (run only) let the reactor
                                append without its derived idempotency keys; the run must then
                                fail.
)";

struct Args {
  std::string mode, directory, tamper;
  uint64_t iterations = 100, seed = 0, max_ms = 200, per_store = 200;
  bool seeded = false;
};

std::optional<Args> parse_args(int argc, char** argv, std::string& error) {
  Args args;
  if (argc < 2) return error = "missing mode", std::nullopt;
  args.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return error = "missing value for " + flag, std::nullopt;
    std::string value = argv[++i];
    bool ok = true;
    if (flag == "--dir")
      args.directory = value;
    else if (flag == "--tamper")
      ok = value == "hash" || value == "epoch" || value == "written" || value == "refused" ||
           value == "keys" || value == "fences" || value == "nosync" || value == "reactor",
      args.tamper = value;
    else if (flag == "--iterations")
      ok = parse_u64(value, args.iterations);
    else if (flag == "--seed")
      ok = parse_u64(value, args.seed), args.seeded = true;
    else if (flag == "--per-store")
      ok = parse_u64(value, args.per_store) && args.per_store >= 1;
    else if (flag == "--max-ms")
      ok = parse_u64(value, args.max_ms) && args.max_ms >= 5 && args.max_ms <= 600'000;
    else
      return error = "unknown flag " + flag, std::nullopt;
    if (!ok) return error = "bad value for " + flag + ": " + value, std::nullopt;
  }
  if (args.mode != "run" && args.mode != "child" && args.mode != "power")
    return error = "unknown mode " + args.mode, std::nullopt;
  if (args.mode == "run" && args.tamper == "nosync") {
    return error = "--tamper nosync needs power (a SIGKILL keeps the page cache)", std::nullopt;
  }
  if (args.mode == "power" && args.tamper == "written") {
    return error = "--tamper written needs run (a power cut may take Written events back)",
           std::nullopt;
  }
  if (args.mode == "power" && args.tamper == "reactor") {
    return error = "--tamper reactor needs run (the reactor runs in the child)", std::nullopt;
  }
  if (args.directory.empty()) return error = "--dir is required", std::nullopt;
  if (args.mode == "child" && !args.seeded) return error = "child needs --seed", std::nullopt;
  return args;
}

// One power-loss iteration: the workload runs in this process on `fs` for `after`, then the power
// is cut: every later write, sync, rename and directory sync fails (the process is as good as
// dead), the appenders stop, and the disk keeps, drops or zeroes each page written since its
// file's last sync (FaultFileSystem::crash). Unlike a SIGKILL, this catches a missing fdatasync.
ChildReport run_with_power_cut(keel::platform::FaultFileSystem& fs, const std::string& directory,
                               uint64_t seed, std::chrono::milliseconds after,
                               const std::string& tamper, std::string& how) {
  using keel::platform::FaultOp;
  ChildReport report;
  report.in_process = true;
  StoreOptions options = workload_options(seed, tamper);
  options.file_system = &fs;
  report.commits_durable = options.visibility == keel::VisibilityPolicy::AfterDurable;
  std::string lines;
  {
    Reporter out(&lines);
    auto opened = Store::open(directory, options);
    if (!opened.ok()) {
      report.problems.push_back("open failed: " + opened.error().to_string());
      return report;
    }
    out.send("O " + std::to_string((*opened)->epoch()) + "\n");
    std::vector<std::thread> threads = start_appenders(**opened, out, seed);
    std::this_thread::sleep_for(after);
    // The appenders are told first: a failure they see from here on is the power cut's, never a
    // finding (told after, an appender could meet the failing disk before the flag).
    out.cut_power();
    for (FaultOp op :
         {FaultOp::Write, FaultOp::SyncData, FaultOp::Rename, FaultOp::SyncDirectory}) {
      fs.fail_from_nth(op, 1);
    }
    for (auto& thread : threads) thread.join();
    opened->reset();  // its close fails: nothing more reaches the disk
  }
  keel::platform::CrashReport cut = fs.crash(seed);
  how = "power cut " + std::to_string(after.count()) +
        " ms after open (unsynced pages: " + std::to_string(cut.pages_dropped) + " dropped, " +
        std::to_string(cut.pages_kept) + " kept, " + std::to_string(cut.pages_zeroed) + " zeroed)";
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) parse_line(line, report);
  return report;
}

// The loop of both modes: each iteration one workload (a child process killed with SIGKILL, or
// appenders in this process whose power is cut), then the oracle on the reopened store.
int run_loop(const Args& args) {
  const bool power = args.mode == "power";
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return std::fprintf(stderr, "keel-crash-loop: cannot find own binary\n"), 1;
  self[n] = '\0';
  uint64_t seed =
      args.seeded ? args.seed : mix(static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  std::printf("keel-crash-loop: %llu iterations (%s) in %s, seed %llu, %s after 5..%llu ms\n",
              static_cast<unsigned long long>(args.iterations),
              power ? "power losses, in memory" : "SIGKILLs", args.directory.c_str(),
              static_cast<unsigned long long>(seed), power ? "power cut" : "kill",
              static_cast<unsigned long long>(args.max_ms));
  std::mt19937_64 rng(seed);
  std::unique_ptr<keel::platform::FaultFileSystem> fs;  // power: the disk, across iterations
  std::unique_ptr<Oracle> oracle;
  auto new_store = [&]() -> bool {
    if (power) {
      fs = std::make_unique<keel::platform::FaultFileSystem>();
      if (!fs->create_directory(args.directory).ok()) return false;
    }
    oracle = std::make_unique<Oracle>(args.directory, fs.get());
    return true;
  };
  if (!new_store()) return std::fprintf(stderr, "keel-crash-loop: cannot create the store\n"), 1;
  bool tampered = false;
  const auto started = Clock::now();
  for (uint64_t iteration = 1; iteration <= args.iterations; ++iteration) {
    if (iteration > 1 && (iteration - 1) % args.per_store == 0) {
      // The store so far passed every check: start a new one, with a new oracle.
      std::error_code removed;
      if (!power) std::filesystem::remove_all(args.directory, removed);
      if (removed || !new_store()) {
        std::fprintf(stderr, "keel-crash-loop: cannot start a new store at %s: %s\n",
                     args.directory.c_str(), removed.message().c_str());
        return 1;
      }
      std::printf("keel-crash-loop: a new store from iteration %llu\n",
                  static_cast<unsigned long long>(iteration));
    }
    uint64_t child_seed = mix(mix(seed) + iteration);
    KillPlan plan{std::chrono::milliseconds(5 + rng() % (args.max_ms - 4)), rng() % 4 != 0};
    std::string error, how;
    // The store's own negative controls run in the workload; the others falsify the oracle's view.
    std::string workload_tamper =
        args.tamper == "fences" || args.tamper == "nosync" || args.tamper == "reactor" ? args.tamper
                                                                                       : "";
    std::optional<ChildReport> report;
    if (power) {
      report =
          run_with_power_cut(*fs, args.directory, child_seed, plan.after, workload_tamper, how);
    } else {
      report = run_child_process(self, args.directory, child_seed, workload_tamper, plan, error);
      how = "killed " + std::to_string(plan.after.count()) + " ms after " +
            (plan.from_open ? "open" : "spawn");
    }
    IterationSummary summary;
    Failure failure =
        report ? oracle->absorb(static_cast<int>(iteration), std::move(*report), summary) : error;
    if (!failure && !args.tamper.empty() && !tampered) tampered = oracle->tamper(args.tamper);
    if (!failure) failure = oracle->check(summary);
    if (failure) {
      std::fprintf(
          stderr,
          "keel-crash-loop: FAILED at iteration %llu (seed %llu, child seed %llu, dir %s): "
          "%s\n",
          static_cast<unsigned long long>(iteration), static_cast<unsigned long long>(seed),
          static_cast<unsigned long long>(child_seed), args.directory.c_str(), failure->c_str());
      return 1;
    }
    std::printf(
        "iteration %llu/%llu: %s %s; %zu durable, %zu weaker kept, %zu weaker lost, %zu batches, "
        "%zu fences, %zu refused; store epoch %llu, %llu events, %zu sources reacted to, %zu "
        "recovery actions, verify ok\n",
        static_cast<unsigned long long>(iteration),
        static_cast<unsigned long long>(args.iterations), how.c_str(),
        summary.child_epoch ? ("in epoch " + std::to_string(*summary.child_epoch)).c_str()
                            : "before its open returned",
        summary.durable, summary.weaker_kept, summary.weaker_lost, summary.batches, summary.fences,
        summary.refused, static_cast<unsigned long long>(summary.epoch),
        static_cast<unsigned long long>(summary.events), summary.reactions,
        summary.recovery_actions);
    std::fflush(stdout);
  }
  if (!args.tamper.empty()) {
    std::fprintf(stderr, "keel-crash-loop: --tamper %s found no durable receipt to falsify\n",
                 args.tamper.c_str());
    return 3;
  }
  std::printf("keel-crash-loop: all %llu iterations passed in %.0f s\n",
              static_cast<unsigned long long>(args.iterations),
              std::chrono::duration<double>(Clock::now() - started).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  std::string error;
  auto args = parse_args(argc, argv, error);
  if (!args) {
    std::fprintf(stderr, "keel-crash-loop: %s\n\n%s", error.c_str(), kHelp);
    return 2;
  }
  if (args->mode == "child") return run_child(args->directory, args->seed, args->tamper);
  return run_loop(*args);
}
