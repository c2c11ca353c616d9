// A durable consumer's cursor file (segments/FORMAT.md 8.9): the sidecar CONSUMER.<name> holds the
// last sequence the consumer applied and, written with it in one atomic replace, the consumer's own
// state bytes. A torn write leaves the previous pair, never a cursor without its state.
//
// The store reads every cursor file at a writable open (durable consumers define `applied` across
// reopens); the consumers layer (src/consumers/) writes them. A damaged file is CorruptSidecar:
// the position it held is unknown, never guessed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

// Version 2 added the filter; version 1 files (no filter recorded) are still read.
inline constexpr uint32_t kConsumerFileVersion = 2;
inline constexpr char kConsumerFilePrefix[] = "CONSUMER.";
inline constexpr size_t kConsumerNameMax = 64;
// epoch, cursor, state length, name length[, filter length (version 2)]
inline constexpr size_t kConsumerFixedBytesV1 = 26;
inline constexpr size_t kConsumerFixedBytes = 30;
// The filter's canonical text (consumers/filter_text.h) is far shorter.
inline constexpr size_t kConsumerFilterMax = 4096;
// The state kept with a cursor; larger state belongs in a snapshot.
inline constexpr uint64_t kConsumerStateMax = 16ull << 20;

struct ConsumerCursor {
  std::string name;
  uint64_t epoch = 0;   // the store epoch that committed it
  uint64_t cursor = 0;  // the consumer applied every matching event up to this sequence (0: none)
  std::string state;    // the consumer's own bytes, committed with the cursor
  // The filter the cursor was committed under, as canonical text (consumers/filter_text.h);
  // nullopt when none is recorded (a version 1 file, or reset: the next open records its own).
  std::optional<std::string> filter;
  friend bool operator==(const ConsumerCursor&, const ConsumerCursor&) = default;
};

// nullptr when `name` may name a consumer (1 to 64 bytes of A-Z a-z 0-9 _ . -, not starting with
// a dot), else why not.
const char* check_consumer_name(std::string_view name);
// "CONSUMER.<name>"
std::string consumer_file_name(std::string_view name);
// The name in a directory entry, or nullopt when the entry is not a consumer file (a valid name
// after the prefix, and nothing else: `CONSUMER.x.tmp` is not one).
std::optional<std::string> consumer_name_of_file(std::string_view file_name);

// The payload of a current-version file.
std::vector<std::byte> encode_consumer_cursor(const ConsumerCursor& cursor);
// Decodes the payload of a file of `version` (1 or 2; the envelope checked); nullptr on success,
// else what is wrong.
const char* decode_consumer_cursor(std::span<const std::byte> payload, uint32_t version,
                                   ConsumerCursor& cursor);

// The cursor of consumer `name`, or nullopt when it has none. A file whose name disagrees with
// its content is CorruptSidecar (a copied file). Errors: CorruptSidecar, UnsupportedVersion, Io.
Result<std::optional<ConsumerCursor>> read_consumer_cursor(platform::FileSystem& fs,
                                                           const std::string& directory,
                                                           std::string_view name);
// The names of every consumer file in `directory`, sorted. Io.
Result<std::vector<std::string>> list_consumers(platform::FileSystem& fs,
                                                const std::string& directory);
// Durably replaces the cursor file (atomic, log/sidecar_file.h). InvalidArgument (name, a filter
// empty or above kConsumerFilterMax), PayloadTooLarge (state above kConsumerStateMax), Io, NoSpace.
Status write_consumer_cursor(platform::FileSystem& fs, const std::string& directory,
                             const ConsumerCursor& cursor);
// Removes the cursor file and syncs the directory; absent is fine. Io.
Status remove_consumer_cursor(platform::FileSystem& fs, const std::string& directory,
                              std::string_view name);

}  // namespace keel::log
