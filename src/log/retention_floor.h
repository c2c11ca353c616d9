// The retention floor (segments/FORMAT.md 8.6): the sidecar RETAIN names the first segment the log
// keeps and that segment's first sequence. Sealed segments below it may be removed; recovery then
// starts the chain at the floor instead of at segment 1 (FORMAT.md 9.2).
//
// Order of a removal, so that a crash at any point leaves a log recovery accepts:
//   1. check the floor against the log (check_retention_floor),
//   2. write RETAIN durably (write_retention_floor),
//   3. remove the segments below it and fsync the directory (remove_segments_below).
// A crash between 2 and 3 leaves segments below the floor: recovery ignores them (row
// BelowRetentionFloor) and a writable open deletes them. RETAIN is authoritative: the removed
// segments cannot be re-derived, so a damaged RETAIN fails closed (CorruptSidecar).
//
// Threads: the functions touch only the files named; the caller serializes them with the writer
// (Log::retain_from does all three in order for a writable Log).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

inline constexpr uint32_t kRetentionFloorVersion = 1;
inline constexpr size_t kRetentionFloorPayloadSize = 16;  // u64 segment id, u64 sequence

struct RetentionFloor {
  uint64_t first_segment_id = 1;  // the first segment kept; every one below it may be gone
  uint64_t first_sequence = 1;    // that segment's header first_sequence: the first event kept
  friend bool operator==(const RetentionFloor&, const RetentionFloor&) = default;
};

// The floor in `directory`, or nullopt when there is no RETAIN (the log starts at segment 1).
// Errors: CorruptSidecar (damaged envelope, payload not 16 bytes, a zero id or sequence),
// UnsupportedVersion (a newer RETAIN), Io.
Result<std::optional<RetentionFloor>> read_retention_floor(platform::FileSystem& fs,
                                                           const std::string& directory);

// Durably replaces RETAIN with `floor` (sidecar kind 7, version 1; atomic, log/sidecar_file.h).
// Writes what it is given: check_retention_floor first. InvalidArgument for a zero id or
// sequence; Io, NoSpace.
Status write_retention_floor(platform::FileSystem& fs, const std::string& directory,
                             const RetentionFloor& floor);

// Whether `floor` may be written: its segment exists, its header decodes and names that segment
// and floor.first_sequence, it does not lower a floor already written (the segments below that
// one are gone), and no fence is open where its segment starts (recovery could not follow a fence
// whose FenceBegin was removed): it reads the segments from the current floor up to the new one.
// InvalidArgument naming the reason otherwise; Corruption when a segment below the new floor does
// not read whole to its Seal; errors of reading RETAIN; Io. It does not know the active segment:
// Log::retain_from checks the floor is not above it.
Status check_retention_floor(platform::FileSystem& fs, const std::string& directory,
                             const RetentionFloor& floor);

// Removes every segment file with an id below floor.first_segment_id, then fsyncs the directory.
// Call only after write_retention_floor succeeded. `removed` (may be null) receives their paths.
// Errors: Io (a failure may leave some removed: RETAIN already covers them, and the next
// writable open removes the rest).
Status remove_segments_below(platform::FileSystem& fs, const std::string& directory,
                             const RetentionFloor& floor,
                             std::vector<std::string>* removed = nullptr);

}  // namespace keel::log
