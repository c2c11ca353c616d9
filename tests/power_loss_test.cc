// Power loss against the log (issue 4, "Durability"): Log::open on the FaultFileSystem, random
// appends and syncs, a crash at a random point, then recovery must return every event the writer
// acknowledged durable (sequence_durable after a successful sync) with its sequence and chained
// hash, never fail closed, and leave a log whose next open is clean. A negative control shows the
// check catches a writer that acknowledges without syncing; EIO on fdatasync poisons the writer.
#include <catch2/catch.hpp>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "format/event_body.h"
#include "format/record.h"
#include "log/log.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

namespace keel::log {
namespace {

using platform::FaultFileSystem;
using platform::FaultOp;

const std::string kStore = "/store";

// The errno field, stored as a signed integer like PosixFileSystem stores it.
std::optional<int64_t> errno_of(const StoreError& error) {
  const auto* value = error.field("errno");
  if (value == nullptr) return std::nullopt;
  if (const auto* number = std::get_if<int64_t>(value)) return *number;
  return std::nullopt;
}

// Small segments so the random runs rotate; several pages per segment so a power loss can keep a
// later page of the unsynced tail and lose an earlier one (a torn region, not only a torn tail).
LogOptions writable(bool skip_sync = false, uint64_t segment_size = 4096) {
  LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = segment_size;
  options.writer.skip_sync_for_test = skip_sync;
  return options;
}

// sequence -> chained hash of every event recovery kept, and whether their sequences run 1..n.
struct Recovered {
  std::map<uint64_t, Hash128> hashes;
  bool decode_failed = false;
};

RecordVisitor collect(Recovered& out) {
  return [&out](const RecordPosition&, const format::DecodedFrame& frame) {
    if (frame.header.type != format::RecordType::Event &&
        frame.header.type != format::RecordType::Batch) {
      return;
    }
    const char* error =
        format::decode_record_events(frame, [&](uint32_t index, const format::EventBody& event) {
          out.hashes[frame.header.sequence + index] = event.chained_hash;
        });
    if (error != nullptr) out.decode_failed = true;
  };
}

// Appends random events and batches with random payload sizes.
class Appender {
 public:
  explicit Appender(uint64_t seed) : rng_(seed) {}

  // One random record; records the chained hash of each appended event by its sequence.
  Status append_one(SegmentWriter& writer, std::map<uint64_t, Hash128>& written) {
    uint64_t first = writer.next_sequence();
    size_t count = pick(4) == 0 ? 1 + pick(4) : 1;
    std::vector<std::string> payloads;
    std::vector<format::EventBody> events;
    for (size_t i = 0; i < count; ++i) payloads.push_back(std::string(pick(400), 'a' + pick(26)));
    for (size_t i = 0; i < count; ++i) events.push_back(make_event(payloads[i]));
    std::vector<Hash128> hashes(1);
    Status appended =
        count == 1 ? writer.append_event(events[0], hashes.data())
                   : writer.append_batch(std::span<const format::EventBody>(events), &hashes);
    if (!appended.ok()) return appended;
    for (size_t i = 0; i < hashes.size(); ++i) written[first + i] = hashes[i];
    return ok_status();
  }

  uint64_t pick(uint64_t bound) { return rng_() % bound; }

 private:
  format::EventBody make_event(const std::string& payload) {
    ++count_;
    format::EventBody e;
    e.event_id = EventId{0xfa17, count_};
    e.entity = "account:7";
    e.scope = "power";
    e.kind = 0x4001;
    e.entity_clock = count_;
    e.correlation_id = e.event_id;
    e.payload = payload;
    return e;
  }

  std::mt19937_64 rng_;
  uint64_t count_ = 0;
};

struct PowerLossRun {
  uint64_t acknowledged = 0;  // the highest sequence acknowledged durable before the crash
  uint64_t lost = 0;          // acknowledged events missing or with another hash after reopen
  uint64_t altered = 0;       // recovered events whose hash differs from what was written
  bool gap = false;           // recovered sequences do not run 1..n
  std::optional<StoreError> reopen_error;
  std::optional<RecoveryRule> second_tail;
  uint64_t segments = 0;
};

std::unique_ptr<Log> open_log(FaultFileSystem& fs, const LogOptions& options) {
  auto opened = Log::open(fs, kStore, options);
  if (!opened.ok()) FAIL(opened.error().to_string());
  return std::move(opened).value();
}

// Writes with random syncs, crashes, reopens twice. `skip_sync` is the negative control.
PowerLossRun run_power_loss(uint64_t seed, bool skip_sync) {
  FaultFileSystem fs;
  Appender appender(seed);
  std::map<uint64_t, Hash128> written;
  PowerLossRun run;
  {
    auto log = open_log(fs, writable(skip_sync, 4096 * (1 + appender.pick(4))));
    SegmentWriter& writer = *log->writer();
    uint64_t steps = 5 + appender.pick(100);
    for (uint64_t step = 0; step < steps; ++step) {
      KEEL_REQUIRE_OK(appender.append_one(writer, written));
      uint64_t action = appender.pick(10);
      if (action < 3) {
        KEEL_REQUIRE_OK(writer.sync());
        run.acknowledged = writer.sequence_durable();
      } else if (action < 5) {
        KEEL_REQUIRE_OK(writer.flush());  // in the page cache only
      }
    }
    run.segments = writer.active_segment_id();
    fs.crash(seed);  // the handles and the lock of `log` die with the old mount
  }

  Recovered recovered;
  auto reopened = Log::open(fs, kStore, writable(), collect(recovered));
  if (!reopened.ok()) {
    run.reopen_error = std::move(reopened).error();
    return run;
  }
  REQUIRE_FALSE(recovered.decode_failed);
  for (uint64_t sequence = 1; sequence <= run.acknowledged; ++sequence) {
    auto it = recovered.hashes.find(sequence);
    if (it == recovered.hashes.end() || it->second != written.at(sequence)) ++run.lost;
  }
  uint64_t expected = 1;
  for (const auto& [sequence, hash] : recovered.hashes) {
    if (sequence != expected++) run.gap = true;
    auto it = written.find(sequence);
    if (it == written.end() || it->second != hash) ++run.altered;
  }
  CHECK((*reopened)->recovered().next_sequence == expected);
  reopened->reset();  // a process exit without close: the page cache survives

  auto second = Log::open(fs, kStore, writable());
  if (!second.ok()) {
    run.reopen_error = std::move(second).error();
    return run;
  }
  run.second_tail = (*second)->recovered().tail_rule;
  return run;
}

TEST_CASE("power loss: every acknowledged-durable event survives recovery", "[fault]") {
  uint64_t acknowledged_total = 0;
  uint64_t max_segments = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    INFO("seed " << seed);
    PowerLossRun run = run_power_loss(seed, false);
    if (run.reopen_error) FAIL(run.reopen_error->to_string());  // never fail closed
    CHECK(run.lost == 0);
    CHECK(run.altered == 0);
    CHECK_FALSE(run.gap);
    REQUIRE(run.second_tail.has_value());
    CHECK((*run.second_tail == RecoveryRule::CleanEnd ||
           *run.second_tail == RecoveryRule::ZeroFilledTail));
    acknowledged_total += run.acknowledged;
    max_segments = std::max(max_segments, run.segments);
  }
  // The runs exercised something: acknowledged events and rotations.
  CHECK(acknowledged_total > 200);
  CHECK(max_segments > 2);
}

TEST_CASE("power loss negative control: a writer that skips fdatasync is caught", "[fault]") {
  uint64_t detected = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    PowerLossRun run = run_power_loss(seed, true);
    if (run.reopen_error || run.lost > 0) ++detected;
  }
  CHECK(detected > 0);
}

TEST_CASE("power loss: EIO on fdatasync poisons the writer, nothing becomes durable", "[fault]") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    INFO("seed " << seed);
    FaultFileSystem fs;
    Appender appender(seed);
    std::map<uint64_t, Hash128> written;
    uint64_t durable = 0;
    {
      auto log = open_log(fs, writable());
      SegmentWriter& writer = *log->writer();
      for (int i = 0; i < 3; ++i) KEEL_REQUIRE_OK(appender.append_one(writer, written));
      KEEL_REQUIRE_OK(writer.sync());
      durable = writer.sequence_durable();
      REQUIRE(durable == written.rbegin()->first);

      KEEL_REQUIRE_OK(appender.append_one(writer, written));  // stays in the active segment
      fs.fail_nth(FaultOp::SyncData, 1);
      Status synced = writer.sync();
      REQUIRE_FALSE(synced.ok());
      CHECK(synced.error().is(ErrorCode::Io));
      CHECK(errno_of(synced.error()) == int64_t{EIO});
      CHECK(writer.poisoned());
      CHECK(writer.sequence_durable() == durable);

      fs.clear_faults();  // the disk recovers; the writer must not
      Status later = appender.append_one(writer, written);
      REQUIRE_FALSE(later.ok());
      CHECK(later.error().is(ErrorCode::WriterPoisoned));
      REQUIRE(later.error().cause() != nullptr);
      CHECK(errno_of(*later.error().cause()) == int64_t{EIO});
      CHECK(later.error().cause()->field_string("operation") == std::string("fdatasync"));
      CHECK_FALSE(writer.sync().ok());
      CHECK(writer.sequence_durable() == durable);
      fs.crash(seed);
    }

    Recovered recovered;
    auto reopened = Log::open(fs, kStore, writable(), collect(recovered));
    if (!reopened.ok()) FAIL(reopened.error().to_string());
    for (uint64_t sequence = 1; sequence <= durable; ++sequence) {
      REQUIRE(recovered.hashes.count(sequence) == 1);
      CHECK(recovered.hashes.at(sequence) == written.at(sequence));
    }
    // The in-doubt record is whole (every event with its hash) or absent.
    uint64_t in_doubt_first = durable + 1;
    uint64_t in_doubt_last = written.rbegin()->first;
    uint64_t present = 0;
    for (uint64_t sequence = in_doubt_first; sequence <= in_doubt_last; ++sequence) {
      auto it = recovered.hashes.find(sequence);
      if (it == recovered.hashes.end()) continue;
      ++present;
      CHECK(it->second == written.at(sequence));
    }
    CHECK((present == 0 || present == in_doubt_last - durable));
    CHECK(recovered.hashes.size() == durable + present);
  }
}

}  // namespace
}  // namespace keel::log
