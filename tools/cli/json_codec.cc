#include "cli/json_codec.h"

#include <charconv>

namespace keel::cli {
namespace {

using json = Json;

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
    while (end < text.size() &&
           std::string_view("0123456789.eE+-").find(text[end]) != std::string_view::npos) {
      ++end;
    }
    std::string_view token = text.substr(i, end - i);
    i = end - 1;
    if (token.find_first_of(".eE") != std::string_view::npos) continue;  // a float, as written
    auto fits = [&](auto value) {  // nlohmann keeps int64 below zero, uint64 from zero on
      auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
      return ec == std::errc() && ptr == token.data() + token.size();
    };
    // The text parsed as JSON, so the token is an integer literal.
    if (!(token.front() == '-' ? fits(int64_t{0}) : fits(uint64_t{0}))) return token;
  }
  return {};
}

}  // namespace

bool is_utf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    size_t length = 1;
    uint32_t code = c;
    if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      code = c & 0x07;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      code = c & 0x0f;
    } else if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
      code = c & 0x1f;
    } else if (c >= 0x80) {
      return false;  // a continuation byte, 0xc0, 0xc1 or above 0xf4
    }
    if (length > bytes.size() - i) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(bytes[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    if ((length == 3 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff))) ||
        (length == 4 && (code < 0x10000 || code > 0x10ffff))) {
      return false;
    }
    i += length;
  }
  return true;
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

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int high = digit(hex[2 * i]);
    const int low = digit(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<char>(high * 16 + low);
  }
  return out;
}

std::optional<Json> parse_json(std::string_view text, std::string& error) {
  if (json_depth(text) > kJsonDepthMax) {
    error = "JSON nested deeper than " + std::to_string(kJsonDepthMax) + " levels";
    return std::nullopt;
  }
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    error = "malformed JSON";
    return std::nullopt;
  }
  if (std::string_view big = integer_beyond_64_bits(text); !big.empty()) {
    error = "the integer " + std::string(big.substr(0, 40)) + (big.size() > 40 ? "..." : "") +
            " does not fit 64 bits (-2^63 to 2^64-1); write it as a string";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> stored_json_text(std::string_view text, std::string& error) {
  constexpr std::string_view kSpace = " \t\r\n";  // JSON's white space
  const size_t first = text.find_first_not_of(kSpace);
  text = first == std::string_view::npos
             ? std::string_view()
             : text.substr(first, text.find_last_not_of(kSpace) - first + 1);
  if (!parse_json(text, error)) return std::nullopt;
  return std::string(text);
}

void put_bytes(Json& j, const std::string& name, std::string_view bytes, bool exact) {
  std::string not_json;
  if (std::optional<json> value = parse_json(bytes, not_json); value && !value->is_null()) {
    if (!exact || value->dump() == bytes) {
      j[name] = std::move(*value);
      return;
    }
  }
  if (is_utf8(bytes)) {
    j[name + "_text"] = std::string(bytes);
  } else {
    j[name + "_hex"] = hex(bytes);
  }
}

std::string bytes_cell(std::string_view bytes) {
  std::string not_json;
  if (std::optional<json> value = parse_json(bytes, not_json)) return value->dump();
  if (is_utf8(bytes)) return json(std::string(bytes)).dump();
  return "(" + std::to_string(bytes.size()) + " bytes, not text)";
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
    put_bytes(j, "payload", e.payload, /*exact=*/false);
    if (e.metadata) {
      put_bytes(j, "metadata", *e.metadata, /*exact=*/false);
    } else {
      j["metadata"] = nullptr;
    }
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
