#include "log/segment_files.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "format/format_constants.h"

namespace keel::log {

std::string segment_file_name(uint64_t segment_id) {
  return absl::StrFormat("%s%020u%s", format::kSegmentFilePrefix, segment_id,
                         format::kSegmentFileSuffix);
}

std::optional<uint64_t> parse_segment_file_name(std::string_view name) {
  std::string_view prefix = format::kSegmentFilePrefix;
  std::string_view suffix = format::kSegmentFileSuffix;
  if (name.size() != prefix.size() + format::kSegmentIdDigits + suffix.size() ||
      name.substr(0, prefix.size()) != prefix || name.substr(name.size() - suffix.size()) != suffix) {
    return std::nullopt;
  }
  std::string_view digits = name.substr(prefix.size(), format::kSegmentIdDigits);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint64_t id = 0;
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &id) || id == 0) {
    return std::nullopt;
  }
  return id;
}

Result<std::vector<SegmentFile>> list_segment_files(platform::FileSystem& fs,
                                                    const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(auto names, fs.list_directory(directory));
  std::vector<SegmentFile> files;
  for (const auto& name : names) {
    if (auto id = parse_segment_file_name(name)) {
      files.push_back({*id, platform::join_path(directory, name)});
    }
  }
  std::sort(files.begin(), files.end(),
            [](const SegmentFile& a, const SegmentFile& b) { return a.segment_id < b.segment_id; });
  return files;
}

}  // namespace keel::log
