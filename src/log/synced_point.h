// The synced point (segments/FORMAT.md 8.10, `SYNCED`): where a live writer's last successful
// fdatasync reached in its active segment, for read-only followers in other processes.
//
// Frames vouch for the bytes before them (durable_through), but nothing vouches for a writer's
// newest frames until it writes another one: a follower of an idle writer would not show its last
// group. So after each successful fdatasync (and at open, after recovery's own) the writer
// overwrites SYNCED in place with one write: no fdatasync, no rename.
//
// Advisory: recovery never reads it. A follower believes it only while a writer holds LOCK and
// the point's epoch is EPOCH's (one writer per epoch); a torn or damaged file (the envelope's
// checksum) is ignored as absent; failing to write it never fails the writer (a follower then
// waits for the next frame's claim, as before SYNCED existed).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

inline constexpr uint32_t kSyncedPointVersion = 1;
inline constexpr size_t kSyncedPointPayloadBytes = 24;  // epoch, segment id, offset

struct SyncedPoint {
  uint64_t epoch = 0;       // the epoch of the writer that synced
  uint64_t segment_id = 0;  // its active segment then
  uint64_t offset = 0;      // every byte of that segment before it was durable
  friend bool operator==(const SyncedPoint&, const SyncedPoint&) = default;
};

// The whole file: a sidecar envelope (FORMAT.md 8.1) of kind 9 around the three u64.
std::vector<std::byte> encode_synced_point(const SyncedPoint& point);
// nullopt for anything but a whole, well-formed point (torn, damaged, another kind or version, a
// zero epoch or segment id, an offset inside the segment header).
std::optional<SyncedPoint> decode_synced_point(std::span<const std::byte> file);

// The point in `directory`, or nullopt when SYNCED is missing or not a whole point. A read
// failure is Io.
Result<std::optional<SyncedPoint>> read_synced_point(platform::FileSystem& fs,
                                                     const std::string& directory);

}  // namespace keel::log
