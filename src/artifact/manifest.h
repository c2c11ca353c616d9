// The MANIFEST of an exported store (segments/FORMAT.md 13): which files an artifact holds, with
// each one's size and XXH3-128, and the store's epoch and last sequence at the export. A text file,
// one field per line, in a fixed order, ending with a line that hashes everything before it:
//
//   keel-artifact 1
//   store-format 2
//   epoch 3
//   sequence 1200
//   file 4096 0123456789abcdef0123456789abcdef EPOCH
//   ...                                      (names in ascending byte order, each once)
//   end 0123456789abcdef0123456789abcdef
//
// The decoder is strict (an artifact is untrusted input): one canonical spelling per manifest, so
// decode(encode(m)) == m and encode(decode(text)) == text whenever decode accepts `text`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "keel/ids.h"
#include "keel/result.h"

namespace keel::artifact {

inline constexpr char kManifestFileName[] = "MANIFEST";
inline constexpr uint64_t kManifestVersion = 1;
inline constexpr uint64_t kManifestBytesMax = 1 << 20;  // 1 MiB

struct ManifestFile {
  std::string name;
  uint64_t size = 0;
  Hash128 hash;  // XXH3-128 (seed 0) of the file's bytes
  friend bool operator==(const ManifestFile&, const ManifestFile&) = default;
};

struct Manifest {
  uint64_t store_format = 0;  // the newest segment format version it may hold (1 to kFormatVersion)
  uint64_t epoch = 0;         // the source's epoch at the export
  uint64_t sequence = 0;      // the last event of the exported log (0: none)
  std::vector<ManifestFile> files;  // ascending by name
  friend bool operator==(const Manifest&, const Manifest&) = default;
};

// nullptr when `name` may be a file of an artifact: a store file that an export writes (a
// segment, EPOCH, RETAIN, END, INDEX, IDEMPOTENCY, a consumer's or a snapshot's file), else why not.
// No such name holds a '/' or starts with a dot, so none leads out of the artifact's directory.
const char* check_artifact_file_name(std::string_view name);

std::string encode_manifest(const Manifest& manifest);

// The manifest `text` describes, or ArtifactInvalid {path, reason} naming the line at fault.
// `path` names the manifest in errors.
Result<Manifest> decode_manifest(std::string_view text, const std::string& path);

}  // namespace keel::artifact
