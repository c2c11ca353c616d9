#include "consumers/filter_text.h"

#include <cstdio>

namespace keel::consumers {

namespace {

class JsonObject {
 public:
  void key(const char* name) {
    out_ += out_.size() == 1 ? "\"" : ",\"";
    out_ += name;
    out_ += "\":";
  }
  void string(const char* name, std::string_view value) {
    key(name);
    out_ += '"';
    for (char c : value) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (byte < 0x20 || byte == 0x7f) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
        out_ += escaped;
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }
  void number(const char* name, uint64_t value) {
    key(name);
    out_ += std::to_string(value);
  }
  void hlc(const char* name, const Hlc& value) {
    key(name);
    out_ += "[" + std::to_string(value.wall_ms) + "," + std::to_string(value.logical) + "]";
  }
  std::string finish() { return std::move(out_) + "}"; }

 private:
  std::string out_ = "{";
};

}  // namespace

std::string filter_text(const Query& f) {
  const Query defaults;
  JsonObject json;
  if (f.entity) json.string("entity", *f.entity);
  if (f.entity_prefix) json.string("entity_prefix", *f.entity_prefix);
  if (f.lane) json.number("lane", *f.lane);
  if (f.clock_from != defaults.clock_from) json.number("clock_from", f.clock_from);
  if (f.clock_to != defaults.clock_to) json.number("clock_to", f.clock_to);
  if (f.scope) json.string("scope", *f.scope);
  if (f.kind) json.number("kind", f.kind->value);
  if (f.category) json.number("category", *f.category);
  if (f.correlation_id) json.string("correlation_id", f.correlation_id->to_hex());
  if (f.sequence_from != defaults.sequence_from) json.number("sequence_from", f.sequence_from);
  if (f.sequence_to != defaults.sequence_to) json.number("sequence_to", f.sequence_to);
  if (f.hlc_from) json.hlc("hlc_from", *f.hlc_from);
  if (f.hlc_to) json.hlc("hlc_to", *f.hlc_to);
  return json.finish();
}

}  // namespace keel::consumers
