// Sidecar files on disk: atomic replace (temp -> fsync -> rename -> fsync directory) and read.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "format/format_constants.h"
#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

// How replace_file leaves the new file. Durable: NAME.tmp fdatasync'd, renamed over NAME, the
// directory fsync'd; after a failure or a crash NAME holds the old or the new bytes. Cached (for a
// file that is a cache its reader validates): NAME.tmp's writeback started, renamed over NAME, no
// wait for the disk; after a crash NAME may hold the old bytes, the new ones, or a damaged file.
enum class Replace { Durable, Cached };

// Replaces `directory/name` with `bytes` through NAME.tmp, as `how` says.
Status replace_file(platform::FileSystem& fs, const std::string& directory, const std::string& name,
                    std::span<const std::byte> bytes, Replace how = Replace::Durable);
// The end of a replace whose NAME.tmp the caller wrote itself (Cached: with its writeback
// started): fdatasync NAME.tmp (Durable), rename it over NAME, fsync the directory (Durable).
Status commit_replace(platform::FileSystem& fs, const std::string& directory,
                      const std::string& name, Replace how);

// Atomically replaces `directory/name` with a sidecar holding `payload`. After success the new
// content is durable; after a failure (or crash) the file holds either the old or the new content.
// A payload above format::kSidecarPayloadMax is PayloadTooLarge, and nothing is written.
Status write_sidecar(platform::FileSystem& fs, const std::string& directory,
                     const std::string& name, format::SidecarKind kind, uint32_t version,
                     std::span<const std::byte> payload);

// The payload of `directory/name`, or nullopt if the file does not exist. A damaged file is
// CorruptSidecar, a newer version UnsupportedVersion, a read failure Io: never "absent".
// `version`, when given, receives the file's version.
Result<std::optional<std::vector<std::byte>>> read_sidecar(
    platform::FileSystem& fs, const std::string& directory, const std::string& name,
    format::SidecarKind kind, uint32_t supported_version, uint32_t* version = nullptr);

}  // namespace keel::log
