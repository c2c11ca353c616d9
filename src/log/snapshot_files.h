// The files of named snapshots (segments/FORMAT.md 8.11): for each name, content-addressed payload
// files and one pointer naming the published one.
//
//   SNAPDATA.<name>.<sequence, 20 digits>.<XXH3-128 of the bytes, 32 hex digits>
//       the snapshot's bytes, nothing else; written whole, fdatasync'd and renamed into place
//       before any pointer names it. A save never overwrites another save's payload: equal names
//       mean equal content.
//   SNAPSHOT.<name>
//       the pointer: a sidecar (kind 6) holding the epoch that published it, the sequence, the
//       payload's size and hash, and the name; replaced atomically (log/sidecar_file.h).
//
// The snapshots layer (src/snapshots/) writes them on a writable store; retention reads the
// pointers (it never removes events a published snapshot has not covered). A damaged pointer is
// CorruptSidecar: what was published is unknown, never guessed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/ids.h"
#include "keel/result.h"
#include "keel/snapshot.h"  // kSnapshotBytesMax
#include "platform/file_system.h"

namespace keel::log {

inline constexpr uint32_t kSnapshotPointerVersion = 1;
inline constexpr char kSnapshotPointerPrefix[] = "SNAPSHOT.";
inline constexpr char kSnapshotPayloadPrefix[] = "SNAPDATA.";
inline constexpr size_t kSnapshotPointerFixedBytes = 42;  // epoch, sequence, size, hash, name len

struct SnapshotPointer {
  std::string name;
  uint64_t epoch = 0;     // the store epoch that published it (>= 1)
  uint64_t sequence = 0;  // the last event the state covers (0: none)
  uint64_t size = 0;      // the payload's bytes (<= kSnapshotBytesMax)
  Hash128 hash;           // XXH3-128 (seed 0) of the payload's bytes
  friend bool operator==(const SnapshotPointer&, const SnapshotPointer&) = default;
};

// A payload file's name, parsed.
struct SnapshotPayloadName {
  std::string name;
  uint64_t sequence = 0;
  Hash128 hash;
  friend bool operator==(const SnapshotPayloadName&, const SnapshotPayloadName&) = default;
};

// Snapshot names follow consumer names: 1 to 64 bytes of A-Z a-z 0-9 _ . -, not starting with a
// dot. nullptr when `name` is one, else why not.
const char* check_snapshot_name(std::string_view name);
// "SNAPSHOT.<name>"
std::string snapshot_pointer_file_name(std::string_view name);
// "SNAPDATA.<name>.<sequence>.<hash>"
std::string snapshot_payload_file_name(std::string_view name, uint64_t sequence, Hash128 hash);
// The name a directory entry is the pointer of (nullopt: not a pointer file, e.g. `.tmp`).
std::optional<std::string> snapshot_name_of_pointer_file(std::string_view file_name);
// A payload file's parts (nullopt: not a payload file; a `.tmp` is not one).
std::optional<SnapshotPayloadName> parse_snapshot_payload_file_name(std::string_view file_name);

std::vector<std::byte> encode_snapshot_pointer(const SnapshotPointer& pointer);
// Decodes a pointer's payload (the envelope checked); nullptr on success, else what is wrong.
const char* decode_snapshot_pointer(std::span<const std::byte> payload, SnapshotPointer& pointer);

// The pointer of `name`, or nullopt when it has none. A damaged file, or one whose name disagrees
// with its content, is CorruptSidecar; a newer version UnsupportedVersion; a failed read Io:
// never "absent".
Result<std::optional<SnapshotPointer>> read_snapshot_pointer(platform::FileSystem& fs,
                                                             const std::string& directory,
                                                             std::string_view name);
// Durably replaces the pointer of `pointer.name` (atomic). Io, NoSpace.
Status write_snapshot_pointer(platform::FileSystem& fs, const std::string& directory,
                              const SnapshotPointer& pointer);
// The names of every pointer in `directory`, sorted. Io.
Result<std::vector<std::string>> list_snapshot_names(platform::FileSystem& fs,
                                                     const std::string& directory);

}  // namespace keel::log
