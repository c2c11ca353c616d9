// Fuzzes the CLI's JSON <-> msgpack bridge (tools/cli/json_codec.h): stored payloads and metadata
// are arbitrary bytes to `keel scan/get/entity`, and JSON comes from the user. Neither may crash,
// recurse without bound, or allocate beyond a small multiple of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cli/json_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Stored bytes printed as JSON: the JSON the CLI prints must be JSON it accepts, and printing is
  // a normalisation (invalid UTF-8 becomes U+FFFD, so keys may merge): after one round trip more
  // round trips change nothing.
  if (auto json = keel::cli::msgpack_to_json(bytes)) {
    std::string error;
    auto once = keel::cli::json_to_msgpack(*json, error);
    if (!once) std::abort();
    auto json_once = keel::cli::msgpack_to_json(*once);
    if (!json_once) std::abort();
    auto twice = keel::cli::json_to_msgpack(*json_once, error);
    if (!twice || keel::cli::msgpack_to_json(*twice) != json_once) std::abort();
  }
  // The same bytes as user JSON input.
  std::string error;
  if (auto packed = keel::cli::json_to_msgpack(bytes, error)) {
    if (!keel::cli::msgpack_to_json(*packed)) std::abort();  // what we store we can print
  } else if (error.empty()) {
    std::abort();  // a refusal always says why
  }
  return 0;
}
