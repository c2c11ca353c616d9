#include "log/sidecar_file.h"

#include <algorithm>

#include "format/sidecar.h"

namespace keel::log {

Status write_sidecar(platform::FileSystem& fs, const std::string& directory,
                     const std::string& name, format::SidecarKind kind, uint32_t version,
                     std::span<const std::byte> payload) {
  // A larger payload would be written and then refused by every reader.
  if (payload.size() > format::kSidecarPayloadMax) {
    return StoreError(ErrorCode::PayloadTooLarge)
        .with("what", "sidecar " + name)
        .with("size", uint64_t{payload.size()})
        .with("limit", uint64_t{format::kSidecarPayloadMax});
  }
  return replace_file(fs, directory, name, format::encode_sidecar(kind, version, payload));
}

Status replace_file(platform::FileSystem& fs, const std::string& directory, const std::string& name,
                    std::span<const std::byte> bytes, Replace how) {
  std::string path = platform::join_path(directory, name);
  std::string temp = path + format::kTempSuffix;
  {
    KEEL_ASSIGN_OR_RETURN(auto file, fs.open(temp, platform::OpenMode::CreateOrOpen));
    KEEL_TRY(file->truncate(0));
    // A large file in pieces, each handed to the disk as soon as it is written: the device works
    // while the next piece is copied, and the fdatasync waits for the last piece only.
    constexpr size_t kPiece = 8 << 20;
    for (size_t at = 0; at < bytes.size(); at += kPiece) {
      const auto piece = bytes.subspan(at, std::min(kPiece, bytes.size() - at));
      KEEL_TRY(file->write_at(at, piece));
      if (bytes.size() > kPiece || how == Replace::Cached) file->start_writeback(at, piece.size());
    }
    if (how == Replace::Durable) KEEL_TRY(file->sync_data());
  }
  KEEL_TRY(fs.rename(temp, path));
  return how == Replace::Durable ? fs.sync_directory(directory) : ok_status();
}

Status commit_replace(platform::FileSystem& fs, const std::string& directory,
                      const std::string& name, Replace how) {
  std::string path = platform::join_path(directory, name);
  std::string temp = path + format::kTempSuffix;
  if (how == Replace::Durable) {
    KEEL_ASSIGN_OR_RETURN(auto file, fs.open(temp, platform::OpenMode::ReadWrite));
    KEEL_TRY(file->sync_data());
  }
  KEEL_TRY(fs.rename(temp, path));
  return how == Replace::Durable ? fs.sync_directory(directory) : ok_status();
}

Result<std::optional<std::vector<std::byte>>> read_sidecar(
    platform::FileSystem& fs, const std::string& directory, const std::string& name,
    format::SidecarKind kind, uint32_t supported_version, uint32_t* version) {
  std::string path = platform::join_path(directory, name);
  KEEL_ASSIGN_OR_RETURN(bool present, fs.exists(path));
  if (!present) return std::optional<std::vector<std::byte>>();
  KEEL_ASSIGN_OR_RETURN(auto file, fs.open(path, platform::OpenMode::ReadOnly));
  KEEL_ASSIGN_OR_RETURN(auto bytes, platform::read_file(*file));
  KEEL_ASSIGN_OR_RETURN(auto payload,
                        format::decode_sidecar(bytes, kind, supported_version, path, version));
  return std::optional<std::vector<std::byte>>(
      std::vector<std::byte>(payload.begin(), payload.end()));
}

}  // namespace keel::log
