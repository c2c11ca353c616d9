#include "log/snapshot_files.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "log/consumer_file.h"
#include "log/sidecar_file.h"

namespace keel::log {

namespace {

std::optional<uint64_t> parse_hex64(std::string_view hex) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(hex.data(), hex.data() + hex.size(), value, 16);
  if (error != std::errc() || end != hex.data() + hex.size()) return std::nullopt;
  return value;
}

}  // namespace

const char* check_snapshot_name(std::string_view name) { return check_consumer_name(name); }

std::string snapshot_pointer_file_name(std::string_view name) {
  return std::string(kSnapshotPointerPrefix) + std::string(name);
}

std::string snapshot_payload_file_name(std::string_view name, uint64_t sequence, Hash128 hash) {
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(sequence));
  return std::string(kSnapshotPayloadPrefix) + std::string(name) + "." + digits + "." +
         hash.to_hex();
}

std::optional<std::string> snapshot_name_of_pointer_file(std::string_view file_name) {
  std::string_view prefix(kSnapshotPointerPrefix);
  if (!file_name.starts_with(prefix)) return std::nullopt;
  std::string_view name = file_name.substr(prefix.size());
  if (check_snapshot_name(name) != nullptr || name.ends_with(".tmp")) return std::nullopt;
  return std::string(name);
}

std::optional<SnapshotPayloadName> parse_snapshot_payload_file_name(std::string_view file_name) {
  std::string_view prefix(kSnapshotPayloadPrefix);
  constexpr size_t kTail = 1 + 20 + 1 + 32;  // ".<sequence>.<hash>"
  if (!file_name.starts_with(prefix) || file_name.size() < prefix.size() + kTail + 1) {
    return std::nullopt;
  }
  std::string_view name = file_name.substr(prefix.size(), file_name.size() - prefix.size() - kTail);
  std::string_view tail = file_name.substr(file_name.size() - kTail);
  if (check_snapshot_name(name) != nullptr || tail[0] != '.' || tail[21] != '.') {
    return std::nullopt;
  }
  SnapshotPayloadName parsed;
  parsed.name = std::string(name);
  std::string_view digits = tail.substr(1, 20);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  auto [end, error] =
      std::from_chars(digits.data(), digits.data() + digits.size(), parsed.sequence);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  std::string_view hex = tail.substr(22);
  if (!std::all_of(hex.begin(), hex.end(),
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
    return std::nullopt;  // lowercase only: one file name per payload
  }
  auto high = parse_hex64(hex.substr(0, 16));
  auto low = parse_hex64(hex.substr(16));
  if (!high || !low) return std::nullopt;
  parsed.hash = Hash128{*high, *low};
  return parsed;
}

std::vector<std::byte> encode_snapshot_pointer(const SnapshotPointer& p) {
  std::vector<std::byte> out(kSnapshotPointerFixedBytes + p.name.size());
  std::byte* at = out.data();
  format::store_u64(at, p.epoch);
  format::store_u64(at + 8, p.sequence);
  format::store_u64(at + 16, p.size);
  format::store_u64(at + 24, p.hash.high);
  format::store_u64(at + 32, p.hash.low);
  format::store_u16(at + 40, static_cast<uint16_t>(p.name.size()));
  if (!p.name.empty()) std::memcpy(at + kSnapshotPointerFixedBytes, p.name.data(), p.name.size());
  return out;
}

const char* decode_snapshot_pointer(std::span<const std::byte> payload, SnapshotPointer& p) {
  if (payload.size() < kSnapshotPointerFixedBytes) return "shorter than its fixed fields";
  const std::byte* at = payload.data();
  p.epoch = format::load_u64(at);
  p.sequence = format::load_u64(at + 8);
  p.size = format::load_u64(at + 16);
  p.hash = Hash128{format::load_u64(at + 24), format::load_u64(at + 32)};
  const uint16_t name_length = format::load_u16(at + 40);
  if (payload.size() != kSnapshotPointerFixedBytes + name_length) {
    return "its length does not match its name length";
  }
  if (p.epoch == 0) return "a zero epoch";
  if (p.size > kSnapshotBytesMax) return "a payload size above the limit";
  p.name.assign(reinterpret_cast<const char*>(at + kSnapshotPointerFixedBytes), name_length);
  if (check_snapshot_name(p.name) != nullptr) return "a name that is not a snapshot name";
  return nullptr;
}

Result<std::optional<SnapshotPointer>> read_snapshot_pointer(platform::FileSystem& fs,
                                                             const std::string& directory,
                                                             std::string_view name) {
  const std::string file = snapshot_pointer_file_name(name);
  KEEL_ASSIGN_OR_RETURN(auto payload,
                        read_sidecar(fs, directory, file, format::SidecarKind::SnapshotPointer,
                                     kSnapshotPointerVersion));
  if (!payload) return std::optional<SnapshotPointer>();
  SnapshotPointer pointer;
  const char* problem = decode_snapshot_pointer(*payload, pointer);
  if (problem == nullptr && pointer.name != name) problem = "it names another snapshot";
  if (problem != nullptr) {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", platform::join_path(directory, file))
        .with("reason", problem);
  }
  return std::optional<SnapshotPointer>(std::move(pointer));
}

Status write_snapshot_pointer(platform::FileSystem& fs, const std::string& directory,
                              const SnapshotPointer& pointer) {
  return write_sidecar(fs, directory, snapshot_pointer_file_name(pointer.name),
                       format::SidecarKind::SnapshotPointer, kSnapshotPointerVersion,
                       encode_snapshot_pointer(pointer));
}

Result<std::vector<std::string>> list_snapshot_names(platform::FileSystem& fs,
                                                     const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs.list_directory(directory));
  std::vector<std::string> names;
  for (const std::string& entry : entries) {
    if (auto name = snapshot_name_of_pointer_file(entry)) names.push_back(std::move(*name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace keel::log
