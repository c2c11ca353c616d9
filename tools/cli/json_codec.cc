#include "cli/json_codec.h"

#include <charconv>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace keel::cli {
namespace {

using nlohmann::json;

// The index of the quote closing the JSON string that opens at `open` (text.size() if none).
size_t string_end(std::string_view text, size_t open) {
  for (size_t i = open + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i;
    }
  }
  return text.size();
}

// The deepest [ / { nesting outside strings; nlohmann's serializers recurse, so deep input is
// refused up front instead of exhausting the stack.
int json_depth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      i = string_end(text, i);
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// The first integer literal (a JSON number without fraction or exponent) outside strings that does
// not fit 64 bits, or an empty view. nlohmann would keep it as a double, silently changing it.
std::string_view integer_beyond_64_bits(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      i = string_end(text, i);
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) continue;
    size_t end = i + 1;
    while (end < text.size() && std::string_view("0123456789.eE+-").find(text[end]) !=
                                    std::string_view::npos) {
      ++end;
    }
    std::string_view token = text.substr(i, end - i);
    i = end - 1;
    if (token.find_first_of(".eE") != std::string_view::npos) continue;  // a float, as written
    auto fits = [&](auto value) {  // msgpack holds int64 below zero, uint64 from zero on
      auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
      return ec == std::errc() && ptr == token.data() + token.size();
    };
    // The text parsed as JSON, so the token is an integer literal.
    if (!(token.front() == '-' ? fits(int64_t{0}) : fits(uint64_t{0}))) return token;
  }
  return {};
}

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

json bytes_json(std::string_view bytes) {
  if (auto text = msgpack_to_json(bytes)) return json::parse(*text);
  return json{{"hex", hex(bytes)}};
}

}  // namespace

std::optional<std::string> json_to_msgpack(std::string_view json_text, std::string& error) {
  if (json_depth(json_text) > kJsonDepthMax) {
    error = "JSON nested deeper than " + std::to_string(kJsonDepthMax) + " levels";
    return std::nullopt;
  }
  json value = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    error = "malformed JSON";
    return std::nullopt;
  }
  if (std::string_view big = integer_beyond_64_bits(json_text); !big.empty()) {
    error = "the integer " + std::string(big.substr(0, 40)) + (big.size() > 40 ? "..." : "") +
            " does not fit 64 bits (msgpack holds -2^63 to 2^64-1); write it as a string";
    return std::nullopt;
  }
  std::vector<uint8_t> bytes = json::to_msgpack(value);
  return std::string(bytes.begin(), bytes.end());
}

std::optional<std::string> msgpack_to_json(std::string_view bytes) {
  // Validate with msgpack-c under limits capped by the input length and a depth bound
  // (docs/ARCHITECTURE.md §11.1) before nlohmann (which recurses) converts it.
  size_t n = bytes.size();
  msgpack::unpack_limit limit(n, n, n, n, n, kJsonDepthMax);
  try {
    size_t offset = 0;
    msgpack::object_handle handle =
        msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr, nullptr, limit);
    if (offset != bytes.size()) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  json value = json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true,
                                  /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string kind_text(EventKind kind) {
  return std::to_string(kind.category()) + ":" + std::to_string(kind.type());
}

namespace {

// Payload and metadata only when `with_payload` (a query may leave them unread).
json event_object(const EventView& e, bool with_payload) {
  json j;
  j["sequence"] = e.sequence;
  j["epoch"] = e.epoch;
  j["event_id"] = e.event_id.to_hex();
  j["entity"] = std::string(e.entity);
  j["scope"] = std::string(e.scope);
  j["kind"] = kind_text(e.kind);
  j["lane"] = e.lane;
  j["clock"] = e.entity_clock;
  j["hlc"] = {{"wall_ms", e.hlc.wall_ms}, {"logical", e.hlc.logical}};
  j["correlation_id"] = e.correlation_id.to_hex();
  j["causation_id"] = e.causation_id ? json(e.causation_id->to_hex()) : json(nullptr);
  if (with_payload) {
    j["payload"] = bytes_json(e.payload);
    j["metadata"] = e.metadata ? bytes_json(*e.metadata) : json(nullptr);
  }
  j["prev_hash"] = e.prev_hash ? json(e.prev_hash->to_hex()) : json(nullptr);
  j["chained_hash"] = e.chained_hash.to_hex();
  return j;
}

// The index fields of an event, named as in event_object.
json ref_object(const EventRef& r) {
  json j;
  j["sequence"] = r.sequence;
  j["event_id"] = r.event_id.to_hex();
  j["entity"] = r.entity;
  j["scope"] = r.scope;
  j["kind"] = kind_text(r.kind);
  j["lane"] = r.lane;
  j["clock"] = r.entity_clock;
  j["hlc"] = {{"wall_ms", r.hlc.wall_ms}, {"logical", r.hlc.logical}};
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string event_json(const EventView& e) { return dump(event_object(e, true)); }

std::string event_json(const Event& e, bool with_payload) {
  EventView view;
  view.sequence = e.sequence;
  view.epoch = e.epoch;
  view.event_id = e.event_id;
  view.entity = e.coordinate.entity;
  view.scope = e.coordinate.scope;
  view.kind = e.kind;
  view.lane = e.lane;
  view.entity_clock = e.entity_clock;
  view.hlc = e.hlc;
  view.correlation_id = e.correlation_id;
  view.causation_id = e.causation_id;
  if (e.metadata) view.metadata = *e.metadata;
  view.payload = e.payload;
  view.prev_hash = e.prev_hash;
  view.chained_hash = e.chained_hash;
  return dump(event_object(view, with_payload));
}

std::string ancestry_json(const Ancestry& ancestry) {
  json chain = json::array();
  for (const EventRef& r : ancestry.chain) chain.push_back(ref_object(r));
  json j;
  j["chain"] = std::move(chain);
  j["external_cause"] =
      ancestry.external_cause ? json(ancestry.external_cause->to_hex()) : json(nullptr);
  return dump(j);
}

std::string effects_json(const EventRef& event, const Effects& effects,
                         const std::vector<EventId>& causes) {
  json list = json::array();
  for (size_t i = 0; i < effects.events.size(); ++i) {
    json effect = ref_object(effects.events[i]);
    effect["causation_id"] = causes[i].to_hex();
    list.push_back(std::move(effect));
  }
  json j;
  j["event"] = ref_object(event);
  j["effects"] = std::move(list);
  j["truncated"] = effects.truncated;
  return dump(j);
}

std::string stats_json(const StoreStats& s) {
  json j;
  j["epoch"] = s.epoch;
  j["events"] = s.events;
  j["entity_streams"] = s.entities;
  j["segments"] = s.segments;
  j["bytes_on_disk"] = s.bytes_on_disk;
  j["sequence_next"] = s.sequence_next;
  j["sequence_written"] = s.sequence_written;
  j["sequence_durable"] = s.sequence_durable;
  j["sequence_visible"] = s.sequence_visible;
  j["first_retained_sequence"] = s.first_retained_sequence;
  j["hidden_events"] = s.hidden_events;
  j["idempotency_keys"] = s.idempotency_keys;
  j["index_bytes"] = s.index_bytes;
  j["indexes_from"] = s.index_source;
  j["records_replayed"] = s.records_replayed;
  j["recovery_bytes_dropped"] = s.recovery_bytes_dropped;
  j["recovery_frames_dropped"] = s.recovery_frames_dropped;
  j["recovery_actions"] = s.recovery_actions;
  j["data_losses"] = s.data_losses;
  j["frontier_log"] = s.frontier_log;
  return j.dump();
}

std::string verify_json(const VerifyReport& r) {
  json j;
  j["ok"] = r.ok;
  j["events_checked"] = r.events_checked;
  j["frames_checked"] = r.frames_checked;
  j["first_bad_sequence"] = r.ok ? json(nullptr) : json(r.first_bad_sequence);
  j["problem"] = r.ok ? json(nullptr) : json(r.problem);
  j["recovery_dropped"] = r.recovery_dropped;
  j["data_losses"] = r.data_losses;
  return j.dump();
}

std::string receipt_json(const Receipt& r) {
  json j;
  j["sequence"] = r.sequence;
  j["epoch"] = r.epoch;
  j["event_id"] = r.event_id.to_hex();
  j["clock"] = r.entity_clock;
  j["hlc"] = {{"wall_ms", r.hlc.wall_ms}, {"logical", r.hlc.logical}};
  j["chained_hash"] = r.chained_hash.to_hex();
  return j.dump();
}

}  // namespace keel::cli
