// The sidecar envelope (segments/FORMAT.md "Sidecar envelope"): every small file beside the
// segments (epoch, index checkpoint, idempotency, hidden ranges, cursors, snapshot pointers).
//
//   0  8  magic "KEELSIDE"       20  4  version
//   8  8  checksum: XXH3-64 of   24  4  payload_length
//         bytes [16, 32 + len)   28  4  reserved, zero
//  16  4  kind                   32  n  payload
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "format/format_constants.h"
#include "keel/result.h"

namespace keel::format {

std::vector<std::byte> encode_sidecar(SidecarKind kind, uint32_t version,
                                      std::span<const std::byte> payload);

// Returns the payload (a view into `bytes`). A damaged envelope, another kind, or a length that
// does not match is CorruptSidecar; a version above `supported_version` is UnsupportedVersion.
// `path` only names the file in errors; `version`, when given, receives the file's version (1 to
// supported_version).
Result<std::span<const std::byte>> decode_sidecar(std::span<const std::byte> bytes,
                                                  SidecarKind kind, uint32_t supported_version,
                                                  const std::string& path,
                                                  uint32_t* version = nullptr);

}  // namespace keel::format
