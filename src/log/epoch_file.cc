#include "log/epoch_file.h"

#include "format/byte_order.h"
#include "log/sidecar_file.h"

namespace keel::log {

Result<std::optional<uint64_t>> read_epoch(platform::FileSystem& fs, const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(auto payload, read_sidecar(fs, directory, format::kEpochFileName,
                                                   format::SidecarKind::Epoch, kEpochFileVersion));
  if (!payload) return std::optional<uint64_t>();
  if (payload->size() != 8) {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", platform::join_path(directory, format::kEpochFileName))
        .with("reason", "epoch payload is not 8 bytes");
  }
  return std::optional<uint64_t>(format::load_u64(payload->data()));
}

Status write_epoch(platform::FileSystem& fs, const std::string& directory, uint64_t epoch) {
  std::byte payload[8];
  format::store_u64(payload, epoch);
  return write_sidecar(fs, directory, format::kEpochFileName, format::SidecarKind::Epoch,
                       kEpochFileVersion, payload);
}

}  // namespace keel::log
