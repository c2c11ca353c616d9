#include "log/retention_floor.h"

#include <array>

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/segment_header.h"
#include "log/segment_files.h"
#include "log/sidecar_file.h"

namespace keel::log {
namespace {

std::string floor_path(const std::string& directory) {
  return platform::join_path(directory, format::kRetentionFloorFileName);
}

StoreError invalid_floor(std::string reason) {
  return StoreError(ErrorCode::InvalidArgument)
      .with("argument", "retention floor")
      .with("reason", std::move(reason));
}

// The fence open at the end of sealed segment `file` given the one open at its start, or Corruption
// when the segment does not read whole to its Seal.
Result<std::optional<uint64_t>> fence_open_after(platform::FileSystem& fs, const SegmentFile& file,
                                                 std::optional<uint64_t> open_fence) {
  KEEL_ASSIGN_OR_RETURN(auto handle, fs.open(file.path, platform::OpenMode::ReadOnly));
  KEEL_ASSIGN_OR_RETURN(auto bytes, platform::read_file(*handle));
  auto damaged = [&](uint64_t offset, std::string_view reason) {
    return StoreError(ErrorCode::Corruption)
        .with("path", file.path)
        .with("offset", offset)
        .with("reason", reason)
        .with("rule", "retention fence check");
  };
  for (uint64_t at = format::kSegmentHeaderSize; at < bytes.size();) {
    format::DecodedFrame frame;
    if (format::decode_frame(std::span<const std::byte>(bytes).subspan(at), file.segment_id,
                             frame) != format::FrameDecode::Ok) {
      return damaged(at, "a segment below the floor does not read to its seal");
    }
    if (format::is_system_record(frame.header.type)) {
      format::SystemRecord record;
      if (const char* error = format::decode_system_record(frame, record)) {
        return damaged(at, error);
      }
      switch (record.type) {
        case format::RecordType::FenceBegin:
          open_fence = record.fence_id;
          break;
        case format::RecordType::FenceCommit:
        case format::RecordType::FenceCancel:
          open_fence.reset();
          break;
        case format::RecordType::Seal:
          return open_fence;
        case format::RecordType::Event:
        case format::RecordType::Batch:
          break;
      }
    }
    at += frame.size;
  }
  return damaged(bytes.size(), "a segment below the floor has no seal");
}

// Recovery follows fences from the first retained segment: one whose FenceBegin was removed would
// fail it closed (row OpenFenceFollowedByRecords). So no fence may be open where the floor's
// segment starts. Reads the segments from the current floor (where none is open, by this same
// check) up to the new one.
Status check_no_fence_across(platform::FileSystem& fs, const std::string& directory,
                             uint64_t current_first_id, const RetentionFloor& floor) {
  KEEL_ASSIGN_OR_RETURN(auto files, list_segment_files(fs, directory));
  std::optional<uint64_t> open_fence;
  for (const SegmentFile& file : files) {
    if (file.segment_id < current_first_id) continue;  // leftovers of an interrupted removal
    if (file.segment_id >= floor.first_segment_id) break;
    KEEL_ASSIGN_OR_RETURN(open_fence, fence_open_after(fs, file, open_fence));
  }
  if (open_fence) {
    return invalid_floor("fence " + std::to_string(*open_fence) + " is open where segment " +
                         std::to_string(floor.first_segment_id) + " starts");
  }
  return ok_status();
}

}  // namespace

Result<std::optional<RetentionFloor>> read_retention_floor(platform::FileSystem& fs,
                                                           const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(auto payload,
                        read_sidecar(fs, directory, format::kRetentionFloorFileName,
                                     format::SidecarKind::RetentionFloor, kRetentionFloorVersion));
  if (!payload) return std::optional<RetentionFloor>();
  auto corrupt = [&](const char* reason) {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", floor_path(directory))
        .with("reason", reason);
  };
  if (payload->size() != kRetentionFloorPayloadSize) {
    return corrupt("retention floor payload is not 16 bytes");
  }
  RetentionFloor floor{format::load_u64(payload->data()), format::load_u64(payload->data() + 8)};
  // Segment ids and sequences start at 1: a zero can only be damage under a valid checksum.
  if (floor.first_segment_id == 0) return corrupt("retention floor names segment 0");
  if (floor.first_sequence == 0) return corrupt("retention floor names sequence 0");
  return std::optional<RetentionFloor>(floor);
}

Status write_retention_floor(platform::FileSystem& fs, const std::string& directory,
                             const RetentionFloor& floor) {
  if (floor.first_segment_id == 0 || floor.first_sequence == 0) {
    return invalid_floor("segment id and sequence start at 1");
  }
  std::array<std::byte, kRetentionFloorPayloadSize> payload;
  format::store_u64(payload.data(), floor.first_segment_id);
  format::store_u64(payload.data() + 8, floor.first_sequence);
  return write_sidecar(fs, directory, format::kRetentionFloorFileName,
                       format::SidecarKind::RetentionFloor, kRetentionFloorVersion, payload);
}

Status check_retention_floor(platform::FileSystem& fs, const std::string& directory,
                             const RetentionFloor& floor) {
  if (floor.first_segment_id == 0 || floor.first_sequence == 0) {
    return invalid_floor("segment id and sequence start at 1");
  }
  KEEL_ASSIGN_OR_RETURN(auto current, read_retention_floor(fs, directory));
  if (current && floor.first_segment_id < current->first_segment_id) {
    return invalid_floor("segment " + std::to_string(floor.first_segment_id) +
                         " is below the floor already written (segment " +
                         std::to_string(current->first_segment_id) + ")");
  }
  std::string path = platform::join_path(directory, segment_file_name(floor.first_segment_id));
  KEEL_ASSIGN_OR_RETURN(bool present, fs.exists(path));
  if (!present) {
    return invalid_floor("segment " + std::to_string(floor.first_segment_id) + " does not exist");
  }
  std::array<std::byte, format::kSegmentHeaderSize> bytes{};
  KEEL_ASSIGN_OR_RETURN(auto file, fs.open(path, platform::OpenMode::ReadOnly));
  KEEL_ASSIGN_OR_RETURN(size_t got, file->read_at(0, bytes));
  format::SegmentHeader header;
  if (format::decode_segment_header(std::span<const std::byte>(bytes).first(got), header,
                                    nullptr) != format::HeaderDecode::Ok ||
      header.segment_id != floor.first_segment_id) {
    return invalid_floor("the header of " + path + " does not decode as that segment");
  }
  if (header.first_sequence != floor.first_sequence) {
    return invalid_floor("segment " + std::to_string(floor.first_segment_id) +
                         " starts at sequence " + std::to_string(header.first_sequence) + ", not " +
                         std::to_string(floor.first_sequence));
  }
  return check_no_fence_across(fs, directory, current ? current->first_segment_id : 1, floor);
}

Status remove_segments_below(platform::FileSystem& fs, const std::string& directory,
                             const RetentionFloor& floor, std::vector<std::string>* removed) {
  KEEL_ASSIGN_OR_RETURN(auto files, list_segment_files(fs, directory));
  for (const SegmentFile& file : files) {
    if (file.segment_id >= floor.first_segment_id) break;  // listed by ascending id
    KEEL_TRY(fs.remove(file.path));
    if (removed != nullptr) removed->push_back(file.path);
  }
  // Even when nothing was left to remove: an earlier call that failed midway made its removals
  // without the fsync.
  return fs.sync_directory(directory);
}

}  // namespace keel::log
