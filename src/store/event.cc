#include "keel/event.h"

namespace keel {

Event Event::from_view(const EventView& v) {
  Event e;
  e.sequence = v.sequence;
  e.epoch = v.epoch;
  e.event_id = v.event_id;
  e.coordinate = Coordinate{std::string(v.entity), std::string(v.scope)};
  e.kind = v.kind;
  e.lane = v.lane;
  e.entity_clock = v.entity_clock;
  e.hlc = v.hlc;
  e.correlation_id = v.correlation_id;
  e.causation_id = v.causation_id;
  if (v.metadata) e.metadata = std::string(*v.metadata);
  e.payload = std::string(v.payload);
  e.prev_hash = v.prev_hash;
  e.chained_hash = v.chained_hash;
  return e;
}

}  // namespace keel
