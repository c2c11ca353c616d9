// The artifact manifest's codec (artifact/manifest.h, segments/FORMAT.md 13).
#include "artifact/manifest.h"

#include <algorithm>
#include <charconv>

#include "format/checksum.h"
#include "format/format_constants.h"
#include "log/consumer_file.h"
#include "log/segment_files.h"
#include "log/snapshot_files.h"

namespace keel::artifact {

namespace {

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// A canonical decimal u64: digits only, no leading zero (except "0" itself), no overflow.
bool parse_decimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// 32 lowercase hex digits: high64 then low64.
bool parse_hash(std::string_view text, Hash128& hash) {
  if (text.size() != 32) return false;
  if (!std::all_of(text.begin(), text.end(),
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
    return false;
  }
  auto parse = [](std::string_view hex, uint64_t& out) {
    auto [end, error] = std::from_chars(hex.data(), hex.data() + hex.size(), out, 16);
    return error == std::errc() && end == hex.data() + hex.size();
  };
  return parse(text.substr(0, 16), hash.high) && parse(text.substr(16), hash.low);
}

}  // namespace

const char* check_artifact_file_name(std::string_view name) {
  if (log::parse_segment_file_name(name)) return nullptr;
  for (const char* fixed : {format::kEpochFileName, format::kRetentionFloorFileName,
                            format::kLogEndFileName, format::kIndexImageFileName,
                            format::kIdempotencyFileName}) {
    if (name == fixed) return nullptr;
  }
  if (log::consumer_name_of_file(name) || log::snapshot_name_of_pointer_file(name) ||
      log::parse_snapshot_payload_file_name(name)) {
    return nullptr;
  }
  return "not a file an export writes (a segment, EPOCH, RETAIN, END, INDEX, IDEMPOTENCY, "
         "CONSUMER.<name>, SNAPSHOT.<name> or SNAPDATA.<name>.<sequence>.<hash>)";
}

std::string encode_manifest(const Manifest& manifest) {
  std::string text = "keel-artifact " + std::to_string(kManifestVersion) + "\n";
  text += "store-format " + std::to_string(manifest.store_format) + "\n";
  text += "epoch " + std::to_string(manifest.epoch) + "\n";
  text += "sequence " + std::to_string(manifest.sequence) + "\n";
  for (const ManifestFile& file : manifest.files) {
    text += "file " + std::to_string(file.size) + " " + file.hash.to_hex() + " " + file.name + "\n";
  }
  text += "end " + format::hash128(bytes_of(text)).to_hex() + "\n";
  return text;
}

Result<Manifest> decode_manifest(std::string_view text, const std::string& path) {
  size_t line_number = 0;
  auto invalid = [&](const std::string& reason) {
    return StoreError(ErrorCode::ArtifactInvalid)
        .with("path", path)
        .with("reason", line_number == 0 ? reason
                                         : "line " + std::to_string(line_number) + ": " + reason);
  };
  if (text.size() > kManifestBytesMax) {
    return invalid("the manifest has " + std::to_string(text.size()) +
                   " bytes, more than the limit of " + std::to_string(kManifestBytesMax));
  }
  Manifest manifest;
  // The fields in order; `file` lines repeat; `end` closes the manifest.
  enum class Expect { Version, StoreFormat, Epoch, Sequence, FileOrEnd, Nothing };
  Expect expect = Expect::Version;
  size_t at = 0;
  while (at < text.size()) {
    ++line_number;
    if (expect == Expect::Nothing) return invalid("bytes after the end line");
    size_t newline = text.find('\n', at);
    if (newline == std::string_view::npos) return invalid("the line does not end with a newline");
    std::string_view line = text.substr(at, newline - at);
    const size_t line_start = at;
    at = newline + 1;
    size_t space = line.find(' ');
    if (space == std::string_view::npos) return invalid("not a 'field value' line");
    std::string_view field = line.substr(0, space);
    std::string_view value = line.substr(space + 1);
    auto number = [&](uint64_t& out) { return parse_decimal(value, out); };
    static constexpr std::string_view kFields[] = {"keel-artifact", "store-format", "epoch",
                                                   "sequence", "file", "end"};
    if (std::find(std::begin(kFields), std::end(kFields), field) == std::end(kFields)) {
      return invalid("unknown field '" + std::string(field.substr(0, 64)) + "'");
    }
    switch (expect) {
      case Expect::Version: {
        uint64_t version = 0;
        if (field != "keel-artifact") return invalid("the manifest must start with keel-artifact");
        if (!number(version)) return invalid("keel-artifact is not a decimal number");
        if (version != kManifestVersion) {
          return invalid("artifact version " + std::to_string(version) +
                         " is not supported (this keel reads version " +
                         std::to_string(kManifestVersion) + ")");
        }
        expect = Expect::StoreFormat;
        break;
      }
      case Expect::StoreFormat:
        if (field != "store-format") return invalid("expected store-format");
        if (!number(manifest.store_format)) return invalid("store-format is not a decimal number");
        if (manifest.store_format == 0 || manifest.store_format > format::kFormatVersion) {
          return invalid("store format version " + std::to_string(manifest.store_format) +
                         " is not supported (this keel reads versions 1 to " +
                         std::to_string(format::kFormatVersion) + ")");
        }
        expect = Expect::Epoch;
        break;
      case Expect::Epoch:
        if (field != "epoch") return invalid("expected epoch");
        if (!number(manifest.epoch)) return invalid("epoch is not a decimal number");
        expect = Expect::Sequence;
        break;
      case Expect::Sequence:
        if (field != "sequence") return invalid("expected sequence");
        if (!number(manifest.sequence)) return invalid("sequence is not a decimal number");
        expect = Expect::FileOrEnd;
        break;
      case Expect::FileOrEnd:
        if (field == "end") {
          Hash128 claimed;
          if (!parse_hash(value, claimed)) return invalid("end is not 32 lowercase hex digits");
          if (format::hash128(bytes_of(text.substr(0, line_start))) != claimed) {
            return invalid("the manifest does not hash to what its end line says");
          }
          expect = Expect::Nothing;
        } else if (field == "file") {
          // file <size> <hash> <name>
          size_t first = value.find(' ');
          size_t second = first == std::string_view::npos ? first : value.find(' ', first + 1);
          if (second == std::string_view::npos) return invalid("file needs a size, a hash, a name");
          ManifestFile file;
          std::string_view name = value.substr(second + 1);
          if (!parse_decimal(value.substr(0, first), file.size)) {
            return invalid("the file's size is not a decimal number");
          }
          if (!parse_hash(value.substr(first + 1, second - first - 1), file.hash)) {
            return invalid("the file's hash is not 32 lowercase hex digits");
          }
          if (const char* problem = check_artifact_file_name(name)) {
            return invalid("file name '" + std::string(name.substr(0, 128)) + "' refused: " +
                           problem);
          }
          file.name = std::string(name);
          if (!manifest.files.empty() && manifest.files.back().name >= file.name) {
            return invalid("file " + file.name + " is out of order or listed twice");
          }
          manifest.files.push_back(std::move(file));
        } else {
          return invalid("expected file or end, found " + std::string(field));
        }
        break;
      case Expect::Nothing:
        break;
    }
  }
  line_number = 0;
  if (expect != Expect::Nothing) return invalid("the manifest ends before its end line");
  return manifest;
}

}  // namespace keel::artifact
