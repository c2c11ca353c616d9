// Coordinate validation (docs/ARCHITECTURE.md §3): invalid input is a Domain error naming what was
// wrong.
#include "keel/coordinate.h"

namespace keel {
namespace {

StoreError invalid(std::string_view component, std::string_view reason) {
  return StoreError(ErrorCode::InvalidCoordinate).with("component", component).with("reason", reason);
}

Status validate_component(std::string_view component, std::string_view value, size_t max_bytes) {
  if (value.size() > max_bytes) {
    return invalid(component, "longer than " + std::to_string(max_bytes) + " bytes");
  }
  if (!value.empty() && value.front() == '/') return invalid(component, "starts with '/'");
  auto separator = [](char c) { return c == '/' || c == '\\'; };
  for (size_t i = 0; i < value.size(); ++i) {
    auto u = static_cast<unsigned char>(value[i]);
    if (u == 0) return invalid(component, "contains a NUL byte");
    if (u < 0x20 || u == 0x7f) return invalid(component, "contains a control character");
    // ".." as a whole path segment: "..", "../x", "x/..", "x/../y" (also with '\\').
    if (u == '.' && i + 1 < value.size() && value[i + 1] == '.' &&
        (i == 0 || separator(value[i - 1])) &&
        (i + 2 == value.size() || separator(value[i + 2]))) {
      return invalid(component, "contains a path-traversal segment '..'");
    }
  }
  return ok_status();
}

}  // namespace

Status validate_coordinate(std::string_view entity, std::string_view scope) {
  if (entity.empty()) return invalid("entity", "is empty");
  KEEL_TRY(validate_component("entity", entity, kEntityMaxBytes));
  return validate_component("scope", scope, kScopeMaxBytes);
}

}  // namespace keel
