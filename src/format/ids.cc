#include "keel/ids.h"

#include "absl/strings/str_format.h"

namespace keel {

std::string EventId::to_hex() const { return absl::StrFormat("%016x%016x", high, low); }
std::string Hash128::to_hex() const { return absl::StrFormat("%016x%016x", high, low); }

}  // namespace keel
