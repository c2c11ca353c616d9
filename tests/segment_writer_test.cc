// SegmentWriter (src/log/segment_writer.h): rotation and sealing, the size limit, preallocation and
// its trim on close, the written/durable watermarks, and the durable_through each frame carries.
// Runs on MemoryFileSystem and reads the resulting files back with the format decoders only, so
// what is asserted is the bytes on "disk", not the writer's own bookkeeping.
#include "log/segment_writer.h"

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/event_body.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/segment_header.h"
#include "log/log.h"
#include "log/recovery.h"
#include "log/segment_files.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel::log {
namespace {

using format::RecordType;

constexpr char kDir[] = "/store";
constexpr uint64_t kSegmentSize = 4096;
// The largest frame a 4096-byte segment takes: what is left after the header and the seal.
constexpr uint64_t kFrameLimit = kSegmentSize - format::kSegmentHeaderSize - kSealFrameMax;

class Events {
 public:
  format::EventBody make(size_t payload_size = 24) {
    ++count_;
    payloads_.push_back(std::make_unique<std::string>(payload_size, 'p'));
    format::EventBody e;
    e.event_id = EventId{0xabc, count_};
    e.entity = "account:9";
    e.scope = "writer";
    e.kind = 0x2001;
    e.entity_clock = count_;
    e.correlation_id = e.event_id;
    e.payload = *payloads_.back();
    return e;
  }

 private:
  uint64_t count_ = 0;
  std::vector<std::unique_ptr<std::string>> payloads_;
};

struct Fixture {
  platform::MemoryFileSystem fs;
  Fixture() { KEEL_REQUIRE_OK(fs.create_directory(kDir)); }

  std::string segment(uint64_t id) const {
    return platform::join_path(kDir, segment_file_name(id));
  }

  std::unique_ptr<SegmentWriter> open_writer(const RecoveredLog& recovered = {},
                                             uint64_t epoch = 1) {
    auto opened =
        SegmentWriter::open(fs, kDir, SegmentWriterOptions{kSegmentSize}, recovered, epoch);
    if (!opened.ok()) FAIL(opened.error().to_string());
    return std::move(opened).value();
  }

  RecoveredLog recover() {
    RecoveryOptions options;
    options.mode = RecoveryMode::ReadOnly;
    options.stored_epoch = 1;
    auto recovered = recover_log(fs, kDir, options, {});
    if (!recovered.ok()) FAIL(recovered.error().to_string());
    return std::move(recovered).value();
  }
};

// A frame of a segment file, decoded without the writer or recovery.
struct ParsedFrame {
  uint64_t offset = 0;
  uint64_t size = 0;
  format::FrameHeader header;
  uint64_t event_count = 0;  // Event / Batch
  uint64_t seal_count = 0;   // Seal: the event count it records
  uint64_t end() const { return offset + size; }
};

struct ParsedSegment {
  format::SegmentHeader header;
  std::vector<ParsedFrame> frames;
  uint64_t file_size = 0;
  uint64_t data_end = 0;  // after the last frame that decodes
};

ParsedSegment parse_segment(const std::vector<std::byte>& bytes, uint64_t segment_id) {
  ParsedSegment parsed;
  parsed.file_size = bytes.size();
  REQUIRE(format::decode_segment_header(bytes, parsed.header, nullptr) == format::HeaderDecode::Ok);
  uint64_t at = format::kSegmentHeaderSize;
  while (at < bytes.size()) {
    format::DecodedFrame frame;
    if (format::decode_frame(std::span(bytes).subspan(at), segment_id, frame) !=
        format::FrameDecode::Ok) {
      break;
    }
    ParsedFrame p{at, frame.size, frame.header, 0, 0};
    if (format::is_system_record(frame.header.type)) {
      format::SystemRecord record;
      REQUIRE(format::decode_system_record(frame, record) == nullptr);
      p.seal_count = record.event_count;
    } else {
      const char* error = nullptr;
      p.event_count = format::record_event_count(frame, &error);
      REQUIRE(error == nullptr);
    }
    parsed.frames.push_back(p);
    at += frame.size;
  }
  parsed.data_end = at;
  return parsed;
}

std::vector<ParsedSegment> parse_store(Fixture& f) {
  auto files = list_segment_files(f.fs, kDir);
  REQUIRE(files.ok());
  std::vector<ParsedSegment> segments;
  for (const SegmentFile& file : *files) {
    segments.push_back(parse_segment(f.fs.contents(file.path), file.segment_id));
  }
  return segments;
}

// The chain the format promises: ids from 1, each segment's first sequence continues the last,
// every frame inside the segment size, every segment but the last ends in a Seal that counts its
// events (and has nothing after it), the last has no Seal. Returns the total event count.
uint64_t check_chain(const std::vector<ParsedSegment>& segments) {
  uint64_t next_sequence = 1;
  for (size_t i = 0; i < segments.size(); ++i) {
    INFO("segment " << i + 1);
    const ParsedSegment& s = segments[i];
    CHECK(s.header.segment_id == i + 1);
    CHECK(s.header.first_sequence == next_sequence);
    REQUIRE_FALSE(s.frames.empty());
    CHECK(s.data_end <= kSegmentSize);
    uint64_t events = 0;
    for (const ParsedFrame& frame : s.frames) {
      if (frame.header.type == RecordType::Seal) continue;
      CHECK(frame.header.sequence == next_sequence + events);
      events += frame.event_count;
    }
    bool last = i + 1 == segments.size();
    if (!last) {
      CHECK(s.frames.back().header.type == RecordType::Seal);
      CHECK(s.frames.back().seal_count == events);
      CHECK(s.frames.back().header.sequence == next_sequence + events);
      CHECK(s.file_size == s.data_end);  // rotation trimmed the preallocation
    }
    for (size_t j = 0; j + (last ? 0 : 1) < s.frames.size(); ++j) {
      CHECK(s.frames[j].header.type != RecordType::Seal);
    }
    next_sequence += events;
  }
  return next_sequence - 1;
}

// The largest payload whose event frame is exactly `frame_size` bytes (0 if none).
size_t payload_for_frame_size(uint64_t frame_size) {
  size_t best = 0;
  for (size_t payload = 0; payload < frame_size; ++payload) {
    Events events;  // the first event's clock, as small as a test's (frames are not padded)
    std::vector<std::byte> out;
    if (format::append_event_frame(out, {1, 1, 0}, 1, events.make(payload), nullptr) ==
        frame_size) {
      best = payload;
    }
  }
  return best;
}

TEST_CASE("Rotation keeps every record inside one segment and seals each full segment",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  for (int i = 0; i < 120; ++i) {
    KEEL_REQUIRE_OK(w->append_event(events.make(10 + (i * 37) % 300), nullptr));
    if (i % 7 == 6) KEEL_REQUIRE_OK(w->sync());
  }
  KEEL_REQUIRE_OK(w->close());
  auto segments = parse_store(f);
  REQUIRE(segments.size() >= 4);
  CHECK(check_chain(segments) == 120);
  // Every byte of every file is a frame: nothing spans into a following file.
  for (const ParsedSegment& s : segments) CHECK(s.data_end == s.file_size);
  CHECK(f.recover().next_sequence == 121);
}

TEST_CASE("A batch never spans segments: segments start at batch boundaries", "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  std::set<uint64_t> batch_starts;
  for (int i = 0; i < 40; ++i) {
    std::vector<format::EventBody> batch;
    for (int j = 0; j < 1 + i % 6; ++j) batch.push_back(events.make(40));
    batch_starts.insert(w->next_sequence());
    std::vector<Hash128> hashes;
    KEEL_REQUIRE_OK(w->append_batch(batch, &hashes));
    CHECK(hashes.size() == batch.size());
    KEEL_REQUIRE_OK(w->sync());
  }
  KEEL_REQUIRE_OK(w->close());
  auto segments = parse_store(f);
  REQUIRE(segments.size() >= 3);
  uint64_t total = check_chain(segments);
  CHECK(total == w->next_sequence() - 1);
  for (const ParsedSegment& s : segments) {
    CHECK(batch_starts.count(s.header.first_sequence) == 1);
    for (const ParsedFrame& frame : s.frames) {
      if (frame.header.type == RecordType::Batch) {
        CHECK(batch_starts.count(frame.header.sequence) == 1);
      }
    }
  }
}

TEST_CASE("A record too large for any segment is PayloadTooLarge and poisons nothing",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  // One record pending in the group before the refused one: it must survive the refusal.
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  SECTION("an event") {
    auto refused = w->append_event(events.make(kSegmentSize), nullptr);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == ErrorCode::PayloadTooLarge);
    CHECK(refused.error().error_class() == ErrorClass::Domain);
    CHECK(refused.error().field_u64("limit") == kFrameLimit);
    CHECK(refused.error().field_u64("size") > kFrameLimit);
  }
  SECTION("a batch whose events would each fit") {
    std::vector<format::EventBody> batch;
    for (int i = 0; i < 40; ++i) batch.push_back(events.make(100));
    auto refused = w->append_batch(batch, nullptr);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == ErrorCode::PayloadTooLarge);
  }
  CHECK_FALSE(w->poisoned());
  CHECK(w->next_sequence() == 2);
  CHECK(w->active_segment_id() == 1);  // no rotation for a record no segment can take
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(w->sync());
  auto segments = parse_store(f);
  REQUIRE(segments.size() == 1);
  REQUIRE(segments[0].frames.size() == 2);
  CHECK(segments[0].frames[0].header.sequence == 1);
  CHECK(segments[0].frames[1].header.sequence == 2);
  CHECK(segments[0].frames[1].offset == segments[0].frames[0].end());
}

// The format's own limit, independent of the segment size: a body of 64 MiB is a frame, one byte
// more would be read back as a bad length (a torn tail) and dropped, so it is never written.
TEST_CASE("A record body above 64 MiB is PayloadTooLarge even where the segment has room",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto opened = SegmentWriter::open(f.fs, kDir, SegmentWriterOptions{160ull << 20}, {}, 1);
  KEEL_REQUIRE_OK(opened);
  SegmentWriter& w = **opened;
  // The body size of an event with a payload of n bytes is overhead + n (the payload's length a
  // varint of four bytes from 2 MiB to 256 MiB).
  std::vector<std::byte> probe;
  format::append_event_frame(probe, format::FrameContext{1, 1, 64}, 1, events.make(1 << 22),
                             nullptr);
  uint64_t overhead = format::load_u32(probe.data() + format::kFrameBodyLengthOffset) - (1 << 22);
  const uint64_t fits = format::kFrameBodyMax - overhead;
  auto refused = w.append_event(events.make(fits + 1), nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::PayloadTooLarge);
  CHECK(refused.error().field_u64("limit") == format::kFrameBodyMax);
  CHECK(refused.error().field_u64("size") == fits + 1 + overhead);
  CHECK(w.pending_bytes() == 0);
  CHECK_FALSE(w.poisoned());
  KEEL_REQUIRE_OK(w.append_event(events.make(fits), nullptr));
  KEEL_REQUIRE_OK(w.sync());
  RecoveredLog recovered = f.recover();
  CHECK(recovered.next_sequence == 2);
  CHECK(recovered.actions.empty());
}

TEST_CASE("A record exactly as large as a segment allows is written, one step more is refused",
          "[segment_writer]") {
  Fixture f;
  Events events;
  size_t fits = payload_for_frame_size(kFrameLimit);
  REQUIRE(fits > 0);
  auto w = f.open_writer();
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  // Does not fit after the first event: rotates, then fills segment 2 up to its seal reserve.
  KEEL_REQUIRE_OK(w->append_event(events.make(fits), nullptr));
  CHECK(w->active_segment_id() == 2);
  auto refused = w->append_event(events.make(fits + format::kFrameAlignment), nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::PayloadTooLarge);
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));  // rotates again: segment 2 is full
  CHECK(w->active_segment_id() == 3);
  KEEL_REQUIRE_OK(w->close());
  auto segments = parse_store(f);
  REQUIRE(segments.size() == 3);
  CHECK(check_chain(segments) == 3);
  REQUIRE(segments[1].frames.size() == 2);  // the big event and the seal
  CHECK(segments[1].frames[0].size == kFrameLimit);
  CHECK(segments[1].file_size == kSegmentSize - kSealFrameMax + segments[1].frames[1].size);
}

TEST_CASE("A record that would leave less room than a seal rotates first", "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  uint64_t first = w->pending_bytes();
  // Leave exactly 200 bytes of segment 1 free, then append a 160-byte record: it fits the space
  // but not the space plus the seal, so it must open segment 2.
  constexpr uint64_t kFree = 200;
  constexpr uint64_t kSmall = 160;
  static_assert(kSmall < kFree && kSmall + kSealFrameMax > kFree);
  size_t filler = payload_for_frame_size(kSegmentSize - format::kSegmentHeaderSize - first - kFree);
  size_t small = payload_for_frame_size(kSmall);
  REQUIRE(filler > 0);
  REQUIRE(small > 0);
  KEEL_REQUIRE_OK(w->append_event(events.make(filler), nullptr));
  KEEL_REQUIRE_OK(w->sync());
  REQUIRE(w->written_offset() == kSegmentSize - kFree);
  KEEL_REQUIRE_OK(w->append_event(events.make(small), nullptr));
  CHECK(w->active_segment_id() == 2);
  KEEL_REQUIRE_OK(w->close());
  auto segments = parse_store(f);
  REQUIRE(segments.size() == 2);
  CHECK(check_chain(segments) == 3);
  CHECK(segments[0].file_size <= kSegmentSize);
}

TEST_CASE("close() trims the preallocation, an unclosed writer leaves it as a zero-filled tail",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  // Preallocated at creation, before any frame.
  CHECK(f.fs.contents(f.segment(1)).size() == kSegmentSize);
  for (int i = 0; i < 3; ++i) KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(w->sync());
  uint64_t data_end = parse_segment(f.fs.contents(f.segment(1)), 1).data_end;
  CHECK(f.fs.contents(f.segment(1)).size() == kSegmentSize);

  SECTION("closed") {
    KEEL_REQUIRE_OK(w->close());
    CHECK(f.fs.contents(f.segment(1)).size() == data_end);
    RecoveredLog recovered = f.recover();
    CHECK(recovered.tail_rule == RecoveryRule::CleanEnd);
    CHECK(recovered.segments.back().data_end == data_end);
  }
  SECTION("dropped without close (a crash)") {
    w.reset();
    CHECK(f.fs.contents(f.segment(1)).size() == kSegmentSize);
    RecoveredLog recovered = f.recover();
    CHECK(recovered.tail_rule == RecoveryRule::ZeroFilledTail);
    CHECK(recovered.actions.empty());
    CHECK(recovered.segments.back().data_end == data_end);
    CHECK(recovered.next_sequence == 4);
    // Continuing that log preallocates again and appends at the data end.
    auto continued = f.open_writer(recovered, 2);
    CHECK(continued->next_sequence() == 4);
    CHECK(continued->sequence_durable() == 3);
    KEEL_REQUIRE_OK(continued->append_event(events.make(), nullptr));
    KEEL_REQUIRE_OK(continued->close());
    auto segment = parse_segment(f.fs.contents(f.segment(1)), 1);
    REQUIRE(segment.frames.size() == 4);
    CHECK(segment.frames[3].offset == data_end);
    CHECK(segment.frames[3].header.epoch == 2);
    CHECK(segment.file_size == segment.data_end);
  }
}

TEST_CASE("sequence_written advances on flush, sequence_durable on sync", "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  CHECK(w->next_sequence() == 1);
  CHECK(w->sequence_written() == 0);
  CHECK(w->sequence_durable() == 0);
  for (int i = 0; i < 3; ++i) KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  CHECK(w->next_sequence() == 4);
  CHECK(w->sequence_written() == 0);
  CHECK(parse_segment(f.fs.contents(f.segment(1)), 1).frames.empty());  // nothing written yet
  KEEL_REQUIRE_OK(w->flush());
  CHECK(w->sequence_written() == 3);
  CHECK(w->sequence_durable() == 0);
  CHECK(parse_segment(f.fs.contents(f.segment(1)), 1).frames.size() == 3);
  KEEL_REQUIRE_OK(w->sync());
  CHECK(w->sequence_written() == 3);
  CHECK(w->sequence_durable() == 3);
  // A system record takes no sequence: the watermarks stay.
  KEEL_REQUIRE_OK(w->append_system({RecordType::FenceBegin, 1, format::CancelReason::Caller, 0}));
  KEEL_REQUIRE_OK(w->sync());
  CHECK(w->next_sequence() == 4);
  CHECK(w->sequence_durable() == 3);
  // sync() flushes first.
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(w->sync());
  CHECK(w->sequence_written() == 4);
  CHECK(w->sequence_durable() == 4);
}

TEST_CASE("Each frame's durable_through is the offset the last successful sync covered",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  auto append = [&](int count) {
    for (int i = 0; i < count; ++i) KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  };
  append(2);
  KEEL_REQUIRE_OK(w->sync());  // group A: written before any sync of data
  append(2);
  KEEL_REQUIRE_OK(w->flush());  // group B: flushed only, so it does not move durable_through
  append(1);
  KEEL_REQUIRE_OK(w->sync());  // group C
  append(1);
  KEEL_REQUIRE_OK(w->sync());  // group D
  auto frames = parse_segment(f.fs.contents(f.segment(1)), 1).frames;
  REQUIRE(frames.size() == 6);
  uint64_t header_end = format::kSegmentHeaderSize;  // synced when the segment was created
  CHECK(frames[0].header.durable_through == header_end);
  CHECK(frames[1].header.durable_through == header_end);
  CHECK(frames[2].header.durable_through == frames[1].end());
  CHECK(frames[3].header.durable_through == frames[1].end());
  CHECK(frames[4].header.durable_through == frames[1].end());
  CHECK(frames[5].header.durable_through == frames[4].end());

  // After a rotation the new segment starts over from its own synced header.
  while (w->active_segment_id() < 2) append(1);
  KEEL_REQUIRE_OK(w->sync());
  auto next = parse_segment(f.fs.contents(f.segment(2)), 2).frames;
  REQUIRE_FALSE(next.empty());
  CHECK(next[0].header.durable_through == header_end);
  // And a writer continuing a recovered segment starts from the recovered data end.
  w.reset();
  RecoveredLog recovered = f.recover();
  uint64_t data_end = recovered.segments.back().data_end;
  auto continued = f.open_writer(recovered, 2);
  KEEL_REQUIRE_OK(continued->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(continued->sync());
  auto after = parse_segment(f.fs.contents(f.segment(2)), 2).frames;
  CHECK(after.back().offset == data_end);
  CHECK(after.back().header.durable_through == data_end);
}

TEST_CASE("A segment size below 4096 bytes is InvalidArgument", "[segment_writer]") {
  Fixture f;
  for (uint64_t size : {uint64_t{0}, uint64_t{1024}, kSegmentSizeMin - 1}) {
    auto opened = SegmentWriter::open(f.fs, kDir, SegmentWriterOptions{size}, {}, 1);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == ErrorCode::InvalidArgument);
    CHECK(opened.error().field_string("argument") == "segment_size");
  }
  CHECK(list_segment_files(f.fs, kDir)->empty());  // refused before creating anything
  CHECK(SegmentWriter::open(f.fs, kDir, SegmentWriterOptions{kSegmentSizeMin}, {}, 1).ok());

  // Through the front door: refused before the directory, the lock or the epoch is touched.
  test::TempDir dir;
  LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = kSegmentSizeMin - 1;
  std::string store = dir / "store";
  auto opened = Log::open(platform::posix_file_system(), store, options);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().code() == ErrorCode::InvalidArgument);
  CHECK_FALSE(*platform::posix_file_system().exists(store));
}

}  // namespace
}  // namespace keel::log

namespace keel::log {

TEST_CASE("a sealed last segment whose trim a crash lost is trimmed before the next is created",
          "[segment_writer]") {
  Fixture f;
  Events events;
  {
    auto writer = f.open_writer();
    for (int i = 0; i < 60; ++i) KEEL_REQUIRE_OK(writer->append_event(events.make(), nullptr));
    KEEL_REQUIRE_OK(writer->close());
  }
  // Crash between sealing segment 1 and creating segment 2, with the trim of segment 1 lost: the
  // newest file is gone and segment 1 still carries zeros after its seal.
  uint64_t last = f.recover().segments.back().header.segment_id;
  REQUIRE(last >= 2);
  KEEL_REQUIRE_OK(f.fs.remove(f.segment(last)));
  auto sealed = f.fs.contents(f.segment(last - 1));
  uint64_t data_end = sealed.size();
  sealed.resize(kSegmentSize + 1000);
  f.fs.set_contents(f.segment(last - 1), sealed);
  RecoveredLog recovered = f.recover();
  REQUIRE(recovered.segments.back().sealed);
  REQUIRE(recovered.tail_rule == RecoveryRule::ZeroFilledTail);
  auto writer = f.open_writer(recovered, 2);
  CHECK(f.fs.contents(f.segment(last - 1)).size() == data_end);
  CHECK(writer->active_segment_id() == last);
}

TEST_CASE("Stages: an fdatasync covers what was written when it started, one of each in flight",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  for (int i = 0; i < 2; ++i) KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(w->flush());
  SegmentWriter::SyncTicket ticket;
  KEEL_REQUIRE_OK(w->begin_sync(ticket));
  CHECK(ticket.last_sequence == 2);
  SegmentWriter::SyncTicket second;
  CHECK(w->begin_sync(second).error().is(ErrorCode::InvariantViolation));
  // The next group is written while the fdatasync runs.
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  SegmentWriter::WriteGroup group;
  KEEL_REQUIRE_OK(w->begin_write(group));
  SegmentWriter::WriteGroup other;
  CHECK(w->begin_write(other).error().is(ErrorCode::InvariantViolation));
  KEEL_REQUIRE_OK(w->end_write(group, SegmentWriter::run_write(group)));
  CHECK(w->sequence_written() == 3);
  KEEL_REQUIRE_OK(w->end_sync(ticket, SegmentWriter::run_sync(ticket)));
  CHECK(w->sequence_durable() == 2);  // not 3: written after the fdatasync started
  CHECK(w->durable_offset() < w->written_offset());
  KEEL_REQUIRE_OK(w->sync());
  CHECK(w->sequence_durable() == 3);
}

TEST_CASE("Poisoned while an fdatasync is in flight: its success does not move durable",
          "[segment_writer]") {
  Fixture f;
  Events events;
  auto w = f.open_writer();
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(w->sync());
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  KEEL_REQUIRE_OK(w->flush());
  SegmentWriter::SyncTicket ticket;
  KEEL_REQUIRE_OK(w->begin_sync(ticket));
  KEEL_REQUIRE_OK(w->append_event(events.make(), nullptr));
  SegmentWriter::WriteGroup group;
  KEEL_REQUIRE_OK(w->begin_write(group));
  Status failed = StoreError(ErrorCode::Io).with("operation", "pwrite");
  CHECK_FALSE(w->end_write(group, failed).ok());
  CHECK(w->poisoned());
  // The fdatasync then succeeds on the file; after a failure nothing is believed (fsyncgate).
  Status ended = w->end_sync(ticket, SegmentWriter::run_sync(ticket));
  CHECK_FALSE(ended.ok());
  CHECK(w->sequence_durable() == 1);
  CHECK(w->sequence_written() == 2);
}

}  // namespace keel::log
