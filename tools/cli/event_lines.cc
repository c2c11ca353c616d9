// JSON lines of whole events: what keel dump writes and keel load reads (cli/event_lines.h).
#include "cli/event_lines.h"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/json_codec.h"

namespace keel::cli {
namespace {

using nlohmann::json;

// How dump writes bytes: "NAME" holds the JSON of msgpack bytes when load's encoding of that JSON
// gives the same bytes back; otherwise "NAME_hex" holds them exactly. msgpack nil is written as
// hex: "NAME": null reads as no NAME (found by fuzz/event_line_fuzz.cc).
void put_bytes(json& j, const std::string& name, std::string_view bytes) {
  if (std::optional<std::string> text = msgpack_to_json(bytes); text && *text != "null") {
    std::string error;
    if (json_to_msgpack(*text, error) == std::string(bytes)) {
      j[name] = json::parse(*text);
      return;
    }
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  j[name + "_hex"] = hex;
}

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

// The bytes of "NAME" (JSON, encoded as append encodes it) or "NAME_hex"; nullopt when neither.
std::optional<std::string> bytes_field(const json& j, const std::string& name, std::string& error) {
  const bool plain = j.contains(name) && !j.at(name).is_null();
  const bool hex = j.contains(name + "_hex");
  if (plain && hex) {
    error = "both \"" + name + "\" and \"" + name + "_hex\"";
    return std::nullopt;
  }
  if (hex) {
    std::optional<std::string> bytes;
    if (j.at(name + "_hex").is_string()) bytes = from_hex(j.at(name + "_hex").get<std::string>());
    if (!bytes) error = "\"" + name + "_hex\" wants a string of hex digits";
    return bytes;
  }
  if (!plain) return std::nullopt;
  std::optional<std::string> bytes = json_to_msgpack(j.at(name).dump(), error);
  if (!bytes) error = "\"" + name + "\": " + error;
  return bytes;
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
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return false;
  }
  static const char* const kKnown[] = {"entity",       "scope",           "lane",
                                       "kind",         "payload",         "payload_hex",
                                       "metadata",     "metadata_hex",    "correlation_id",
                                       "causation_id", "idempotency_key", "event_id",
                                       "sequence",     "clock",           "epoch",
                                       "hlc",          "prev_hash",       "chained_hash"};
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
    error = "no \"payload\" (or \"payload_hex\")";
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
  put_bytes(j, "payload", e.payload);
  if (e.metadata) put_bytes(j, "metadata", *e.metadata);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace keel::cli
