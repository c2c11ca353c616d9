// OwnedEvent: an event body that owns its bytes. format::EventBody holds views into a buffer;
// tests that keep events beyond that buffer (generators, what a recovery visitor saw) use this.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "format/event_body.h"
#include "keel/ids.h"

namespace keel::test {

struct OwnedEvent {
  format::BodyFormat format = format::BodyFormat::Compact;
  EventId event_id;
  std::string entity;
  std::string scope;
  uint16_t kind = 0;
  uint32_t lane = 0;
  uint64_t entity_clock = 0;
  uint64_t hlc_wall_ms = 0;
  uint32_t hlc_logical = 0;
  EventId correlation_id;
  std::optional<EventId> causation_id;
  std::optional<std::string> idempotency_key;
  std::optional<Hash128> idempotency_fingerprint;
  std::optional<uint64_t> fence_id;
  std::optional<std::string> metadata;
  std::string payload;
  std::optional<Hash128> prev_hash;

  friend bool operator==(const OwnedEvent&, const OwnedEvent&) = default;

  format::EventBody body() const {
    format::EventBody e;
    e.format = format;
    e.event_id = event_id;
    e.entity = entity;
    e.scope = scope;
    e.kind = kind;
    e.lane = lane;
    e.entity_clock = entity_clock;
    e.hlc_wall_ms = hlc_wall_ms;
    e.hlc_logical = hlc_logical;
    e.correlation_id = correlation_id;
    e.causation_id = causation_id;
    if (idempotency_key) e.idempotency_key = *idempotency_key;
    e.idempotency_fingerprint = idempotency_fingerprint;
    e.fence_id = fence_id;
    if (metadata) e.metadata = *metadata;
    e.payload = payload;
    e.prev_hash = prev_hash;
    return e;
  }

  static OwnedEvent from(const format::EventBody& e) {
    OwnedEvent o;
    o.format = e.format;
    o.event_id = e.event_id;
    o.entity = e.entity;
    o.scope = e.scope;
    o.kind = e.kind;
    o.lane = e.lane;
    o.entity_clock = e.entity_clock;
    o.hlc_wall_ms = e.hlc_wall_ms;
    o.hlc_logical = e.hlc_logical;
    o.correlation_id = e.correlation_id;
    o.causation_id = e.causation_id;
    if (e.idempotency_key) o.idempotency_key = std::string(*e.idempotency_key);
    o.idempotency_fingerprint = e.idempotency_fingerprint;
    o.fence_id = e.fence_id;
    if (e.metadata) o.metadata = std::string(*e.metadata);
    o.payload = e.payload;
    o.prev_hash = e.prev_hash;
    return o;
  }
};


// What rapidcheck prints for a counterexample: the shape, not 70 KB of payload.
inline void showValue(const OwnedEvent& e, std::ostream& os) {
  os << "OwnedEvent{entity=" << e.entity.size() << "B scope=" << e.scope.size()
     << "B kind=" << e.kind << " lane=" << e.lane << " clock=" << e.entity_clock
     << " causation=" << e.causation_id.has_value()
     << " idem_key=" << (e.idempotency_key ? std::to_string(e.idempotency_key->size()) : "-")
     << " fence=" << (e.fence_id ? std::to_string(*e.fence_id) : "-")
     << " metadata=" << (e.metadata ? std::to_string(e.metadata->size()) : "-")
     << " payload=" << e.payload.size() << "B}";
}

}  // namespace keel::test
