// keel: StoreError, the one error type of the public API (docs/ARCHITECTURE.md §9).
//
// A StoreError is a value: a code (error_codes.h), a handling class, structured fields, a message
// that names those fields, and an optional cause. Copyable and cheap to move; safe to pass between
// threads (immutable after construction except through the builder methods on an rvalue).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "keel/error_codes.h"

namespace keel {

// What the caller does about an error (docs/ARCHITECTURE.md §9).
enum class ErrorClass : uint8_t {
  Domain,         // fix the request
  Retryable,      // it did not happen; retry as is
  Indeterminate,  // it may have happened; resolve by idempotency key or receipt
  FailClosed,     // stop; reopen / repair / restore
};

enum class ErrorCode : uint16_t {
#define KEEL_X(code, klass, message) code,
  KEEL_ERROR_CODES(KEEL_X)
#undef KEEL_X
};

inline constexpr size_t kErrorCodeCount = 0
#define KEEL_X(code, klass, message) +1
    KEEL_ERROR_CODES(KEEL_X)
#undef KEEL_X
    ;

std::string_view error_code_name(ErrorCode code);
std::string_view error_class_name(ErrorClass error_class);
// The message template of `code`, with {field} placeholders.
std::string_view error_message_template(ErrorCode code);

using ErrorFieldValue = std::variant<uint64_t, int64_t, std::string>;

struct ErrorField {
  std::string name;
  ErrorFieldValue value;
};

class StoreError {
 public:
  explicit StoreError(ErrorCode code) : code_(code) {}

  // Builders: StoreError(ErrorCode::Io).with("operation", "fdatasync").with("errno", 5).
  StoreError&& with(std::string_view name, std::string_view value) &&;
  StoreError&& with(std::string_view name, const char* value) &&;
  StoreError&& with(std::string_view name, uint64_t value) &&;
  StoreError&& with(std::string_view name, int64_t value) &&;
  StoreError&& with(std::string_view name, int value) &&;
  StoreError&& with(std::string_view name, unsigned value) &&;
  StoreError&& caused_by(StoreError cause) &&;

  ErrorCode code() const { return code_; }
  std::string_view code_name() const { return error_code_name(code_); }
  // The handling class; a wrapper inherits its cause's class (FailClosed if it has none).
  ErrorClass error_class() const;
  bool is(ErrorCode code) const { return code_ == code; }

  const std::vector<ErrorField>& fields() const { return fields_; }
  const ErrorFieldValue* field(std::string_view name) const;
  // The field as an integer or string; nullopt if absent or of another type.
  std::optional<uint64_t> field_u64(std::string_view name) const;
  std::optional<std::string> field_string(std::string_view name) const;

  const StoreError* cause() const { return cause_.get(); }
  // The innermost cause (this error if it has none).
  const StoreError& root_cause() const;

  // The template with every {field} substituted; a missing field renders as {field?}.
  std::string message() const;
  // "<Code>: <message>" followed by ": caused by <cause>" for each cause in the chain.
  std::string to_string() const;

 private:
  ErrorCode code_;
  std::vector<ErrorField> fields_;
  std::shared_ptr<const StoreError> cause_;
};

}  // namespace keel
