// The golden stores (segments/golden/store in format version 3, written by tools/golden_store.cc,
// and segments/golden/store-v2 and store-v1, written by the last builds of versions 2 and 1):
// (a) today's writer still produces the version-3 store byte for byte, (b) today's reader finds
// exactly what each was written to hold, and (c) today's writer continues each (an older store in
// a new version-3 segment). A format change fails (a) until the golden is regenerated with `make
// golden` and committed; a reader that stops understanding any version's bytes fails (b) and (c).
#define CATCH_CONFIG_ENABLE_OPTIONAL_STRINGMAKER  // print optional hashes and ids on failure
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "format/checksum.h"
#include "format/event_body.h"
#include "format/record.h"
#include "golden_store.h"
#include "log/epoch_file.h"
#include "log/log.h"
#include "log/log_end.h"
#include "log/segment_files.h"
#include "owned_event.h"
#include "test_support.h"

namespace Catch {
template <>
struct StringMaker<keel::Hash128> {
  static std::string convert(const keel::Hash128& h) { return h.to_hex(); }
};
template <>
struct StringMaker<keel::EventId> {
  static std::string convert(const keel::EventId& id) { return id.to_hex(); }
};
}  // namespace Catch

namespace {

using keel::EventId;
using keel::Hash128;
using keel::format::RecordType;
using keel::log::FenceState;
using keel::test::TempDir;

constexpr uint64_t kGoldenSegmentSize = 4096;  // tools/golden_store.cc
constexpr uint64_t kGoldenEventCount = 35;

// One committed golden store: the same events, laid out by the frame and body forms of its
// version.
struct Golden {
  const char* name;
  std::string path;
  uint32_t format_version;
  keel::format::BodyFormat body_format;
  std::vector<uint64_t> segment_events;  // events per segment; all but the last end in a Seal
  uint64_t end_offset;                   // the last segment's clean end
  uint64_t appended;  // events the continuation test appends: enough to reach a new segment
};
const Golden kGoldenV3{"version 3",
                       KEEL_SOURCE_DIR "/segments/golden/store",
                       3,
                       keel::format::BodyFormat::Compact,
                       {21, 14},
                       3437,
                       8};
const Golden kGoldenV2{"version 2", KEEL_SOURCE_DIR "/segments/golden/store-v2",
                       2,           keel::format::BodyFormat::Compact,
                       {19, 15, 1}, 328,
                       20};
const Golden kGoldenV1{"version 1", KEEL_SOURCE_DIR "/segments/golden/store-v1",
                       1,           keel::format::BodyFormat::Msgpack,
                       {18, 13, 4}, 1216,
                       14};
const std::string kCommittedStore = kGoldenV3.path;

keel::platform::FileSystem& fs() { return keel::platform::posix_file_system(); }

// The files of a store directory (name -> bytes), without LOCK (it is empty) and SYNCED (advisory,
// for live followers only): the committed copy leaves them out.
std::map<std::string, std::vector<std::byte>> store_files(const std::string& directory) {
  std::map<std::string, std::vector<std::byte>> files;
  for (auto& [name, bytes] : keel::test::snapshot_directory(directory)) {
    if (name != keel::format::kLockFileName && name != keel::format::kSyncedPointFileName) {
      files.emplace(name, std::move(bytes));
    }
  }
  return files;
}

// The first offset where `a` and `b` differ, or nullopt when they are equal.
std::optional<size_t> first_difference(const std::vector<std::byte>& a,
                                       const std::vector<std::byte>& b) {
  size_t common = std::min(a.size(), b.size());
  for (size_t i = 0; i < common; ++i) {
    if (a[i] != b[i]) return i;
  }
  if (a.size() != b.size()) return common;
  return std::nullopt;
}

// A copy of the committed golden store in a fresh directory, so opening it may write.
std::string copy_committed_store(const TempDir& dir, const Golden& golden) {
  std::string copy = dir / "store";
  std::filesystem::copy(golden.path, copy, std::filesystem::copy_options::recursive);
  return copy;
}

// ---- What a visitor saw, copied out of the frames (their views live only for the call) ----

// An event as the visitor saw it, plus its sequence and hashes.
struct SeenEvent : keel::test::OwnedEvent {
  uint64_t sequence = 0;
  Hash128 chained_hash;
  Hash128 rehashed;  // hash128(hashed_bytes), computed here
};

struct SeenRecord {
  uint64_t segment_id = 0;
  uint64_t offset = 0;
  size_t size = 0;
  keel::format::FrameHeader header;
  std::vector<SeenEvent> events;      // Event / Batch
  keel::format::SystemRecord system;  // system records
  std::string decode_error;           // empty when the body decoded
};

SeenEvent copy_event(uint64_t sequence, const keel::format::EventBody& e) {
  SeenEvent seen;
  static_cast<keel::test::OwnedEvent&>(seen) = keel::test::OwnedEvent::from(e);
  seen.sequence = sequence;
  seen.chained_hash = e.chained_hash;
  seen.rehashed = keel::format::hash128(e.hashed_bytes);
  return seen;
}

SeenRecord copy_record(const keel::log::RecordPosition& position,
                       const keel::format::DecodedFrame& frame) {
  SeenRecord record{position.segment_id, position.offset, frame.size, frame.header, {}, {}, {}};
  const char* error = nullptr;
  if (keel::format::is_system_record(frame.header.type)) {
    error = keel::format::decode_system_record(frame, record.system);
  } else {
    error = keel::format::decode_record_events(
        frame, [&](uint32_t index, const keel::format::EventBody& event) {
          record.events.push_back(copy_event(frame.header.sequence + index, event));
        });
  }
  if (error != nullptr) record.decode_error = error;
  return record;
}

keel::log::RecordVisitor collect_into(std::vector<SeenRecord>& records) {
  return [&records](const keel::log::RecordPosition& position,
                    const keel::format::DecodedFrame& frame) {
    records.push_back(copy_record(position, frame));
  };
}

std::vector<SeenEvent> all_events(const std::vector<SeenRecord>& records) {
  std::vector<SeenEvent> events;
  for (const SeenRecord& r : records) events.insert(events.end(), r.events.begin(), r.events.end());
  return events;
}

std::unique_ptr<keel::log::Log> open_log(const std::string& directory, bool read_only,
                                         std::vector<SeenRecord>& records) {
  keel::log::LogOptions options;
  options.read_only = read_only;
  options.writer.segment_size = kGoldenSegmentSize;
  auto log = keel::log::Log::open(fs(), directory, options, collect_into(records));
  if (!log.ok()) FAIL(log.error().to_string());
  return std::move(log).value();
}

uint64_t stored_epoch(const std::string& directory) {
  auto epoch = keel::log::read_epoch(fs(), directory);
  if (!epoch.ok()) FAIL(epoch.error().to_string());
  REQUIRE(epoch->has_value());
  return **epoch;
}

// ---- The expected content (tools/golden_store.cc) ----

struct ExpectedRecord {
  uint64_t segment_id;
  RecordType type;
  uint64_t sequence;      // the first event's, or for a system record the next sequence
  uint64_t events_or_id;  // events of an Event/Batch, fence id of a fence record, count of a Seal
};

std::vector<ExpectedRecord> expected_records(const Golden& g) {
  std::vector<ExpectedRecord> r = {
      {1, RecordType::Event, 1, 1},        {1, RecordType::Event, 2, 1},
      {1, RecordType::Event, 3, 1},        {1, RecordType::Event, 4, 1},
      {1, RecordType::Batch, 5, 3},        {1, RecordType::FenceBegin, 8, 1},
      {1, RecordType::Event, 8, 1},        {1, RecordType::Event, 9, 1},
      {1, RecordType::FenceCommit, 10, 1}, {1, RecordType::FenceBegin, 10, 2},
      {1, RecordType::Event, 10, 1},       {1, RecordType::FenceCancel, 11, 2},
      {1, RecordType::Event, 11, 1},
  };
  // Then the keyed events from sequence 12 on, each segment but the last ending in its Seal.
  uint64_t sequence = 12;
  uint64_t segment_first = 1;
  for (size_t i = 0; i < g.segment_events.size(); ++i) {
    const uint64_t segment_id = i + 1;
    const uint64_t end = segment_first + g.segment_events[i];
    for (; sequence < end; ++sequence) r.push_back({segment_id, RecordType::Event, sequence, 1});
    if (i + 1 < g.segment_events.size()) {
      r.push_back({segment_id, RecordType::Seal, end, g.segment_events[i]});
    }
    segment_first = end;
  }
  return r;
}

void check_records(const std::vector<SeenRecord>& seen, const Golden& g) {
  std::vector<ExpectedRecord> expected = expected_records(g);
  REQUIRE(seen.size() == expected.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    const SeenRecord& s = seen[i];
    const ExpectedRecord& e = expected[i];
    INFO("record " << i << " at segment " << s.segment_id << " offset " << s.offset);
    REQUIRE(s.decode_error.empty());
    CHECK(s.segment_id == e.segment_id);
    CHECK(s.header.type == e.type);
    CHECK(s.header.sequence == e.sequence);
    CHECK(s.header.epoch == 1);
    if (g.format_version < keel::format::kCompactFramesVersion) {
      CHECK(s.offset % keel::format::kFrameAlignment == 0);  // padded frames
    }
    CHECK(s.header.durable_through <= s.offset);
    if (!keel::format::is_system_record(e.type)) {
      CHECK(s.events.size() == e.events_or_id);
    } else if (e.type == RecordType::Seal) {
      CHECK(s.system.event_count == e.events_or_id);
    } else {
      CHECK(s.system.fence_id == e.events_or_id);
      CHECK(s.system.cancel_reason == keel::format::CancelReason::Caller);
    }
  }
}

// Frames are contiguous from the segment header on; the first of a segment, written right after
// the synced header, claims durability up to the header only.
void check_layout(const std::vector<SeenRecord>& seen, const keel::log::RecoveredLog& recovered) {
  std::map<uint64_t, uint64_t> next_offset;
  for (const SeenRecord& s : seen) {
    auto [it, first] = next_offset.try_emplace(s.segment_id, keel::format::kSegmentHeaderSize);
    CHECK(s.offset == it->second);
    if (first) CHECK(s.header.durable_through == keel::format::kSegmentHeaderSize);
    it->second += s.size;
  }
  for (const auto& segment : recovered.segments) {
    CHECK(segment.data_end == next_offset[segment.header.segment_id]);
  }
}

// The committed fence's four frames (begin, two events, commit) were one group with one sync:
// they all carry the offset the previous sync covered, which is where the group starts.
void check_group_durability(const std::vector<SeenRecord>& seen) {
  REQUIRE(seen.size() > 8);
  uint64_t group_start = seen[5].offset;
  for (size_t i = 5; i <= 8; ++i) CHECK(seen[i].header.durable_through == group_start);
  // The four plain events were synced one by one: each claims everything before it.
  for (size_t i = 0; i < 4; ++i) CHECK(seen[i].header.durable_through == seen[i].offset);
}

void check_segments(const keel::log::RecoveredLog& recovered, const Golden& g) {
  REQUIRE(recovered.segments.size() == g.segment_events.size());
  uint64_t first_sequence = 1;
  for (size_t i = 0; i < g.segment_events.size(); ++i) {
    const auto& segment = recovered.segments[i];
    INFO("segment " << i + 1);
    CHECK(segment.header.segment_id == i + 1);
    CHECK(segment.header.epoch == 1);
    CHECK(segment.header.format_version == g.format_version);
    CHECK(segment.header.first_sequence == first_sequence);
    CHECK(segment.event_count == g.segment_events[i]);
    CHECK(segment.sealed == (i + 1 < g.segment_events.size()));
    first_sequence += g.segment_events[i];
  }
  CHECK(first_sequence == kGoldenEventCount + 1);
  CHECK(recovered.next_sequence == kGoldenEventCount + 1);
  CHECK(recovered.max_epoch == 1);
  CHECK(recovered.tail_rule == keel::log::RecoveryRule::CleanEnd);
  CHECK(recovered.actions.empty());
}

void check_fences(const keel::log::RecoveredLog& recovered) {
  REQUIRE(recovered.fences.size() == 2);
  CHECK(recovered.fences[0].fence_id == 1);
  CHECK(recovered.fences[0].first_sequence == 8);
  CHECK(recovered.fences[0].end_sequence == 10);
  CHECK(recovered.fences[0].state == FenceState::Committed);
  CHECK(recovered.fences[1].fence_id == 2);
  CHECK(recovered.fences[1].first_sequence == 10);
  CHECK(recovered.fences[1].end_sequence == 11);
  CHECK(recovered.fences[1].state == FenceState::Cancelled);
  CHECK(recovered.open_fence() == nullptr);
}

EventId golden_id(uint64_t n) {
  return EventId{0x0000018000000000ull + n, 0x6b65656c00000000ull + n};
}

std::string golden_payload(int n) {
  std::string p = "\x81\xa1n";
  p += static_cast<char>(n);
  return p;
}

// Per sequence: coordinate, kind, payload number, fence.
struct ExpectedEvent {
  const char* entity;
  uint32_t lane;
  uint16_t kind;
  int payload;
  std::optional<uint64_t> fence_id;
};

ExpectedEvent expected_event(uint64_t sequence) {
  if (sequence <= 4) {
    const std::tuple<const char*, uint32_t> coordinates[] = {
        {"order:1", 0}, {"order:2", 1}, {"order:1", 1}, {"order:1", 0}};
    auto [entity, lane] = coordinates[sequence - 1];
    return {entity, lane, 0x1001, static_cast<int>(sequence - 1), std::nullopt};
  }
  if (sequence <= 7)
    return {"order:1", 0, 0x1002, static_cast<int>(10 + sequence - 5), std::nullopt};
  if (sequence <= 9) return {"order:3", 0, 0x1003, static_cast<int>(20 + sequence - 8), 1};
  if (sequence == 10) return {"order:1", 0, 0x1003, 30, 2};
  if (sequence == 11) return {"order:1", 0, 0x1001, 31, std::nullopt};
  return {"order:5", 0, 0x2001, static_cast<int>(40 + sequence - 12), std::nullopt};
}

void check_event_fields(const SeenEvent& e, keel::format::BodyFormat body_format) {
  INFO("event at sequence " << e.sequence);
  ExpectedEvent x = expected_event(e.sequence);
  CHECK(e.format == body_format);
  CHECK(e.event_id == golden_id(e.sequence));
  CHECK(e.entity == x.entity);
  CHECK(e.scope == "golden");
  CHECK(e.lane == x.lane);
  CHECK(e.kind == x.kind);
  CHECK(e.fence_id == x.fence_id);
  CHECK(e.hlc_wall_ms == 1'700'000'000'000ull + e.sequence);
  CHECK(e.hlc_logical == e.sequence % 3);
  CHECK(e.correlation_id == golden_id(1));
  bool keyed = e.sequence >= 12;
  std::string payload = golden_payload(x.payload) + (keyed ? std::string(64, 'x') : "");
  CHECK(e.payload == payload);
  // The chained hash is XXH3-128 of every body byte before it.
  CHECK(e.rehashed == e.chained_hash);
  if (!keyed) {
    CHECK_FALSE(e.idempotency_key.has_value());
    CHECK_FALSE(e.idempotency_fingerprint.has_value());
    CHECK_FALSE(e.metadata.has_value());
    return;
  }
  CHECK(e.idempotency_key == "golden-key-" + std::to_string(e.sequence - 12));
  CHECK(e.metadata == std::string("\x81\xa2ip\xa9") + "127.0.0.1");
  REQUIRE(e.idempotency_fingerprint.has_value());
  CHECK(*e.idempotency_fingerprint ==
        keel::format::event_fingerprint(e.entity, e.scope, e.lane, e.kind, e.payload, e.metadata));
}

// Per (entity, lane): clocks 1, 2, 3, ... and each prev_hash the previous visible event's chained
// hash. The cancelled fence's event (sequence 10) chains to the head but does not become it: the
// next event on its (entity, lane) reuses its clock and chains to the last visible event. The
// causation of each event is the previous visible event of the store. Returns the head clock of
// every (entity, lane).
using Clocks = std::map<std::tuple<std::string, uint32_t>, uint64_t>;
Clocks check_chains(const std::vector<SeenEvent>& events) {
  struct Head {
    uint64_t clock = 0;
    std::optional<Hash128> hash;
  };
  std::map<std::tuple<std::string, uint32_t>, Head> heads;
  std::optional<EventId> last_visible;
  for (const SeenEvent& e : events) {
    INFO("event at sequence " << e.sequence);
    Head& head = heads[{e.entity, e.lane}];
    CHECK(e.entity_clock == head.clock + 1);
    CHECK(e.prev_hash == head.hash);
    CHECK(e.causation_id == last_visible);
    if (e.fence_id == std::optional<uint64_t>(2)) continue;  // cancelled: hidden
    head = Head{e.entity_clock, e.chained_hash};
    last_visible = e.event_id;
  }
  Clocks clocks;
  for (const auto& [coordinate, head] : heads) clocks[coordinate] = head.clock;
  return clocks;
}

// Two lanes, four entities, order:1 on both lanes; order:1 lane 0 has 6 visible events (the
// cancelled one not counted).
Clocks golden_clocks() {
  return {{{"order:1", 0}, 6},
          {{"order:1", 1}, 1},
          {{"order:2", 1}, 1},
          {{"order:3", 0}, 2},
          {{"order:5", 0}, 24}};
}

void check_events(const std::vector<SeenRecord>& records, const Golden& g) {
  std::vector<SeenEvent> events = all_events(records);
  REQUIRE(events.size() == kGoldenEventCount);
  for (size_t i = 0; i < events.size(); ++i) REQUIRE(events[i].sequence == i + 1);
  for (const SeenEvent& e : events) check_event_fields(e, g.body_format);
  CHECK(check_chains(events) == golden_clocks());
  // The hidden event and its replacement: same clock, same prev, different hashes.
  CHECK(events[9].entity_clock == events[10].entity_clock);
  CHECK(events[9].prev_hash == events[6].chained_hash);
  CHECK(events[10].prev_hash == events[6].chained_hash);
}

void check_golden_content(const std::vector<SeenRecord>& records,
                          const keel::log::RecoveredLog& recovered, const Golden& g) {
  INFO("golden store of " << g.name);
  check_records(records, g);
  check_layout(records, recovered);
  check_group_durability(records);
  check_segments(recovered, g);
  check_fences(recovered);
  check_events(records, g);
}

bool same_records(const std::vector<SeenRecord>& a, const std::vector<SeenRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].segment_id != b[i].segment_id || a[i].offset != b[i].offset ||
        a[i].size != b[i].size || a[i].header.sequence != b[i].header.sequence ||
        a[i].header.type != b[i].header.type || a[i].events.size() != b[i].events.size()) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("Golden store regenerates byte for byte", "[golden]") {
  TempDir dir;
  std::string regenerated = dir / "store";
  KEEL_REQUIRE_OK(keel::tools::write_golden_store(fs(), regenerated));

  auto committed_files = store_files(kCommittedStore);
  auto regenerated_files = store_files(regenerated);
  std::set<std::string> committed_names, regenerated_names;
  for (const auto& [name, bytes] : committed_files) committed_names.insert(name);
  for (const auto& [name, bytes] : regenerated_files) regenerated_names.insert(name);
  INFO("regenerate with `make golden` if the format changed on purpose");
  REQUIRE(committed_names.size() == 2 + kGoldenV3.segment_events.size());  // EPOCH, END, segments
  REQUIRE(regenerated_names == committed_names);
  for (const auto& [name, committed] : committed_files) {
    const auto& fresh = regenerated_files.at(name);
    if (auto offset = first_difference(committed, fresh)) {
      FAIL_CHECK(name << " differs at offset " << *offset << " (committed " << committed.size()
                      << " bytes, regenerated " << fresh.size() << " bytes)");
    }
  }
}

TEST_CASE("Golden store opens read-only with exactly the expected content", "[golden]") {
  const Golden g = GENERATE(kGoldenV3, kGoldenV2, kGoldenV1);
  TempDir dir;
  std::string store = copy_committed_store(dir, g);
  auto before = keel::test::snapshot_directory(store);
  std::vector<SeenRecord> records;
  auto log = open_log(store, /*read_only=*/true, records);
  CHECK(log->epoch() == 1);
  CHECK(log->writer() == nullptr);
  CHECK(stored_epoch(store) == 1);
  check_golden_content(records, log->recovered(), g);
  // Sealed segments and the closed last one were trimmed: no preallocated tail is left.
  for (const auto& segment : log->recovered().segments) {
    CHECK(segment.data_end == keel::test::file_size(segment.path));
  }
  CHECK(keel::test::snapshot_directory(store) == before);  // read-only writes nothing
}

TEST_CASE("Golden store opens writable with the same content and leaves its segments as they were",
          "[golden]") {
  TempDir dir;
  std::string store = copy_committed_store(dir, kGoldenV3);
  std::vector<SeenRecord> read_only_records;
  open_log(store, /*read_only=*/true, read_only_records);

  std::vector<SeenRecord> records;
  auto log = open_log(store, /*read_only=*/false, records);
  CHECK(log->epoch() == 2);
  CHECK(stored_epoch(store) == 2);  // persisted before any frame of epoch 2
  REQUIRE(log->writer() != nullptr);
  CHECK(log->writer()->next_sequence() == kGoldenEventCount + 1);
  CHECK(log->writer()->active_segment_id() == kGoldenV3.segment_events.size());
  check_golden_content(records, log->recovered(), kGoldenV3);
  CHECK(same_records(records, read_only_records));
  KEEL_REQUIRE_OK(log->close());

  // Only the epoch changed: continuing the last segment preallocated it, closing trimmed it back.
  // END names the same end, now written by epoch 2.
  auto after = store_files(store);
  auto committed = store_files(kCommittedStore);
  for (const char* name : {keel::format::kEpochFileName, keel::format::kLogEndFileName}) {
    after.erase(name);
    committed.erase(name);
  }
  CHECK(after == committed);
  auto committed_end = keel::log::read_log_end(fs(), kCommittedStore);
  auto end = keel::log::read_log_end(fs(), store);
  KEEL_REQUIRE_OK(committed_end);
  KEEL_REQUIRE_OK(end);
  REQUIRE(committed_end->has_value());
  REQUIRE(end->has_value());
  CHECK((*committed_end)->epoch == 1);
  CHECK((*end)->epoch == 2);
  CHECK((*end)->segment_id == kGoldenV3.segment_events.size());
  CHECK((*end)->offset == kGoldenV3.end_offset);
  CHECK((*end)->next_sequence == kGoldenEventCount + 1);
  CHECK((*end)->segment_id == (*committed_end)->segment_id);
  CHECK((*end)->offset == (*committed_end)->offset);
}

TEST_CASE("An older golden store opened writable is sealed and goes on in a new-version segment",
          "[golden]") {
  const Golden g = GENERATE(kGoldenV2, kGoldenV1);
  INFO("golden store of " << g.name);
  const uint64_t last = g.segment_events.size();  // the open segment's id
  TempDir dir;
  std::string store = copy_committed_store(dir, g);
  {
    std::vector<SeenRecord> records;
    auto log = open_log(store, /*read_only=*/false, records);
    CHECK(log->epoch() == 2);
    check_golden_content(records, log->recovered(), g);  // what recovery found
    REQUIRE(log->writer() != nullptr);
    CHECK(log->writer()->active_segment_id() == last + 1);
    CHECK(log->writer()->next_sequence() == kGoldenEventCount + 1);
    KEEL_REQUIRE_OK(log->close());
  }
  // The sealed segments are untouched; the open one is the committed bytes and then its Seal, in
  // its own version's frame form.
  auto after = store_files(store);
  auto committed = store_files(g.path);
  for (uint64_t id = 1; id < last; ++id) {
    const std::string name = keel::log::segment_file_name(id);
    CHECK(after.at(name) == committed.at(name));
  }
  const std::string open_segment = keel::log::segment_file_name(last);
  const auto& sealed = after.at(open_segment);
  const auto& before = committed.at(open_segment);
  REQUIRE(sealed.size() > before.size());
  CHECK(std::equal(before.begin(), before.end(), sealed.begin()));
  CHECK(sealed.size() % keel::format::kFrameAlignment == 0);  // a padded Seal
  CHECK(sealed[before.size() + keel::format::kFrameFlagsOffset] == std::byte{0});

  std::vector<SeenRecord> records;
  auto log = open_log(store, /*read_only=*/true, records);
  const auto& recovered = log->recovered();
  CHECK(recovered.tail_rule == keel::log::RecoveryRule::CleanEnd);
  CHECK(recovered.next_sequence == kGoldenEventCount + 1);
  REQUIRE(recovered.segments.size() == last + 1);
  const auto& old_last = recovered.segments[last - 1];
  CHECK(old_last.header.format_version == g.format_version);
  CHECK(old_last.sealed);
  CHECK(old_last.event_count == g.segment_events.back());
  const auto& added = recovered.segments[last];
  CHECK(added.header.format_version == keel::kFormatVersion);
  CHECK(added.header.epoch == 2);
  CHECK(added.header.first_sequence == kGoldenEventCount + 1);
  CHECK(added.event_count == 0);
  REQUIRE_FALSE(records.empty());
  CHECK(records.back().header.type == RecordType::Seal);
  CHECK(records.back().header.epoch == 2);
  CHECK(records.back().segment_id == last);
}

TEST_CASE("An older golden store with a torn tail is repaired in its own form and goes on",
          "[golden]") {
  // An older build crashed while writing its last segment: a padded frame cut short after the
  // clean end. Today's recovery reads the padded frames, truncates the torn bytes (TornTail), seals
  // the segment in its padded form and goes on in a new-version segment.
  const Golden g = GENERATE(kGoldenV2, kGoldenV1);
  INFO("golden store of " << g.name);
  const uint64_t last = g.segment_events.size();
  TempDir dir;
  std::string store = copy_committed_store(dir, g);
  const std::string open_segment = store + "/" + keel::log::segment_file_name(last);
  const auto committed = keel::test::read_bytes(open_segment);
  REQUIRE(committed.size() == g.end_offset);
  // The segment's first frame again, cut inside its body, where the next frame would have gone.
  std::vector<std::byte> torn(committed.begin() + keel::format::kSegmentHeaderSize,
                              committed.begin() + keel::format::kSegmentHeaderSize + 52);
  REQUIRE(torn[keel::format::kFrameFlagsOffset] == std::byte{0});  // padded
  keel::test::write_bytes(open_segment, committed.size(), torn);
  {
    std::vector<SeenRecord> records;
    auto log = open_log(store, /*read_only=*/false, records);
    const auto& recovered = log->recovered();
    CHECK(recovered.tail_rule == keel::log::RecoveryRule::TornTail);
    REQUIRE(recovered.actions.size() == 1);
    CHECK(recovered.actions[0].offset == g.end_offset);
    CHECK(all_events(records).size() == kGoldenEventCount);
    CHECK(log->writer()->active_segment_id() == last + 1);
    KEEL_REQUIRE_OK(log->close());
  }
  const auto sealed = keel::test::read_bytes(open_segment);
  REQUIRE(sealed.size() > committed.size());
  CHECK(std::equal(committed.begin(), committed.end(), sealed.begin()));
  keel::format::DecodedFrame seal;
  REQUIRE(keel::format::decode_frame(std::span(sealed).subspan(committed.size()), last, seal) ==
          keel::format::FrameDecode::Ok);
  CHECK(seal.header.type == RecordType::Seal);
  CHECK(seal.size == sealed.size() - committed.size());
  CHECK(seal.size % keel::format::kFrameAlignment == 0);  // padded, as its segment's frames
  std::vector<SeenRecord> records;
  auto log = open_log(store, /*read_only=*/true, records);
  CHECK(log->recovered().tail_rule == keel::log::RecoveryRule::CleanEnd);
  CHECK(log->recovered().segments.back().header.format_version == keel::kFormatVersion);
  CHECK(all_events(records).size() == kGoldenEventCount);
}

namespace {

// Appends `count` events to order:5 lane 0, continuing its chain from `head` (the golden's last).
void append_continuation(keel::log::SegmentWriter& writer, SeenEvent head, uint64_t count) {
  std::vector<std::string> payloads;
  for (uint64_t i = 0; i < count; ++i) {
    payloads.push_back(golden_payload(100 + static_cast<int>(i)) + std::string(64, 'y'));
  }
  for (uint64_t i = 0; i < count; ++i) {
    keel::format::EventBody e;
    uint64_t sequence = writer.next_sequence();
    e.event_id = golden_id(sequence);
    e.entity = head.entity;
    e.scope = head.scope;
    e.kind = head.kind;
    e.lane = head.lane;
    e.entity_clock = head.entity_clock + 1;
    e.hlc_wall_ms = head.hlc_wall_ms + 1;
    e.correlation_id = golden_id(1);
    e.causation_id = head.event_id;
    e.payload = payloads[i];
    e.prev_hash = head.chained_hash;
    Hash128 chained;
    KEEL_REQUIRE_OK(writer.append_event(e, &chained));
    KEEL_REQUIRE_OK(writer.sync());
    head.event_id = e.event_id;
    head.entity_clock = e.entity_clock;
    head.hlc_wall_ms = e.hlc_wall_ms;
    head.chained_hash = chained;
  }
}

}  // namespace

TEST_CASE("Today's writer continues the golden store and reopens cleanly", "[golden]") {
  const Golden g = GENERATE(kGoldenV3, kGoldenV2, kGoldenV1);
  INFO("golden store of " << g.name);
  TempDir dir;
  std::string store = copy_committed_store(dir, g);
  // Today's version: enough to fill the open segment and rotate into a new one. Older versions:
  // the open segment was sealed at the open, and these fit the new one.
  const uint64_t kAppended = g.appended;
  const uint64_t segments = g.segment_events.size() + 1;
  {
    std::vector<SeenRecord> records;
    auto log = open_log(store, /*read_only=*/false, records);
    append_continuation(*log->writer(), all_events(records).back(), kAppended);
    CHECK(log->writer()->active_segment_id() == segments);
    KEEL_REQUIRE_OK(log->close());
  }
  std::vector<SeenRecord> records;
  auto log = open_log(store, /*read_only=*/true, records);
  const auto& recovered = log->recovered();
  CHECK(log->epoch() == 2);
  CHECK(recovered.tail_rule == keel::log::RecoveryRule::CleanEnd);
  CHECK(recovered.next_sequence == kGoldenEventCount + kAppended + 1);
  REQUIRE(recovered.segments.size() == segments);
  CHECK(recovered.segments[segments - 2].sealed);  // the golden's open one, sealed by today's
  CHECK(recovered.segments[segments - 1].header.epoch == 2);
  CHECK(recovered.segments[segments - 1].header.format_version == keel::kFormatVersion);

  // The golden records come back unchanged, followed by the new ones.
  std::vector<ExpectedRecord> golden = expected_records(g);
  REQUIRE(records.size() > golden.size());
  check_records(std::vector<SeenRecord>(records.begin(), records.begin() + golden.size()), g);
  std::vector<SeenEvent> events = all_events(records);
  REQUIRE(events.size() == kGoldenEventCount + kAppended);
  Clocks expected_clocks = golden_clocks();
  expected_clocks[{"order:5", 0}] += kAppended;
  CHECK(check_chains(events) == expected_clocks);  // the new events continue order:5's chain
  for (size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i].rehashed == events[i].chained_hash);
    // The golden's events keep their form; today's writer writes compact bodies.
    CHECK(events[i].format ==
          (i < kGoldenEventCount ? g.body_format : keel::format::BodyFormat::Compact));
  }
  for (size_t i = golden.size(); i < records.size(); ++i) CHECK(records[i].header.epoch == 2);
}
