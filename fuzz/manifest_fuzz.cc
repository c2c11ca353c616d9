// libFuzzer target: the MANIFEST of an exported artifact (src/artifact/manifest.cc,
// segments/FORMAT.md 13), an import's first untrusted input. Each input is decoded as it is, and
// again with its last "end " line re-signed (the right hash of what precedes it), so that the
// fuzzer explores the fields rather than stopping at the hash. Each input is also checked as a
// file name of an artifact.
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - a refused manifest is ArtifactInvalid with a reason;
// - an accepted manifest re-encodes to exactly the input (one spelling per manifest), lists
//   names in strictly ascending order, each one a store file's name, and has the supported
//   store format;
// - a name accepted as an artifact file's cannot leave the artifact's directory: no '/', no
//   leading dot, no NUL.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "artifact/manifest.h"
#include "format/checksum.h"
#include "format/format_constants.h"
#include "fuzz_support.h"

namespace keel::fuzz {
namespace {

void check_manifest(std::string_view text) {
  auto decoded = artifact::decode_manifest(text, "/fuzz/MANIFEST");
  if (!decoded.ok()) {
    check(decoded.error().is(ErrorCode::ArtifactInvalid), "a refusal of another code");
    check(!decoded.error().to_string().empty(), "a refusal without a reason");
    return;
  }
  check(artifact::encode_manifest(*decoded) == text, "an accepted manifest re-encodes otherwise");
  check(decoded->store_format >= 1 && decoded->store_format <= format::kFormatVersion,
        "an unsupported store format accepted");
  for (size_t i = 0; i < decoded->files.size(); ++i) {
    check(artifact::check_artifact_file_name(decoded->files[i].name) == nullptr,
          "a file name an export does not write accepted");
    check(i == 0 || decoded->files[i - 1].name < decoded->files[i].name,
          "names out of order or repeated accepted");
  }
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keel;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::check_manifest(text);
  if (size_t end = text.rfind("end "); end != std::string_view::npos) {
    std::string resigned(text.substr(0, end));
    resigned += "end " +
                format::hash128(std::as_bytes(std::span(resigned.data(), resigned.size()))).to_hex() +
                "\n";
    fuzz::check_manifest(resigned);
  }
  if (artifact::check_artifact_file_name(text) == nullptr) {
    fuzz::check(text.find('/') == std::string_view::npos && !text.starts_with('.') &&
                    text.find('\0') == std::string_view::npos,
                "an artifact file name that can leave the directory");
  }
  return 0;
}
