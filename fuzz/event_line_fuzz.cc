// Fuzzes the event lines of keel load and keel dump (tools/cli/event_lines.h): a line is user
// input, so parsing any bytes must not crash, recurse without bound or allocate far beyond the
// input; and any bytes as a payload, metadata, entity or scope must load back exactly from the line
// dump writes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cli/event_lines.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  keel::cli::EventLine parsed;
  std::string error;
  if (!keel::cli::parse_event_line(bytes, parsed, error) && error.empty()) std::abort();

  keel::EventView event;
  event.sequence = 1;
  event.event_id = keel::EventId{1, 2};
  event.correlation_id = event.event_id;
  event.entity = bytes.substr(size / 3);  // entities and scopes need not be UTF-8
  event.scope = bytes.substr(0, size / 3);
  event.payload = bytes;
  event.metadata = bytes.substr(0, size / 2);
  keel::cli::EventLine back;
  error.clear();
  if (!keel::cli::parse_event_line(keel::cli::dump_event_line(event), back, error)) std::abort();
  if (back.item.payload != bytes) std::abort();
  if (back.item.coordinate.entity != event.entity || back.item.coordinate.scope != event.scope) {
    std::abort();
  }
  if (!back.item.options.metadata || *back.item.options.metadata != event.metadata) std::abort();
  if (back.old_id != event.event_id || back.old_correlation) std::abort();
  return 0;
}
