#include "keel/ids.h"

#include "absl/strings/str_format.h"

namespace keel {

std::string EventId::to_hex() const { return absl::StrFormat("%016x%016x", high, low); }
std::optional<EventId> EventId::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<uint64_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    parts[i / 16] = parts[i / 16] << 4 | digit;
  }
  return EventId{parts[0], parts[1]};
}

std::string Hash128::to_hex() const { return absl::StrFormat("%016x%016x", high, low); }

}  // namespace keel
