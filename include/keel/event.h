// keel: events as reads return them, and receipts as appends return them. docs/ARCHITECTURE.md §3.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "keel/coordinate.h"
#include "keel/ids.h"

namespace keel {

// A hybrid-logical-clock timestamp: wall milliseconds plus a counter ordering events within one.
struct Hlc {
  uint64_t wall_ms = 0;
  uint32_t logical = 0;
  friend auto operator<=>(const Hlc&, const Hlc&) = default;
};

// What an append returns. (epoch, sequence, chained_hash) identify the event even across a crash:
// a crash can reissue a sequence above the durable point to another event, but never in the same
// epoch with the same hash. A receipt from an append at Durability::Accepted or Written is void if
// a crash or a poisoned writer comes before the event is durable.
struct Receipt {
  EventId event_id;
  uint64_t epoch = 0;
  uint64_t sequence = 0;
  uint64_t entity_clock = 0;
  Hlc hlc;
  Hash128 chained_hash;
  friend bool operator==(const Receipt&, const Receipt&) = default;
};

// An event read from the store, with views into storage owned by the read call: valid only during
// the callback it is passed to.
struct EventView {
  uint64_t sequence = 0;
  uint64_t epoch = 0;  // the epoch that wrote it
  EventId event_id;
  std::string_view entity;
  std::string_view scope;
  EventKind kind;
  uint32_t lane = 0;
  uint64_t entity_clock = 0;
  Hlc hlc;
  EventId correlation_id;
  std::optional<EventId> causation_id;
  std::optional<std::string_view> metadata;
  std::string_view payload;
  std::optional<Hash128> prev_hash;
  Hash128 chained_hash;
};

// An event that owns its bytes.
struct Event {
  uint64_t sequence = 0;
  uint64_t epoch = 0;
  EventId event_id;
  Coordinate coordinate;
  EventKind kind;
  uint32_t lane = 0;
  uint64_t entity_clock = 0;
  Hlc hlc;
  EventId correlation_id;
  std::optional<EventId> causation_id;
  std::optional<std::string> metadata;
  std::string payload;
  std::optional<Hash128> prev_hash;
  Hash128 chained_hash;

  static Event from_view(const EventView& view);
  // The same into this event, reusing its strings' capacity (a reader that keeps its Events
  // between batches copies bytes without allocating).
  void assign(const EventView& view);
  Receipt receipt() const {
    return Receipt{event_id, epoch, sequence, entity_clock, hlc, chained_hash};
  }
  friend bool operator==(const Event&, const Event&) = default;
};

}  // namespace keel
