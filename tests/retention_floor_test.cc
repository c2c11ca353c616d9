// The retention floor (src/log/retention_floor.h, segments/FORMAT.md 8.6 and 9): RETAIN round
// trips; segments below it removed and the log reopened from it; leftovers of a crash between
// writing RETAIN and removing the segments (row BelowRetentionFloor); a RETAIN that does not match
// the log, is damaged or newer (fail closed, no file touched); checkpoints below the floor. Runs on
// FaultFileSystem, so "the directory was fsynced" is checked by what the disk would keep.
#include "log/retention_floor.h"

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/event_body.h"
#include "format/format_constants.h"
#include "format/record.h"
#include "format/segment_header.h"
#include "format/sidecar.h"
#include "log/log.h"
#include "log/segment_files.h"
#include "log/sidecar_file.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

namespace keel::log {
namespace {

using format::RecordType;

constexpr char kDir[] = "/store";
constexpr uint64_t kSegmentSize = 4096;

// A record as the recovery visitor saw it: enough to name it as a checkpoint.
struct Seen {
  uint64_t segment_id = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  RecordType type = RecordType::Event;
  uint64_t sequence = 0;
  uint64_t next_sequence = 0;  // after its events
  uint64_t epoch = 0;
  friend bool operator==(const Seen&, const Seen&) = default;
};

RecordVisitor visitor(std::vector<Seen>& seen) {
  return [&seen](const RecordPosition& at, const format::DecodedFrame& frame) {
    const char* error = nullptr;
    uint64_t events =
        format::is_system_record(frame.header.type) ? 0 : format::record_event_count(frame, &error);
    CHECK(error == nullptr);
    seen.push_back({at.segment_id, at.offset, frame.size, frame.header.type, frame.header.sequence,
                    frame.header.sequence + events, frame.header.epoch});
  };
}

// The sequences of the events among `seen`.
std::vector<uint64_t> event_sequences(const std::vector<Seen>& seen) {
  std::vector<uint64_t> sequences;
  for (const Seen& s : seen) {
    for (uint64_t q = s.sequence; q < s.next_sequence; ++q) sequences.push_back(q);
  }
  return sequences;
}

std::vector<uint64_t> range(uint64_t first, uint64_t end) {
  std::vector<uint64_t> values(end - first);
  std::iota(values.begin(), values.end(), first);
  return values;
}

class Fixture {
 public:
  Fixture() { KEEL_REQUIRE_OK(fs.create_directory(kDir)); }

  platform::FaultFileSystem fs;

  static std::string segment(uint64_t id) {
    return platform::join_path(kDir, segment_file_name(id));
  }
  static std::string retain() { return platform::join_path(kDir, format::kRetentionFloorFileName); }

  Result<std::unique_ptr<Log>> open(bool read_only, std::vector<Seen>* seen = nullptr,
                                    std::optional<Checkpoint> checkpoint = std::nullopt) {
    LogOptions options;
    options.create_if_missing = true;
    options.read_only = read_only;
    options.writer.segment_size = kSegmentSize;
    options.checkpoint = checkpoint;
    if (seen != nullptr) seen->clear();
    return Log::open(fs, kDir, options, seen != nullptr ? visitor(*seen) : RecordVisitor());
  }

  std::unique_ptr<Log> open_ok(bool read_only, std::vector<Seen>* seen = nullptr) {
    auto opened = open(read_only, seen);
    if (!opened.ok()) FAIL(opened.error().to_string());
    return std::move(opened).value();
  }

  void append_synced(Log& log, int count, std::optional<uint64_t> fence_id = std::nullopt) {
    for (int i = 0; i < count; ++i) {
      ++events_;
      payloads_.push_back(std::make_unique<std::string>(40, static_cast<char>('a' + events_ % 26)));
      format::EventBody e;
      e.event_id = EventId{0x7e7a, events_};
      e.entity = "ledger:9";
      e.scope = "retention";
      e.kind = 0x4001;
      e.entity_clock = events_;
      e.correlation_id = e.event_id;
      e.fence_id = fence_id;
      e.payload = *payloads_.back();
      KEEL_REQUIRE_OK(log.writer()->append_event(e, nullptr));
    }
    KEEL_REQUIRE_OK(log.writer()->sync());
  }

  // Synced groups of 3 events until the writer works in `last_segment`, 2 more there, closed.
  void write_segments(uint64_t last_segment) {
    auto log = open_ok(false);
    while (log->writer()->active_segment_id() < last_segment) append_synced(*log, 3);
    append_synced(*log, 2);
    KEEL_REQUIRE_OK(log->close());
  }

  format::SegmentHeader header_of(uint64_t id) {
    format::SegmentHeader header;
    REQUIRE(format::decode_segment_header(fs.contents(segment(id)), header, nullptr) ==
            format::HeaderDecode::Ok);
    return header;
  }
  RetentionFloor floor_at(uint64_t id) { return {id, header_of(id).first_sequence}; }

  std::vector<uint64_t> segment_ids() {
    auto files = list_segment_files(fs, kDir);
    REQUIRE(files.ok());
    std::vector<uint64_t> ids;
    for (const SegmentFile& f : *files) ids.push_back(f.segment_id);
    return ids;
  }

  // Every file but LOCK (which a writable open creates), name -> bytes.
  std::map<std::string, std::vector<std::byte>> snapshot() {
    auto names = fs.list_directory(kDir);
    REQUIRE(names.ok());
    std::map<std::string, std::vector<std::byte>> files;
    for (const std::string& name : *names) {
      if (name != format::kLockFileName) files[name] = fs.contents(platform::join_path(kDir, name));
    }
    return files;
  }

  // Replaces `path` with `bytes`, synced.
  void put(const std::string& path, std::span<const std::byte> bytes) {
    auto file = fs.open(path, platform::OpenMode::CreateOrOpen);
    KEEL_REQUIRE_OK(file);
    KEEL_REQUIRE_OK((*file)->truncate(0));
    KEEL_REQUIRE_OK((*file)->write_at(0, bytes));
    KEEL_REQUIRE_OK((*file)->sync_data());
  }

  uint64_t events() const { return events_; }

 private:
  uint64_t events_ = 0;
  std::vector<std::unique_ptr<std::string>> payloads_;
};

// Both a read-only and a writable open fail with `code` (FailClosed) and change no file.
StoreError require_fails_closed(Fixture& f, ErrorCode code) {
  auto before = f.snapshot();
  std::optional<StoreError> error;
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only open" : "writable open"));
    auto opened = f.open(read_only);
    REQUIRE_FALSE(opened.ok());
    INFO(opened.error().to_string());
    CHECK(opened.error().code() == code);
    CHECK(opened.error().error_class() == ErrorClass::FailClosed);
    CHECK((f.snapshot() == before));
    error = opened.error();
  }
  return *error;
}

// ---- the sidecar ------------------------------------------------------------------------------

TEST_CASE("RetentionFloorRoundTrips", "[retention]") {
  Fixture f;
  auto absent = read_retention_floor(f.fs, kDir);
  KEEL_REQUIRE_OK(absent);
  CHECK_FALSE(absent->has_value());

  KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, RetentionFloor{3, 17}));
  auto read = read_retention_floor(f.fs, kDir);
  KEEL_REQUIRE_OK(read);
  CHECK(*read == std::optional<RetentionFloor>(RetentionFloor{3, 17}));
  // FORMAT.md 8.6: sidecar kind 7, version 1, u64 segment id and u64 sequence; 48 bytes.
  auto bytes = f.fs.contents(f.retain());
  REQUIRE(bytes.size() == 48);
  CHECK(format::load_u32(bytes.data() + 16) == 7);
  CHECK(format::load_u32(bytes.data() + 20) == 1);
  CHECK(format::load_u32(bytes.data() + 24) == 16);
  CHECK(format::load_u64(bytes.data() + 32) == 3);
  CHECK(format::load_u64(bytes.data() + 40) == 17);
  CHECK(f.fs.durable_contents(f.retain()) == bytes);  // written durably

  KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, RetentionFloor{5, 40}));
  read = read_retention_floor(f.fs, kDir);
  KEEL_REQUIRE_OK(read);
  CHECK(*read == std::optional<RetentionFloor>(RetentionFloor{5, 40}));

  auto zero = write_retention_floor(f.fs, kDir, RetentionFloor{0, 1});
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().code() == ErrorCode::InvalidArgument);
  read = read_retention_floor(f.fs, kDir);
  CHECK(*read == std::optional<RetentionFloor>(RetentionFloor{5, 40}));  // unchanged
}

TEST_CASE("DamagedRetainFailsClosed", "[retention]") {
  Fixture f;
  f.write_segments(3);
  KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, f.floor_at(2)));
  auto good = f.fs.contents(f.retain());
  std::string reason;
  SECTION("a flipped payload byte") {
    auto bytes = good;
    bytes[33] ^= std::byte{0x01};
    f.put(f.retain(), bytes);
    reason = "checksum mismatch";
  }
  SECTION("cut short") {
    f.put(f.retain(), std::span(good).first(40));
    reason = "payload length does not match the file size";
  }
  SECTION("a payload of 8 bytes under a valid checksum") {
    f.put(f.retain(), format::encode_sidecar(format::SidecarKind::RetentionFloor, 1,
                                             std::span(good).subspan(32, 8)));
    reason = "retention floor payload is not 16 bytes";
  }
  SECTION("segment 0 under a valid checksum") {
    std::vector<std::byte> payload(16);
    format::store_u64(payload.data() + 8, 1);
    f.put(f.retain(), format::encode_sidecar(format::SidecarKind::RetentionFloor, 1, payload));
    reason = "retention floor names segment 0";
  }
  auto read = read_retention_floor(f.fs, kDir);
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().code() == ErrorCode::CorruptSidecar);
  auto error = require_fails_closed(f, ErrorCode::CorruptSidecar);
  CHECK(error.field_string("path") == f.retain());
  CHECK(error.field_string("reason") == reason);
}

TEST_CASE("NewerRetainVersionIsUnsupported", "[retention]") {
  Fixture f;
  f.write_segments(3);
  std::vector<std::byte> payload(16);
  format::store_u64(payload.data(), 2);
  format::store_u64(payload.data() + 8, f.header_of(2).first_sequence);
  f.put(f.retain(), format::encode_sidecar(format::SidecarKind::RetentionFloor,
                                           kRetentionFloorVersion + 1, payload));
  auto error = require_fails_closed(f, ErrorCode::UnsupportedVersion);
  CHECK(error.field_string("path") == f.retain());
  CHECK(error.field_u64("found") == kRetentionFloorVersion + 1);
}

// ---- removing segments and reopening ----------------------------------------------------------

TEST_CASE("ReopenAfterRemovingSegmentsBelowTheFloorSeesTheRetainedEventsOnly", "[retention]") {
  Fixture f;
  f.write_segments(4);
  RetentionFloor floor = f.floor_at(3);
  REQUIRE(floor.first_sequence > 1);
  uint64_t next_sequence = 0;
  {
    auto log = f.open_ok(false);
    REQUIRE(log->recovered().segments.size() == 4);
    std::vector<std::string> removed;
    KEEL_REQUIRE_OK(log->retain_from(floor, &removed));
    CHECK(removed == std::vector<std::string>{f.segment(1), f.segment(2)});
    CHECK(f.segment_ids() == std::vector<uint64_t>{3, 4});
    // The removals and RETAIN are durable: the directory was fsynced.
    CHECK_FALSE(f.fs.durable_contents(f.segment(1)).has_value());
    CHECK_FALSE(f.fs.durable_contents(f.segment(2)).has_value());
    CHECK(f.fs.durable_contents(f.retain()).has_value());
    // The open Log forgets the removed segments.
    const RecoveredLog& recovered = log->recovered();
    REQUIRE(recovered.segments.size() == 2);
    CHECK(recovered.segments.front().header.segment_id == 3);
    CHECK(recovered.first_sequence == floor.first_sequence);
    CHECK(recovered.retention_floor == std::optional<RetentionFloor>(floor));
    f.append_synced(*log, 2);  // the writer goes on
    next_sequence = log->writer()->next_sequence();
    KEEL_REQUIRE_OK(log->close());
  }
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only reopen" : "writable reopen"));
    std::vector<Seen> seen;
    auto log = f.open_ok(read_only, &seen);
    const RecoveredLog& recovered = log->recovered();
    CHECK(event_sequences(seen) == range(floor.first_sequence, next_sequence));
    CHECK(seen.front().segment_id == 3);
    CHECK(recovered.first_sequence == floor.first_sequence);
    CHECK(recovered.next_sequence == next_sequence);
    CHECK(recovered.retention_floor == std::optional<RetentionFloor>(floor));
    CHECK(recovered.segments.front().header.segment_id == 3);
    CHECK(recovered.actions.empty());
    KEEL_REQUIRE_OK(log->close());
  }
  // Negative control: the same log without RETAIN is a broken chain.
  KEEL_REQUIRE_OK(f.fs.remove(f.retain()));
  auto error = require_fails_closed(f, ErrorCode::SegmentChainBroken);
  CHECK(error.field_string("reason") == "segment ids are not consecutive from 1");
}

TEST_CASE("AFloorAtTheActiveSegmentKeepsOnlyIt", "[retention]") {
  Fixture f;
  f.write_segments(3);
  auto log = f.open_ok(false);
  RetentionFloor floor = f.floor_at(log->writer()->active_segment_id());
  KEEL_REQUIRE_OK(log->retain_from(floor));
  CHECK(f.segment_ids() == std::vector<uint64_t>{3});
  CHECK(log->recovered().segments.size() == 1);
  f.append_synced(*log, 1);
  uint64_t next_sequence = log->writer()->next_sequence();
  KEEL_REQUIRE_OK(log->close());
  std::vector<Seen> seen;
  auto reopened = f.open_ok(false, &seen);
  CHECK(event_sequences(seen) == range(floor.first_sequence, next_sequence));
  CHECK(reopened->writer()->next_sequence() == next_sequence);
}

TEST_CASE("RetainFromRefusesAFloorThatDoesNotFitTheLog", "[retention]") {
  Fixture f;
  f.write_segments(4);
  auto log = f.open_ok(false);
  RetentionFloor floor;
  ErrorCode code = ErrorCode::InvalidArgument;
  std::string reason;
  SECTION("a first sequence other than the segment's") {
    floor = f.floor_at(3);
    ++floor.first_sequence;
    reason = "segment 3 starts at sequence " + std::to_string(floor.first_sequence - 1) + ", not " +
             std::to_string(floor.first_sequence);
  }
  SECTION("a segment after the active one") {
    floor = RetentionFloor{5, f.events() + 1};
    reason = "segment 5 is after the active segment 4";
  }
  SECTION("a floor lower than the one written") {
    KEEL_REQUIRE_OK(log->retain_from(f.floor_at(3)));
    floor = RetentionFloor{2, 1};
    reason = "segment 2 is below the floor already written (segment 3)";
  }
  auto before = f.snapshot();
  auto refused = log->retain_from(floor);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == code);
  CHECK(refused.error().field_string("reason") == reason);
  CHECK((f.snapshot() == before));  // nothing written, nothing removed
  KEEL_REQUIRE_OK(log->close());

  auto reader = f.open_ok(true);
  auto read_only = reader->retain_from(f.floor_at(4));
  REQUIRE_FALSE(read_only.ok());
  CHECK(read_only.error().code() == ErrorCode::ReadOnlyStore);
}

TEST_CASE("RetainFromRefusesAFloorInsideAFence", "[retention]") {
  // A fence begun in segment 2 and committed in segment 4: recovery follows fences from the first
  // retained segment, so it cannot start at segment 3, where the fence is open.
  constexpr uint64_t kFence = 7;
  Fixture f;
  {
    auto log = f.open_ok(false);
    while (log->writer()->active_segment_id() < 2) f.append_synced(*log, 3);
    KEEL_REQUIRE_OK(log->writer()->append_system(
        format::SystemRecord{RecordType::FenceBegin, kFence, format::CancelReason::Caller, 0}));
    while (log->writer()->active_segment_id() < 4) f.append_synced(*log, 3, kFence);
    KEEL_REQUIRE_OK(log->writer()->append_system(
        format::SystemRecord{RecordType::FenceCommit, kFence, format::CancelReason::Caller, 0}));
    f.append_synced(*log, 2);
    KEEL_REQUIRE_OK(log->close());
  }
  RetentionFloor inside = f.floor_at(3);
  auto log = f.open_ok(false);
  auto before = f.snapshot();
  auto refused = log->retain_from(inside);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::InvalidArgument);
  CHECK(refused.error().field_string("reason") == "fence 7 is open where segment 3 starts");
  CHECK((f.snapshot() == before));
  // Segment 2 starts before the fence begins: a floor there is fine.
  KEEL_REQUIRE_OK(log->retain_from(f.floor_at(2)));
  CHECK(f.segment_ids() == std::vector<uint64_t>{2, 3, 4});
  // Scanning from the new floor still finds the fence open where segment 4 starts (the commit is
  // in segment 4).
  refused = log->retain_from(f.floor_at(4));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().field_string("reason") == "fence 7 is open where segment 4 starts");
  KEEL_REQUIRE_OK(log->close());

  // Negative control: the same floor written without the check leaves a log recovery refuses.
  KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, inside));
  KEEL_REQUIRE_OK(remove_segments_below(f.fs, kDir, inside));
  auto error = require_fails_closed(f, ErrorCode::HiddenRangesCorrupt);
  CHECK(error.field_string("rule") == "OpenFenceFollowedByRecords");
}

// ---- Row BelowRetentionFloor: a crash between writing RETAIN and removing ----------------------

TEST_CASE("LeftoverSegmentsBelowTheFloorAreIgnoredReadOnlyAndDeletedWritable", "[retention]") {
  REQUIRE(recovery_row(RecoveryRule::BelowRetentionFloor).outcome ==
          RecoveryOutcome::DeleteSegment);
  Fixture f;
  f.write_segments(4);
  RetentionFloor floor = f.floor_at(3);
  KEEL_REQUIRE_OK(check_retention_floor(f.fs, kDir, floor));
  KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, floor));  // and the crash, before removing
  // Recovery does not read them: damage there changes nothing.
  auto damaged = f.fs.contents(f.segment(1));
  for (size_t i = format::kSegmentHeaderSize; i < damaged.size(); i += 7) {
    damaged[i] ^= std::byte{1};
  }
  f.put(f.segment(1), damaged);
  uint64_t next_sequence = f.events() + 1;
  auto require_actions = [&](const RecoveredLog& recovered, bool applied) {
    REQUIRE(recovered.actions.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CHECK(recovered.actions[i].rule == RecoveryRule::BelowRetentionFloor);
      CHECK(recovered.actions[i].path == f.segment(i + 1));
      CHECK(recovered.actions[i].applied == applied);
    }
    CHECK(recovered.tail_rule == RecoveryRule::CleanEnd);
    CHECK(recovered.first_sequence == floor.first_sequence);
    CHECK(recovered.next_sequence == next_sequence);
  };
  {
    INFO("read-only open: ignores them, writes nothing");
    auto before = f.snapshot();
    std::vector<Seen> seen;
    auto log = f.open_ok(true, &seen);
    require_actions(log->recovered(), false);
    CHECK(event_sequences(seen) == range(floor.first_sequence, next_sequence));
    CHECK((f.snapshot() == before));
  }
  {
    INFO("writable open: deletes them and fsyncs the directory");
    std::vector<Seen> seen;
    auto log = f.open_ok(false, &seen);
    require_actions(log->recovered(), true);
    CHECK(event_sequences(seen) == range(floor.first_sequence, next_sequence));
    CHECK(f.segment_ids() == std::vector<uint64_t>{3, 4});
    CHECK_FALSE(f.fs.durable_contents(f.segment(1)).has_value());
    CHECK_FALSE(f.fs.durable_contents(f.segment(2)).has_value());
    KEEL_REQUIRE_OK(log->close());
  }
  auto again = f.open_ok(false);
  CHECK(again->recovered().actions.empty());
}

// ---- Row SegmentChainGap with a floor ---------------------------------------------------------

TEST_CASE("RetainThatDoesNotMatchTheLogFailsClosed", "[retention]") {
  Fixture f;
  f.write_segments(4);
  std::string path;
  std::string reason;
  ErrorCode code = ErrorCode::SegmentChainBroken;
  RecoveryRule rule = RecoveryRule::SegmentChainGap;
  SECTION("a first sequence other than the floor segment's") {
    RetentionFloor floor = f.floor_at(3);
    ++floor.first_sequence;
    KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, floor));
    path = f.segment(3);
    reason = "first sequence is not the retention floor's";
  }
  SECTION("the floor's segment missing, later ones present") {
    KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, f.floor_at(3)));
    KEEL_REQUIRE_OK(f.fs.remove(f.segment(3)));
    path = f.segment(4);
    reason = "segment ids are not consecutive from the retention floor's segment 3";
  }
  SECTION("a gap after the floor's segment") {
    KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, f.floor_at(2)));
    KEEL_REQUIRE_OK(remove_segments_below(f.fs, kDir, f.floor_at(2)));
    KEEL_REQUIRE_OK(f.fs.remove(f.segment(3)));
    path = f.segment(4);
    reason = "segment ids are not consecutive from the retention floor's segment 2";
  }
  SECTION("no segment from the floor's on") {
    KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, RetentionFloor{9, 100}));
    path = f.retain();
    reason = "the retention floor names segment 9 and no segment from it on exists";
  }
  SECTION("the floor's segment newest and all zero (never NewestSegmentEmpty)") {
    KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, f.floor_at(4)));
    f.put(f.segment(4), std::vector<std::byte>(kSegmentSize));
    path = f.segment(4);
    code = ErrorCode::Corruption;
    rule = RecoveryRule::BadSegmentHeader;
  }
  auto error = require_fails_closed(f, code);
  CHECK(error.field_string("path") == path);
  CHECK(error.field_string("rule") == recovery_row(rule).name);
  if (!reason.empty()) CHECK(error.field_string("reason") == reason);
}

// ---- checkpoints (FORMAT.md 9.4) --------------------------------------------------------------

Checkpoint checkpoint_after(const Seen& s) {
  return Checkpoint{s.next_sequence, s.epoch, s.segment_id, s.offset + s.size, s.offset};
}

TEST_CASE("CheckpointBelowTheFloorIsRejected", "[retention]") {
  Fixture f;
  f.write_segments(4);
  std::vector<Seen> all;
  f.open_ok(true, &all);
  auto first_event_in = [&](uint64_t segment_id) {
    for (const Seen& s : all) {
      if (s.segment_id == segment_id && s.type == RecordType::Event) return s;
    }
    FAIL("no event in segment " << segment_id);
    return Seen{};
  };
  Checkpoint below = checkpoint_after(first_event_in(2));
  Checkpoint above = checkpoint_after(first_event_in(4));
  auto recover = [&](const Checkpoint& cp, std::vector<Seen>& seen, std::string& rejected) {
    RecoveryOptions options;
    options.mode = RecoveryMode::ReadOnly;
    auto epoch = f.open_ok(true)->epoch();
    options.stored_epoch = epoch;
    options.checkpoint = cp;
    options.checkpoint_rejected = [&rejected](const std::string& why) { rejected = why; };
    seen.clear();
    auto recovered = recover_log(f.fs, kDir, options, visitor(seen));
    if (!recovered.ok()) FAIL(recovered.error().to_string());
    return std::move(recovered).value();
  };
  std::vector<Seen> seen;
  std::string rejected;
  // Positive control: without a floor, the checkpoint in segment 2 is used.
  CHECK(recover(below, seen, rejected).checkpoint_used);
  CHECK(rejected.empty());

  RetentionFloor floor = f.floor_at(3);
  KEEL_REQUIRE_OK(check_retention_floor(f.fs, kDir, floor));
  KEEL_REQUIRE_OK(write_retention_floor(f.fs, kDir, floor));
  KEEL_REQUIRE_OK(remove_segments_below(f.fs, kDir, floor));

  RecoveredLog recovered = recover(below, seen, rejected);
  CHECK_FALSE(recovered.checkpoint_used);
  CHECK(rejected == "it resumes in segment 2, below the retention floor (segment 3)");
  CHECK(recovered.checkpoint_rejected == rejected);
  CHECK(event_sequences(seen) == range(floor.first_sequence, f.events() + 1));  // all retained
  CHECK(recovered.segments.front().header.segment_id == 3);

  // Above the floor the checkpoint is used: exactly the records after it are visited.
  rejected.clear();
  recovered = recover(above, seen, rejected);
  CHECK(recovered.checkpoint_used);
  CHECK(rejected.empty());
  std::vector<Seen> after;
  for (const Seen& s : all) {
    if (s.segment_id > above.resume_segment_id ||
        (s.segment_id == above.resume_segment_id && s.offset >= above.resume_offset)) {
      after.push_back(s);
    }
  }
  CHECK(seen == after);
  REQUIRE(recovered.segments.size() == 2);
  CHECK(recovered.segments.front().header.segment_id == 3);
  CHECK(recovered.first_sequence == floor.first_sequence);
  CHECK(recovered.next_sequence == f.events() + 1);

  // A checkpoint past the last segment names the retained range.
  Checkpoint beyond = above;
  beyond.resume_segment_id = 7;
  recover(beyond, seen, rejected);
  CHECK(rejected == "it resumes in segment 7 and the log has segments 3 to 4");
}

}  // namespace
}  // namespace keel::log
