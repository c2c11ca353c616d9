// Segment file names and listing: segment-<20-digit id>.keel in the store directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

std::string segment_file_name(uint64_t segment_id);
// The id of a segment file name; nullopt for any other name.
std::optional<uint64_t> parse_segment_file_name(std::string_view name);

struct SegmentFile {
  uint64_t segment_id = 0;
  std::string path;
};

// The segment files of `directory`, by ascending id.
Result<std::vector<SegmentFile>> list_segment_files(platform::FileSystem& fs,
                                                    const std::string& directory);

}  // namespace keel::log
