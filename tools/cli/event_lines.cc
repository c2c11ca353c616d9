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

std::optional<std::string> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int high = digit(hex[2 * i]);
    int low = digit(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<char>(high * 16 + low);
  }
  return out;
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
  if (j.contains(hex)) {
    std::optional<std::string> bytes;
    if (j.at(hex).is_string()) bytes = from_hex(j.at(hex).get<std::string>());
    if (!bytes) error = "\"" + hex + "\" wants a string of hex digits";
    return bytes;
  }
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
      "entity",         "scope",        "lane",          "kind",         "payload",
      "payload_text",   "payload_hex",  "metadata",      "metadata_text", "metadata_hex",
      "correlation_id", "causation_id", "idempotency_key", "event_id",   "sequence",
      "clock",          "epoch",        "hlc",           "prev_hash",    "chained_hash"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      error = "unknown field \"" + key + "\"";
      return false;
    }
  }
  if (!j.contains("entity") || !j.at("entity").is_string()) {
    error = "\"entity\" wants a string";
    return false;
  }
  line.item.coordinate.entity = j.at("entity").get<std::string>();
  if (j.contains("scope")) {
    if (!j.at("scope").is_string()) {
      error = "\"scope\" wants a string";
      return false;
    }
    line.item.coordinate.scope = j.at("scope").get<std::string>();
  }
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
  j["entity"] = std::string(e.entity);
  j["scope"] = std::string(e.scope);
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
