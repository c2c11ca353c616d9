#include "log/consumer_file.h"

#include <algorithm>
#include <cstring>

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "log/sidecar_file.h"

namespace keel::log {

const char* check_consumer_name(std::string_view name) {
  if (name.empty()) return "the name is empty";
  if (name.size() > kConsumerNameMax) return "the name is longer than 64 bytes";
  if (name[0] == '.') return "the name starts with a dot";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return "the name holds a byte other than A-Z a-z 0-9 _ . -";
  }
  return nullptr;
}

std::string consumer_file_name(std::string_view name) {
  return std::string(kConsumerFilePrefix) + std::string(name);
}

std::optional<std::string> consumer_name_of_file(std::string_view file_name) {
  std::string_view prefix(kConsumerFilePrefix);
  if (!file_name.starts_with(prefix)) return std::nullopt;
  std::string_view name = file_name.substr(prefix.size());
  if (check_consumer_name(name) != nullptr || name.ends_with(".tmp")) return std::nullopt;
  return std::string(name);
}

std::vector<std::byte> encode_consumer_cursor(const ConsumerCursor& c) {
  const std::string_view filter = c.filter ? std::string_view(*c.filter) : std::string_view();
  std::vector<std::byte> out(kConsumerFixedBytes + c.name.size() + filter.size() + c.state.size());
  std::byte* p = out.data();
  format::store_u64(p, c.epoch);
  format::store_u64(p + 8, c.cursor);
  format::store_u64(p + 16, c.state.size());
  format::store_u16(p + 24, static_cast<uint16_t>(c.name.size()));
  format::store_u32(p + 26, static_cast<uint32_t>(filter.size()));
  p += kConsumerFixedBytes;
  for (std::string_view field : {std::string_view(c.name), filter, std::string_view(c.state)}) {
    if (!field.empty()) std::memcpy(p, field.data(), field.size());
    p += field.size();
  }
  return out;
}

const char* decode_consumer_cursor(std::span<const std::byte> payload, uint32_t version,
                                   ConsumerCursor& c) {
  if (version != 1 && version != 2) return "an unknown version";
  const size_t fixed = version == 1 ? kConsumerFixedBytesV1 : kConsumerFixedBytes;
  if (payload.size() < fixed) return "shorter than its fixed fields";
  const std::byte* p = payload.data();
  c.epoch = format::load_u64(p);
  c.cursor = format::load_u64(p + 8);
  const uint64_t state_length = format::load_u64(p + 16);
  const uint16_t name_length = format::load_u16(p + 24);
  const uint32_t filter_length = version == 1 ? 0 : format::load_u32(p + 26);
  if (state_length > kConsumerStateMax) return "its state is longer than the limit";
  if (filter_length > kConsumerFilterMax) return "its filter is longer than the limit";
  if (payload.size() != fixed + name_length + filter_length + state_length) {
    return "its length does not match its name, filter and state lengths";
  }
  if (c.epoch == 0) return "a zero epoch";
  const char* name = reinterpret_cast<const char*>(p + fixed);
  c.name.assign(name, name_length);
  if (check_consumer_name(c.name) != nullptr) return "a name that is not a consumer name";
  const char* filter = name + name_length;
  if (filter_length == 0) {
    c.filter.reset();
  } else {
    c.filter.emplace(filter, filter_length);
  }
  c.state.assign(filter + filter_length, state_length);
  return nullptr;
}

Result<std::optional<ConsumerCursor>> read_consumer_cursor(platform::FileSystem& fs,
                                                           const std::string& directory,
                                                           std::string_view name) {
  if (const char* problem = check_consumer_name(name)) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", "name").with("reason", problem);
  }
  const std::string file = consumer_file_name(name);
  uint32_t version = 0;
  KEEL_ASSIGN_OR_RETURN(auto payload, read_sidecar(fs, directory, file, format::SidecarKind::Cursor,
                                                   kConsumerFileVersion, &version));
  if (!payload) return std::optional<ConsumerCursor>();
  ConsumerCursor cursor;
  const char* problem = decode_consumer_cursor(*payload, version, cursor);
  if (problem == nullptr && cursor.name != name) problem = "it names another consumer";
  if (problem != nullptr) {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", platform::join_path(directory, file))
        .with("reason", problem);
  }
  return std::optional<ConsumerCursor>(std::move(cursor));
}

Result<std::vector<std::string>> list_consumers(platform::FileSystem& fs,
                                                const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs.list_directory(directory));
  std::vector<std::string> names;
  for (const std::string& entry : entries) {
    if (auto name = consumer_name_of_file(entry)) names.push_back(std::move(*name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

Status write_consumer_cursor(platform::FileSystem& fs, const std::string& directory,
                             const ConsumerCursor& cursor) {
  if (const char* problem = check_consumer_name(cursor.name)) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", "name").with("reason", problem);
  }
  if (cursor.filter && (cursor.filter->empty() || cursor.filter->size() > kConsumerFilterMax)) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "filter")
        .with("reason", "its text must be 1 to 4096 bytes");
  }
  if (cursor.state.size() > kConsumerStateMax) {
    return StoreError(ErrorCode::PayloadTooLarge)
        .with("what", "consumer state")
        .with("size", cursor.state.size())
        .with("limit", kConsumerStateMax);
  }
  return write_sidecar(fs, directory, consumer_file_name(cursor.name), format::SidecarKind::Cursor,
                       kConsumerFileVersion, encode_consumer_cursor(cursor));
}

Status remove_consumer_cursor(platform::FileSystem& fs, const std::string& directory,
                              std::string_view name) {
  const std::string path = platform::join_path(directory, consumer_file_name(name));
  KEEL_ASSIGN_OR_RETURN(bool there, fs.exists(path));
  if (!there) return ok_status();
  KEEL_TRY(fs.remove(path));
  return fs.sync_directory(directory);
}

}  // namespace keel::log
