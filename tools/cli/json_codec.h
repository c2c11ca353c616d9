// JSON for the CLI: events and receipts go out as JSON lines, causal answers as one JSON object.
//
// keel's payload convention: payloads and metadata are bytes to the library, and the CLI reads and
// writes them as JSON text. `keel append` stores the JSON text it is given (without the white space
// around it); a payload that is a JSON text, whoever appended it, prints as its JSON value, one
// that is other UTF-8 text as a string ("payload_text"), anything else as hex ("payload_hex").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/event.h"
#include "keel/store.h"

namespace keel::cli {

// Objects keep their keys in the order written, so a payload prints with its keys as appended.
using Json = nlohmann::ordered_json;

inline constexpr int kJsonDepthMax = 64;

// The value of one JSON text within the CLI's limits; nullopt with `error` set for malformed JSON,
// nesting deeper than kJsonDepthMax (nlohmann's serializer recurses), or an integer beyond 64 bits
// (nlohmann would keep it as a double, silently changing it).
std::optional<Json> parse_json(std::string_view text, std::string& error);
// What the CLI stores for a JSON text the user gives: the text itself without the JSON white space
// around it, once parse_json accepts it; nullopt with `error` set otherwise.
std::optional<std::string> stored_json_text(std::string_view text, std::string& error);
// Puts stored bytes into `j` under the convention above: "NAME" holds their JSON value when they
// are a JSON text other than null (with `exact`, only when they are that value's compact text, so
// that keel load, which stores a value's compact text, gives the same bytes back); else "NAME_text"
// holds them when they are UTF-8; else "NAME_hex".
void put_bytes(Json& j, const std::string& name, std::string_view bytes, bool exact);
// Stored bytes for a table cell: compact JSON, the text, or "(N bytes, not text)".
std::string bytes_cell(std::string_view bytes);
// Well-formed UTF-8: no stray continuation byte, overlong form, surrogate or code point above
// U+10FFFF (JSON strings must be; entities and scopes need not be).
bool is_utf8(std::string_view bytes);
// Lower-case hex digits, two per byte; from_hex reads either case, nullopt for anything else.
std::string hex(std::string_view bytes);
std::optional<std::string> from_hex(std::string_view hex);

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
