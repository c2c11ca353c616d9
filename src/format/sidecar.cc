#include "format/sidecar.h"

#include <cstring>

#include "format/byte_order.h"
#include "format/checksum.h"

namespace keel::format {

std::vector<std::byte> encode_sidecar(SidecarKind kind, uint32_t version,
                                      std::span<const std::byte> payload) {
  std::vector<std::byte> bytes(kSidecarHeaderSize + payload.size());
  std::memcpy(bytes.data(), kSidecarMagic, sizeof kSidecarMagic);
  store_u32(bytes.data() + 16, static_cast<uint32_t>(kind));
  store_u32(bytes.data() + 20, version);
  store_u32(bytes.data() + 24, static_cast<uint32_t>(payload.size()));
  if (!payload.empty())
    std::memcpy(bytes.data() + kSidecarHeaderSize, payload.data(), payload.size());
  store_u64(bytes.data() + 8, checksum64(std::span(bytes).subspan(16)));
  return bytes;
}

Result<std::span<const std::byte>> decode_sidecar(std::span<const std::byte> bytes,
                                                  SidecarKind kind, uint32_t supported_version,
                                                  const std::string& path, uint32_t* version_out) {
  auto corrupt = [&](const char* reason) {
    return StoreError(ErrorCode::CorruptSidecar).with("path", path).with("reason", reason);
  };
  if (bytes.size() < kSidecarHeaderSize) return corrupt("shorter than the envelope header");
  const std::byte* h = bytes.data();
  if (std::memcmp(h, kSidecarMagic, sizeof kSidecarMagic) != 0) return corrupt("bad magic");
  uint32_t length = load_u32(h + 24);
  if (length > kSidecarPayloadMax || bytes.size() != kSidecarHeaderSize + uint64_t{length}) {
    return corrupt("payload length does not match the file size");
  }
  if (checksum64(bytes.subspan(16)) != load_u64(h + 8)) return corrupt("checksum mismatch");
  if (load_u32(h + 16) != static_cast<uint32_t>(kind)) return corrupt("wrong sidecar kind");
  if (load_u32(h + 28) != 0) return corrupt("reserved bytes are not zero");
  uint32_t version = load_u32(h + 20);
  if (version > supported_version) {
    return StoreError(ErrorCode::UnsupportedVersion)
        .with("path", path)
        .with("found", uint64_t{version})
        .with("supported", uint64_t{supported_version});
  }
  if (version == 0) return corrupt("version 0");
  if (version_out != nullptr) *version_out = version;
  return bytes.subspan(kSidecarHeaderSize, length);
}

}  // namespace keel::format
