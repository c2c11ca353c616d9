// libFuzzer target: the files of named snapshots (src/log/snapshot_files.cc, segments/FORMAT.md
// 8.11). Each input is decoded as a pointer's payload alone (decode_snapshot_pointer) and as a
// whole SNAPSHOT file (decode_sidecar, which mostly stops at the checksum, then the payload); the
// payload is also wrapped in a valid envelope, which must change nothing. Each input is also
// parsed as a directory entry name: a payload file name (parse_snapshot_payload_file_name) and a
// pointer file name.
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - a refused pointer has a reason; alone and under an envelope it gives the same outcome;
// - an accepted pointer holds what FORMAT.md 8.11 allows (a non-zero epoch, a size within the
//   limit, a snapshot name) and re-encodes to exactly the input: every byte is a field;
// - a name accepted as a payload file's is exactly the one file_name(name, sequence, hash) makes
//   (one name per payload: no other spelling of the same sequence or hash is accepted), and a
//   pointer file's name round-trips the same way.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "format/format_constants.h"
#include "format/sidecar.h"
#include "fuzz_support.h"
#include "log/snapshot_files.h"

namespace keel::fuzz {
namespace {

void check_pointer(std::span<const std::byte> payload) {
  log::SnapshotPointer pointer;
  const char* problem = log::decode_snapshot_pointer(payload, pointer);
  std::vector<std::byte> wrapped = format::encode_sidecar(
      format::SidecarKind::SnapshotPointer, log::kSnapshotPointerVersion, payload);
  auto unwrapped = format::decode_sidecar(wrapped, format::SidecarKind::SnapshotPointer,
                                          log::kSnapshotPointerVersion, "/fuzz/SNAPSHOT.x");
  check(unwrapped.ok(), "a valid envelope decodes");
  log::SnapshotPointer again;
  const char* problem_again = log::decode_snapshot_pointer(*unwrapped, again);
  check((problem == nullptr) == (problem_again == nullptr), "the envelope changes the outcome");
  if (problem != nullptr) return;
  check(pointer == again, "the envelope changes the content");
  check(pointer.epoch != 0 && pointer.size <= kSnapshotBytesMax &&
            log::check_snapshot_name(pointer.name) == nullptr,
        "accepted a zero epoch, a size above the limit or a bad name");
  std::vector<std::byte> encoded = log::encode_snapshot_pointer(pointer);
  check(encoded.size() == payload.size() &&
            std::equal(encoded.begin(), encoded.end(), payload.begin()),
        "an accepted pointer does not re-encode to itself");
}

void check_file_names(std::string_view name) {
  if (auto parsed = log::parse_snapshot_payload_file_name(name)) {
    check(log::check_snapshot_name(parsed->name) == nullptr, "a payload of a bad name");
    check(log::snapshot_payload_file_name(parsed->name, parsed->sequence, parsed->hash) == name,
          "a payload file name that is not the one its parts make");
  }
  if (auto pointer = log::snapshot_name_of_pointer_file(name)) {
    check(log::snapshot_pointer_file_name(*pointer) == name,
          "a pointer file name that is not the one its name makes");
  }
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  keel::fuzz::check_pointer(bytes);
  auto payload =
      keel::format::decode_sidecar(bytes, keel::format::SidecarKind::SnapshotPointer,
                                   keel::log::kSnapshotPointerVersion, "/fuzz/SNAPSHOT.x");
  if (payload.ok()) keel::fuzz::check_pointer(*payload);
  keel::fuzz::check_file_names(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
