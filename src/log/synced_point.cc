#include "log/synced_point.h"

#include <array>

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "format/sidecar.h"

namespace keel::log {

std::vector<std::byte> encode_synced_point(const SyncedPoint& point) {
  std::array<std::byte, kSyncedPointPayloadBytes> payload{};
  format::store_u64(payload.data(), point.epoch);
  format::store_u64(payload.data() + 8, point.segment_id);
  format::store_u64(payload.data() + 16, point.offset);
  return format::encode_sidecar(format::SidecarKind::SyncedPoint, kSyncedPointVersion, payload);
}

std::optional<SyncedPoint> decode_synced_point(std::span<const std::byte> file) {
  auto payload = format::decode_sidecar(file, format::SidecarKind::SyncedPoint, kSyncedPointVersion,
                                        format::kSyncedPointFileName);
  if (!payload.ok() || payload->size() != kSyncedPointPayloadBytes) return std::nullopt;
  SyncedPoint point{format::load_u64(payload->data()), format::load_u64(payload->data() + 8),
                    format::load_u64(payload->data() + 16)};
  if (point.epoch == 0 || point.segment_id == 0 || point.offset < format::kSegmentHeaderSize) {
    return std::nullopt;
  }
  return point;
}

Result<std::optional<SyncedPoint>> read_synced_point(platform::FileSystem& fs,
                                                     const std::string& directory) {
  const std::string path = platform::join_path(directory, format::kSyncedPointFileName);
  KEEL_ASSIGN_OR_RETURN(bool exists, fs.exists(path));
  if (!exists) return std::optional<SyncedPoint>();
  KEEL_ASSIGN_OR_RETURN(auto file, fs.open(path, platform::OpenMode::ReadOnly));
  // One byte more than a whole point: a longer file is not one.
  std::array<std::byte, format::kSidecarHeaderSize + kSyncedPointPayloadBytes + 1> bytes{};
  KEEL_ASSIGN_OR_RETURN(size_t got, file->read_at(0, bytes));
  return decode_synced_point(std::span(bytes.data(), got));
}

}  // namespace keel::log
