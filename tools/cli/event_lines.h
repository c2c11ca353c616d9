// JSON lines of whole events: one JSON object per event, what keel dump writes and keel load
// reads (the fields are listed in `keel load --help`). Payload and metadata bytes are written as
// "payload" (their JSON value) when they are the compact text of that value, else as
// "payload_text" (UTF-8 text) or "payload_hex", so a dumped event loads back with the same bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "keel/store.h"

namespace keel::cli {

// One parsed line.
struct EventLine {
  uint64_t number = 0;                     // its line number in the input
  BatchItem item;                          // coordinate, kind, payload, lane, metadata, key
  std::optional<EventId> old_id;           // "event_id": its id where it was dumped from
  std::optional<EventId> old_causation;    // mapped by the loader when the cause was loaded too
  std::optional<EventId> old_correlation;  // likewise
};

// Parses `text` into `line` (all but `number`); false with `error` set when it is not one whole
// event: not a JSON object, an unknown field, a field of the wrong type, no payload.
bool parse_event_line(std::string_view text, EventLine& line, std::string& error);

// The line (without its newline) for a visible event.
std::string dump_event_line(const EventView& event);

}  // namespace keel::cli
