#include "keel/event.h"

namespace keel {

Event Event::from_view(const EventView& v) {
  Event e;
  e.assign(v);
  return e;
}

void Event::assign(const EventView& v) {
  sequence = v.sequence;
  epoch = v.epoch;
  event_id = v.event_id;
  coordinate.entity.assign(v.entity);
  coordinate.scope.assign(v.scope);
  kind = v.kind;
  lane = v.lane;
  entity_clock = v.entity_clock;
  hlc = v.hlc;
  correlation_id = v.correlation_id;
  causation_id = v.causation_id;
  if (v.metadata) {
    if (!metadata) metadata.emplace();
    metadata->assign(*v.metadata);
  } else {
    metadata.reset();
  }
  payload.assign(v.payload);
  prev_hash = v.prev_hash;
  chained_hash = v.chained_hash;
}

}  // namespace keel
