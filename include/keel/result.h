// keel: Result<T>, a value or a StoreError. No exception crosses the public API.
#pragma once

#include <cassert>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "keel/error.h"

namespace keel {

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(StoreError error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // Requires ok().
  T& value() & { return assert(ok()), std::get<0>(state_); }
  const T& value() const& { return assert(ok()), std::get<0>(state_); }
  T&& value() && { return assert(ok()), std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // Requires !ok().
  const StoreError& error() const& { return assert(!ok()), std::get<1>(state_); }
  StoreError&& error() && { return assert(!ok()), std::get<1>(std::move(state_)); }

 private:
  std::variant<T, StoreError> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(StoreError error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const StoreError& error() const& { return assert(!ok()), *error_; }
  StoreError&& error() && { return assert(!ok()), std::move(*error_); }

 private:
  std::optional<StoreError> error_;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

}  // namespace keel

#define KEEL_CONCAT_INNER(a, b) a##b
#define KEEL_CONCAT(a, b) KEEL_CONCAT_INNER(a, b)

// Returns the error of a Status/Result expression from the enclosing function.
#define KEEL_TRY(expr)                                 \
  do {                                                 \
    auto&& keel_try_result_ = (expr);                  \
    if (!keel_try_result_.ok()) {                      \
      return std::move(keel_try_result_).error();      \
    }                                                  \
  } while (false)

// `KEEL_ASSIGN_OR_RETURN(auto x, f());` declares x from the value, or returns the error.
#define KEEL_ASSIGN_OR_RETURN(lhs, expr) \
  KEEL_ASSIGN_OR_RETURN_IMPL(KEEL_CONCAT(keel_result_, __LINE__), lhs, expr)
#define KEEL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) {                                 \
    return std::move(tmp).error();                 \
  }                                                \
  lhs = std::move(tmp).value()
