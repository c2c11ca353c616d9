// libFuzzer target: recovery of arbitrary segment bytes. The input becomes a store directory in a
// MemoryFileSystem:
//
//   byte 0          the EPOCH file's value; 0 = no EPOCH file
//   "#RET#" f m     optional: a RETAIN file (log/retention_floor.h) naming segment 1 + f % count,
//                   with that segment's header first_sequence (+1 when m & 1: a mismatch; m / 4 + 1
//                   when the header does not decode); m & 2 removes the segments below it, else
//                   they stay, as a crash between writing RETAIN and removing them leaves them
//   then            segment files segment-...01.keel, -02, ... separated by the marker "#SEG#"
//                   (at most kSegmentsMax; the rest stays in the last one)
//
// Then: a read-only Log::open, log::recover_log in ReadOnly mode, and a writable Log::open on a
// copy of the directory. Invariants checked beyond "no crash, no hang, no allocation above the
// limit":
// - recovery fails only with a FailClosed format error (Corruption, SegmentChainBroken,
//   HiddenRangesCorrupt, UnsupportedVersion, CorruptSidecar), and every record it keeps decodes;
// - with a RETAIN, recovery starts at its segment and sequence, keeps nothing below it, reports
//   each leftover below it (BelowRetentionFloor), and a writable open deletes them;
// - a read-only open writes nothing;
// - read-only and writable recovery (and recover_log called directly) take the same decision
//   and keep the same records;
// - a failed writable open leaves every file byte-identical (FailClosed touches nothing);
// - after a successful writable open, one appended event and a close, the store reopens with no
//   repair to make, the sequence advanced by one and the event read back intact;
// - recovery from a checkpoint taken at any record full recovery kept (as an index image names
//   one) is used and keeps exactly the records after it, ending where full recovery ended, also
//   as a follower reads it (RecoveryOptions::follow: the resume segment read only as far as
//   frames go); a
//   checkpoint made of input bytes is used or rejected, never a crash, and fails only FailClosed;
// - a tail dropped as torn (row TornTail) holds no frame that would have continued the log, at any
//   byte offset (checked here by brute force): libFuzzer's own insert and erase mutations shift
//   frames off the 8-byte grid, which is how the search once missed them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/checksum.h"
#include "format/record.h"
#include "fuzz_support.h"
#include "format/segment_header.h"
#include "log/epoch_file.h"
#include "log/log.h"
#include "log/retention_floor.h"
#include "log/segment_files.h"
#include "platform/memory_file_system.h"

namespace keel::fuzz {
namespace {

constexpr char kDirectory[] = "/store";
constexpr std::string_view kMarker = "#SEG#";
constexpr std::string_view kRetainMarker = "#RET#";
constexpr size_t kSegmentsMax = 8;
// Small, so a writable open preallocates little (the malloc limit is 1 MB) and rotates soon.
constexpr uint64_t kSegmentSize = 64 * 1024;

struct RetainInput {
  uint8_t floor = 0;  // the floor's segment: 1 + floor % the number of segments
  uint8_t mode = 0;   // bit 0: first_sequence off by one; bit 1: segments below it removed
};

struct StoreInput {
  uint8_t epoch = 0;
  std::optional<RetainInput> retain;
  std::vector<std::vector<std::byte>> segments;
};

StoreInput parse_input(std::string_view input) {
  StoreInput store;
  if (input.empty()) return store;
  store.epoch = static_cast<uint8_t>(input[0]);
  std::string_view rest = input.substr(1);
  if (rest.size() >= kRetainMarker.size() + 2 && rest.starts_with(kRetainMarker)) {
    store.retain = RetainInput{static_cast<uint8_t>(rest[kRetainMarker.size()]),
                               static_cast<uint8_t>(rest[kRetainMarker.size() + 1])};
    rest = rest.substr(kRetainMarker.size() + 2);
  }
  while (true) {
    size_t marker =
        store.segments.size() + 1 < kSegmentsMax ? rest.find(kMarker) : std::string_view::npos;
    std::string_view piece = rest.substr(0, marker);
    auto* begin = reinterpret_cast<const std::byte*>(piece.data());
    store.segments.emplace_back(begin, begin + piece.size());
    if (marker == std::string_view::npos) break;
    rest = rest.substr(marker + kMarker.size());
  }
  return store;
}

// The floor the input's RETAIN names, if any.
std::optional<log::RetentionFloor> retention_floor(const StoreInput& input) {
  if (!input.retain || input.segments.empty()) return std::nullopt;
  uint64_t segment_id = 1 + input.retain->floor % input.segments.size();
  format::SegmentHeader header;
  uint64_t first_sequence = input.retain->mode / 4 + 1;
  if (format::decode_segment_header(input.segments[segment_id - 1], header, nullptr) ==
          format::HeaderDecode::Ok &&
      header.first_sequence != 0) {
    first_sequence = header.first_sequence + (input.retain->mode & 1);
  }
  return log::RetentionFloor{segment_id, first_sequence};
}

bool segments_below_floor_removed(const StoreInput& input) {
  return input.retain && (input.retain->mode & 2) != 0;
}

void populate(platform::MemoryFileSystem& fs, const StoreInput& input) {
  check(fs.create_directory(kDirectory).ok(), "create_directory");
  std::optional<log::RetentionFloor> floor = retention_floor(input);
  for (size_t i = 0; i < input.segments.size(); ++i) {
    if (floor && i + 1 < floor->first_segment_id && segments_below_floor_removed(input)) continue;
    fs.set_contents(platform::join_path(kDirectory, log::segment_file_name(i + 1)),
                    input.segments[i]);
  }
  if (floor) check(log::write_retention_floor(fs, kDirectory, *floor).ok(), "retention floor");
  if (input.epoch != 0) check(log::write_epoch(fs, kDirectory, input.epoch).ok(), "epoch");
}

using Snapshot = std::map<std::string, std::vector<std::byte>>;

// Every file of the store but the lock file (which a writable open creates).
Snapshot snapshot(platform::MemoryFileSystem& fs) {
  Snapshot files;
  auto names = fs.list_directory(kDirectory);
  check(names.ok(), "list_directory");
  for (const std::string& name : *names) {
    if (name == format::kLockFileName) continue;
    std::string path = platform::join_path(kDirectory, name);
    files[path] = fs.contents(path);
  }
  return files;
}

// What recovery kept, record by record: where, what, and a checksum of the body.
struct KeptRecord {
  uint64_t segment_id;
  uint64_t offset;
  uint64_t size;
  format::RecordType type;
  uint64_t sequence;
  uint64_t body_checksum;
  uint64_t epoch;
  uint64_t next_sequence;  // the sequence after the record's events
  friend bool operator==(const KeptRecord&, const KeptRecord&) = default;
};

struct Visited {
  std::vector<KeptRecord> records;
  bool last_event_is_probe = false;
};

// Checks that every kept record decodes, and records it.
log::RecordVisitor visitor(Visited& visited, const format::EventBody* probe) {
  return [&visited, probe](const log::RecordPosition& at, const format::DecodedFrame& frame) {
    const char* count_error = nullptr;
    uint64_t events = format::is_system_record(frame.header.type)
                          ? 0
                          : format::record_event_count(frame, &count_error);
    visited.records.push_back({at.segment_id, at.offset, frame.size, frame.header.type,
                               frame.header.sequence, format::checksum64(frame.body),
                               frame.header.epoch, frame.header.sequence + events});
    if (format::is_system_record(frame.header.type)) {
      format::SystemRecord record;
      check(format::decode_system_record(frame, record) == nullptr,
            "recovery kept a system record that does not decode");
      return;
    }
    const char* error =
        format::decode_record_events(frame, [&](uint32_t, const format::EventBody& event) {
          visited.last_event_is_probe = probe != nullptr && same_event(event, *probe);
        });
    check(error == nullptr, "recovery kept an event record that does not decode");
  };
}

// What recovery must say about the floor: where the log starts, nothing kept below it, and each
// leftover below it reported (and, when `deleted`, gone).
void check_floor(platform::MemoryFileSystem& fs, const StoreInput& input,
                 const log::RecoveredLog& recovered, const std::vector<KeptRecord>& kept,
                 bool deleted) {
  std::optional<log::RetentionFloor> floor = retention_floor(input);
  check(recovered.retention_floor == floor, "recovery reports another retention floor");
  check(recovered.first_sequence == (floor ? floor->first_sequence : 1),
        "the first retained sequence is not the floor's");
  uint64_t first_id = floor ? floor->first_segment_id : 1;
  for (const KeptRecord& record : kept) {
    check(record.segment_id >= first_id, "recovery kept a record below the retention floor");
  }
  for (const log::RecoveredSegment& segment : recovered.segments) {
    check(segment.header.segment_id >= first_id, "recovery kept a segment below the floor");
  }
  uint64_t leftovers = floor && !segments_below_floor_removed(input) ? first_id - 1 : 0;
  uint64_t reported = 0;
  for (const log::RecoveryAction& action : recovered.actions) {
    if (action.rule == log::RecoveryRule::BelowRetentionFloor) ++reported;
  }
  check(reported == leftovers, "leftover segments below the floor not reported one by one");
  if (!deleted) return;
  auto files = log::list_segment_files(fs, kDirectory);
  check(files.ok(), "list segments");
  for (const log::SegmentFile& file : *files) {
    check(file.segment_id >= first_id, "a writable open left a segment below the floor");
  }
}

void check_error_class(const StoreError& error) {
  (void)error.to_string();
  check(error.is(ErrorCode::Corruption) || error.is(ErrorCode::SegmentChainBroken) ||
            error.is(ErrorCode::HiddenRangesCorrupt) || error.is(ErrorCode::UnsupportedVersion) ||
            error.is(ErrorCode::CorruptSidecar),
        "recovery failed with an unexpected error code");
  check(error.error_class() == ErrorClass::FailClosed, "recovery error not FailClosed");
}

format::EventBody probe_event() {
  format::EventBody event;
  event.event_id = EventId{0x0123456789abcdefull, 0xfedcba9876543210ull};
  event.entity = "fuzz:probe";
  event.scope = "fuzz";
  event.kind = 0x1001;
  event.entity_clock = 1;
  event.hlc_wall_ms = 1'700'000'000'000ull;
  event.correlation_id = event.event_id;
  event.payload = "probe";
  return event;
}

// Appends the probe event, closes, and reopens read-only: the store must be clean and whole.
void check_append_and_reopen(platform::MemoryFileSystem& fs, log::Log& writable) {
  uint64_t next_sequence = writable.writer()->next_sequence();
  uint64_t epoch = writable.epoch();
  format::EventBody probe = probe_event();
  Hash128 hash;
  check(writable.writer()->append_event(probe, &hash).ok(), "append after recovery");
  check(writable.close().ok(), "close after recovery");
  Visited visited;
  log::LogOptions options;
  options.read_only = true;
  auto reopened = log::Log::open(fs, kDirectory, options, visitor(visited, &probe));
  if (!reopened.ok()) std::fprintf(stderr, "%s\n", reopened.error().to_string().c_str());
  check(reopened.ok(), "a store repaired by a writable open does not reopen");
  const log::RecoveredLog& recovered = (*reopened)->recovered();
  check(recovered.actions.empty(), "a store repaired by a writable open needs repairs again");
  check(recovered.next_sequence == next_sequence + 1, "the appended event's sequence is lost");
  check(visited.last_event_is_probe, "the appended event does not read back intact");
  check((*reopened)->epoch() == epoch, "epoch changed across a close");
}

// Row TornTail claims no valid frame follows the damage: try every byte offset after it.
void check_torn_tail_holds_no_frame(platform::MemoryFileSystem& fs, uint8_t epoch,
                                    const log::RecoveredLog& recovered) {
  for (const log::RecoveryAction& action : recovered.actions) {
    if (action.rule != log::RecoveryRule::TornTail) continue;
    auto file = fs.open(action.path, platform::OpenMode::ReadOnly);
    check(file.ok(), "the torn segment cannot be opened");
    auto bytes = platform::read_file(**file);
    check(bytes.ok(), "the torn segment cannot be read");
    format::SegmentHeader header;
    check(format::decode_segment_header(*bytes, header, nullptr) == format::HeaderDecode::Ok,
          "a torn tail in a segment without a header");
    for (uint64_t at = action.offset; at < bytes->size(); ++at) {
      format::DecodedFrame frame;
      // The frame at the damage itself counts only when it vouches for bytes before it (a whole
      // frame deleted in front of it): FORMAT.md 9.3.
      if (format::decode_frame(std::span<const std::byte>(*bytes).subspan(at), header.segment_id,
                               frame) == format::FrameDecode::Ok &&
          frame.header.epoch >= header.epoch && frame.header.epoch <= epoch &&
          frame.header.sequence >= recovered.next_sequence &&
          (at != action.offset || frame.header.durable_through > at)) {
        std::fprintf(stderr, "frame at offset %llu after a torn tail at %llu\n",
                     static_cast<unsigned long long>(at),
                     static_cast<unsigned long long>(action.offset));
        check(false, "a valid frame after a torn tail was missed");
      }
    }
  }
}

// recover_log itself in ReadOnly mode, given the input's epoch even when there is no EPOCH file
// (Log::open stops at the missing file; the segment rules still run here). With an EPOCH file it
// must decide exactly as the read-only Log::open did.
void check_recover_log_directly(platform::MemoryFileSystem& fs, uint8_t epoch,
                                const Result<std::unique_ptr<log::Log>>& read_only,
                                const std::vector<KeptRecord>& read_only_records) {
  Visited visited;
  log::RecoveryOptions options;  // no checkpoint: every segment is scanned
  options.mode = log::RecoveryMode::ReadOnly;
  options.stored_epoch = epoch;
  auto recovered = log::recover_log(fs, kDirectory, options, visitor(visited, nullptr));
  if (!recovered.ok()) check_error_class(recovered.error());
  if (epoch == 0) return;
  check(recovered.ok() == read_only.ok(), "recover_log and Log::open disagree");
  check(visited.records == read_only_records, "recover_log and Log::open keep different records");
}

// Recovery from a checkpoint at kept record `at` (as an index image written after it names it).
void check_checkpoint_at(platform::MemoryFileSystem& fs, uint8_t epoch,
                         const log::RecoveredLog& full, const std::vector<KeptRecord>& records,
                         size_t at) {
  const KeptRecord& k = records[at];
  log::RecoveryOptions options;
  options.mode = log::RecoveryMode::ReadOnly;
  options.stored_epoch = epoch;
  options.checkpoint = log::Checkpoint{k.next_sequence, k.epoch, k.segment_id, k.offset + k.size,
                                       k.offset};
  std::string rejected;
  options.checkpoint_rejected = [&](const std::string& why) { rejected = why; };
  Visited visited;
  auto recovered = log::recover_log(fs, kDirectory, options, visitor(visited, nullptr));
  if (!recovered.ok()) std::fprintf(stderr, "%s\n", recovered.error().to_string().c_str());
  check(recovered.ok(), "recovery from a checkpoint at a kept record failed");
  if (!recovered->checkpoint_used) std::fprintf(stderr, "rejected: %s\n", rejected.c_str());
  check(recovered->checkpoint_used, "a checkpoint at a kept record was rejected");
  check(std::equal(visited.records.begin(), visited.records.end(), records.begin() + at + 1,
                   records.end()) &&
            visited.records.size() == records.size() - at - 1,
        "recovery from a checkpoint keeps other records than full recovery after it");
  check(recovered->next_sequence == full.next_sequence &&
            recovered->segments.size() == full.segments.size() &&
            recovered->tail_rule == full.tail_rule,
        "recovery from a checkpoint ends elsewhere than full recovery");
  // A follower (Store::refresh) reads the resume segment only as far as frames go: it keeps the
  // same records and ends at the same sequence.
  options.follow = true;
  Visited followed;
  auto follow = log::recover_log(fs, kDirectory, options, visitor(followed, nullptr));
  if (!follow.ok()) std::fprintf(stderr, "%s\n", follow.error().to_string().c_str());
  check(follow.ok() && follow->checkpoint_used, "a follower's recovery from a kept record failed");
  check(followed.records == visited.records && follow->next_sequence == full.next_sequence &&
            follow->segments.size() == full.segments.size() &&
            follow->segments.back().data_end == full.segments.back().data_end,
        "a follower's recovery keeps other records than recovery from the same checkpoint");
}

// A checkpoint made of input bytes: used or rejected, never a crash or an unexpected error.
void check_arbitrary_checkpoint(platform::MemoryFileSystem& fs, uint8_t epoch,
                                std::string_view bytes) {
  uint64_t fields[5] = {};
  for (size_t i = 0; i < 5 && (i + 1) * 8 <= bytes.size(); ++i) {
    std::memcpy(&fields[i], bytes.data() + i * 8, 8);
  }
  log::RecoveryOptions options;
  options.mode = log::RecoveryMode::ReadOnly;
  options.stored_epoch = epoch;
  options.checkpoint = log::Checkpoint{fields[0] % 4096, fields[1] % 256, fields[2] % 10,
                                       fields[3] % (kSegmentSize * 2), fields[4] % (kSegmentSize * 2)};
  auto recovered = log::recover_log(fs, kDirectory, options, {});
  if (!recovered.ok()) check_error_class(recovered.error());
  options.follow = true;  // as a follower reads it: never outside what it read
  auto followed = log::recover_log(fs, kDirectory, options, {});
  if (!followed.ok()) check_error_class(followed.error());
}

}  // namespace

void recover_input(const uint8_t* data, size_t size) {
  StoreInput input = parse_input(std::string_view(reinterpret_cast<const char*>(data), size));
  if (input.segments.empty()) return;

  platform::MemoryFileSystem read_only_fs;
  populate(read_only_fs, input);
  Snapshot before = snapshot(read_only_fs);
  Visited read_only_visit;
  log::LogOptions read_only_options;
  read_only_options.read_only = true;
  auto read_only = log::Log::open(read_only_fs, kDirectory, read_only_options,
                                  visitor(read_only_visit, nullptr));
  check(snapshot(read_only_fs) == before, "a read-only open changed the files");
  if (!read_only.ok()) check_error_class(read_only.error());
  check_recover_log_directly(read_only_fs, input.epoch, read_only, read_only_visit.records);
  if (read_only.ok()) {
    const std::vector<KeptRecord>& records = read_only_visit.records;
    check_floor(read_only_fs, input, (*read_only)->recovered(), records, /*deleted=*/false);
    check_torn_tail_holds_no_frame(read_only_fs, input.epoch, (*read_only)->recovered());
    // Records an image could name as its checkpoint: any outside a fence (an image is never taken
    // while a fence is open). Check the first, a middle and the last of them.
    std::vector<size_t> outside_fences;
    bool fence_open = false;
    for (size_t i = 0; i < records.size(); ++i) {
      if (records[i].type == format::RecordType::FenceBegin) fence_open = true;
      if (records[i].type == format::RecordType::FenceCommit ||
          records[i].type == format::RecordType::FenceCancel) {
        fence_open = false;
      }
      if (!fence_open) outside_fences.push_back(i);
    }
    if (!outside_fences.empty()) {
      for (size_t pick : {size_t{0}, outside_fences.size() / 2, outside_fences.size() - 1}) {
        check_checkpoint_at(read_only_fs, input.epoch, (*read_only)->recovered(), records,
                            outside_fences[pick]);
      }
    }
  }
  if (input.epoch != 0) {
    check_arbitrary_checkpoint(read_only_fs, input.epoch,
                               std::string_view(reinterpret_cast<const char*>(data), size));
  }
  check(snapshot(read_only_fs) == before, "read-only recovery changed the files");

  platform::MemoryFileSystem writable_fs;
  populate(writable_fs, input);
  Visited writable_visit;
  log::LogOptions writable_options;
  writable_options.writer.segment_size = kSegmentSize;
  auto writable =
      log::Log::open(writable_fs, kDirectory, writable_options, visitor(writable_visit, nullptr));
  check(writable.ok() == read_only.ok(), "read-only and writable recovery disagree");
  if (!writable.ok()) {
    check_error_class(writable.error());
    check(snapshot(writable_fs) == before, "a failed writable open changed the files");
    return;
  }
  check(writable_visit.records == read_only_visit.records,
        "read-only and writable recovery keep different records");
  check((*writable)->recovered().next_sequence == (*read_only)->recovered().next_sequence,
        "read-only and writable recovery end at different sequences");
  check_floor(writable_fs, input, (*writable)->recovered(), writable_visit.records,
              /*deleted=*/true);
  check_append_and_reopen(writable_fs, **writable);
}

}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::fuzz::recover_input(data, size);
  return 0;
}
