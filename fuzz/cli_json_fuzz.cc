// Fuzzes the CLI's payload convention (tools/cli/json_codec.h): stored payloads and metadata are
// arbitrary bytes to `keel scan/get/entity/query`, and JSON comes from the user. Neither may crash,
// recurse without bound, allocate beyond a small multiple of the input, or print what is not JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cli/json_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using keel::cli::Json;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Stored bytes printed: exactly one of the three fields, and JSON that serializes strictly
  // (dump() throws on invalid UTF-8, which would abort here).
  Json shown;
  keel::cli::put_bytes(shown, "payload", bytes, /*exact=*/false);
  if (shown.size() != 1) std::abort();
  (void)shown.dump();
  (void)keel::cli::bytes_cell(bytes);
  // Exact, the value is written only when it is the bytes' own compact text.
  Json exact;
  keel::cli::put_bytes(exact, "payload", bytes, /*exact=*/true);
  if (exact.contains("payload") && exact["payload"].dump() != bytes) std::abort();

  // The same bytes as user JSON: what the CLI stores for it prints as that JSON value.
  std::string error;
  if (auto stored = keel::cli::stored_json_text(bytes, error)) {
    Json printed;
    keel::cli::put_bytes(printed, "payload", *stored, /*exact=*/false);
    auto value = keel::cli::parse_json(*stored, error);
    if (!value) std::abort();
    if (!value->is_null() && (!printed.contains("payload") || printed["payload"] != *value)) {
      std::abort();
    }
  } else if (error.empty()) {
    std::abort();  // a refusal always says why
  }
  return 0;
}
