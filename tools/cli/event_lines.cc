// JSON lines of whole events: what keel dump writes and keel load reads (cli/event_lines.h).
#include "cli/event_lines.h"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/json_codec.h"

namespace keel::cli {
namespace {

using json = Json;

// The bytes of the string "FIELD" written in hex; nullopt with `error` set when it is not that.
std::optional<std::string> hex_field(const json& j, const std::string& field, std::string& error) {
  std::optional<std::string> bytes;
  if (j.at(field).is_string()) bytes = from_hex(j.at(field).get<std::string>());
  if (!bytes) error = "\"" + field + "\" wants a string of hex digits";
  return bytes;
}

// The bytes of "NAME" (a string) or "NAME_hex" (how dump writes an entity or a scope that is not
// UTF-8); nullopt when neither is there, or with `error` set.
std::optional<std::string> text_field(const json& j, const std::string& name, std::string& error) {
  const std::string hex = name + "_hex";
  if (j.contains(name) && j.contains(hex)) {
    error = "both \"" + name + "\" and \"" + hex + "\"";
    return std::nullopt;
  }
  if (j.contains(hex)) return hex_field(j, hex, error);
  if (!j.contains(name)) return std::nullopt;
  if (!j.at(name).is_string()) {
    error = "\"" + name + "\" wants a string";
    return std::nullopt;
  }
  return j.at(name).get<std::string>();
}

// Writes `bytes` as the string "NAME" when they are UTF-8, else as "NAME_hex".
void put_text(json& j, const std::string& name, std::string_view bytes) {
  if (is_utf8(bytes)) {
    j[name] = std::string(bytes);
  } else {
    j[name + "_hex"] = hex(bytes);
  }
}

// The bytes of "NAME" (a JSON value, stored as its compact text), "NAME_text" (a string, stored as
// its UTF-8 bytes) or "NAME_hex"; nullopt when none of them is there, or with `error` set when more
// than one is or the one there has the wrong type.
std::optional<std::string> bytes_field(const json& j, const std::string& name, std::string& error) {
  const std::string text = name + "_text";
  const std::string hex = name + "_hex";
  const bool plain = j.contains(name) && !j.at(name).is_null();
  const int given = int{plain} + int{j.contains(text)} + int{j.contains(hex)};
  if (given > 1) {
    error = "more than one of \"" + name + "\", \"" + text + "\" and \"" + hex + "\"";
    return std::nullopt;
  }
  if (plain) return j.at(name).dump();
  if (j.contains(text)) {
    if (!j.at(text).is_string()) error = "\"" + text + "\" wants a string";
    return error.empty() ? std::optional(j.at(text).get<std::string>()) : std::nullopt;
  }
  if (j.contains(hex)) return hex_field(j, hex, error);
  return std::nullopt;
}

std::optional<EventId> id_field(const json& j, const char* name, std::string& error) {
  if (!j.contains(name) || j.at(name).is_null()) return std::nullopt;
  std::optional<EventId> id;
  if (j.at(name).is_string()) id = EventId::from_hex(j.at(name).get<std::string>());
  if (!id) error = std::string("\"") + name + "\" wants a 32-digit hex event id";
  return id;
}

}  // namespace

bool parse_event_line(std::string_view text, EventLine& line, std::string& error) {
  error.clear();
  std::optional<json> parsed = parse_json(text, error);
  if (!parsed) return false;
  const json& j = *parsed;
  if (!j.is_object()) {
    error = "not a JSON object";
    return false;
  }
  static const char* const kKnown[] = {
      "entity",        "entity_hex",   "scope",          "scope_hex",    "lane",
      "kind",          "payload",      "payload_text",   "payload_hex",  "metadata",
      "metadata_text", "metadata_hex", "correlation_id", "causation_id", "idempotency_key",
      "event_id",      "sequence",     "clock",          "epoch",        "hlc",
      "prev_hash",     "chained_hash"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      error = "unknown field \"" + key + "\"";
      return false;
    }
  }
  std::optional<std::string> entity = text_field(j, "entity", error);
  if (!entity) {
    if (error.empty()) error = "no \"entity\"";
    return false;
  }
  line.item.coordinate.entity = std::move(*entity);
  line.item.coordinate.scope = text_field(j, "scope", error).value_or("");
  if (!error.empty()) return false;
  if (j.contains("lane")) {
    if (!j.at("lane").is_number_unsigned() || j.at("lane").get<uint64_t>() > UINT32_MAX) {
      error = "\"lane\" wants a number from 0 to 4294967295";
      return false;
    }
    line.item.options.lane = j.at("lane").get<uint32_t>();
  }
  std::optional<EventKind> kind = EventKind::make(1, 1);
  if (j.contains("kind")) {
    kind = j.at("kind").is_string() ? parse_kind(j.at("kind").get<std::string>()) : std::nullopt;
    if (!kind) {
      error = "\"kind\" wants \"CATEGORY:TYPE\" (0-15:0-4095) or a 16-bit number as a string";
      return false;
    }
  }
  line.item.kind = *kind;
  std::optional<std::string> payload = bytes_field(j, "payload", error);
  if (!error.empty()) return false;
  if (!payload) {
    error = "no \"payload\" (or \"payload_text\" or \"payload_hex\")";
    return false;
  }
  line.item.payload = std::move(*payload);
  line.item.options.metadata = bytes_field(j, "metadata", error);
  if (!error.empty()) return false;
  line.old_id = id_field(j, "event_id", error);
  line.old_causation = id_field(j, "causation_id", error);
  line.old_correlation = id_field(j, "correlation_id", error);
  if (!error.empty()) return false;
  if (j.contains("idempotency_key") && !j.at("idempotency_key").is_null()) {
    if (!j.at("idempotency_key").is_string()) {
      error = "\"idempotency_key\" wants a string";
      return false;
    }
    line.item.options.idempotency_key = j.at("idempotency_key").get<std::string>();
  }
  return true;
}

std::string dump_event_line(const EventView& e) {
  json j;
  j["sequence"] = e.sequence;
  j["event_id"] = e.event_id.to_hex();
  put_text(j, "entity", e.entity);
  put_text(j, "scope", e.scope);
  j["lane"] = e.lane;
  j["kind"] = kind_text(e.kind);
  j["clock"] = e.entity_clock;
  if (e.correlation_id != e.event_id) j["correlation_id"] = e.correlation_id.to_hex();
  if (e.causation_id) j["causation_id"] = e.causation_id->to_hex();
  put_bytes(j, "payload", e.payload, /*exact=*/true);
  if (e.metadata) put_bytes(j, "metadata", *e.metadata, /*exact=*/true);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace keel::cli
