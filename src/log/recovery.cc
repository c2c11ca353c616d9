// Recovery, row by row of the decision table. Each branch names the row it implements.
#include "log/recovery.h"

#include <algorithm>
#include <cassert>

#include "format/format_constants.h"
#include "format/record.h"
#include "log/segment_files.h"

namespace keel::log {
namespace {

using format::DecodedFrame;
using format::FrameDecode;
using format::RecordType;

bool all_zero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

uint64_t nonzero_end(std::span<const std::byte> bytes) {
  auto it = std::find_if(bytes.rbegin(), bytes.rend(), [](std::byte b) { return b != std::byte{0}; });
  return static_cast<uint64_t>(bytes.rend() - it);
}

// Row 12 has its own code: fence records out of place leave which events are hidden unknown (the
// records are the authority on hidden ranges; DECISIONS.md 2026-12-01).
StoreError corruption(RecoveryRule rule, const std::string& path, uint64_t offset,
                      std::string_view reason) {
  const ErrorCode code = rule == RecoveryRule::OpenFenceFollowedByRecords
                             ? ErrorCode::HiddenRangesCorrupt
                             : ErrorCode::Corruption;
  return StoreError(code)
      .with("path", path)
      .with("offset", offset)
      .with("reason", reason)
      .with("rule", recovery_row(rule).name);
}

StoreError chain_gap(const std::string& path, std::string_view reason) {
  return StoreError(ErrorCode::SegmentChainBroken)
      .with("path", path)
      .with("reason", reason)
      .with("rule", recovery_row(RecoveryRule::SegmentChainGap).name);
}

// A frame recovery keeps, with what its body said.
struct KeptFrame {
  uint64_t offset = 0;
  DecodedFrame frame;
  uint32_t event_count = 0;           // Event / Batch
  std::optional<uint64_t> fence_id;   // of every event of an Event / Batch record
  format::SystemRecord system;        // system records
};

// What scanning one segment's bytes found.
struct SegmentScan {
  std::vector<KeptFrame> kept;  // the valid prefix
  uint64_t valid_end = 0;       // offset after the valid prefix
  uint64_t next_sequence = 0;
  uint64_t event_count = 0;
  uint64_t max_epoch = 0;
  bool sealed = false;
  enum class Tail : uint8_t { Clean, ZeroFilled, Damaged } tail = Tail::Clean;
  const char* damage = nullptr;       // why the frame at valid_end is not valid
  uint64_t damaged_bytes = 0;         // non-zero bytes from valid_end on
  uint64_t later_valid_frames = 0;    // valid frames found after the damage
  uint64_t later_durable_through = 0; // the largest durable_through among them
  bool search_exhausted = false;      // the search after the damage ran out of budget
  uint64_t resumed_after = 0;         // scan_from a checkpoint: the last covered frame's offset
};

class SegmentScanner {
 public:
  SegmentScanner(std::span<const std::byte> bytes, const format::SegmentHeader& header,
                 uint64_t stored_epoch)
      : bytes_(bytes), header_(header), stored_epoch_(stored_epoch) {}

  SegmentScan scan() {
    SegmentScan s;
    s.next_sequence = header_.first_sequence;
    s.max_epoch = header_.epoch;
    return scan_from(format::kSegmentHeaderSize, s);
  }

  // Scans from `offset`, a frame boundary, given the state of everything before it (`s`).
  SegmentScan scan_from(uint64_t offset, SegmentScan s) {
    while (offset < bytes_.size()) {
      KeptFrame kept;
      kept.offset = offset;
      FrameDecode decoded = format::decode_frame(bytes_.subspan(offset), header_.segment_id,
                                                 kept.frame);
      const char* reason = decoded == FrameDecode::Ok ? check_frame(s, kept)
                                                      : format::frame_decode_name(decoded);
      if (reason != nullptr) {
        s.damage = reason;
        break;
      }
      apply_frame(s, kept);
      offset += kept.frame.size;
      s.kept.push_back(kept);
    }
    s.valid_end = std::min<uint64_t>(offset, bytes_.size());
    classify_tail(s);
    return s;
  }

 private:
  // Why a checksummed frame does not belong at this point of the chain, or nullptr.
  const char* check_frame(const SegmentScan& s, KeptFrame& kept) {
    const format::FrameHeader& h = kept.frame.header;
    if (s.sealed) return "record after the seal";
    if (h.epoch > stored_epoch_) return "frame from an epoch later than the epoch file";
    if (h.epoch < s.max_epoch) return "frame epoch goes backwards";
    if (h.durable_through > kept.offset) return "durable_through beyond the frame's own offset";
    if (h.sequence != s.next_sequence) return "wrong sequence";
    if (format::is_system_record(h.type)) {
      if (const char* e = format::decode_system_record(kept.frame, kept.system)) return e;
      if (h.type == RecordType::Seal && kept.system.event_count != s.event_count) {
        return "seal event count does not match the segment";
      }
      return nullptr;
    }
    bool first = true;
    bool mixed = false;
    const char* e = format::decode_record_events(
        kept.frame, body_, [&](uint32_t, const format::EventBody& event) {
          if (first) {
            kept.fence_id = event.fence_id;
            first = false;
          } else if (event.fence_id != kept.fence_id) {
            mixed = true;
          }
          ++kept.event_count;
        });
    if (e != nullptr) return e;
    if (mixed) return "events of one record in different fences";
    return nullptr;
  }

  static void apply_frame(SegmentScan& s, const KeptFrame& kept) {
    s.max_epoch = kept.frame.header.epoch;
    s.next_sequence += kept.event_count;
    s.event_count += kept.event_count;
    if (kept.frame.header.type == RecordType::Seal) s.sealed = true;
  }

  void classify_tail(SegmentScan& s) const {
    if (s.valid_end == bytes_.size()) {
      s.tail = SegmentScan::Tail::Clean;
      return;
    }
    auto rest = bytes_.subspan(s.valid_end);
    if (all_zero(rest)) {
      s.tail = SegmentScan::Tail::ZeroFilled;
      return;
    }
    s.tail = SegmentScan::Tail::Damaged;
    s.damaged_bytes = nonzero_end(rest);
    // Look for valid frames after the damage: at every byte offset (damage may have inserted or
    // deleted bytes, shifting the frames after it off the 8-byte grid), a frame that checksums
    // for this segment, belongs to a plausible epoch and continues the sequence. Its
    // durable_through is not held to its offset here: deleted bytes shift frames below the
    // offsets they were written at (and claim). Candidates are filtered on the header before
    // hashing, and
    // the bytes hashed are capped (kSearchBudgetFactor x the segment): payload bytes that look
    // like frame headers cannot make the search quadratic.
    uint64_t budget = kSearchBudgetFactor * bytes_.size() + kSearchBudgetSlack;
    for (uint64_t at = s.valid_end; at < bytes_.size();) {
      if (!may_start_frame(at)) {
        ++at;
        continue;
      }
      format::FrameHeader h;
      uint64_t size = 0;
      if (format::decode_frame_header(bytes_.subspan(at), h, size) == FrameDecode::Ok &&
          h.epoch >= header_.epoch && h.epoch <= stored_epoch_ && h.sequence >= s.next_sequence) {
        if (size > budget) {
          s.search_exhausted = true;
          return;
        }
        budget -= size;
        DecodedFrame frame;
        if (format::decode_frame(bytes_.subspan(at), header_.segment_id, frame) == FrameDecode::Ok) {
          // The frame at the valid end is the damage the scan stopped at, unless it claims bytes
          // past its own offset as synced: then bytes before it were deleted and it vouches.
          if (at == s.valid_end && h.durable_through <= at) {
            ++at;
            continue;
          }
          ++s.later_valid_frames;
          s.later_durable_through = std::max(s.later_durable_through, h.durable_through);
          at += frame.size;
          continue;
        }
      }
      ++at;
    }
  }

  // The cheapest header checks (a record type; zero reserved bytes, or the compact form's flag),
  // before the rest.
  bool may_start_frame(uint64_t at) const {
    if (bytes_.size() - at < format::kCompactFrameFixedSize) return false;
    const std::byte* h = bytes_.data() + at;
    const auto type = static_cast<uint8_t>(h[format::kFrameRecordTypeOffset]);
    if (type == 0 || type > format::kRecordTypeMax) return false;
    if (h[format::kFrameFlagsOffset] == std::byte{format::kFrameFlagCompact}) return true;
    return bytes_.size() - at >= format::kFrameHeaderSize &&
           h[format::kFrameFlagsOffset] == std::byte{0} &&
           h[format::kFrameReservedOffset] == std::byte{0} &&
           h[format::kFrameReservedOffset + 1] == std::byte{0};
  }

  static constexpr uint64_t kSearchBudgetFactor = 4;
  static constexpr uint64_t kSearchBudgetSlack = 1 << 20;

  std::span<const std::byte> bytes_;
  format::EventBody body_;  // decoded into, frame after frame
  format::SegmentHeader header_;
  uint64_t stored_epoch_;
};

// Follows fences through the kept records of every segment, in log order.
class FenceTracker {
 public:
  // Returns an error for a fence begun and never ended followed by other records.
  Status on_record(const KeptFrame& kept, const std::string& path) {
    auto fail = [&](std::string_view reason) {
      return corruption(RecoveryRule::OpenFenceFollowedByRecords, path, kept.offset, reason);
    };
    const format::FrameHeader& h = kept.frame.header;
    switch (h.type) {
      case RecordType::Event:
      case RecordType::Batch:
        if (open_ && kept.fence_id != open_->fence_id) {
          return fail(kept.fence_id ? "event of another fence inside an open fence"
                                    : "unfenced event inside an open fence");
        }
        if (!open_ && kept.fence_id) return fail("fenced event outside any open fence");
        if (open_) open_->end_sequence = h.sequence + kept.event_count;
        return ok_status();
      case RecordType::FenceBegin:
        if (open_) return fail("fence begun inside an open fence");
        open_ = FenceRange{kept.system.fence_id, h.sequence, h.sequence, FenceState::Committed};
        return ok_status();
      case RecordType::FenceCommit:
      case RecordType::FenceCancel:
        if (!open_ || open_->fence_id != kept.system.fence_id) {
          return fail("fence end without its begin");
        }
        open_->state = h.type == RecordType::FenceCommit ? FenceState::Committed
                                                         : FenceState::Cancelled;
        fences_.push_back(*open_);
        open_.reset();
        return ok_status();
      case RecordType::Seal:
        return ok_status();  // a fence may span segments
    }
    return ok_status();
  }

  std::vector<FenceRange> finish() {
    if (open_) {
      open_->state = FenceState::OpenAtTail;
      fences_.push_back(*open_);
    }
    return std::move(fences_);
  }

 private:
  std::optional<FenceRange> open_;
  std::vector<FenceRange> fences_;
};

// The segment a recovery from a checkpoint resumes in: its header and its bytes from the record
// before the resume point on. A writer's recovery reads them to the end of the file (the tail is
// classified there, damage searched past); a follower's (RecoveryOptions::follow) frame by frame,
// up to the first place where no whole frame starts (zeros, a frame still being written, damage).
// Reads are of at least 1 MiB. The bytes between the header and that record are never read: the
// buffer is left uninitialized there (recovery from a checkpoint only looks forward from it), so a
// 64 MiB segment costs what its frames after the checkpoint cost, not a 64 MiB read into fresh
// memory (measured: 210 of the 267 ms of a clean reopen of 200k events).
class ResumedSegment {
 public:
  Status read(platform::File& file, uint64_t size, uint64_t from, bool follow) {
    size_ = size;
    buffer_.reset(new std::byte[size]);  // uninitialized
    const uint64_t header = std::min<uint64_t>(size, format::kSegmentHeaderSize);
    KEEL_ASSIGN_OR_RETURN(size_t got, file.read_at(0, std::span(buffer_.get(), header)));
    end_ = got;
    if (got < header) return ok_status();
    uint64_t at = std::min(std::max<uint64_t>(from, header), size);
    read_to_ = at;
    if (!follow) {
      while (read_to_ < size_) KEEL_TRY(read_up_to(file, size_));
      end_ = read_to_;
      return ok_status();
    }
    for (;;) {
      // A compact frame may be shorter than a padded header: the file's end may come first.
      KEEL_TRY(read_up_to(file, at + format::kFrameHeaderMax));
      if (read_to_ <= at) break;
      format::FrameHeader frame;
      uint64_t frame_size = 0;
      auto decoded = format::decode_frame_header(
          std::span<const std::byte>(buffer_.get() + at, read_to_ - at), frame, frame_size);
      if (decoded == FrameDecode::Truncated && at + frame_size <= size) {
        KEEL_TRY(read_up_to(file, at + frame_size));
        decoded = format::decode_frame_header(
            std::span<const std::byte>(buffer_.get() + at, read_to_ - at), frame, frame_size);
      }
      if (decoded != FrameDecode::Ok) break;
      at += frame_size;
    }
    end_ = read_to_;
    return ok_status();
  }
  std::span<const std::byte> bytes() const { return {buffer_.get(), end_}; }

 private:
  static constexpr uint64_t kReadMin = 1 << 20;
  // Reads on from read_to_ to at least `want` (at least kReadMin; short only at the end).
  Status read_up_to(platform::File& file, uint64_t want) {
    if (want <= read_to_ || read_to_ >= size_) return ok_status();
    const uint64_t length = std::min(size_ - read_to_, std::max(want - read_to_, kReadMin));
    KEEL_ASSIGN_OR_RETURN(size_t got,
                          file.read_at(read_to_, std::span(buffer_.get() + read_to_, length)));
    read_to_ += got;
    if (got < length) size_ = read_to_;  // the file is shorter than it was
    return ok_status();
  }
  std::unique_ptr<std::byte[]> buffer_;
  uint64_t size_ = 0;
  uint64_t read_to_ = 0;  // [from, read_to_) is read
  uint64_t end_ = 0;
};

class Recovery {
 public:
  Recovery(platform::FileSystem& fs, const std::string& directory, const RecoveryOptions& options,
           const RecordVisitor& visit)
      : fs_(fs), directory_(directory), options_(options), visit_(visit) {}

  Result<RecoveredLog> run() {
    // RETAIN first: it says where the chain starts. Damaged, it fails closed (CorruptSidecar):
    // the segments it let go cannot be re-derived.
    KEEL_ASSIGN_OR_RETURN(floor_, read_retention_floor(fs_, directory_));
    KEEL_ASSIGN_OR_RETURN(auto files, retained_segment_files());
    start_log();
    size_t first_scanned = 0;
    if (options_.checkpoint) {
      std::string rejected;
      KEEL_ASSIGN_OR_RETURN(bool used, recover_to_checkpoint(files, rejected));
      if (used) {
        first_scanned = options_.checkpoint->resume_segment_id - first_segment_id() + 1;
      } else {
        start_log();
        log_.checkpoint_rejected = rejected;
        if (options_.checkpoint_rejected) options_.checkpoint_rejected(rejected);
      }
    }
    for (size_t i = first_scanned; i < files.size(); ++i) {
      KEEL_TRY(recover_segment(files[i], i == 0, i + 1 == files.size()));
    }
    log_.fences = fences_.finish();
    if (log_.open_fence() != nullptr) {
      // Row OpenFenceAtTail: the caller appends the cancel record (Log::open) after the end of
      // the recovered log. A fence has a FenceBegin, so some segment was kept.
      assert(!log_.segments.empty());
      RecoveryAction action;
      action.rule = RecoveryRule::OpenFenceAtTail;
      action.path = log_.segments.back().path;
      action.offset = log_.segments.back().data_end;
      log_.actions.push_back(action);
    }
    KEEL_TRY(check_references());
    if (options_.mode == RecoveryMode::Writable) KEEL_TRY(apply_repairs());
    return std::move(log_);
  }

 private:
  uint64_t first_segment_id() const { return floor_ ? floor_->first_segment_id : 1; }

  // The segment files recovery reads: consecutive ids from the floor's segment (segment 1 without
  // RETAIN). Files below the floor are set aside for deletion.
  Result<std::vector<SegmentFile>> retained_segment_files() {
    KEEL_ASSIGN_OR_RETURN(auto listed, list_segment_files(fs_, directory_));
    const uint64_t first_id = first_segment_id();
    std::vector<SegmentFile> files;
    for (SegmentFile& file : listed) {
      if (file.segment_id < first_id) {
        // Row BelowRetentionFloor: a crash came between writing RETAIN and removing this
        // segment. Not read; a writable open deletes it.
        below_floor_.push_back(std::move(file.path));
      } else {
        files.push_back(std::move(file));
      }
    }
    for (size_t i = 0; i < files.size(); ++i) {
      // Row SegmentChainGap: segment ids are consecutive from the first retained one.
      if (files[i].segment_id - first_id != i) {
        std::string from =
            floor_ ? "the retention floor's segment " + std::to_string(first_id) : "1";
        return chain_gap(files[i].path, "segment ids are not consecutive from " + from);
      }
    }
    // Row SegmentChainGap, before any segment is scanned: a file whose header names another
    // segment (a copy or a misplaced file) is blamed itself, not the segment before it, which
    // would otherwise look like a sealed segment that lost its seal.
    for (const SegmentFile& file : files) KEEL_TRY(check_header_names_file(file));
    if (floor_ && files.empty()) {
      // Row SegmentChainGap: the active segment is never below the floor, so RETAIN with no
      // segment from its own on means the log lost its end.
      return chain_gap(platform::join_path(directory_, format::kRetentionFloorFileName),
                       "the retention floor names segment " + std::to_string(first_id) +
                           " and no segment from it on exists");
    }
    return files;
  }

  Status check_header_names_file(const SegmentFile& file) {
    KEEL_ASSIGN_OR_RETURN(auto handle, fs_.open(file.path, platform::OpenMode::ReadOnly));
    std::vector<std::byte> bytes(format::kSegmentHeaderSize);
    KEEL_ASSIGN_OR_RETURN(size_t got, handle->read_at(0, bytes));
    bytes.resize(got);
    format::SegmentHeader header;
    if (format::decode_segment_header(bytes, header, nullptr) == format::HeaderDecode::Ok &&
        header.segment_id != file.segment_id) {
      return chain_gap(file.path, "its header names segment " +
                                      std::to_string(header.segment_id) +
                                      " (a copy or a misplaced file)");
    }
    return ok_status();
  }

  // An empty result: the chain starts at the floor, with the below-floor deletions to report.
  void start_log() {
    log_ = RecoveredLog();
    log_.retention_floor = floor_;
    log_.first_sequence = floor_ ? floor_->first_sequence : 1;
    log_.next_sequence = log_.first_sequence;
    for (const std::string& path : below_floor_) {
      RecoveryAction action;
      action.rule = RecoveryRule::BelowRetentionFloor;
      action.path = path;
      log_.actions.push_back(action);
    }
  }

  // `first`: the first retained segment, whose header must match RETAIN when there is one.
  Status recover_segment(const SegmentFile& file, bool first, bool newest) {
    KEEL_ASSIGN_OR_RETURN(auto handle, fs_.open(file.path, platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(auto bytes, platform::read_file(*handle));
    format::SegmentHeader header;
    uint32_t found_version = 0;
    auto decoded = format::decode_segment_header(bytes, header, &found_version);
    auto after_header = std::span<const std::byte>(bytes).subspan(
        std::min<size_t>(bytes.size(), format::kSegmentHeaderSize));
    // The floor's segment is never empty: its header was synced before RETAIN named it.
    bool may_be_empty = newest && !(first && floor_);
    if (may_be_empty && decoded != format::HeaderDecode::Ok &&
        decoded != format::HeaderDecode::UnsupportedVersion && all_zero(after_header)) {
      // Row NewestSegmentEmpty: created, and its header missing, short, zero or torn, with no
      // frame after it: nothing was ever written to it; delete it.
      RecoveryAction action;
      action.rule = RecoveryRule::NewestSegmentEmpty;
      action.path = file.path;
      pending_delete_ = file.path;
      log_.actions.push_back(action);
      log_.tail_rule = RecoveryRule::NewestSegmentEmpty;
      return ok_status();
    }
    if (decoded == format::HeaderDecode::UnsupportedVersion) {
      // Row FutureFormatVersion.
      return StoreError(ErrorCode::UnsupportedVersion)
          .with("path", file.path)
          .with("found", uint64_t{found_version})
          .with("supported", uint64_t{format::kFormatVersion})
          .with("rule", recovery_row(RecoveryRule::FutureFormatVersion).name);
    }
    if (decoded != format::HeaderDecode::Ok) {
      // Row BadSegmentHeader.
      return corruption(RecoveryRule::BadSegmentHeader, file.path, 0,
                        format::header_decode_name(decoded));
    }
    // Row SegmentChainGap: the header continues the sequence (the floor's segment starts at the
    // floor's sequence); that it names this file was checked before any scan.
    if (header.first_sequence != log_.next_sequence) {
      return chain_gap(file.path, first && floor_
                                      ? "first sequence is not the retention floor's"
                                      : "first sequence does not continue the previous segment");
    }
    if (header.epoch > options_.stored_epoch || header.epoch < log_.max_epoch) {
      return corruption(RecoveryRule::BadSegmentHeader, file.path, 0,
                        "segment epoch out of order with the epoch file or the previous segment");
    }
    SegmentScan scan = SegmentScanner(bytes, header, options_.stored_epoch).scan();
    return keep_segment(file, header, scan, newest);
  }

  // What recover_segment and recover_to_checkpoint do once a segment is scanned: the tail rules,
  // the fences, the visits.
  Status keep_segment(const SegmentFile& file, const format::SegmentHeader& header,
                      SegmentScan& scan, bool newest) {
    if (!newest) {
      // Row SealedSegmentDamage: a sealed segment must be whole and end with its seal.
      if (scan.tail == SegmentScan::Tail::Damaged) {
        return corruption(RecoveryRule::SealedSegmentDamage, file.path, scan.valid_end,
                          scan.damage);
      }
      if (!scan.sealed) {
        return corruption(RecoveryRule::SealedSegmentDamage, file.path, scan.valid_end,
                          "segment followed by another has no seal record");
      }
    } else {
      KEEL_TRY(decide_tail(file, scan));
    }
    for (const KeptFrame& kept : scan.kept) {
      KEEL_TRY(fences_.on_record(kept, file.path));
      if (visit_) visit_(RecordPosition{header.segment_id, kept.offset}, kept.frame);
    }
    uint64_t last_frame_offset = scan.kept.empty() ? scan.resumed_after : scan.kept.back().offset;
    log_.segments.push_back(RecoveredSegment{header, file.path, scan.valid_end, scan.next_sequence,
                                             scan.event_count, scan.sealed, last_frame_offset});
    log_.next_sequence = scan.next_sequence;
    log_.max_epoch = std::max(log_.max_epoch, scan.max_epoch);
    return ok_status();
  }

  // The segments a checkpoint covers: headers checked (ids, sequence chain, epochs), every one
  // before the resume segment sealed and kept whole (trimmed to its data, so its size is its data
  // end), the resume segment scanned from the resume point once the record ending there is the
  // one the checkpoint names. Returns false with `rejected` saying why when the log does not
  // match; nothing is visited or kept then.
  Result<bool> recover_to_checkpoint(const std::vector<SegmentFile>& files, std::string& rejected) {
    const Checkpoint& cp = *options_.checkpoint;
    auto reject = [&](std::string why) {
      rejected = std::move(why);
      return false;
    };
    const uint64_t first_id = first_segment_id();
    if (floor_ && cp.resume_segment_id < first_id) {
      // Its segments were removed: the image covers events the log no longer holds.
      return reject("it resumes in segment " + std::to_string(cp.resume_segment_id) +
                    ", below the retention floor (segment " + std::to_string(first_id) + ")");
    }
    if (cp.resume_segment_id < first_id || cp.resume_segment_id - first_id >= files.size()) {
      return reject("it resumes in segment " + std::to_string(cp.resume_segment_id) +
                    " and the log has " +
                    (floor_ ? "segments " + std::to_string(first_id) + " to " +
                                  std::to_string(first_id + files.size() - 1)
                            : std::to_string(files.size())));
    }
    if (cp.epoch > options_.stored_epoch) return reject("its epoch is later than the epoch file");
    const size_t resume_index = cp.resume_segment_id - first_id;
    std::vector<format::SegmentHeader> headers;
    std::vector<uint64_t> sizes;
    std::vector<std::byte> read;
    ResumedSegment resumed;
    std::span<const std::byte> bytes;
    for (size_t i = 0; i <= resume_index; ++i) {
      KEEL_ASSIGN_OR_RETURN(auto handle, fs_.open(files[i].path, platform::OpenMode::ReadOnly));
      KEEL_ASSIGN_OR_RETURN(uint64_t size, handle->size());
      if (i == resume_index) {
        KEEL_TRY(resumed.read(*handle, size, cp.last_record_offset, options_.follow));
        bytes = resumed.bytes();
      } else {
        read.assign(std::min<uint64_t>(size, format::kSegmentHeaderSize), std::byte{0});
        KEEL_ASSIGN_OR_RETURN(size_t got, handle->read_at(0, read));
        read.resize(got);
        bytes = read;
      }
      format::SegmentHeader header;
      uint32_t version = 0;
      if (format::decode_segment_header(bytes, header, &version) != format::HeaderDecode::Ok) {
        return reject("the header of " + files[i].path + " does not decode");
      }
      // The first retained segment starts exactly at the floor (1 without one); a later one at
      // least where the one before it started (its events are not counted here).
      bool sequence_continues = i == 0 ? header.first_sequence == log_.first_sequence
                                       : header.first_sequence >= headers.back().first_sequence;
      if (header.segment_id != first_id + i || !sequence_continues ||
          header.epoch > options_.stored_epoch || (i > 0 && header.epoch < headers.back().epoch)) {
        return reject("the header of " + files[i].path + " does not continue the chain");
      }
      headers.push_back(header);
      sizes.push_back(size);
    }
    const format::SegmentHeader& resume = headers.back();
    if (resume.first_sequence > cp.next_sequence || cp.resume_offset > bytes.size() ||
        cp.resume_offset < format::kSegmentHeaderSize) {
      return reject("its resume point is outside segment " + std::to_string(resume.segment_id));
    }
    // The record ending at the resume point is the one the checkpoint names.
    SegmentScan state;
    state.next_sequence = cp.next_sequence;
    state.event_count = cp.next_sequence - resume.first_sequence;
    state.max_epoch = std::max(resume.epoch, cp.epoch);
    if (cp.last_record_offset == 0) {
      if (cp.resume_offset != format::kSegmentHeaderSize || resume.first_sequence != cp.next_sequence) {
        return reject("it names no record where the segment has some");
      }
    } else {
      DecodedFrame last;
      const char* count_error = nullptr;
      if (cp.last_record_offset >= bytes.size() ||
          format::decode_frame(bytes.subspan(cp.last_record_offset), resume.segment_id, last) !=
              FrameDecode::Ok ||
          cp.last_record_offset + last.size != cp.resume_offset ||
          last.header.epoch > state.max_epoch) {
        return reject("the record before its resume point is not there");
      }
      uint64_t events = format::is_system_record(last.header.type)
                            ? 0
                            : format::record_event_count(last, &count_error);
      if (count_error != nullptr || last.header.sequence + events != cp.next_sequence) {
        return reject("the record before its resume point has other sequences");
      }
      state.sealed = last.header.type == RecordType::Seal;
      state.resumed_after = cp.last_record_offset;
    }
    // Matched: keep the covered segments whole, then scan the resume segment's rest.
    for (size_t i = 0; i + 1 < headers.size(); ++i) {
      uint64_t next = headers[i + 1].first_sequence;
      log_.segments.push_back(RecoveredSegment{headers[i], files[i].path, sizes[i], next,
                                               next - headers[i].first_sequence, true, 0});
      log_.max_epoch = std::max(log_.max_epoch, headers[i].epoch);
    }
    log_.max_epoch = std::max(log_.max_epoch, cp.epoch);
    log_.next_sequence = resume.first_sequence;
    SegmentScan scan =
        SegmentScanner(bytes, resume, options_.stored_epoch).scan_from(cp.resume_offset, state);
    KEEL_TRY(keep_segment(files[resume_index], resume, scan, resume_index + 1 == files.size()));
    log_.checkpoint_used = true;
    return true;
  }

  Status decide_tail(const SegmentFile& file, SegmentScan& scan) {
    switch (scan.tail) {
      case SegmentScan::Tail::Clean:
        log_.tail_rule = RecoveryRule::CleanEnd;  // Row CleanEnd.
        return ok_status();
      case SegmentScan::Tail::ZeroFilled:
        log_.tail_rule = RecoveryRule::ZeroFilledTail;  // Row ZeroFilledTail: end of data.
        return ok_status();
      case SegmentScan::Tail::Damaged:
        break;
    }
    RecoveryAction action;
    action.path = file.path;
    action.offset = scan.valid_end;
    action.bytes_dropped = scan.damaged_bytes;
    if (scan.search_exhausted) {
      // Row DamageBeforeDurableFrame, conservatively: what follows the damage could not be
      // classified within the search budget, so it may hold frames that vouch for it.
      return corruption(RecoveryRule::DamageBeforeDurableFrame, file.path, scan.valid_end,
                        "too many frame-like candidates after the damage to classify it");
    }
    if (scan.later_valid_frames == 0) {
      action.rule = RecoveryRule::TornTail;  // Row TornTail.
    } else if (scan.later_durable_through > scan.valid_end) {
      // Row DamageBeforeDurableFrame: a later frame says the damaged bytes had been synced.
      return corruption(RecoveryRule::DamageBeforeDurableFrame, file.path, scan.valid_end,
                        scan.damage);
    } else {
      action.rule = RecoveryRule::UnsyncedTornRegion;  // Row UnsyncedTornRegion.
      action.frames_dropped = scan.later_valid_frames;
    }
    log_.tail_rule = action.rule;
    pending_truncate_ = action.path;
    pending_truncate_offset_ = scan.valid_end;
    log_.actions.push_back(action);
    return ok_status();
  }

  // Whether the recovered log holds every event and byte before `reference`'s point. A segment
  // before the last one was checked whole to its seal (or lies below the retention floor).
  bool reaches(const LogReference& reference) const {
    if (log_.next_sequence < reference.next_sequence) return false;
    if (reference.segment_id == 0) return true;
    if (log_.segments.empty()) return false;
    const RecoveredSegment& last = log_.segments.back();
    if (last.header.segment_id != reference.segment_id) {
      return last.header.segment_id > reference.segment_id;
    }
    return last.data_end >= reference.offset;
  }

  // Row DurableEndNotReached: persisted state names a point the recovered log does not reach, so
  // data known durable is gone (a last segment removed, emptied, or damaged below that point),
  // not a torn tail. Fails closed before any repair, unless the caller accepts the loss.
  Status check_references() {
    DataLoss loss;
    const LogReference* furthest = nullptr;
    for (const LogReference& reference : options_.references) {
      if (reaches(reference)) continue;
      loss.not_reached.push_back(reference);
      if (!furthest || reference.next_sequence > furthest->next_sequence) furthest = &reference;
    }
    if (furthest == nullptr) return ok_status();
    loss.reference = *furthest;
    loss.recovered_next_sequence = log_.next_sequence;
    if (!log_.segments.empty()) {
      loss.segment_id = log_.segments.back().header.segment_id;
      loss.offset = log_.segments.back().data_end;
    }
    for (const RecoveryAction& action : log_.actions) loss.bytes_dropped += action.bytes_dropped;
    loss.found = describe_end(loss);
    if (!options_.accept_data_loss) {
      return StoreError(ErrorCode::DurableDataLost)
          .with("reference", furthest->name)
          .with("referenced", furthest->next_sequence - 1)
          .with("recovered", log_.next_sequence - 1)
          .with("found", loss.found)
          .with("rule", recovery_row(RecoveryRule::DurableEndNotReached).name);
    }
    log_.data_loss = std::move(loss);
    return ok_status();
  }

  std::string describe_end(const DataLoss& loss) const {
    std::string found = loss.segment_id == 0
                            ? std::string("no segment")
                            : "the log ends in segment " + std::to_string(loss.segment_id) +
                                  " at offset " + std::to_string(loss.offset);
    if (loss.reference.segment_id != 0) {
      found += ", before segment " + std::to_string(loss.reference.segment_id) + " offset " +
               std::to_string(loss.reference.offset) + ", which it names as durable";
    }
    for (const RecoveryAction& action : log_.actions) {
      if (action.rule == RecoveryRule::OpenFenceAtTail) continue;
      found += std::string("; ") + std::string(recovery_row(action.rule).name) + " " + action.path;
      if (action.bytes_dropped != 0) {
        found += " at offset " + std::to_string(action.offset) + " (" +
                 std::to_string(action.bytes_dropped) + " bytes)";
      }
    }
    return found;
  }

  // Runs only after every check passed: a FailClosed outcome touches nothing.
  Status apply_repairs() {
    if (pending_truncate_) {
      KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(*pending_truncate_, platform::OpenMode::ReadWrite));
      KEEL_TRY(file->truncate(pending_truncate_offset_));
      KEEL_TRY(file->sync_data());
    }
    // Row BelowRetentionFloor (RETAIN is durable: it already covers them) and row
    // NewestSegmentEmpty: delete, then one directory fsync.
    std::vector<std::string> deletions = below_floor_;
    if (pending_delete_) deletions.push_back(*pending_delete_);
    for (const std::string& path : deletions) KEEL_TRY(fs_.remove(path));
    if (!deletions.empty()) KEEL_TRY(fs_.sync_directory(directory_));
    for (RecoveryAction& action : log_.actions) {
      if (action.rule != RecoveryRule::OpenFenceAtTail) action.applied = true;
    }
    return ok_status();
  }

  platform::FileSystem& fs_;
  const std::string& directory_;
  const RecoveryOptions& options_;
  const RecordVisitor& visit_;
  RecoveredLog log_;
  FenceTracker fences_;
  std::optional<RetentionFloor> floor_;   // RETAIN, when present
  std::vector<std::string> below_floor_;  // segment files below it, still on disk
  std::optional<std::string> pending_delete_;
  std::optional<std::string> pending_truncate_;
  uint64_t pending_truncate_offset_ = 0;
};

}  // namespace

Result<RecoveredLog> recover_log(platform::FileSystem& fs, const std::string& directory,
                                 const RecoveryOptions& options, const RecordVisitor& visit) {
  return Recovery(fs, directory, options, visit).run();
}

}  // namespace keel::log
