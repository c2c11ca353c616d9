// StoreError: classification, fields and message rendering (docs/ARCHITECTURE.md §9).
#include <string>

#include "keel/error.h"

namespace keel {
namespace {

// The class column of KEEL_ERROR_CODES; nullopt means "inherit from the cause".
std::optional<ErrorClass> fixed_class(ErrorCode code) {
  constexpr std::optional<ErrorClass> InheritFromCause = std::nullopt;
  constexpr ErrorClass Domain = ErrorClass::Domain;
  constexpr ErrorClass Retryable = ErrorClass::Retryable;
  constexpr ErrorClass Indeterminate = ErrorClass::Indeterminate;
  constexpr ErrorClass FailClosed = ErrorClass::FailClosed;
  switch (code) {
#define KEEL_X(c, klass, message) \
  case ErrorCode::c:              \
    return klass;
    KEEL_ERROR_CODES(KEEL_X)
#undef KEEL_X
  }
  return ErrorClass::FailClosed;  // unreachable: -Werror=switch covers every code
}

void render_value(std::string& out, const ErrorFieldValue& value) {
  if (const auto* u = std::get_if<uint64_t>(&value)) {
    out += std::to_string(*u);
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    out += std::to_string(*i);
  } else {
    out += std::get<std::string>(value);
  }
}

}  // namespace

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
#define KEEL_X(c, klass, message) \
  case ErrorCode::c:              \
    return #c;
    KEEL_ERROR_CODES(KEEL_X)
#undef KEEL_X
  }
  return "UnknownErrorCode";
}

std::string_view error_message_template(ErrorCode code) {
  switch (code) {
#define KEEL_X(c, klass, message) \
  case ErrorCode::c:              \
    return message;
    KEEL_ERROR_CODES(KEEL_X)
#undef KEEL_X
  }
  return "unknown error";
}

std::string_view error_class_name(ErrorClass error_class) {
  switch (error_class) {
    case ErrorClass::Domain:
      return "Domain";
    case ErrorClass::Retryable:
      return "Retryable";
    case ErrorClass::Indeterminate:
      return "Indeterminate";
    case ErrorClass::FailClosed:
      return "FailClosed";
  }
  return "Unknown";
}

StoreError&& StoreError::with(std::string_view name, std::string_view value) && {
  fields_.push_back({std::string(name), std::string(value)});
  return std::move(*this);
}
StoreError&& StoreError::with(std::string_view name, const char* value) && {
  return std::move(*this).with(name, std::string_view(value));
}
StoreError&& StoreError::with(std::string_view name, uint64_t value) && {
  fields_.push_back({std::string(name), value});
  return std::move(*this);
}
StoreError&& StoreError::with(std::string_view name, int64_t value) && {
  fields_.push_back({std::string(name), value});
  return std::move(*this);
}
StoreError&& StoreError::with(std::string_view name, int value) && {
  return std::move(*this).with(name, static_cast<int64_t>(value));
}
StoreError&& StoreError::with(std::string_view name, unsigned value) && {
  return std::move(*this).with(name, static_cast<uint64_t>(value));
}
StoreError&& StoreError::caused_by(StoreError cause) && {
  cause_ = std::make_shared<const StoreError>(std::move(cause));
  return std::move(*this);
}

ErrorClass StoreError::error_class() const {
  if (auto klass = fixed_class(code_)) return *klass;
  return cause_ ? cause_->error_class() : ErrorClass::FailClosed;
}

const ErrorFieldValue* StoreError::field(std::string_view name) const {
  for (const auto& f : fields_) {
    if (f.name == name) return &f.value;
  }
  return nullptr;
}

std::optional<uint64_t> StoreError::field_u64(std::string_view name) const {
  const auto* value = field(name);
  if (value == nullptr) return std::nullopt;
  if (const auto* u = std::get_if<uint64_t>(value)) return *u;
  return std::nullopt;
}

std::optional<std::string> StoreError::field_string(std::string_view name) const {
  const auto* value = field(name);
  if (value == nullptr) return std::nullopt;
  if (const auto* s = std::get_if<std::string>(value)) return *s;
  return std::nullopt;
}

const StoreError& StoreError::root_cause() const {
  const StoreError* e = this;
  while (e->cause_) e = e->cause_.get();
  return *e;
}

std::string StoreError::message() const {
  std::string_view tmpl = error_message_template(code_);
  std::string out;
  out.reserve(tmpl.size() + 32);
  size_t i = 0;
  while (i < tmpl.size()) {
    size_t open = tmpl.find('{', i);
    size_t close = open == std::string_view::npos ? open : tmpl.find('}', open);
    if (close == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    out.append(tmpl.substr(i, open - i));
    std::string_view name = tmpl.substr(open + 1, close - open - 1);
    if (const auto* value = field(name)) {
      render_value(out, *value);
    } else {
      out.append("{").append(name).append("?}");
    }
    i = close + 1;
  }
  return out;
}

std::string StoreError::to_string() const {
  std::string out = std::string(code_name()) + ": " + message();
  for (const StoreError* c = cause(); c != nullptr; c = c->cause()) {
    out.append(": caused by ").append(c->code_name()).append(": ").append(c->message());
  }
  return out;
}

}  // namespace keel
