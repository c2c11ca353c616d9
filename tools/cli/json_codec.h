// JSON for the CLI: payloads come in as JSON and are stored as msgpack; events and receipts go out
// as JSON lines, causal answers as one JSON object. Payloads that are not msgpack print as
// {"hex": "..."}.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/event.h"
#include "keel/store.h"

namespace keel::cli {

inline constexpr int kJsonDepthMax = 64;

// The msgpack encoding of a JSON text; nullopt with `error` set for malformed JSON, nesting
// deeper than kJsonDepthMax, or an integer that does not fit 64 bits (never silently a double).
std::optional<std::string> json_to_msgpack(std::string_view json_text, std::string& error);
// The JSON text of msgpack bytes; nullopt if they are not one msgpack value within the limits.
std::optional<std::string> msgpack_to_json(std::string_view msgpack_bytes);

std::string event_json(const EventView& event);
// The same fields for an owned event; "payload" and "metadata" only when `with_payload`.
std::string event_json(const Event& event, bool with_payload);
// {"chain": [event refs, the asked event first], "external_cause": id or null}; a ref has the
// index fields of event_json (sequence, event_id, entity, scope, kind, lane, clock, hlc).
std::string ancestry_json(const Ancestry& ancestry);
// {"event": ref, "effects": [ref + "causation_id", breadth-first], "truncated": bool};
// causes[i] is the cause of effects.events[i].
std::string effects_json(const EventRef& event, const Effects& effects,
                         const std::vector<EventId>& causes);
std::string receipt_json(const Receipt& receipt);
// keel stats --json: every field of StoreStats that describes the store as opened.
std::string stats_json(const StoreStats& stats);
// keel verify --json: the report's fields.
std::string verify_json(const VerifyReport& report);
std::string kind_text(EventKind kind);  // "category:type", e.g. "1:2"

}  // namespace keel::cli
