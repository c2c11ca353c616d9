// The recovery decision table (src/log/recovery_table.h, docs/ARCHITECTURE.md §5), tested row by
// row in the style of LevelDB's db/log_test.cc: build segments with the real writer, edit bytes
// through the platform seam, reopen writable and read-only, and assert the row recovery names, what
// it kept, what it dropped, and (for every FailClosed row) that no file changed.
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/event_body.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/segment_header.h"
#include "keel/store.h"
#include "log/log.h"
#include "log/segment_files.h"
#include "test_support.h"

namespace keel::log {
namespace {

using format::RecordType;

constexpr uint64_t kSegmentSize = 4096;
constexpr uint64_t kFenceId = 7;

// ---- building stores ---------------------------------------------------------------------------

// Events whose strings live as long as the maker.
class Events {
 public:
  format::EventBody make(std::optional<uint64_t> fence_id = std::nullopt) {
    ++count_;
    payloads_.push_back(std::make_unique<std::string>(24, static_cast<char>('a' + count_ % 26)));
    format::EventBody e;
    e.event_id = EventId{0x5eed, count_};
    e.entity = "order:1";
    e.scope = "recovery";
    e.kind = 0x1001;
    e.entity_clock = count_;
    e.correlation_id = e.event_id;
    e.fence_id = fence_id;
    e.payload = *payloads_.back();
    return e;
  }

 private:
  uint64_t count_ = 0;
  std::vector<std::unique_ptr<std::string>> payloads_;
};

// A record as the recovery visitor (or an independent parse of the file) sees it.
struct Seen {
  uint64_t segment_id = 0;
  uint64_t offset = 0;
  RecordType type = RecordType::Event;
  uint64_t sequence = 0;
  friend bool operator==(const Seen&, const Seen&) = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << "{segment " << s.segment_id << " offset " << s.offset << " type " << int(s.type)
            << " sequence " << s.sequence << "}";
}

class Store {
 public:
  const std::string& dir() const { return dir_.path(); }
  std::string segment(uint64_t id) const { return dir_ / segment_file_name(id); }

  Result<std::unique_ptr<Log>> open(bool read_only, std::vector<Seen>* seen = nullptr) {
    LogOptions options;
    options.create_if_missing = true;
    options.read_only = read_only;
    options.writer.segment_size = kSegmentSize;
    RecordVisitor visit;
    if (seen != nullptr) {
      seen->clear();
      visit = [seen](const RecordPosition& at, const format::DecodedFrame& frame) {
        seen->push_back({at.segment_id, at.offset, frame.header.type, frame.header.sequence});
      };
    }
    return Log::open(platform::posix_file_system(), dir(), options, visit);
  }

  std::unique_ptr<Log> open_ok(bool read_only, std::vector<Seen>* seen = nullptr) {
    auto opened = open(read_only, seen);
    if (!opened.ok()) FAIL(opened.error().to_string());
    return std::move(opened).value();
  }

 private:
  test::TempDir dir_;
};

// Opens the store writable, lets `write` append through the writer, then drops the Log without
// close(): a crash. What was flushed stays (the page cache), the preallocated zero tail stays.
template <class Write>
void crash_after(Store& store, Write write) {
  auto log = store.open_ok(false);
  write(*log->writer());
}

template <class Write>
void close_after(Store& store, Write write) {
  auto log = store.open_ok(false);
  write(*log->writer());
  KEEL_REQUIRE_OK(log->close());
}

// Appends `count` events as one group (one write), then syncs.
void append_synced_group(SegmentWriter& w, Events& events, int count,
                         std::optional<uint64_t> fence_id = std::nullopt) {
  for (int i = 0; i < count; ++i) KEEL_REQUIRE_OK(w.append_event(events.make(fence_id), nullptr));
  KEEL_REQUIRE_OK(w.sync());
}

void append_system(SegmentWriter& w, RecordType type, uint64_t fence_id) {
  KEEL_REQUIRE_OK(
      w.append_system(format::SystemRecord{type, fence_id, format::CancelReason::Caller, 0}));
}

// Appends synced groups of 5 events until the writer works in segment `segment_id`.
void fill_until_segment(SegmentWriter& w, Events& events, uint64_t segment_id) {
  while (w.active_segment_id() < segment_id) append_synced_group(w, events, 5);
}

// ---- reading files independently of recovery
// -----------------------------------------------------

struct FrameAt {
  uint64_t offset = 0;
  uint64_t size = 0;
  format::FrameHeader header;
  uint64_t end() const { return offset + size; }
};

// The frames of a segment file that decode, in order, up to the first one that does not.
std::vector<FrameAt> frames_in(const std::string& path, uint64_t segment_id) {
  auto bytes = test::read_bytes(path);
  std::vector<FrameAt> frames;
  for (uint64_t at = format::kSegmentHeaderSize; at < bytes.size();) {
    format::DecodedFrame frame;
    if (format::decode_frame(std::span(bytes).subspan(at), segment_id, frame) !=
        format::FrameDecode::Ok) {
      break;
    }
    frames.push_back({at, frame.size, frame.header});
    at += frame.size;
  }
  return frames;
}

// A crashed writer's segment 1 holding `count` events, each synced before the next was written
// (so every frame vouches for the ones before it), and its frames.
std::vector<FrameAt> synced_one_by_one(Store& store, int count) {
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    for (int i = 0; i < count; ++i) append_synced_group(w, events, 1);
  });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == static_cast<size_t>(count));
  return frames;
}

std::vector<Seen> seen_in(const std::vector<FrameAt>& frames, uint64_t segment_id) {
  std::vector<Seen> seen;
  for (const FrameAt& f : frames) {
    seen.push_back({segment_id, f.offset, f.header.type, f.header.sequence});
  }
  return seen;
}

std::vector<Seen> prefix(const std::vector<Seen>& seen, size_t count) {
  return std::vector<Seen>(seen.begin(), seen.begin() + static_cast<ptrdiff_t>(count));
}

std::vector<Seen> concat(std::vector<Seen> a, const std::vector<Seen>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Non-zero bytes from `from` to the last non-zero byte of the file: what a repair drops.
uint64_t nonzero_extent(const std::string& path, uint64_t from) {
  auto bytes = test::read_bytes(path);
  uint64_t end = bytes.size();
  while (end > from && bytes[end - 1] == std::byte{0}) --end;
  return end - from;
}

bool zero_from(const std::string& path, uint64_t from) {
  auto bytes = test::read_bytes(path);
  for (uint64_t i = from; i < bytes.size(); ++i) {
    if (bytes[i] != std::byte{0}) return false;
  }
  return true;
}

// The name of the first file that differs between two snapshots, or "" when identical.
std::string first_difference(const std::vector<std::pair<std::string, std::vector<std::byte>>>& a,
                             const std::vector<std::pair<std::string, std::vector<std::byte>>>& b) {
  if (a.size() != b.size()) return "the set of files changed";
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first) return "file set changed at " + a[i].first;
    if (a[i].second != b[i].second) return a[i].first;
  }
  return "";
}

// ---- byte edits --------------------------------------------------------------------------------

std::vector<std::byte> u64_bytes(uint64_t value) {
  std::vector<std::byte> bytes(8);
  format::store_u64(bytes.data(), value);
  return bytes;
}

// Recomputes the checksum of the frame at `offset`, seeded with `segment_id`.
void reseal_frame(const std::string& path, uint64_t offset, uint64_t segment_id) {
  auto bytes = test::read_bytes(path);
  test::reseal_frame(std::span(bytes).subspan(offset), segment_id);
  test::write_bytes(path, 0, bytes);
}

// The frame at `offset` of a segment, decoded with `segment_id` (it must decode), and its body.
struct FrameCopy {
  format::FrameHeader header;
  std::vector<std::byte> body;
  uint64_t body_offset = 0;  // where the body starts in the file
};
FrameCopy copy_frame(const std::string& path, uint64_t offset, uint64_t segment_id) {
  auto bytes = test::read_bytes(path);
  format::DecodedFrame decoded;
  REQUIRE(format::decode_frame(std::span(bytes).subspan(offset), segment_id, decoded) ==
          format::FrameDecode::Ok);
  return FrameCopy{decoded.header, std::vector<std::byte>(decoded.body.begin(), decoded.body.end()),
                   static_cast<uint64_t>(decoded.body.data() - bytes.data())};
}

// `copy` as a compact frame checksummed for `segment_id`.
std::vector<std::byte> encode_copy(const FrameCopy& copy, uint64_t segment_id) {
  std::vector<std::byte> out;
  format::FrameStart start = format::begin_frame(out, copy.header, format::FrameForm::Compact);
  out.insert(out.end(), copy.body.begin(), copy.body.end());
  format::finish_frame(out, start, segment_id);
  return out;
}

// Rewrites the header of the (compact) frame at `frame_offset` with `edit` applied, checksummed
// again, in the same number of bytes.
template <class Edit>
void edit_frame_header(const std::string& path, uint64_t frame_offset, uint64_t segment_id,
                       Edit edit) {
  FrameCopy copy = copy_frame(path, frame_offset, segment_id);
  const auto before = encode_copy(copy, segment_id);
  edit(copy.header);
  const auto after = encode_copy(copy, segment_id);
  REQUIRE(after.size() == before.size());
  test::write_bytes(path, frame_offset, after);
}

// Writes `value` at `field_offset` of a segment header and recomputes the header checksum.
void set_header_field(const std::string& path, size_t field_offset, std::vector<std::byte> value) {
  test::write_bytes(path, field_offset, value);
  auto bytes = test::read_bytes(path);
  uint64_t sum = format::checksum64(std::span(bytes).first(format::kSegmentHeaderChecksumOffset));
  test::write_bytes(path, format::kSegmentHeaderChecksumOffset, u64_bytes(sum));
}

// Flips the last byte of a (compact) frame, in its body: its checksum no longer matches.
void damage_frame(const std::string& path, const FrameAt& frame) {
  test::flip_byte(path, frame.end() - 1);
}

// ---- row assertions ----------------------------------------------------------------------------

// A FailClosed row: both a read-only and a writable open fail with `code`, class FailClosed, the
// error names `rule`, and every file of the store is byte-identical afterwards.
StoreError require_fails_closed(Store& store, ErrorCode code, RecoveryRule rule) {
  REQUIRE(recovery_row(rule).outcome == RecoveryOutcome::FailClosed);
  auto before = test::snapshot_directory(store.dir());
  std::optional<StoreError> error;
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only open" : "writable open"));
    auto opened = store.open(read_only);
    REQUIRE_FALSE(opened.ok());
    INFO(opened.error().to_string());
    CHECK(opened.error().code() == code);
    CHECK(opened.error().error_class() == ErrorClass::FailClosed);
    CHECK(opened.error().field_string("rule").value_or("<none>") == recovery_row(rule).name);
    CHECK(first_difference(before, test::snapshot_directory(store.dir())) == "");
    error = opened.error();
  }
  return *error;
}

struct ExpectedRepair {
  RecoveryRule rule = RecoveryRule::CleanEnd;
  std::string path;
  uint64_t offset = 0;
  uint64_t bytes_dropped = 0;
  uint64_t frames_dropped = 0;
  uint64_t next_sequence = 0;
  std::vector<Seen> kept;
};

void check_decision(const RecoveredLog& recovered, const std::vector<Seen>& seen,
                    const ExpectedRepair& want, bool applied) {
  CHECK(recovered.tail_rule == want.rule);
  REQUIRE(recovered.actions.size() == 1);
  const RecoveryAction& action = recovered.actions[0];
  CHECK(action.rule == want.rule);
  CHECK(action.path == want.path);
  CHECK(action.offset == want.offset);
  CHECK(action.bytes_dropped == want.bytes_dropped);
  CHECK(action.frames_dropped == want.frames_dropped);
  CHECK(action.applied == applied);
  CHECK(recovered.next_sequence == want.next_sequence);
  CHECK(seen == want.kept);
}

// After a repaired open: one more event lands at (segment_id, offset) with the next sequence, and
// every later open (read-only, then writable) ends cleanly with nothing left to repair.
void require_appends_after(Store& store, std::unique_ptr<Log> log, const std::vector<Seen>& kept,
                           uint64_t segment_id, uint64_t offset, uint64_t sequence) {
  Events events;
  REQUIRE(log->writer()->next_sequence() == sequence);
  KEEL_REQUIRE_OK(log->writer()->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(log->close());
  auto want = concat(kept, {Seen{segment_id, offset, RecordType::Event, sequence}});
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only reopen" : "writable reopen"));
    std::vector<Seen> seen;
    auto reopened = store.open_ok(read_only, &seen);
    CHECK(reopened->recovered().tail_rule == RecoveryRule::CleanEnd);
    CHECK(reopened->recovered().actions.empty());
    CHECK(reopened->recovered().next_sequence == sequence + 1);
    CHECK(seen == want);
    KEEL_REQUIRE_OK(reopened->close());
  }
}

// A TruncateTail row: read-only recovery reports the decision and writes nothing; writable
// recovery truncates at want.offset (nothing non-zero survives past it), then the log continues
// from there.
void require_truncation(Store& store, const ExpectedRepair& want, uint64_t segment_id) {
  REQUIRE(recovery_row(want.rule).outcome == RecoveryOutcome::TruncateTail);
  auto before = test::snapshot_directory(store.dir());
  std::vector<Seen> seen;
  {
    INFO("read-only open");
    auto log = store.open_ok(true, &seen);
    check_decision(log->recovered(), seen, want, /*applied=*/false);
    CHECK(first_difference(before, test::snapshot_directory(store.dir())) == "");
  }
  INFO("writable open");
  auto log = store.open_ok(false, &seen);
  check_decision(log->recovered(), seen, want, /*applied=*/true);
  CHECK(log->recovered().segments.back().data_end == want.offset);
  CHECK(zero_from(want.path, want.offset));
  require_appends_after(store, std::move(log), want.kept, segment_id, want.offset,
                        want.next_sequence);
}

// ---- Row CleanEnd ------------------------------------------------------------------------------

TEST_CASE("CleanEndOpens", "[recovery]") {
  Store store;
  Events events;
  close_after(store, [&](SegmentWriter& w) {
    append_synced_group(w, events, 2);
    append_synced_group(w, events, 3);
  });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 5);
  // close() trimmed the preallocation: the file ends with the last frame.
  REQUIRE(test::file_size(store.segment(1)) == frames.back().end());
  auto before = test::snapshot_directory(store.dir());
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only open" : "writable open"));
    std::vector<Seen> seen;
    auto log = store.open_ok(read_only, &seen);
    CHECK(log->recovered().tail_rule == RecoveryRule::CleanEnd);
    CHECK(log->recovered().actions.empty());
    CHECK(log->recovered().next_sequence == 6);
    CHECK(log->recovered().segments.size() == 1);
    CHECK(log->recovered().segments.back().data_end == frames.back().end());
    CHECK(seen == seen_in(frames, 1));
    if (read_only) CHECK(first_difference(before, test::snapshot_directory(store.dir())) == "");
    KEEL_REQUIRE_OK(log->close());
  }
}

// ---- Row ZeroFilledTail ------------------------------------------------------------------------

TEST_CASE("ZeroFilledTailIsEndOfData", "[recovery]") {
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) { append_synced_group(w, events, 3); });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 3);
  // The crashed writer left the preallocated zeros after its last frame.
  REQUIRE(test::file_size(store.segment(1)) == kSegmentSize);
  REQUIRE(zero_from(store.segment(1), frames.back().end()));
  auto before = test::snapshot_directory(store.dir());
  std::vector<Seen> seen;
  {
    auto log = store.open_ok(true, &seen);
    CHECK(log->recovered().tail_rule == RecoveryRule::ZeroFilledTail);
    CHECK(log->recovered().actions.empty());
    CHECK(log->recovered().next_sequence == 4);
    CHECK(seen == seen_in(frames, 1));
    CHECK(first_difference(before, test::snapshot_directory(store.dir())) == "");
  }
  auto log = store.open_ok(false, &seen);
  CHECK(log->recovered().tail_rule == RecoveryRule::ZeroFilledTail);
  CHECK(log->recovered().actions.empty());
  CHECK(log->recovered().segments.back().data_end == frames.back().end());
  CHECK(seen == seen_in(frames, 1));
  require_appends_after(store, std::move(log), seen_in(frames, 1), 1, frames.back().end(), 4);
}

// ---- Row TornTail ------------------------------------------------------------------------------

// Three synced groups of one event each; the last frame is then damaged in several ways.
struct TornTailStore {
  Store store;
  std::vector<FrameAt> frames;

  explicit TornTailStore(bool closed) {
    Events events;
    auto write = [&](SegmentWriter& w) {
      for (int i = 0; i < 3; ++i) append_synced_group(w, events, 1);
    };
    if (closed) {
      close_after(store, write);
    } else {
      crash_after(store, write);
    }
    frames = frames_in(store.segment(1), 1);
    REQUIRE(frames.size() == 3);
  }

  // The expected repair once the last frame is damaged (called after the damage).
  ExpectedRepair expected() {
    return {RecoveryRule::TornTail,
            store.segment(1),
            frames[2].offset,
            nonzero_extent(store.segment(1), frames[2].offset),
            0,
            3,
            prefix(seen_in(frames, 1), 2)};
  }
};

TEST_CASE("TornTailIsTruncated", "[recovery]") {
  TornTailStore torn(/*closed=*/false);
  damage_frame(torn.store.segment(1), torn.frames[2]);
  auto want = torn.expected();
  // The whole frame is dropped: all of it but (at most) its zero padding is non-zero.
  CHECK(want.bytes_dropped <= torn.frames[2].size);
  CHECK(want.bytes_dropped + format::kFrameAlignment > torn.frames[2].size);
  require_truncation(torn.store, want, 1);
}

TEST_CASE("TornTailShortFrameIsTruncated", "[recovery]") {
  // A crashed writer's file (a cleanly closed one names its end in END: row DurableEndNotReached).
  TornTailStore torn(/*closed=*/false);
  SECTION("cut inside the frame header") {
    test::truncate_file(torn.store.segment(1), torn.frames[2].offset + 20);
  }
  SECTION("cut inside the frame body") {
    test::truncate_file(torn.store.segment(1), torn.frames[2].offset + 60);
  }
  auto want = torn.expected();
  CHECK(want.bytes_dropped > 0);
  require_truncation(torn.store, want, 1);
}

TEST_CASE("TornTailBadLengthIsTruncated", "[recovery]") {
  TornTailStore torn(/*closed=*/false);
  std::vector<std::byte> too_long(4);
  format::store_u32(too_long.data(), format::kFrameBodyMax + 1);
  test::write_bytes(torn.store.segment(1), torn.frames[2].offset + format::kFrameBodyLengthOffset,
                    too_long);
  require_truncation(torn.store, torn.expected(), 1);
}

TEST_CASE("TornTailWrongEpochIsTruncated", "[recovery]") {
  TornTailStore torn(/*closed=*/false);
  // A frame that checksums but claims an epoch later than the EPOCH file (which says 1).
  edit_frame_header(torn.store.segment(1), torn.frames[2].offset, 1,
                    [](format::FrameHeader& h) { h.epoch = 2; });
  REQUIRE(frames_in(torn.store.segment(1), 1).size() == 3);  // still a valid frame by itself
  require_truncation(torn.store, torn.expected(), 1);
}

TEST_CASE("TornTailWrongSequenceIsTruncated", "[recovery]") {
  TornTailStore torn(/*closed=*/false);
  SECTION("a sequence ahead of the chain") {
    edit_frame_header(torn.store.segment(1), torn.frames[2].offset, 1,
                      [](format::FrameHeader& h) { h.sequence = 9; });
  }
  SECTION("a stale copy of an earlier frame of the same segment") {
    // The first frame again, in place of the third: checksums (same segment), wrong sequence.
    auto bytes = test::read_bytes(torn.store.segment(1));
    std::vector<std::byte> first(bytes.begin() + torn.frames[0].offset,
                                 bytes.begin() + torn.frames[0].end());
    test::write_bytes(torn.store.segment(1), torn.frames[2].offset, first);
  }
  require_truncation(torn.store, torn.expected(), 1);
}

TEST_CASE("TornTailFrameFromAnotherSegmentIsTruncated", "[recovery]") {
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    fill_until_segment(w, events, 2);
    append_synced_group(w, events, 2);
  });
  auto sealed = frames_in(store.segment(1), 1);
  auto active = frames_in(store.segment(2), 2);
  REQUIRE(active.size() >= 2);
  uint64_t next_sequence = active.back().header.sequence + 1;
  // Segment 1's first frame, edited to continue segment 2's chain exactly (sequence, epoch) and
  // resealed for segment 1: only the checksum's segment-id seed can tell it does not belong.
  FrameCopy stray = copy_frame(store.segment(1), sealed[0].offset, 1);
  stray.header.sequence = next_sequence;
  stray.header.durable_through = active.back().end();
  uint64_t at = active.back().end();
  test::write_bytes(store.segment(2), at, encode_copy(stray, 1));
  format::DecodedFrame decoded;
  auto edited = test::read_bytes(store.segment(2));
  REQUIRE(format::decode_frame(std::span(edited).subspan(at), 1, decoded) ==
          format::FrameDecode::Ok);
  REQUIRE(format::decode_frame(std::span(edited).subspan(at), 2, decoded) ==
          format::FrameDecode::BadChecksum);

  ExpectedRepair want{RecoveryRule::TornTail,
                      store.segment(2),
                      at,
                      nonzero_extent(store.segment(2), at),
                      0,
                      next_sequence,
                      concat(seen_in(sealed, 1), seen_in(active, 2))};
  require_truncation(store, want, 2);
}

// ---- Row DamageBeforeDurableFrame --------------------------------------------------------------

TEST_CASE("DamageBeforeDurableFrameFailsClosed", "[recovery]") {
  Store store;
  auto frames = synced_one_by_one(store, 3);
  // Each group was written after the previous one was synced.
  REQUIRE(frames[1].header.durable_through == frames[1].offset);
  REQUIRE(frames[2].header.durable_through == frames[2].offset);
  size_t damaged = 0;
  SECTION("the first frame") { damaged = 0; }
  SECTION("a middle frame") { damaged = 1; }
  damage_frame(store.segment(1), frames[damaged]);
  auto error =
      require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::DamageBeforeDurableFrame);
  CHECK(error.field_string("path") == store.segment(1));
  CHECK(error.field_u64("offset") == frames[damaged].offset);
  CHECK(error.field_string("reason") == "bad checksum");
}

TEST_CASE("DamageBeforeDurableFrameProtectsSystemRecords", "[recovery]") {
  // durable_through is a byte offset, not a sequence, because system records take no sequence:
  // a synced FenceBegin shares its sequence with the events after it, yet its damage is caught.
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    append_synced_group(w, events, 1);
    append_system(w, RecordType::FenceBegin, kFenceId);
    KEEL_REQUIRE_OK(w.sync());
    append_system(w, RecordType::FenceCommit, kFenceId);
    KEEL_REQUIRE_OK(w.sync());
  });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 3);
  REQUIRE(frames[1].header.type == RecordType::FenceBegin);
  REQUIRE(frames[1].header.sequence == frames[2].header.sequence);  // the same next sequence
  REQUIRE(frames[2].header.durable_through == frames[2].offset);
  damage_frame(store.segment(1), frames[1]);
  auto error =
      require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::DamageBeforeDurableFrame);
  CHECK(error.field_u64("offset") == frames[1].offset);
}

// ---- Row UnsyncedTornRegion --------------------------------------------------------------------

TEST_CASE("UnsyncedTornRegionIsTruncated", "[recovery]") {
  Store store;
  Events events;
  // One synced event, then one group of four records written with one write: every frame of the
  // group claims durability only up to the end of the first event.
  crash_after(store, [&](SegmentWriter& w) {
    append_synced_group(w, events, 1);
    KEEL_REQUIRE_OK(w.append_event(events.make(), nullptr));
    std::vector<format::EventBody> batch = {events.make(), events.make(), events.make()};
    KEEL_REQUIRE_OK(w.append_batch(batch, nullptr));
    KEEL_REQUIRE_OK(w.append_event(events.make(), nullptr));
    KEEL_REQUIRE_OK(w.append_event(events.make(), nullptr));
    KEEL_REQUIRE_OK(w.flush());
  });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 5);
  for (size_t i = 1; i < frames.size(); ++i) {
    REQUIRE(frames[i].header.durable_through == frames[1].offset);
  }
  REQUIRE(frames[2].header.type == RecordType::Batch);
  auto all = seen_in(frames, 1);
  ExpectedRepair want;
  want.rule = RecoveryRule::UnsyncedTornRegion;
  want.path = store.segment(1);
  SECTION("damage to the group's first frame drops the three valid frames after it") {
    damage_frame(store.segment(1), frames[1]);
    want.offset = frames[1].offset;
    want.frames_dropped = 3;
    want.next_sequence = 2;
    want.kept = prefix(all, 1);
  }
  SECTION("damage to the batch drops the two events after it") {
    damage_frame(store.segment(1), frames[2]);
    want.offset = frames[2].offset;
    want.frames_dropped = 2;
    want.next_sequence = 3;
    want.kept = prefix(all, 2);
  }
  want.bytes_dropped = nonzero_extent(store.segment(1), want.offset);
  CHECK(want.bytes_dropped <= frames.back().end() - want.offset);
  CHECK(want.bytes_dropped + format::kFrameAlignment > frames.back().end() - want.offset);
  require_truncation(store, want, 1);
}

// ---- Shifted bytes: rows 9 and 10 find frames off the 8-byte grid ------------------------------

// Inserts `count` zero bytes at `offset` (count < 0 deletes -count bytes there): the frames after
// it keep their bytes, and so their checksums, at shifted offsets.
void shift_bytes(const std::string& path, uint64_t offset, int count) {
  auto bytes = test::read_bytes(path);
  if (count >= 0) {
    bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(offset), static_cast<size_t>(count),
                 std::byte{0});
  } else {
    bytes.erase(bytes.begin() + static_cast<ptrdiff_t>(offset),
                bytes.begin() + static_cast<ptrdiff_t>(offset) - count);
  }
  test::truncate_file(path, 0);
  test::write_bytes(path, 0, bytes);
}

TEST_CASE("ShiftedDurableFramesFailClosed", "[recovery]") {
  // Ten events, each synced before the next was written: every frame vouches for the ones before
  // it. Bytes inserted or deleted at frame 5 shift frames 6.. by any amount; the search must find
  // them at any offset (8-aligned offsets only found shifts by multiples of 8).
  Store store;
  auto frames = synced_one_by_one(store, 10);
  const int shift = GENERATE(1, 3, 5, 7, 8, 13, -1, -5, -8, -11);
  INFO("bytes " << (shift > 0 ? "inserted" : "deleted") << ": " << std::abs(shift));
  // Deleted bytes come out of frame 5's body, inserted ones go in front of it.
  shift_bytes(store.segment(1), frames[5].offset + (shift < 0 ? format::kFrameHeaderSize : 0),
              shift);
  auto error =
      require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::DamageBeforeDurableFrame);
  CHECK(error.field_u64("offset") == frames[5].offset);
}

TEST_CASE("ShiftedFramesOfAnUnsyncedGroupAreDroppedAndCounted", "[recovery]") {
  // One synced event, then one group of four records in one write (none vouches for another):
  // NUL bytes inserted in front of the group's second record shift it and the two after it. They
  // are dropped with the damage (row 10), and counted: 3 valid frames, wherever they now start.
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    append_synced_group(w, events, 1);
    for (int i = 0; i < 4; ++i) KEEL_REQUIRE_OK(w.append_event(events.make(), nullptr));
    KEEL_REQUIRE_OK(w.flush());
  });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 5);
  const int shift = GENERATE(1, 5, 8, 12);
  INFO(shift << " bytes inserted");
  // The shifted frame itself is found one to `shift` bytes after the damage: only a zero run
  // precedes it, so the damage is the shifted frame's first bytes seen at the old offset.
  shift_bytes(store.segment(1), frames[2].offset, shift);
  ExpectedRepair want;
  want.rule = RecoveryRule::UnsyncedTornRegion;
  want.path = store.segment(1);
  want.offset = frames[2].offset;
  want.frames_dropped = 3;
  want.next_sequence = 3;
  want.kept = prefix(seen_in(frames, 1), 2);
  want.bytes_dropped = nonzero_extent(store.segment(1), want.offset);
  require_truncation(store, want, 1);
}

TEST_CASE("DeletedWholeDurableFrameFailsClosed", "[recovery]") {
  // A whole frame deleted moves the frames after it by its size, a multiple of 8: the first of
  // them lands exactly on the valid end, where the scan rejects it (its durable_through is past
  // its new offset). It still vouches for the deleted bytes; when it is the last frame, nothing
  // else does, so the search must consider it too.
  Store store;
  auto frames = synced_one_by_one(store, 10);
  REQUIRE(frames[9].header.durable_through == frames[9].offset);
  // Frame 6 (frames 7..10 follow it), or frame 9 (only frame 10 follows, on the valid end).
  const size_t deleted = GENERATE(5, 8);
  INFO("frame " << deleted + 1 << " deleted");
  shift_bytes(store.segment(1), frames[deleted].offset, -static_cast<int>(frames[deleted].size));
  auto error =
      require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::DamageBeforeDurableFrame);
  CHECK(error.field_u64("offset") == frames[deleted].offset);
}

// ---- Row SegmentChainGap -----------------------------------------------------------------------

TEST_CASE("SegmentChainGapFailsClosed", "[recovery]") {
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    fill_until_segment(w, events, 3);
    append_synced_group(w, events, 1);
  });
  std::string broken;
  std::string reason;
  SECTION("a missing middle segment") {
    KEEL_REQUIRE_OK(platform::posix_file_system().remove(store.segment(2)));
    broken = store.segment(3);
    reason = "segment ids are not consecutive from 1";
  }
  SECTION("a missing first segment") {
    KEEL_REQUIRE_OK(platform::posix_file_system().remove(store.segment(1)));
    broken = store.segment(2);
    reason = "segment ids are not consecutive from 1";
  }
  SECTION("a header naming another segment") {
    set_header_field(store.segment(2), 16, u64_bytes(5));
    broken = store.segment(2);
    reason = "its header names segment 5 (a copy or a misplaced file)";
  }
  SECTION("a copy of the last segment as the next one: the copy is blamed, not the original") {
    auto copy = platform::posix_file_system().open(store.segment(4), platform::OpenMode::CreateNew);
    KEEL_REQUIRE_OK(copy);
    KEEL_REQUIRE_OK((*copy)->write_at(0, test::read_bytes(store.segment(3))));
    broken = store.segment(4);
    reason = "its header names segment 3 (a copy or a misplaced file)";
  }
  SECTION("a first sequence that skips") {
    auto header = test::read_bytes(store.segment(3));
    set_header_field(store.segment(3), 32, u64_bytes(format::load_u64(header.data() + 32) + 1));
    broken = store.segment(3);
    reason = "first sequence does not continue the previous segment";
  }
  auto error =
      require_fails_closed(store, ErrorCode::SegmentChainBroken, RecoveryRule::SegmentChainGap);
  CHECK(error.field_string("path") == broken);
  CHECK(error.field_string("reason") == reason);
}

// ---- Row SealedSegmentDamage -------------------------------------------------------------------

TEST_CASE("SealedSegmentDamageFailsClosed", "[recovery]") {
  Store store;
  Events events;
  close_after(store, [&](SegmentWriter& w) {
    fill_until_segment(w, events, 2);
    append_synced_group(w, events, 1);
  });
  auto sealed = frames_in(store.segment(1), 1);
  REQUIRE(sealed.size() > 3);
  REQUIRE(sealed.back().header.type == RecordType::Seal);
  uint64_t offset = 0;
  SECTION("a damaged frame in the middle") {
    damage_frame(store.segment(1), sealed[2]);
    offset = sealed[2].offset;
  }
  SECTION("a damaged last event (a torn tail if the segment were the last)") {
    damage_frame(store.segment(1), sealed[sealed.size() - 2]);
    offset = sealed[sealed.size() - 2].offset;
  }
  SECTION("a damaged seal") {
    damage_frame(store.segment(1), sealed.back());
    offset = sealed.back().offset;
  }
  SECTION("a seal cut off") {
    test::truncate_file(store.segment(1), sealed.back().offset);
    offset = sealed.back().offset;
  }
  SECTION("a seal whose event count is wrong") {
    // Seal body is [event_count]: a fixint right after the array header.
    uint64_t count_at = copy_frame(store.segment(1), sealed.back().offset, 1).body_offset + 1;
    test::flip_byte(store.segment(1), count_at, 0x01);
    reseal_frame(store.segment(1), sealed.back().offset, 1);
    offset = sealed.back().offset;
  }
  auto error =
      require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::SealedSegmentDamage);
  CHECK(error.field_string("path") == store.segment(1));
  CHECK(error.field_u64("offset") == offset);
}

// ---- Row NewestSegmentEmpty --------------------------------------------------------------------

TEST_CASE("NewestSegmentEmptyIsDeleted", "[recovery]") {
  Store store;
  Events events;
  uint64_t first_lost = 0;
  // Crash right after a rotation: segment 2 was created and preallocated, and the record that
  // triggered the rotation was never written.
  crash_after(store, [&](SegmentWriter& w) {
    while (w.active_segment_id() < 2) {
      first_lost = w.next_sequence();
      KEEL_REQUIRE_OK(w.append_event(events.make(), nullptr));
      if (w.active_segment_id() < 2) KEEL_REQUIRE_OK(w.sync());
    }
  });
  auto sealed = frames_in(store.segment(1), 1);
  REQUIRE(sealed.back().header.type == RecordType::Seal);
  REQUIRE(frames_in(store.segment(2), 2).empty());
  SECTION("a zero header: the header never reached the disk") {
    test::write_bytes(store.segment(2), 0, std::vector<std::byte>(format::kSegmentHeaderSize));
    REQUIRE(test::file_size(store.segment(2)) == kSegmentSize);
  }
  SECTION("an empty file: created, never preallocated") {
    test::truncate_file(store.segment(2), 0);
  }
  SECTION("a short all-zero file") {
    test::truncate_file(store.segment(2), 0);
    test::truncate_file(store.segment(2), 30);
  }
  SECTION("a torn header (half written) and no frame after it") {
    test::write_bytes(store.segment(2), 32, std::vector<std::byte>(32));
  }
  SECTION("a short non-zero header and nothing else") {
    test::truncate_file(store.segment(2), 20);
  }
  auto kept = seen_in(sealed, 1);
  auto before = test::snapshot_directory(store.dir());
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only open" : "writable open"));
    std::vector<Seen> seen;
    auto log = store.open_ok(read_only, &seen);
    const RecoveredLog& recovered = log->recovered();
    CHECK(recovered.tail_rule == RecoveryRule::NewestSegmentEmpty);
    REQUIRE(recovered.actions.size() == 1);
    CHECK(recovered.actions[0].rule == RecoveryRule::NewestSegmentEmpty);
    CHECK(recovered.actions[0].path == store.segment(2));
    CHECK(recovered.actions[0].applied == !read_only);
    CHECK(recovered.segments.size() == 1);
    CHECK(recovered.next_sequence == first_lost);
    CHECK(seen == kept);
    if (read_only) {
      CHECK(first_difference(before, test::snapshot_directory(store.dir())) == "");
      continue;
    }
    // The writer recreated segment 2 with a fresh header of this open's epoch.
    auto bytes = test::read_bytes(store.segment(2));
    format::SegmentHeader header;
    REQUIRE(format::decode_segment_header(bytes, header, nullptr) == format::HeaderDecode::Ok);
    CHECK(header.epoch == log->epoch());
    CHECK(header.first_sequence == first_lost);
    require_appends_after(store, std::move(log), kept, 2, format::kSegmentHeaderSize, first_lost);
  }
}

TEST_CASE("NewestSegmentEmptyAsTheOnlySegmentIsDeleted", "[recovery]") {
  // A crash right after the very first segment was created.
  Store store;
  crash_after(store, [](SegmentWriter&) {});
  test::write_bytes(store.segment(1), 0, std::vector<std::byte>(format::kSegmentHeaderSize));
  for (bool read_only : {true, false}) {
    INFO((read_only ? "read-only open" : "writable open"));
    std::vector<Seen> seen;
    auto log = store.open_ok(read_only, &seen);
    CHECK(log->recovered().tail_rule == RecoveryRule::NewestSegmentEmpty);
    REQUIRE(log->recovered().actions.size() == 1);
    CHECK(log->recovered().actions[0].applied == !read_only);
    CHECK(log->recovered().segments.empty());
    CHECK(log->recovered().next_sequence == 1);
    CHECK(seen.empty());
    if (!read_only) require_appends_after(store, std::move(log), {}, 1, 64, 1);
  }
}

// ---- Row BadSegmentHeader ----------------------------------------------------------------------

TEST_CASE("BadSegmentHeaderFailsClosed", "[recovery]") {
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    fill_until_segment(w, events, 2);
    append_synced_group(w, events, 2);
  });
  std::string broken = store.segment(2);
  std::string reason;
  SECTION("bad magic in the active segment") {
    test::flip_byte(store.segment(2), 1);
    reason = "bad magic";
  }
  SECTION("bad magic in a sealed segment") {
    test::flip_byte(store.segment(1), 1);
    broken = store.segment(1);
    reason = "bad magic";
  }
  SECTION("bad header checksum") {
    test::flip_byte(store.segment(2), 20);  // inside the segment id
    reason = "bad header checksum";
  }
  SECTION("non-zero reserved bytes under a valid checksum") {
    set_header_field(store.segment(2), 40, u64_bytes(1));
    reason = "bad header field";
  }
  SECTION("a zero header followed by frames") {
    test::write_bytes(store.segment(2), 0, std::vector<std::byte>(format::kSegmentHeaderSize));
    reason = "missing or zero header";
  }
  SECTION("a segment epoch later than the epoch file") {
    set_header_field(store.segment(2), 24, u64_bytes(5));
    reason = "segment epoch out of order with the epoch file or the previous segment";
  }
  auto error = require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::BadSegmentHeader);
  CHECK(error.field_string("path") == broken);
  CHECK(error.field_u64("offset") == 0u);
  CHECK(error.field_string("reason") == reason);
}

// ---- Row FutureFormatVersion -------------------------------------------------------------------

TEST_CASE("FutureFormatVersionFailsClosed", "[recovery]") {
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    fill_until_segment(w, events, 2);
    append_synced_group(w, events, 1);
  });
  std::string newer;
  SECTION("the active segment") { newer = store.segment(2); }
  SECTION("a sealed segment") { newer = store.segment(1); }
  std::vector<std::byte> version(4);
  format::store_u32(version.data(), format::kFormatVersion + 1);
  set_header_field(newer, 8, version);
  auto error =
      require_fails_closed(store, ErrorCode::UnsupportedVersion, RecoveryRule::FutureFormatVersion);
  CHECK(error.field_string("path") == newer);
  CHECK(error.field_u64("found") == format::kFormatVersion + 1);
  CHECK(error.field_u64("supported") == format::kFormatVersion);
}

// ---- Row OpenFenceAtTail -----------------------------------------------------------------------

// The FenceCancel record recovery appended at `offset`, decoded.
format::SystemRecord cancel_record_at(const std::string& path, uint64_t segment_id, uint64_t offset,
                                      uint64_t* sequence) {
  auto bytes = test::read_bytes(path);
  format::DecodedFrame frame;
  REQUIRE(format::decode_frame(std::span(bytes).subspan(offset), segment_id, frame) ==
          format::FrameDecode::Ok);
  REQUIRE(frame.header.type == RecordType::FenceCancel);
  *sequence = frame.header.sequence;
  format::SystemRecord record;
  REQUIRE(format::decode_system_record(frame, record) == nullptr);
  return record;
}

void check_open_fence(const RecoveredLog& recovered, uint64_t first, uint64_t end,
                      FenceState state) {
  REQUIRE_FALSE(recovered.fences.empty());
  const FenceRange& fence = recovered.fences.back();
  CHECK(fence.fence_id == kFenceId);
  CHECK(fence.first_sequence == first);
  CHECK(fence.end_sequence == end);
  CHECK(fence.state == state);
}

TEST_CASE("OpenFenceAtTailIsCancelled", "[recovery]") {
  Store store;
  Events events;
  uint64_t segment_id = 1;
  SECTION("the fence within the last segment") {
    crash_after(store, [&](SegmentWriter& w) {
      append_synced_group(w, events, 1);
      append_system(w, RecordType::FenceBegin, kFenceId);
      append_synced_group(w, events, 2, kFenceId);
    });
  }
  SECTION("the fence begun in a sealed segment") {
    crash_after(store, [&](SegmentWriter& w) {
      append_synced_group(w, events, 1);
      append_system(w, RecordType::FenceBegin, kFenceId);
      append_synced_group(w, events, 2, kFenceId);
      while (w.active_segment_id() < 2) append_synced_group(w, events, 1, kFenceId);
    });
    segment_id = 2;
  }
  std::vector<Seen> all;
  for (uint64_t id = 1; id <= segment_id; ++id) {
    all = concat(all, seen_in(frames_in(store.segment(id), id), id));
  }
  uint64_t next_sequence = all.back().sequence + 1;
  uint64_t tail = frames_in(store.segment(segment_id), segment_id).back().end();
  auto before = test::snapshot_directory(store.dir());
  {
    INFO("read-only open: the fence is reported open, nothing is written");
    std::vector<Seen> seen;
    auto log = store.open_ok(true, &seen);
    const RecoveredLog& recovered = log->recovered();
    REQUIRE(recovered.open_fence() != nullptr);
    check_open_fence(recovered, 2, next_sequence, FenceState::OpenAtTail);
    REQUIRE(recovered.actions.size() == 1);
    CHECK(recovered.actions[0].rule == RecoveryRule::OpenFenceAtTail);
    CHECK(recovered.actions[0].path == store.segment(segment_id));
    CHECK(recovered.actions[0].offset == tail);
    CHECK_FALSE(recovered.actions[0].applied);
    CHECK(recovered.tail_rule == RecoveryRule::ZeroFilledTail);
    CHECK(recovered.next_sequence == next_sequence);
    CHECK(seen == all);
    CHECK(first_difference(before, test::snapshot_directory(store.dir())) == "");
  }
  INFO("writable open: a FenceCancel(recovery) record closes the fence");
  std::vector<Seen> seen;
  auto log = store.open_ok(false, &seen);
  const RecoveredLog& recovered = log->recovered();
  CHECK(recovered.open_fence() == nullptr);
  check_open_fence(recovered, 2, next_sequence, FenceState::Cancelled);
  REQUIRE(recovered.actions.size() == 1);
  CHECK(recovered.actions[0].rule == RecoveryRule::OpenFenceAtTail);
  CHECK(recovered.actions[0].applied);
  CHECK(seen == all);
  uint64_t cancel_sequence = 0;
  auto cancel = cancel_record_at(store.segment(segment_id), segment_id, tail, &cancel_sequence);
  CHECK(cancel.fence_id == kFenceId);
  CHECK(cancel.cancel_reason == format::CancelReason::Recovery);
  CHECK(cancel_sequence == next_sequence);  // a system record takes no sequence

  uint64_t cancel_end = frames_in(store.segment(segment_id), segment_id).back().end();
  auto kept = concat(all, {Seen{segment_id, tail, RecordType::FenceCancel, next_sequence}});
  require_appends_after(store, std::move(log), kept, segment_id, cancel_end, next_sequence);
  auto reopened = store.open_ok(true);
  REQUIRE(reopened->recovered().fences.size() == 1);
  CHECK(reopened->recovered().fences[0].state == FenceState::Cancelled);
}

TEST_CASE("OpenFenceAtTailBehindATornTailIsCancelled", "[recovery]") {
  // Both rows at once: the torn tail is truncated first, then the fence left open is cancelled.
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) {
    append_system(w, RecordType::FenceBegin, kFenceId);
    append_synced_group(w, events, 2, kFenceId);
    append_synced_group(w, events, 1, kFenceId);
  });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 4);
  damage_frame(store.segment(1), frames[3]);
  auto log = store.open_ok(false);
  const RecoveredLog& recovered = log->recovered();
  REQUIRE(recovered.actions.size() == 2);
  CHECK(recovered.actions[0].rule == RecoveryRule::TornTail);
  CHECK(recovered.actions[0].offset == frames[3].offset);
  CHECK(recovered.actions[1].rule == RecoveryRule::OpenFenceAtTail);
  CHECK(recovered.actions[1].applied);
  check_open_fence(recovered, 1, 3, FenceState::Cancelled);
  uint64_t sequence = 0;
  CHECK(cancel_record_at(store.segment(1), 1, frames[3].offset, &sequence).fence_id == kFenceId);
  CHECK(sequence == 3);
}

// ---- Row OpenFenceFollowedByRecords ------------------------------------------------------------

TEST_CASE("OpenFenceFollowedByRecordsFailsClosed", "[recovery]") {
  Store store;
  Events events;
  uint64_t segment_id = 1;
  std::string reason;
  SECTION("an unfenced event inside the open fence") {
    crash_after(store, [&](SegmentWriter& w) {
      append_system(w, RecordType::FenceBegin, kFenceId);
      append_synced_group(w, events, 2, kFenceId);
      append_synced_group(w, events, 1);
    });
    reason = "unfenced event inside an open fence";
  }
  SECTION("a second fence begun inside the open one") {
    crash_after(store, [&](SegmentWriter& w) {
      append_system(w, RecordType::FenceBegin, kFenceId);
      append_synced_group(w, events, 1, kFenceId);
      append_system(w, RecordType::FenceBegin, kFenceId + 1);
      KEEL_REQUIRE_OK(w.sync());
    });
    reason = "fence begun inside an open fence";
  }
  SECTION("a fence begun in a sealed segment, unfenced events in the next") {
    crash_after(store, [&](SegmentWriter& w) {
      append_system(w, RecordType::FenceBegin, kFenceId);
      while (w.active_segment_id() < 2) append_synced_group(w, events, 1, kFenceId);
      append_synced_group(w, events, 1);
    });
    segment_id = 2;
    reason = "unfenced event inside an open fence";
  }
  SECTION("a commit edited to end another fence (byte edit)") {
    crash_after(store, [&](SegmentWriter& w) {
      append_system(w, RecordType::FenceBegin, kFenceId);
      append_synced_group(w, events, 1, kFenceId);
      append_system(w, RecordType::FenceCommit, kFenceId);
      append_synced_group(w, events, 1);
    });
    auto frames = frames_in(store.segment(1), 1);
    REQUIRE(frames[2].header.type == RecordType::FenceCommit);
    // Body [fence_id] = 0x91 0x07: make it commit fence 8, then reseal so it checksums.
    test::write_bytes(store.segment(1),
                      copy_frame(store.segment(1), frames[2].offset, 1).body_offset + 1,
                      {std::byte{kFenceId + 1}});
    reseal_frame(store.segment(1), frames[2].offset, 1);
    reason = "fence end without its begin";
  }
  auto frames = frames_in(store.segment(segment_id), segment_id);
  // The offending record is the last one written.
  uint64_t offending = frames.back().offset;
  if (reason == "fence end without its begin") offending = frames[2].offset;
  // The fence records are the authority on which events are hidden (DECISIONS.md 2026-12-01).
  auto error = require_fails_closed(store, ErrorCode::HiddenRangesCorrupt,
                                    RecoveryRule::OpenFenceFollowedByRecords);
  CHECK(error.field_string("path") == store.segment(segment_id));
  CHECK(error.field_u64("offset") == offending);
  CHECK(error.field_string("reason") == reason);
  // The public open reports the same error, read-only or writable.
  for (bool read_only : {true, false}) {
    StoreOptions options;
    options.segment_size = kSegmentSize;
    options.read_only = read_only;
    auto opened = keel::Store::open(store.dir(), options);
    REQUIRE_FALSE(opened.ok());
    INFO(opened.error().to_string());
    CHECK(opened.error().code() == ErrorCode::HiddenRangesCorrupt);
    CHECK(opened.error().error_class() == ErrorClass::FailClosed);
    CHECK(opened.error().field_string("reason") == reason);
  }
}

// ---- the table itself --------------------------------------------------------------------------

TEST_CASE("RecoveryTableNamesEveryRuleOnce", "[recovery]") {
  // Every rule has a row, in order, and the test names above are the rows' names
  // (BelowRetentionFloor's tests are in tests/retention_floor_test.cc, DurableEndNotReached's in
  // tests/durable_end_test.cc).
  std::vector<std::string_view> names;
  for (const RecoveryRow& row : kRecoveryTable) names.push_back(row.name);
  CHECK(names == std::vector<std::string_view>{"CleanEnd", "SegmentChainGap", "BadSegmentHeader",
                                               "FutureFormatVersion", "SealedSegmentDamage",
                                               "NewestSegmentEmpty", "TornTail", "ZeroFilledTail",
                                               "DamageBeforeDurableFrame", "UnsyncedTornRegion",
                                               "OpenFenceAtTail", "OpenFenceFollowedByRecords",
                                               "BelowRetentionFloor", "DurableEndNotReached"});
}

}  // namespace
}  // namespace keel::log

namespace keel::log {
namespace {

TEST_CASE("DamageFollowedByTooManyFrameLikeCandidatesFailsClosed", "[recovery]") {
  // A torn region full of frame-like headers (as a payload holding keel frames would be) must not
  // make the search for valid frames after the damage quadratic: the bytes it may hash are capped
  // at a few times the segment, and past the cap recovery fails closed instead of guessing.
  Store store;
  Events events;
  crash_after(store, [&](SegmentWriter& w) { append_synced_group(w, events, 1); });
  auto frames = frames_in(store.segment(1), 1);
  REQUIRE(frames.size() == 1);
  uint64_t damage_at = frames[0].offset + frames[0].size;
  constexpr uint64_t kFileSize = 2 << 20;
  std::vector<std::byte> region(kFileSize - damage_at);
  for (uint64_t at = 0; at + format::kFrameHeaderSize <= region.size();
       at += format::kFrameHeaderSize) {
    // Plausible to every header check (epoch, next sequence, durable_through 0), each claiming
    // a body to the end of the file; the checksum is wrong.
    std::byte* h = region.data() + at;
    format::store_u64(h + format::kFrameChecksumOffset, 0x1234);
    uint64_t body = (region.size() - at - format::kFrameHeaderSize) & ~uint64_t{7};
    format::store_u32(h + format::kFrameBodyLengthOffset, static_cast<uint32_t>(body));
    h[format::kFrameRecordTypeOffset] = std::byte{1};
    h[format::kFrameFlagsOffset] = std::byte{0};
    format::store_u16(h + format::kFrameReservedOffset, 0);
    format::store_u64(h + format::kFrameSequenceOffset, 2);
    format::store_u64(h + format::kFrameDurableThroughOffset, 0);
    format::store_u64(h + format::kFrameEpochOffset, 1);
  }
  test::write_bytes(store.segment(1), damage_at, region);
  auto error =
      require_fails_closed(store, ErrorCode::Corruption, RecoveryRule::DamageBeforeDurableFrame);
  CHECK(error.field_u64("offset") == damage_at);
  CHECK(error.field_string("reason") ==
        "too many frame-like candidates after the damage to classify it");
}

}  // namespace
}  // namespace keel::log
