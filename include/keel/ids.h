// keel: identifiers and hashes shared by the API and the on-disk format.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

// A 128-bit event id. Time-ordered when made by the store: `high` starts with the HLC wall
// milliseconds, so ids sort roughly by creation time.
struct EventId {
  uint64_t high = 0;
  uint64_t low = 0;
  friend auto operator<=>(const EventId&, const EventId&) = default;
  bool is_nil() const { return high == 0 && low == 0; }
  // 32 lowercase hex digits.
  std::string to_hex() const;
  // The inverse of to_hex (either case); nullopt unless exactly 32 hex digits.
  static std::optional<EventId> from_hex(std::string_view hex);
};

// An XXH3-128 hash: the chained hash of an event, a fingerprint. Not cryptographic.
struct Hash128 {
  uint64_t high = 0;
  uint64_t low = 0;
  friend auto operator<=>(const Hash128&, const Hash128&) = default;
  std::string to_hex() const;
};

}  // namespace keel
