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

inline constexpr uint32_t kConsumerFileVersion = 1;
inline constexpr char kConsumerFilePrefix[] = "CONSUMER.";
inline constexpr size_t kConsumerNameMax = 64;
inline constexpr size_t kConsumerFixedBytes = 26;  // epoch, cursor, state length, name length
// The state kept with a cursor; larger state belongs in a snapshot.
inline constexpr uint64_t kConsumerStateMax = 16ull << 20;

struct ConsumerCursor {
  std::string name;
  uint64_t epoch = 0;   // the store epoch that committed it
  uint64_t cursor = 0;  // the consumer applied every matching event up to this sequence (0: none)
  std::string state;    // the consumer's own bytes, committed with the cursor
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

std::vector<std::byte> encode_consumer_cursor(const ConsumerCursor& cursor);
// Decodes the payload (the envelope checked); nullptr on success, else what is wrong.
const char* decode_consumer_cursor(std::span<const std::byte> payload, ConsumerCursor& cursor);

// The cursor of consumer `name`, or nullopt when it has none. A file whose name disagrees with
// its content is CorruptSidecar (a copied file). Errors: CorruptSidecar, UnsupportedVersion, Io.
Result<std::optional<ConsumerCursor>> read_consumer_cursor(platform::FileSystem& fs,
                                                           const std::string& directory,
                                                           std::string_view name);
// The names of every consumer file in `directory`, sorted. Io.
Result<std::vector<std::string>> list_consumers(platform::FileSystem& fs,
                                                const std::string& directory);
// Durably replaces the cursor file (atomic, log/sidecar_file.h). InvalidArgument (name),
// PayloadTooLarge (state above kConsumerStateMax), Io, NoSpace.
Status write_consumer_cursor(platform::FileSystem& fs, const std::string& directory,
                             const ConsumerCursor& cursor);
// Removes the cursor file and syncs the directory; absent is fine. Io.
Status remove_consumer_cursor(platform::FileSystem& fs, const std::string& directory,
                              std::string_view name);

}  // namespace keel::log
