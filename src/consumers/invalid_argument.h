// InvalidArgument {argument, reason}, as the consumers layer reports bad input.
#pragma once

#include <string_view>

#include "keel/error.h"

namespace keel::consumers {

inline StoreError invalid_argument(std::string_view argument, std::string_view reason) {
  return StoreError(ErrorCode::InvalidArgument).with("argument", argument).with("reason", reason);
}

}  // namespace keel::consumers
