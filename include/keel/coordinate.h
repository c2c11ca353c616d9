// keel: Coordinate (where an event belongs) and EventKind (what it is). docs/ARCHITECTURE.md §3.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "keel/result.h"

namespace keel {

inline constexpr size_t kEntityMaxBytes = 256;
inline constexpr size_t kScopeMaxBytes = 128;

// entity: the stream key (e.g. "order:42"). scope: a label stored on the event (e.g. "billing"),
// may be empty, matched exactly by queries and filters. It does not partition the entity: the
// entity clock, the hash chain and CAS are per (entity, lane), whatever the scope, so events of
// "order:42" in scopes "shop" and "billing" are one stream (docs/ARCHITECTURE.md §3).
struct Coordinate {
  std::string entity;
  std::string scope;
  friend bool operator==(const Coordinate&, const Coordinate&) = default;
};

// Ok, or InvalidCoordinate naming the component ("entity" / "scope") and what is wrong: empty entity,
// too long, a NUL byte, a control character, or a path-traversal segment ("..", a leading '/').
Status validate_coordinate(std::string_view entity, std::string_view scope);
inline Status validate_coordinate(const Coordinate& c) { return validate_coordinate(c.entity, c.scope); }

// 16 bits: category (high 4 bits) and type (low 12). Category 0 is reserved for the store's own
// system records; appends with it are refused.
struct EventKind {
  uint16_t value = 0;
  static constexpr EventKind make(uint8_t category, uint16_t type) {
    return EventKind{static_cast<uint16_t>((category & 0xf) << 12 | (type & 0xfff))};
  }
  constexpr uint8_t category() const { return static_cast<uint8_t>(value >> 12); }
  constexpr uint16_t type() const { return value & 0xfff; }
  friend bool operator==(const EventKind&, const EventKind&) = default;
};

}  // namespace keel
