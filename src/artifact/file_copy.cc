#include "artifact/file_copy.h"

#include <algorithm>
#include <vector>

#include "format/checksum.h"

namespace keel::artifact {

namespace {
constexpr uint64_t kChunkBytes = 1 << 20;
constexpr uint64_t kReportEvery = 8 << 20;
}  // namespace

ProgressMeter::ProgressMeter(const TransferProgressFn& report, uint64_t bytes_total,
                             uint64_t files_total)
    : report_(report) {
  state_.bytes_total = bytes_total;
  state_.files_total = files_total;
}

void ProgressMeter::copied(uint64_t bytes) {
  state_.bytes_done += bytes;
  if (report_ && state_.bytes_done - reported_at_ >= kReportEvery) {
    reported_at_ = state_.bytes_done;
    report_(state_);
  }
}

void ProgressMeter::file_done() { ++state_.files_done; }

void ProgressMeter::finish() {
  if (report_) report_(state_);
}

Result<Copied> copy_prefix(platform::FileSystem& fs, platform::File& from, const std::string& to,
                           uint64_t bytes, ProgressMeter& meter) {
  KEEL_ASSIGN_OR_RETURN(auto out, fs.open(to, platform::OpenMode::CreateNew));
  format::Hasher128 hasher;
  std::vector<std::byte> buffer(std::min(bytes, kChunkBytes));
  Copied copied;
  while (copied.size < bytes) {
    auto chunk = std::span(buffer).first(std::min<uint64_t>(buffer.size(), bytes - copied.size));
    KEEL_ASSIGN_OR_RETURN(size_t got, from.read_at(copied.size, chunk));
    if (got == 0) break;  // the source ended
    chunk = chunk.first(got);
    KEEL_TRY(out->write_at(copied.size, chunk));
    out->start_writeback(copied.size, got);  // the disk works while the next piece is read
    hasher.update(chunk);
    copied.size += got;
    meter.copied(got);
  }
  KEEL_TRY(out->sync_data());
  copied.hash = hasher.digest();
  meter.file_done();
  return copied;
}

Result<Hash128> write_new_file(platform::FileSystem& fs, const std::string& to,
                               std::span<const std::byte> bytes, ProgressMeter& meter) {
  KEEL_ASSIGN_OR_RETURN(auto out, fs.open(to, platform::OpenMode::CreateNew));
  KEEL_TRY(out->write_at(0, bytes));
  KEEL_TRY(out->sync_data());
  meter.copied(bytes.size());
  meter.file_done();
  return format::hash128(bytes);
}

Result<bool> check_destination(platform::FileSystem& fs, const std::string& path) {
  auto refused = [&](std::string reason) {
    return StoreError(ErrorCode::DestinationExists).with("path", path).with("reason", reason);
  };
  KEEL_ASSIGN_OR_RETURN(platform::FileKind kind, fs.file_kind(path));
  switch (kind) {
    case platform::FileKind::Missing: {
      const std::string parent = platform::parent_directory(path);
      KEEL_ASSIGN_OR_RETURN(platform::FileKind parent_kind, fs.file_kind(parent));
      if (parent_kind != platform::FileKind::Directory) {
        return refused("its parent " + parent + " is not a directory");
      }
      return false;
    }
    case platform::FileKind::Directory: {
      KEEL_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs.list_directory(path));
      if (!entries.empty()) {
        std::sort(entries.begin(), entries.end());
        return refused("it holds " + std::to_string(entries.size()) + " entries (" +
                       entries.front() + (entries.size() > 1 ? ", ...)" : ")"));
      }
      return true;
    }
    case platform::FileKind::Regular:
      return refused("it is a file");
    case platform::FileKind::SymbolicLink:
      return refused("it is a symbolic link");
    case platform::FileKind::Other:
      break;
  }
  return refused("it is not a directory");
}

void remove_written(platform::FileSystem& fs, const std::string& directory,
                    const std::vector<std::string>& names, bool and_directory) {
  for (const std::string& name : names) (void)fs.remove(platform::join_path(directory, name));
  if (and_directory) (void)fs.remove_directory(directory);
  (void)fs.sync_directory(and_directory ? platform::parent_directory(directory) : directory);
}

uint64_t elapsed_ms_since(std::chrono::steady_clock::time_point started) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count());
}

}  // namespace keel::artifact
